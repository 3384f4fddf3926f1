//! The outbox carries every accepted reading to Kafka exactly once, keyed by property, in the
//! order billing accepted it per property, with the `content-type`, `event-type` and
//! `traceparent` headers; a caller's trace id survives onto the message; rows left in the
//! outbox while no billing ran are published by the next billing's start-up sweep; two
//! replicas on one database publish each row once. Runs billing in-process against the real
//! PostgreSQL and Kafka.

mod common;

use std::collections::HashMap;

use anyhow::{Context, ensure};
use billing::domain::ReadingRules;
use billing::store::{self, Submission};
use chrono::Utc;
use common::{Billing, Stack, check_published_once_in_order, client, reading, send_concurrently};
use energy_contracts::names::HEADER_TRACEPARENT;
use energy_contracts::trace::trace_id;
use uuid::Uuid;

const PROPERTIES: usize = 20;
const READINGS_PER_PROPERTY: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_concurrently_accepted_reading_is_published_once_in_order_per_property()
-> anyhow::Result<()> {
    let stack = Stack::new("outbox-order").await?;
    let billing = Billing::start(stack.config(&[])?).await?;
    let properties: Vec<String> = (0..PROPERTIES).map(|i| format!("house-{i:02}")).collect();

    let accepted = send_concurrently(
        std::slice::from_ref(&billing.base_url),
        &properties,
        READINGS_PER_PROPERTY,
    )
    .await?;

    let total = PROPERTIES * READINGS_PER_PROPERTY as usize;
    common::wait_for_outbox_sent(&stack.db.pool, total).await?;
    check_published_once_in_order(&stack.published().await?, &accepted)?;
    billing.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_database_publish_each_reading_once_in_order() -> anyhow::Result<()> {
    let stack = Stack::new("outbox-replicas").await?;
    let first = Billing::start(stack.config(&[])?).await?;
    let second = Billing::start(stack.config(&[])?).await?;
    let properties: Vec<String> = (0..6).map(|i| format!("twin-{i}")).collect();

    let urls = [first.base_url.clone(), second.base_url.clone()];
    let accepted = send_concurrently(&urls, &properties, 30).await?;

    common::wait_for_outbox_sent(&stack.db.pool, 6 * 30).await?;
    check_published_once_in_order(&stack.published().await?, &accepted)?;
    first.stop().await?;
    second.stop().await
}

#[tokio::test]
async fn a_callers_traceparent_keeps_its_trace_id_on_the_kafka_message() -> anyhow::Result<()> {
    let stack = Stack::new("outbox-trace").await?;
    let billing = Billing::start(stack.config(&[])?).await?;
    let caller_trace = Uuid::new_v4().simple().to_string();
    let traceparent = format!("00-{caller_trace}-00f067aa0ba902b7-01");

    let response = client()
        .post(billing.url("/api/v1/consumption"))
        .header(HEADER_TRACEPARENT, &traceparent)
        .json(&reading("traced-1", 1))
        .send()
        .await?;
    ensure!(response.status() == 202, "{}", response.status());
    let event_id = common::event_id_of(&response.json().await?)?;
    let untraced = common::accept(&client(), &billing.base_url, &reading("traced-1", 2)).await?;

    common::wait_for_outbox_sent(&stack.db.pool, 2).await?;
    let messages = stack.published().await?;
    let header_of = |id: Uuid| {
        messages
            .iter()
            .find(|m| m.event.event_id == id)
            .and_then(|m| m.headers.get(HEADER_TRACEPARENT).cloned())
            .with_context(|| format!("no message with a traceparent for {id}"))
    };
    let carried = header_of(event_id)?;
    ensure!(
        trace_id(&carried) == Some(caller_trace.clone()),
        "{carried}"
    );
    ensure!(
        carried != traceparent,
        "billing's own span id must replace the caller's"
    );
    let started = header_of(untraced)?;
    ensure!(
        trace_id(&started).is_some_and(|id| id != caller_trace),
        "a reading without a trace starts its own: {started}"
    );
    billing.stop().await
}

#[tokio::test]
async fn rows_left_in_the_outbox_while_billing_was_down_are_published_on_start()
-> anyhow::Result<()> {
    let stack = Stack::new("outbox-sweep").await?;
    store::migrate(&stack.db.pool).await?;

    // Store readings the way billing does, with no billing (and no relay) running.
    let rules = ReadingRules {
        regions: vec!["GB".into()],
        default_region: "GB".into(),
    };
    let traceparent = energy_contracts::trace::continue_or_start(None);
    let mut accepted: HashMap<String, Vec<Uuid>> = HashMap::new();
    for n in 0..10 {
        for property in ["left-a", "left-b", "left-c"] {
            let submission = Submission {
                reading: rules.validate(&reading(property, n), Utc::now())?,
                idempotency_key: None,
                traceparent: Some(traceparent.clone()),
            };
            let stored = store::insert_many(&stack.db.pool, &stack.topic, &[submission]).await?;
            let id = stored
                .into_iter()
                .next()
                .context("one outcome per reading")??;
            accepted
                .entry(property.into())
                .or_default()
                .push(id.event_id());
        }
    }
    ensure!(common::outbox_counts(&stack.db.pool).await? == (30, 30));

    // An hour between sweeps: only the start-up sweep can publish these rows in time.
    let billing = Billing::start(stack.config(&["--relay-sweep-ms", "3600000"])?).await?;
    common::wait_for_outbox_sent(&stack.db.pool, 30).await?;
    check_published_once_in_order(&stack.published().await?, &accepted)?;
    billing.stop().await
}
