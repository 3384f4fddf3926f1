//! Kafka being down does not stop ingestion and loses nothing: with the shared dev broker
//! stopped, billing still answers 202 for every reading (they wait in the outbox, and the
//! readiness probe says Kafka is away); once the broker is back, every accepted reading reaches
//! the topic exactly once, in order per property.
//!
//! This test stops the Kafka that every test shares, so it is alone in its test binary (cargo
//! runs test binaries one after another). It starts Kafka again before it asserts anything.

mod common;

use std::collections::HashMap;

use anyhow::{Context, ensure};
use common::{Billing, Stack, client, reading, send_concurrently};
use energy_testkit::services::{self, Service};
use serde_json::Value;
use uuid::Uuid;

const PROPERTIES: usize = 5;
const READINGS_PER_PROPERTY: u32 = 20;

/// What was seen while Kafka was down; each part is checked after Kafka is back.
struct Outage {
    accepted: anyhow::Result<HashMap<String, Vec<Uuid>>>,
    readiness: anyhow::Result<(u16, Value)>,
    outbox: anyhow::Result<(i64, i64)>,
}

async fn during_outage(stack: &Stack, billing: &Billing) -> Outage {
    let properties: Vec<String> = (0..PROPERTIES).map(|i| format!("dark-{i}")).collect();
    let accepted = send_concurrently(
        std::slice::from_ref(&billing.base_url),
        &properties,
        READINGS_PER_PROPERTY,
    )
    .await;
    let readiness = async {
        let response = client().get(billing.url("/readyz")).send().await?;
        let status = response.status().as_u16();
        anyhow::Ok((status, response.json().await?))
    }
    .await;
    let outbox = common::outbox_counts(&stack.db.pool).await;
    Outage {
        accepted,
        readiness,
        outbox,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readings_accepted_while_kafka_is_down_reach_the_topic_once_it_is_back()
-> anyhow::Result<()> {
    let stack = Stack::new("outage").await?;
    let billing = Billing::start(stack.config(&[])?).await?;

    // The path works before the outage: one reading goes all the way.
    let first = common::accept(&client(), &billing.base_url, &reading("lit-0", 0)).await?;
    common::wait_for_outbox_sent(&stack.db.pool, 1).await?;

    let stopped = services::stop(Service::Kafka).await;
    let outage = match &stopped {
        Ok(()) => Some(during_outage(&stack, &billing).await),
        Err(_) => None,
    };
    // Always start Kafka again, whatever happened above, before any assertion.
    let restarted = services::start(Service::Kafka).await;
    stopped.context("stop the shared Kafka")?;
    restarted.context("start the shared Kafka again")?;
    let outage = outage.context("no outage was observed")?;

    let mut accepted = outage
        .accepted
        .context("a reading was refused while Kafka was down")?;
    let during: usize = accepted.values().map(Vec::len).sum();
    ensure!(during == PROPERTIES * READINGS_PER_PROPERTY as usize);
    let (status, readiness) = outage.readiness?;
    ensure!(
        status == 503 && readiness["kafka"] == false,
        "{status}: {readiness}"
    );
    let (rows, unsent) = outage.outbox?;
    ensure!(
        (rows, unsent) == (1 + during as i64, during as i64),
        "while Kafka was down the outbox held {unsent} unsent of {rows} rows"
    );

    accepted.insert("lit-0".into(), vec![first]);
    common::wait_for_outbox_sent(&stack.db.pool, 1 + during).await?;
    common::check_published_once_in_order(&stack.published().await?, &accepted)?;
    billing.stop().await
}
