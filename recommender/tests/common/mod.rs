//! Fixtures shared by the integration tests: a corner of each real service per test (database,
//! topics, vhost), the real carbon function served in-process, the recommender run as a task,
//! and helpers that wait for conditions with a deadline.

// Each test binary uses part of this module; fixture fields are described by their types.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use carbon_calculator::{HttpSettings, router};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use clap::Parser;
use energy_contracts::event::SCHEMA_VERSION;
use energy_contracts::names::{
    ALL_RED_ALERTS, EVENT_TYPE_CONSUMPTION, HEADER_CONTENT_TYPE, HEADER_EVENT_TYPE,
    HEADER_TRACEPARENT, dlq_topic,
};
use energy_contracts::{ConsumptionEvent, EnergyKind, PropertyId};
use energy_testkit::kafka::TestKafka;
use energy_testkit::postgres::TestDatabase;
use energy_testkit::rabbitmq::TestVhost;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use recommender::domain::Thresholds;
use recommender::store::Store;
use recommender::{Config, Metrics, Recommender};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Name of the test's durable queue bound to every RED alert.
pub const ALERT_QUEUE: &str = "test-red-alerts";

/// Absolute limit of the test thresholds, kWh per hour.
pub const LIMIT_KWH_PER_HOUR: f64 = 5.0;

/// One test's share of the real services.
pub struct Harness {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    pub topic: String,
    pub partitions: i32,
    pub vhost: TestVhost,
}

impl Harness {
    /// A new database, a topic of `partitions` partitions with its DLQ, and a new vhost.
    pub async fn new(prefix: &str, partitions: i32) -> Self {
        energy_testkit::install_crypto_provider();
        init_logs();
        let db = TestDatabase::create(prefix).await.expect("test database");
        let kafka = TestKafka::connect().await.expect("Kafka answers");
        let topic = kafka.topic_name(prefix);
        kafka
            .create_topic(&topic, partitions)
            .await
            .expect("topic created");
        kafka
            .create_topic(&dlq_topic(&topic), 1)
            .await
            .expect("DLQ topic created");
        let vhost = TestVhost::create(prefix).await.expect("test vhost");
        Self {
            db,
            kafka,
            topic,
            partitions,
            vhost,
        }
    }

    /// The recommender's configuration for this test, fast retries included.
    pub fn config(&self, group: &str, carbon: SocketAddr) -> Config {
        let carbon_url = format!("http://{carbon}/");
        Config::try_parse_from([
            "recommender",
            "--kafka-bootstrap",
            &self.kafka.bootstrap,
            "--kafka-topic",
            &self.topic,
            "--kafka-group",
            group,
            "--database-url",
            &self.db.url,
            "--carbon-url",
            &carbon_url,
            "--carbon-timeout-ms",
            "2000",
            "--carbon-attempts",
            "2",
            "--retry-min-backoff-ms",
            "50",
            "--retry-max-backoff-ms",
            "500",
            "--amqp-url",
            &self.vhost.amqp_url,
            "--alert-confirm-timeout-ms",
            "5000",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .expect("test flags parse")
    }

    /// Starts the recommender as a task of this process.
    pub async fn start(&self, group: &str, carbon: SocketAddr, thresholds: Thresholds) -> Running {
        let metrics = Arc::new(Metrics::new());
        let recommender = Recommender::start(
            &self.config(group, carbon),
            thresholds,
            Arc::clone(&metrics),
        )
        .await
        .expect("recommender starts");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(recommender.run(shutdown.clone()));
        Running {
            shutdown,
            task,
            metrics,
        }
    }

    /// Stores `events` in `readings` as billing would have, migrating the schema first.
    pub async fn store_as_billing(&self, events: &[ConsumptionEvent]) {
        Store::from_pool(self.db.pool.clone())
            .migrate()
            .await
            .expect("schema migrated");
        for event in events {
            sqlx::query(
                "INSERT INTO readings (event_id, property_id, meter_id, kind, kwh, period_start, \
                 period_end, utc_offset_secs, region) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
            )
            .bind(event.event_id)
            .bind(event.property_id.as_str())
            .bind(event.meter_id.as_deref())
            .bind(event.kind.as_str())
            .bind(event.kwh)
            .bind(event.period_start.to_utc())
            .bind(event.period_end.to_utc())
            .bind(&event.region)
            .execute(&self.db.pool)
            .await
            .expect("reading stored");
        }
    }

    /// Produces `events` in order, keyed by property, with the contract's headers.
    pub async fn produce(&self, events: &[ConsumptionEvent]) {
        let producer = self.producer();
        for event in events {
            let traceparent = traceparent_for(event.event_id);
            let headers = contract_headers(&traceparent);
            let payload = event.to_json();
            let record = FutureRecord::to(&self.topic)
                .key(event.property_id.as_str())
                .payload(&payload)
                .headers(headers);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(err, _)| err)
                .expect("event produced");
        }
    }

    /// Produces a raw value under `key`, for poison messages.
    pub async fn produce_raw(&self, key: &str, payload: &[u8]) {
        let headers = contract_headers("00-00000000000000000000000000000001-0000000000000001-01");
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.producer()
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .expect("raw value produced");
    }

    fn producer(&self) -> FutureProducer {
        self.kafka
            .client_config()
            .set("enable.idempotence", "true")
            .create()
            .expect("producer config is valid")
    }

    /// Sum over partitions of the offsets `group` has committed (0 for none).
    pub async fn committed(&self, group: &str) -> i64 {
        let mut config = self.kafka.client_config();
        config.set("group.id", group);
        let topic = self.topic.clone();
        let partitions = self.partitions;
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create().expect("consumer config is valid");
            let mut list = TopicPartitionList::new();
            for partition in 0..partitions {
                list.add_partition(&topic, partition);
            }
            let committed = consumer
                .committed_offsets(list, Duration::from_secs(10))
                .expect("committed offsets answer");
            committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(offset) => offset,
                    _ => 0,
                })
                .sum()
        })
        .await
        .expect("committed-offset task")
    }

    /// Rows in `table` (one of the recommender's tables).
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("count query")
    }

    /// Declares the alert exchange as the recommender does and a durable queue bound to every
    /// RED alert on it.
    pub async fn bind_alert_queue(&self) -> AlertQueue {
        let connection = self.vhost.connect().await.expect("AMQP connection");
        let channel = connection.create_channel().await.expect("AMQP channel");
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                "energy.alerts".into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .expect("exchange declared");
        let queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(ALERT_QUEUE.into(), queue, FieldTable::default())
            .await
            .expect("queue declared");
        channel
            .queue_bind(
                ALERT_QUEUE.into(),
                "energy.alerts".into(),
                ALL_RED_ALERTS.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue bound");
        AlertQueue {
            _connection: connection,
            channel,
        }
    }
}

