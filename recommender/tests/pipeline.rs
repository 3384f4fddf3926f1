//! The recommender end to end against the real Kafka, PostgreSQL and RabbitMQ, with the real
//! carbon function served in-process: ordering, redelivery, poison messages, a carbon outage,
//! RED alerts and the probes.
//!
//! Run with the dev services up: `source /tmp/energy-platform/env && cargo test -p recommender`.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{CarbonServer, Harness, drain_alerts, reading, thresholds, unused_address, wait_for};
use energy_contracts::RedAlert;
use energy_contracts::names::{HEADER_DLQ_REASON, dlq_topic};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use recommender::dead_letter::{HEADER_ORIGINAL_OFFSET, HEADER_ORIGINAL_TOPIC};
use recommender::health;
use recommender::metrics::Outcome;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Event ids of `property` in the order the recommender stored their results.
async fn stored_order(harness: &Harness, property: &str) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT event_id FROM recommendations WHERE property_id = $1 ORDER BY processed_seq",
    )
    .bind(property)
    .fetch_all(&harness.db.pool)
    .await
    .expect("recommendations query")
}

async fn wait_for_recommendations(harness: &Harness, expected: i64) {
    wait_for(&format!("{expected} recommendations"), || async {
        let count = harness.count("SELECT count(*) FROM recommendations").await;
        (count == expected).then_some(())
    })
    .await;
}

