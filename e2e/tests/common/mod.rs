//! The whole data plane for one test: a database, a topic (with its DLQ) and a vhost of its
//! own, and the carbon function, billing and the recommender as real processes wired together
//! the way `dev/up` wires them.

#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration as Span, Utc};
use e2e_tests::{Process, free_port, wait_healthy};
use energy_contracts::names::dlq_topic;
use energy_testkit::kafka::TestKafka;
use energy_testkit::postgres::TestDatabase;
use energy_testkit::rabbitmq::TestVhost;
use serde_json::json;
use sqlx::Row;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(180);

pub struct Platform {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    pub topic: String,
    pub vhost: TestVhost,
    pub billing_url: String,
    pub recommender_health: String,
    pub carbon: Process,
    pub billing: Process,
    pub recommender: Process,
    pub logs: PathBuf,
    http: reqwest::Client,
}

impl Platform {
    pub async fn start(prefix: &str, partitions: i32) -> anyhow::Result<Self> {
        energy_testkit::install_crypto_provider();
        let db = TestDatabase::create(prefix).await?;
        let kafka = TestKafka::connect().await?;
        let topic = kafka.topic_name(prefix);
        kafka.create_topic(&topic, partitions).await?;
        kafka.create_topic(&dlq_topic(&topic), 1).await?;
        let vhost = TestVhost::create(prefix).await?;

        let logs = std::env::temp_dir().join(energy_testkit::unique_name(prefix));
        std::fs::create_dir_all(&logs)?;
        let thresholds = logs.join("thresholds.json");
        std::fs::write(
            &thresholds,
            json!({ "absoluteKwhPerHour": 5.0, "timeZone": "Europe/London" }).to_string(),
        )?;

        let carbon_port = free_port()?;
        let carbon = Process::start(
            "carbon-calculator",
            vec![env("BIND_ADDRESS", format!("127.0.0.1:{carbon_port}"))],
            &logs,
        )
        .await?;
        wait_healthy(
            &format!("http://127.0.0.1:{carbon_port}/_/health"),
            DEADLINE,
            &carbon.log,
        )
        .await?;

        let billing_port = free_port()?;
        let billing = Process::start(
            "billing",
            vec![
                env("BIND_ADDRESS", format!("127.0.0.1:{billing_port}")),
                env("DATABASE_URL", db.url.clone()),
                env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap.clone()),
                env("KAFKA_TOPIC", topic.clone()),
                env("RELAY_SWEEP_MS", "200".into()),
            ],
            &logs,
        )
        .await?;
        let billing_url = format!("http://127.0.0.1:{billing_port}");
        let recommender_port = free_port()?;
        wait_healthy(&format!("{billing_url}/readyz"), DEADLINE, &billing.log).await?;

