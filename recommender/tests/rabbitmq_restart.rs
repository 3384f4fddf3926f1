//! RabbitMQ restarted while alerts are being raised: no alert is lost.
//!
//! This test stops and starts the SHARED dev RabbitMQ, so it is the only test in this binary
//! (cargo runs test binaries one after another). RabbitMQ is started again before any assertion
//! on what happened while it was down, so a failure never leaves it stopped.

mod common;

use std::collections::HashSet;

use common::{CarbonServer, Harness, drain_alerts, reading, thresholds, wait_for};
use energy_contracts::RedAlert;
use energy_testkit::services::{self, Service};
use serde_json::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn alerts_raised_while_rabbitmq_restarts_all_arrive() {
    let harness = Harness::new("rec-rmq-restart", 1).await;
    drop(harness.bind_alert_queue().await);
    let carbon = CarbonServer::start().await;
    let high = |index: usize| reading(&format!("restart-{index}"), 0, 9.0);
    let before: Vec<_> = (0..3).map(high).collect();
    let during: Vec<_> = (3..6).map(high).collect();
    let expected: HashSet<Uuid> = before
        .iter()
        .chain(&during)
        .map(|event| RedAlert::derive_id(event.event_id, "absolute-limit"))
        .collect();

    // Phase 1: alerts confirmed while the broker runs.
    harness.produce(&before).await;
    let running = harness
        .start("rec-restart", carbon.addr, thresholds())
        .await;
    wait_for("the first alerts confirmed", || async {
        let published = harness
            .count("SELECT count(*) FROM alerts WHERE published_at IS NOT NULL")
            .await;
        (published == 3).then_some(())
    })
    .await;

    // Phase 2: the broker stops while more high readings arrive. Whatever happens in here, the
    // broker is started again below before the outcome is looked at.
    services::stop(Service::RabbitMq)
        .await
        .expect("RabbitMQ stops");
    let while_down = {
        let harness_events = during.clone();
        let producer_config = harness.kafka.client_config();
        let topic = harness.topic.clone();
        let db = harness.db.pool.clone();
        let metrics = running.metrics.clone();
        tokio::spawn(async move {
            produce_with(producer_config, &topic, &harness_events).await;
            // The consumer stores the next alert, fails to publish it and waits.
            wait_for(
                "an alert stored but unconfirmed while RabbitMQ is down",
                || async {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM alerts WHERE published_at IS NULL",
                    )
                    .fetch_one(&db)
                    .await
                    .ok()?;
                    (waiting >= 1 && metrics.transient_failures() >= 1).then_some(())
                },
            )
            .await;
        })
        .await
    };
    let restarted = services::start(Service::RabbitMq).await;
    while_down.expect("phase with RabbitMQ down");
    restarted.expect("RabbitMQ starts again");

    // Phase 3: the recommender reconnects by itself and every alert is confirmed and queued.
    wait_for("every alert confirmed after the restart", || async {
        let published = harness
            .count("SELECT count(*) FROM alerts WHERE published_at IS NOT NULL")
            .await;
        (published == 6 && harness.committed("rec-restart").await == 6).then_some(())
    })
    .await;
    let queue = harness.bind_alert_queue().await;
    let messages = drain_alerts(&queue).await;
    let received: HashSet<Uuid> = messages
        .iter()
        .map(|message| {
            let body: Value = serde_json::from_slice(&message.delivery.data).expect("JSON alert");
            body["alertId"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("alertId is a UUID")
        })
        .collect();
    // At-least-once: a publish cut off before its confirm may arrive twice, never not at all.
    assert_eq!(received, expected);
    assert!(messages.len() >= expected.len());
    running.stop().await;
    carbon.stop().await;
}

/// Produces `events` keyed by property, as billing would.
async fn produce_with(
    config: rdkafka::ClientConfig,
    topic: &str,
    events: &[energy_contracts::ConsumptionEvent],
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let producer: FutureProducer = config.create().expect("producer config is valid");
    for event in events {
        let payload = event.to_json();
        let record = FutureRecord::to(topic)
            .key(event.property_id.as_str())
            .payload(&payload);
        producer
            .send(record, std::time::Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .expect("event produced");
    }
}