/// The test's queue of RED alerts, on a connection of its own.
pub struct AlertQueue {
    /// Kept so the connection lives as long as the channel.
    _connection: lapin::Connection,
    pub channel: Channel,
}

/// Takes every message now in the test's alert queue, acknowledging each.
pub async fn drain_alerts(queue: &AlertQueue) -> Vec<lapin::message::BasicGetMessage> {
    let mut messages = Vec::new();
    loop {
        let got = queue
            .channel
            .basic_get(ALERT_QUEUE.into(), BasicGetOptions::default())
            .await
            .expect("basic.get answers");
        let Some(message) = got else {
            return messages;
        };
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        messages.push(message);
    }
}

/// The recommender running as a task.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<recommender::Result<()>>,
    pub metrics: Arc<Metrics>,
}

impl Running {
    /// Asks it to stop and waits until it has committed and returned.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("recommender task did not panic")
            .expect("recommender stopped cleanly");
    }
}

/// The real carbon function on a loopback port.
pub struct CarbonServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl CarbonServer {
    /// Serves the function's real router on `listener`.
    pub fn serve(listener: TcpListener) -> Self {
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let app = router(HttpSettings {
            default_region: "GB",
            body_limit_bytes: 1 << 20,
            request_timeout: Duration::from_secs(5),
        });
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .expect("carbon function serves");
        });
        Self {
            addr,
            shutdown,
            task,
        }
    }

    /// Serves on a fresh loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        Self::serve(listener)
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("carbon server task");
    }
}

/// A loopback address nothing listens on (bound once, then released).
pub async fn unused_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    listener
        .local_addr()
        .expect("bound listener has an address")
}

/// Thresholds of the tests: the absolute limit, UTC, no cooldown to wait through.
pub fn thresholds() -> Thresholds {
    Thresholds {
        cooldown_secs: 0,
        ..Thresholds::new(LIMIT_KWH_PER_HOUR, chrono_tz::UTC)
    }
}

/// An hourly electricity reading of `property`, `hour` hours after a fixed Monday.
pub fn reading(property: &str, hour: i64, kwh: f64) -> ConsumptionEvent {
    let monday: DateTime<FixedOffset> =
        DateTime::parse_from_rfc3339("2026-01-05T00:00:00+00:00").expect("valid instant");
    let start = monday + TimeDelta::hours(hour);
    ConsumptionEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::now_v7(),
        property_id: PropertyId::parse(property).expect("valid property id"),
        meter_id: None,
        kind: EnergyKind::Electricity,
        kwh,
        period_start: start,
        period_end: start + TimeDelta::hours(1),
        region: "GB".into(),
        received_at: Utc::now(),
    }
}

/// A W3C traceparent whose trace id is the event id.
pub fn traceparent_for(event_id: Uuid) -> String {
    format!("00-{}-00f067aa0ba902b7-01", event_id.simple())
}

fn contract_headers(traceparent: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: HEADER_CONTENT_TYPE,
            value: Some("application/json"),
        })
        .insert(Header {
            key: HEADER_EVENT_TYPE,
            value: Some(EVENT_TYPE_CONSUMPTION),
        })
        .insert(Header {
            key: HEADER_TRACEPARENT,
            value: Some(traceparent),
        })
}

/// Polls `probe` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Test logs go through the test writer, shown for failing tests only.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lapin=warn".into()),
        )
        .with_test_writer()
        .try_init();
}
