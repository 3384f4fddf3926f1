//! Retries are safe: a reading sent again with the same `Idempotency-Key`, or with the same
//! client `eventId`, is answered with the first event id, stored once, written to the outbox
//! once and published to Kafka once; reusing a key or an event id for a different reading is
//! refused with 409 naming which one. Runs billing in-process against the real PostgreSQL and
//! Kafka.

mod common;

use anyhow::ensure;
use common::{Billing, Stack, client, reading};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// Posts `body` with an `Idempotency-Key` and returns the status, the replay header and body.
async fn post_with_key(
    billing: &Billing,
    key: &str,
    body: &Value,
) -> anyhow::Result<(StatusCode, bool, Value)> {
    let response = client()
        .post(billing.url("/api/v1/consumption"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    Ok((status, replayed, response.json().await?))
}

/// Readings and outbox rows stored for `event_id`.
async fn stored_rows(stack: &Stack, event_id: Uuid) -> anyhow::Result<(i64, i64)> {
    let readings: i64 = sqlx::query_scalar("SELECT count(*) FROM readings WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&stack.db.pool)
        .await?;
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&stack.db.pool)
        .await?;
    Ok((readings, outbox))
}

/// Waits for the outbox to drain and returns how often each event id is on the topic.
async fn published_counts(
    stack: &Stack,
    rows: usize,
) -> anyhow::Result<std::collections::HashMap<Uuid, usize>> {
    common::wait_for_outbox_sent(&stack.db.pool, rows).await?;
    Ok(common::counts_by_event(&stack.published().await?))
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_stored_and_published_once() -> anyhow::Result<()>
{
    let stack = Stack::new("idem-key").await?;
    let billing = Billing::start(stack.config(&[])?).await?;
    let body = reading("idem-1", 1);

    let (first_status, first_replayed, first) = post_with_key(&billing, "retry-1", &body).await?;
    let (again_status, again_replayed, again) = post_with_key(&billing, "retry-1", &body).await?;

    ensure!(
        first_status == StatusCode::ACCEPTED && !first_replayed,
        "{first}"
    );
    ensure!(
        again_status == StatusCode::ACCEPTED && again_replayed,
        "{again}"
    );
    let event_id = common::event_id_of(&first)?;
    ensure!(
        common::event_id_of(&again)? == event_id,
        "{first} then {again}"
    );
    ensure!(stored_rows(&stack, event_id).await? == (1, 1));

    let counts = published_counts(&stack, 1).await?;
    ensure!(counts == [(event_id, 1)].into(), "{counts:?}");
    billing.stop().await
}

#[tokio::test]
async fn concurrent_retries_with_one_key_are_stored_once() -> anyhow::Result<()> {
    let stack = Stack::new("idem-race").await?;
    let billing = Billing::start(stack.config(&[])?).await?;
    let body = reading("idem-2", 1);

    let answers = join_all((0..8).map(|_| post_with_key(&billing, "race-1", &body))).await;

    let mut ids = Vec::new();
    for answer in answers {
        let (status, _, body) = answer?;
        ensure!(status == StatusCode::ACCEPTED, "{status}: {body}");
        ids.push(common::event_id_of(&body)?);
    }
    ids.dedup();
    ensure!(ids.len() == 1, "retries got different event ids: {ids:?}");
    ensure!(stored_rows(&stack, ids[0]).await? == (1, 1));

    let counts = published_counts(&stack, 1).await?;
    ensure!(counts == [(ids[0], 1)].into(), "{counts:?}");
    billing.stop().await
}

#[tokio::test]
async fn a_reading_sent_twice_with_its_own_event_id_is_stored_and_published_once()
-> anyhow::Result<()> {
    let stack = Stack::new("idem-event").await?;
    let billing = Billing::start(stack.config(&[])?).await?;
    let event_id = Uuid::now_v7();
    let mut body = reading("idem-3", 1);
    body["eventId"] = json!(event_id.to_string());
    let client = client();

    let first = common::accept(&client, &billing.base_url, &body).await?;
    let again = common::accept(&client, &billing.base_url, &body).await?;
    // The same reading inside a batch is a replay as well.
    let batch: Value = client
        .post(billing.url("/api/v1/consumption/batch"))
        .json(&json!([body]))
        .send()
        .await?
        .json()
        .await?;

    ensure!(first == event_id && again == event_id, "{first} {again}");
    ensure!(batch["accepted"] == 1, "{batch}");
    ensure!(
        batch["items"][0]["eventId"] == event_id.to_string(),
        "{batch}"
    );
    ensure!(stored_rows(&stack, event_id).await? == (1, 1));

    let counts = published_counts(&stack, 1).await?;
    ensure!(counts == [(event_id, 1)].into(), "{counts:?}");
    billing.stop().await
}

#[tokio::test]
async fn reusing_a_key_or_an_event_id_for_another_reading_is_a_conflict() -> anyhow::Result<()> {
    let stack = Stack::new("idem-conflict").await?;
    let billing = Billing::start(stack.config(&[])?).await?;
    let original = reading("idem-4", 1);
    let other = reading("idem-4", 2);

    // Same Idempotency-Key, different reading.
    let (status, _, first) = post_with_key(&billing, "conflict-1", &original).await?;
    ensure!(status == StatusCode::ACCEPTED, "{first}");
    let (status, _, refused) = post_with_key(&billing, "conflict-1", &other).await?;
    ensure!(status == StatusCode::CONFLICT, "{status}: {refused}");
    ensure!(
        refused["error"]["code"] == "idempotency_conflict",
        "{refused}"
    );
    ensure!(refused["error"]["field"] == "Idempotency-Key", "{refused}");

    // Same eventId, different reading.
    let event_id = common::event_id_of(&first)?;
    let mut reused = other.clone();
    reused["eventId"] = json!(event_id.to_string());
    let response = common::post_reading(&client(), &billing.base_url, &reused).await?;
    ensure!(
        response.status() == StatusCode::CONFLICT,
        "{}",
        response.status()
    );
    let refused: Value = response.json().await?;
    ensure!(
        refused["error"]["code"] == "idempotency_conflict",
        "{refused}"
    );
    ensure!(refused["error"]["field"] == "eventId", "{refused}");

    // Only the original is stored, unchanged.
    let stored: Vec<(Uuid, f64)> =
        sqlx::query_as("SELECT event_id, kwh FROM readings WHERE property_id = 'idem-4'")
            .fetch_all(&stack.db.pool)
            .await?;
    ensure!(
        stored == [(event_id, original["kwh"].as_f64().unwrap_or_default())],
        "{stored:?}"
    );
    billing.stop().await
}