async fn wait_for_committed(harness: &Harness, group: &str, expected: i64) {
    wait_for(
        &format!("{expected} committed offsets in {group}"),
        || async { (harness.committed(group).await == expected).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_several_properties_are_stored_once_each_in_production_order() {
    let harness = Harness::new("rec-order", 3).await;
    let carbon = CarbonServer::start().await;
    let properties = ["order-a", "order-b", "order-c", "order-d"];
    let mut produced: Vec<Vec<Uuid>> = vec![Vec::new(); properties.len()];
    let mut events = Vec::new();
    for hour in 0..8 {
        for (index, property) in properties.iter().enumerate() {
            let event = reading(property, hour, 0.5 + index as f64 * 0.1);
            produced[index].push(event.event_id);
            events.push(event);
        }
    }

    harness.produce(&events).await;
    let running = harness.start("rec-order", carbon.addr, thresholds()).await;
    wait_for_recommendations(&harness, 32).await;
    wait_for_committed(&harness, "rec-order", 32).await;

    for (index, property) in properties.iter().enumerate() {
        assert_eq!(
            stored_order(&harness, property).await,
            produced[index],
            "{property} processed out of production order"
        );
    }
    let positions: i64 = harness
        .count(
            "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM recommendations \
             WHERE kafka_offset >= 0",
        )
        .await;
    assert_eq!(
        positions, 32,
        "every recommendation names its own Kafka position"
    );
    assert_eq!(running.metrics.messages(Outcome::Stored), 32);
    assert!(
        running.metrics.run_messages() > 0,
        "a backlog of 32 messages on 3 partitions is settled in runs"
    );
    running.stop().await;
    carbon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_sent_twice_is_stored_once_when_the_backlog_is_settled_in_runs() {
    let harness = Harness::new("rec-run-twice", 1).await;
    let queue = harness.bind_alert_queue().await;
    let carbon = CarbonServer::start().await;
    let high = reading("twice-1", 1, 9.0);
    let events = vec![
        reading("twice-1", 0, 1.0),
        high.clone(),
        high.clone(),
        reading("twice-1", 2, 1.0),
        reading("twice-2", 0, 2.0),
    ];
    harness.produce(&events).await;

    // All five wait in one partition: after the first message at the latest, the worker finds
    // the rest queued and takes them as a run (usually both copies in the same one).
    let running = harness
        .start("rec-run-twice", carbon.addr, thresholds())
        .await;
    wait_for_committed(&harness, "rec-run-twice", 5).await;

    assert!(
        running.metrics.run_messages() >= 2,
        "the backlog is settled in runs"
    );
    assert_eq!(running.metrics.messages(Outcome::Stored), 4);
    assert_eq!(running.metrics.messages(Outcome::Duplicate), 1);
    assert_eq!(
        harness.count("SELECT count(*) FROM recommendations").await,
        4
    );
    assert_eq!(harness.count("SELECT count(*) FROM alerts").await, 1);
    let alerts = drain_alerts(&queue).await;
    assert_eq!(
        alerts.len(),
        1,
        "one alert for the high reading, however often it came"
    );
    running.stop().await;
    carbon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_billing_stored_is_judged_against_billings_readings() {
    let harness = Harness::new("rec-billing-history", 1).await;
    let queue = harness.bind_alert_queue().await;
    let carbon = CarbonServer::start().await;
    // A day of 4 kWh hours that billing took before the recommender ever ran: they are in
    // `readings` only, never on the topic.
    let earlier: Vec<_> = (0..24).map(|hour| reading("billed-1", hour, 4.0)).collect();
    // Then three hours on the topic. 5.5 kWh is over the absolute 5 kWh/h but not over 1.5 ×
    // the usual 4, so only a run that sees billing's day stays quiet on it; 9 kWh is over both.
    let events = vec![
        reading("billed-1", 24, 5.5),
        reading("billed-1", 25, 9.0),
        reading("billed-1", 26, 4.0),
    ];
    harness.store_as_billing(&earlier).await;
    harness.store_as_billing(&events).await;
    harness.produce(&events).await;

    let running = harness
        .start("rec-billing-history", carbon.addr, thresholds())
        .await;
    wait_for_committed(&harness, "rec-billing-history", 3).await;

    let typical: Vec<Option<f64>> = sqlx::query_scalar(
        "SELECT (advice->'assessment'->>'typicalKwhPerHour')::float8 FROM recommendations \
         ORDER BY processed_seq",
    )
    .fetch_all(&harness.db.pool)
    .await
    .expect("recommendations query");
    assert_eq!(
        typical,
        [Some(4.0); 3],
        "every reading is judged against the day billing stored"
    );
    assert!(
        running.metrics.run_messages() >= 2,
        "the backlog is settled in runs"
    );
    let alerts = drain_alerts(&queue).await;
    assert_eq!(alerts.len(), 1, "one alert, for the hour over both levels");
    let alert: RedAlert = serde_json::from_slice(&alerts[0].delivery.data).expect("alert JSON");
    assert_eq!(alert.event_id, events[1].event_id);
    running.stop().await;
    carbon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_stream_stores_no_duplicate_recommendation_or_alert() {
    let harness = Harness::new("rec-redeliver", 1).await;
    let queue = harness.bind_alert_queue().await;
    let carbon = CarbonServer::start().await;
    let events = vec![
        reading("redeliver-1", 0, 1.0),
        reading("redeliver-1", 1, 9.0),
        reading("redeliver-1", 2, 1.0),
        reading("redeliver-2", 0, 2.0),
    ];
    harness.produce(&events).await;

    // First pass: everything stored, the alert confirmed, the offsets committed.
    let first = harness.start("rec-first", carbon.addr, thresholds()).await;
    wait_for_recommendations(&harness, 4).await;
    wait_for_committed(&harness, "rec-first", 4).await;
    first.stop().await;
    assert_eq!(drain_alerts(&queue).await.len(), 1);

    // Second pass over the same events, as after an offset reset.
    let second = harness.start("rec-second", carbon.addr, thresholds()).await;
    wait_for_committed(&harness, "rec-second", 4).await;

    assert_eq!(second.metrics.messages(Outcome::Duplicate), 4);
    assert_eq!(
        harness.count("SELECT count(*) FROM recommendations").await,
        4
    );
    assert_eq!(harness.count("SELECT count(*) FROM alerts").await, 1);
    assert_eq!(
        drain_alerts(&queue).await.len(),
        0,
        "a redelivered reading must not publish its alert again"
    );
    second.stop().await;
    carbon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_goes_to_the_dlq_and_the_next_message_is_processed() {
    let harness = Harness::new("rec-poison", 1).await;
    let carbon = CarbonServer::start().await;
    let before = reading("poison-1", 0, 1.0);
    let after = reading("poison-1", 1, 1.0);
    let mut wrong_version: Value = serde_json::from_slice(&before.to_json()).expect("json");
    wrong_version["schemaVersion"] = 99.into();
    wrong_version["eventId"] = Uuid::now_v7().to_string().into();

    harness.produce(std::slice::from_ref(&before)).await;
    harness.produce_raw("poison-1", b"{not json").await;
    let wrong_version = serde_json::to_vec(&wrong_version).expect("json");
    harness.produce_raw("poison-1", &wrong_version).await;
    harness.produce(std::slice::from_ref(&after)).await;
    let running = harness.start("rec-poison", carbon.addr, thresholds()).await;
    wait_for_committed(&harness, "rec-poison", 4).await;

    assert_eq!(
        stored_order(&harness, "poison-1").await,
        vec![before.event_id, after.event_id]
    );
    assert_eq!(running.metrics.messages(Outcome::DeadLettered), 2);

    let dead = read_dead_letters(&harness, 2).await;
    assert_eq!(dead[0].0, b"{not json".to_vec());
    assert!(
        dead[0]
            .1
            .starts_with("undecodable: value is not a ConsumptionEvent"),
        "{dead:?}"
    );
    assert_eq!(dead[0].2, "1");
    assert_eq!(dead[0].3, harness.topic);
    assert!(
        dead[1].1.contains("unsupported schemaVersion 99"),
        "{dead:?}"
    );
    assert_eq!(dead[1].2, "2");
    running.stop().await;
    carbon.stop().await;
}

/// The first `count` dead letters: value, reason, original offset and original topic.
async fn read_dead_letters(
    harness: &Harness,
    count: usize,
) -> Vec<(Vec<u8>, String, String, String)> {
    let consumer: StreamConsumer = harness
        .kafka
        .client_config()
        .set("group.id", format!("dlq-reader-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer config is valid");
    consumer
        .subscribe(&[&dlq_topic(&harness.topic)])
        .expect("subscribed");
    let header = |message: &rdkafka::message::BorrowedMessage<'_>, key: &str| {
        message
            .headers()
            .and_then(|headers| headers.iter().find(|h| h.key == key))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };

    let mut letters = Vec::new();
    while letters.len() < count {
        let message = tokio::time::timeout(common::DEADLINE, consumer.recv())
            .await
            .expect("dead letter within the deadline")
            .expect("DLQ readable");
        letters.push((
            message.payload().unwrap_or_default().to_vec(),
            header(&message, HEADER_DLQ_REASON),
            header(&message, HEADER_ORIGINAL_OFFSET),
            header(&message, HEADER_ORIGINAL_TOPIC),
        ));
    }
    letters
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_carbon_function_is_down_nothing_is_skipped_or_committed() {
    let harness = Harness::new("rec-carbon-down", 1).await;
    let address = unused_address().await;
    let events: Vec<_> = (0..3).map(|hour| reading("down-1", hour, 1.0)).collect();
    harness.produce(&events).await;

    let running = harness.start("rec-down", address, thresholds()).await;
    let metrics = running.metrics.clone();
    wait_for("several failed attempts", || async {
        (metrics.transient_failures() >= 3).then_some(())
    })
    .await;
    assert_eq!(
        harness.count("SELECT count(*) FROM recommendations").await,
        0
    );
    assert_eq!(harness.committed("rec-down").await, 0);

    let listener = TcpListener::bind(address)
        .await
        .expect("the reserved port is free again");
    let carbon = CarbonServer::serve(listener);
    wait_for_recommendations(&harness, 3).await;
    wait_for_committed(&harness, "rec-down", 3).await;

    let expected: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(stored_order(&harness, "down-1").await, expected);
    running.stop().await;
    carbon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_high_reading_raises_one_red_alert_with_the_documented_fields() {
    let harness = Harness::new("rec-alert", 1).await;
    let queue = harness.bind_alert_queue().await;
    let carbon = CarbonServer::start().await;
    let normal = reading("alert-1", 0, 1.0);
    let high = reading("alert-1", 1, 9.0);
    harness.produce(&[normal, high.clone()]).await;

    let running = harness.start("rec-alert", carbon.addr, thresholds()).await;
    let message = wait_for("a RED alert in the queue", || async {
        drain_alerts(&queue).await.into_iter().next()
    })
    .await;

    let body: Value = serde_json::from_slice(&message.delivery.data).expect("JSON alert");
    let expected_id = RedAlert::derive_id(high.event_id, "absolute-limit");
    assert_eq!(body["alertId"], expected_id.to_string());
    assert_eq!(body["eventId"], high.event_id.to_string());
    assert_eq!(body["propertyId"], "alert-1");
    assert_eq!(body["kwh"], 9.0);
    assert_eq!(body["threshold"], common::LIMIT_KWH_PER_HOUR);
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    assert!(body["kgCo2e"].as_f64().is_some_and(|kg| kg > 0.0), "{body}");
    assert!(body["raisedAt"].as_str().is_some(), "{body}");
    assert_eq!(message.delivery.routing_key.as_str(), "alert.red.alert-1");
    let properties = &message.delivery.properties;
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );

    wait_for_committed(&harness, "rec-alert", 2).await;
    let unpublished = harness
        .count("SELECT count(*) FROM alerts WHERE published_at IS NULL")
        .await;
    assert_eq!(unpublished, 0);
    assert_eq!(harness.count("SELECT count(*) FROM alerts").await, 1);
    running.stop().await;
    carbon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probes_report_ready_and_count_settled_messages() {
    let harness = Harness::new("rec-probes", 1).await;
    let carbon = CarbonServer::start().await;
    harness.produce(&[reading("probes-1", 0, 1.0)]).await;
    let config = harness.config("rec-probes", carbon.addr);
    let metrics = std::sync::Arc::new(recommender::Metrics::new());
    let service = recommender::Recommender::start(&config, thresholds(), metrics)
        .await
        .expect("recommender starts");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let address = listener
        .local_addr()
        .expect("bound listener has an address");
    let shutdown = CancellationToken::new();
    let probes = tokio::spawn(health::serve(listener, service.probes(), shutdown.clone()));
    let consumer = tokio::spawn(service.run(shutdown.clone()));
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://{address}{path}"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("probe answers");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    };

    let (status, _) = get("/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    wait_for_committed(&harness, "rec-probes", 1).await;
    let (status, text) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("recommender_messages_total{outcome=\"stored\"} 1"),
        "{text}"
    );

    shutdown.cancel();
    consumer
        .await
        .expect("consumer task")
        .expect("consumer stopped cleanly");
    probes
        .await
        .expect("probe task")
        .expect("probe server stopped");
    carbon.stop().await;
    let properties: HashSet<String> = sqlx::query_scalar("SELECT property_id FROM recommendations")
        .fetch_all(&harness.db.pool)
        .await
        .expect("query")
        .into_iter()
        .collect();
    assert_eq!(properties, HashSet::from(["probes-1".to_string()]));
}