        let recommender = Process::start(
            "recommender",
            vec![
                env("METRICS_ADDRESS", format!("127.0.0.1:{recommender_port}")),
                env("DATABASE_URL", db.url.clone()),
                env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap.clone()),
                env("KAFKA_TOPIC", topic.clone()),
                env("KAFKA_GROUP", energy_testkit::unique_name("recommender")),
                env("CARBON_URL", format!("http://127.0.0.1:{carbon_port}/")),
                env("AMQP_URL", vhost.amqp_url.clone()),
                env("THRESHOLDS_FILE", thresholds.display().to_string()),
            ],
            &logs,
        )
        .await?;
        wait_healthy(
            &format!("http://127.0.0.1:{recommender_port}/healthz"),
            DEADLINE,
            &recommender.log,
        )
        .await?;

        Ok(Self {
            recommender_health: format!("http://127.0.0.1:{recommender_port}/healthz"),
            db,
            kafka,
            topic,
            vhost,
            billing_url,
            carbon,
            billing,
            recommender,
            logs,
            http: reqwest::Client::new(),
        })
    }

    /// Posts one reading until billing answers, waiting out restarts; the event id.
    pub async fn post_until_accepted(
        &self,
        property: &str,
        index: i64,
        kwh: f64,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(id) = self.post(property, index, kwh, None).await? {
                return Ok(id);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("billing did not accept {property}/{index} within {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts one reading (idempotency key `<property>-<index>`); `Ok(Some(eventId))` on 202,
    /// `Ok(None)` when billing could not be reached.
    pub async fn post(
        &self,
        property: &str,
        index: i64,
        kwh: f64,
        traceparent: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        let mut request = self
            .http
            .post(format!("{}/api/v1/consumption", self.billing_url))
            .json(&reading(property, index, kwh))
            // A retry after a crash must not store the reading twice.
            .header("Idempotency-Key", format!("{property}-{index}"))
            .timeout(Duration::from_secs(10));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(_) => return Ok(None),
        };
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Ok(None);
        }
        if response.status() != reqwest::StatusCode::ACCEPTED {
            bail!("reading {property}/{index} answered {}", response.status());
        }
        let body: serde_json::Value = response.json().await?;
        Ok(body["eventId"].as_str().map(str::to_string))
    }

    /// Waits until `sql` (a count) reaches `expected`.
    pub async fn wait_count(&self, sql: &str, expected: i64) -> anyhow::Result<()> {
        let count = self
            .poll_count(sql, Duration::from_millis(200), |n| n >= expected)
            .await?;
        if count > expected {
            bail!("{sql} gave {count}, more than the {expected} expected");
        }
        Ok(())
    }

    /// Waits until `sql` (a count) reaches at least `minimum`.
    pub async fn wait_count_at_least(&self, sql: &str, minimum: i64) -> anyhow::Result<()> {
        self.poll_count(sql, Duration::from_millis(20), |n| n >= minimum)
            .await
            .map(|_| ())
    }

    /// Runs `sql` (a count) every `every` until `done` holds; the last count.
    async fn poll_count(
        &self,
        sql: &str,
        every: Duration,
        done: impl Fn(i64) -> bool,
    ) -> anyhow::Result<i64> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&self.db.pool)
                .await?;
            if done(count) {
                return Ok(count);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{sql} reached only {count} within {DEADLINE:?}; logs in {}",
                    self.logs.display()
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Event ids of each property's recommendations, in the order the recommender stored them.
    pub async fn recommendation_order(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let rows = sqlx::query(
            "SELECT property_id, event_id::text AS event_id FROM recommendations \
             ORDER BY processed_seq",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            order
                .entry(row.try_get("property_id")?)
                .or_default()
                .push(row.try_get("event_id")?);
        }
        Ok(order)
    }

    /// Messages on the topic (all partitions), read from the start until `expected` arrived.
    pub async fn topic_event_ids(&self, expected: usize) -> anyhow::Result<Vec<String>> {
        use futures::StreamExt;
        use rdkafka::Message;
        use rdkafka::consumer::{Consumer, StreamConsumer};

        let consumer: StreamConsumer = self
            .kafka
            .client_config()
            .set("group.id", energy_testkit::unique_name("e2e-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[&self.topic])?;
        let mut ids = Vec::new();
        let mut stream = consumer.stream();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while ids.len() < expected {
            let message = tokio::time::timeout_at(deadline, stream.next())
                .await
                .context("timed out reading the topic")?
                .context("topic stream ended")??;
            let value: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap_or_default())?;
            ids.push(value["eventId"].as_str().unwrap_or_default().to_string());
        }
        Ok(ids)
    }
}

fn env(name: &str, value: String) -> (String, String) {
    (name.to_string(), value)
}

/// The first hour of every property's readings, fixed once per test process so a retry sends
/// exactly the same reading.
static BASE: std::sync::LazyLock<DateTime<Utc>> = std::sync::LazyLock::new(|| {
    let now = Utc::now() - Span::days(30);
    now - Span::seconds(now.timestamp() % 3600)
});

/// Reading `index` of a property: one hour each, back to back, ending before now.
pub fn reading(property: &str, index: i64, kwh: f64) -> serde_json::Value {
    let start = *BASE + Span::hours(index);
    json!({
        "propertyId": property,
        "kwh": kwh,
        "periodStart": start.to_rfc3339(),
        "periodEnd": (start + Span::hours(1)).to_rfc3339(),
    })
}
