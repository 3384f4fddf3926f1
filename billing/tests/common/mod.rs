//! Helpers shared by billing's integration tests: a fresh database and Kafka topic per test,
//! billing run in-process or as a child process, reading builders, and a reader that takes a
//! whole topic back from the real broker.
//!
//! Every test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener as StdTcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use billing::{Config, ServeError};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::Parser;
use energy_contracts::ConsumptionEvent;
use energy_contracts::names::{
    EVENT_TYPE_CONSUMPTION, HEADER_CONTENT_TYPE, HEADER_EVENT_TYPE, HEADER_TRACEPARENT,
};
use energy_contracts::trace::trace_id;
use energy_testkit::kafka::TestKafka;
use energy_testkit::postgres::TestDatabase;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// Partitions of every test topic: more than one, so keying by property matters.
pub const PARTITIONS: i32 = 6;

/// How long a test waits for billing to answer, or for the outbox to drain.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A database and a topic of this test's own on the shared dev services.
pub struct Stack {
    /// The test's database (billing migrates it on start).
    pub db: TestDatabase,
    /// The shared broker.
    pub kafka: TestKafka,
    /// The test's topic, already created.
    pub topic: String,
}

impl Stack {
    /// Creates the database and the topic, both named after `prefix`.
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        let db = TestDatabase::create(prefix).await?;
        let kafka = TestKafka::connect().await?;
        let topic = kafka.topic_name(prefix);
        kafka.create_topic(&topic, PARTITIONS).await?;
        Ok(Self { db, kafka, topic })
    }

    /// billing's configuration for this stack; `extra` are more command-line flags.
    pub fn config(&self, extra: &[&str]) -> anyhow::Result<Config> {
        let mut args = vec![
            "billing",
            "--bind-address",
            "127.0.0.1:0",
            "--database-url",
            &self.db.url,
            "--kafka-bootstrap-servers",
            &self.kafka.bootstrap,
            "--kafka-topic",
            &self.topic,
            "--database-pool-size",
            "8",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args).context("parse billing flags")
    }

    /// Environment of a billing child process for this stack.
    pub fn child_env(&self, bind: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.db.url.clone()),
            ("DATABASE_POOL_SIZE", "8".into()),
            ("KAFKA_BOOTSTRAP_SERVERS", self.kafka.bootstrap.clone()),
            ("KAFKA_TOPIC", self.topic.clone()),
            ("BIND_ADDRESS", bind.into()),
            ("API_TOKENS", String::new()),
        ]
    }

    /// Every message on the topic now, in partition order.
    pub async fn published(&self) -> anyhow::Result<Vec<Published>> {
        read_topic(&self.kafka, &self.topic).await
    }
}

/// billing running inside the test process, on a port of its own.
pub struct Billing {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Billing {
    /// Serves `config` on a fresh loopback port and waits until it answers.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(billing::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        wait_until_alive(&base_url).await?;
        Ok(Self {
            base_url,
            stop,
            task,
        })
    }

    /// The address of `path` on this billing.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Shuts billing down and returns how `serve` ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(SETTLE_TIMEOUT, self.task)
            .await
            .context("billing did not stop")?
            .context("billing task panicked")?
            .context("billing ended with an error")
    }
}

/// billing as a child process (the real binary), so it can be killed with SIGKILL.
pub struct BillingProcess {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The process; dropped children are killed.
    pub child: Child,
}

impl BillingProcess {
    /// Starts the billing binary for `stack` on a free loopback port and waits until it
    /// answers. Its log goes to `billing-<port>.log` in the temp folder.
    pub async fn start(stack: &Stack) -> anyhow::Result<Self> {
        // The port is free now; the child binds it a moment later.
        let port = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let bind = format!("127.0.0.1:{port}");
        let log_path: PathBuf = std::env::temp_dir().join(format!("billing-{port}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(env!("CARGO_BIN_EXE_billing"))
            .envs(stack.child_env(&bind))
            .env("RUST_LOG", "info,sqlx=warn,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("spawn the billing binary")?;
        let base_url = format!("http://{bind}");
        wait_until_alive(&base_url)
            .await
            .with_context(|| format!("billing child; see {}", log_path.display()))?;
        Ok(Self { base_url, child })
    }

    /// The address of `path` on this billing.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends SIGKILL and reaps the process.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("SIGKILL billing")
    }
}

fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

async fn wait_until_alive(base_url: &str) -> anyhow::Result<()> {
    let client = client();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let answer = client.get(format!("{base_url}/healthz")).send().await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "billing at {base_url} did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP client with a per-request bound, so a stuck request fails the test instead of
/// hanging it.
pub fn client() -> reqwest::Client {
    billing::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a plain HTTP client always builds once a crypto provider is installed")
}

/// Start of the hour 40 days ago: readings built from it are in the past, and 31-day
/// interval rules leave them alone.
pub fn base_time() -> DateTime<Utc> {
    (Utc::now() - TimeDelta::days(40))
        .duration_trunc(TimeDelta::hours(1))
        .expect("an hour divides any time since 1970")
}

/// The `n`th hourly reading of `property`: `[base + n h, base + n+1 h)`, `n + 0.25` kWh.
pub fn reading(property: &str, n: u32) -> Value {
    let start = base_time() + TimeDelta::hours(i64::from(n));
    json!({
        "propertyId": property,
        "kwh": f64::from(n) + 0.25,
        "periodStart": start.to_rfc3339(),
        "periodEnd": (start + TimeDelta::hours(1)).to_rfc3339(),
    })
}

/// Posts one reading; the caller checks the answer.
pub async fn post_reading(
    client: &reqwest::Client,
    base_url: &str,
    reading: &Value,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base_url}/api/v1/consumption"))
        .json(reading)
        .send()
        .await
}

/// Posts one reading and returns its event id, failing unless the answer is 202.
pub async fn accept(
    client: &reqwest::Client,
    base_url: &str,
    reading: &Value,
) -> anyhow::Result<Uuid> {
    let response = post_reading(client, base_url, reading).await?;
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == 202, "expected 202, got {status}: {body}");
    event_id_of(&body)
}

/// The `eventId` of an accepted answer.
pub fn event_id_of(body: &Value) -> anyhow::Result<Uuid> {
    let id = body["eventId"]
        .as_str()
        .with_context(|| format!("no eventId in {body}"))?;
    Ok(id.parse()?)
}

/// Outbox rows: how many there are, and how many are still unsent.
pub async fn outbox_counts(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let (total, unsent): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox")
            .fetch_one(pool)
            .await?;
    Ok((total, unsent))
}

/// Waits until the outbox holds at least `rows` rows and every one is marked sent.
pub async fn wait_for_outbox_sent(pool: &PgPool, rows: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let (total, unsent) = outbox_counts(pool).await?;
        if unsent == 0 && total >= i64::try_from(rows)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("outbox not drained: {unsent} of {total} rows unsent, {rows} expected");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One message read back from the topic.
#[derive(Debug, Clone)]
pub struct Published {
    /// The Kafka key, as text.
    pub key: String,
    /// Partition it landed on.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// The decoded value.
    pub event: ConsumptionEvent,
    /// Headers, by name.
    pub headers: HashMap<String, String>,
}

/// Reads every message `topic` holds now: from the start of each partition to its high
/// watermark. Call it once the outbox is drained, and it sees everything billing published.
pub async fn read_topic(kafka: &TestKafka, topic: &str) -> anyhow::Result<Vec<Published>> {
    let mut config = kafka.client_config();
    config
        .set("group.id", kafka.topic_name("reader"))
        .set("enable.auto.commit", "false");
    let topic = topic.to_string();
    // The consumer calls below block; keep them off the runtime's workers.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let timeout = Duration::from_secs(15);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| p.id())
            .collect();
        ensure!(!partitions.is_empty(), "topic {topic} has no partitions");

        let mut assignment = TopicPartitionList::new();
        let mut end_of: HashMap<i32, i64> = HashMap::new();
        for partition in partitions {
            let (low, high) = watermarks(&consumer, &topic, partition)?;
            if high > low {
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
                end_of.insert(partition, high);
            }
        }
        consumer.assign(&assignment)?;

        let mut messages = Vec::new();
        let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
        while !end_of.is_empty() {
            ensure!(
                std::time::Instant::now() < deadline,
                "topic {topic} not read to its end; partitions left: {end_of:?}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message?;
            messages.push(decode(&message)?);
            if end_of
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                end_of.remove(&message.partition());
            }
        }
        Ok(messages)
    })
    .await?
}

/// The partition's low and high watermarks. Retried: just after a broker restart a partition
/// may have no leader yet for a few seconds.
fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(15)) {
            Ok(marks) => return Ok(marks),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(topic, partition, error = %e, "watermarks not available yet");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e).context(format!("watermarks of {topic}[{partition}]")),
        }
    }
}

fn decode(message: &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<Published> {
    let key = String::from_utf8(message.key().context("message without key")?.to_vec())?;
    let event = ConsumptionEvent::from_json(message.payload().context("message without value")?)?;
    let mut headers = HashMap::new();
    if let Some(all) = message.headers() {
        for header in all.iter() {
            let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
            headers.insert(header.key.to_string(), value);
        }
    }
    Ok(Published {
        key,
        partition: message.partition(),
        offset: message.offset(),
        event,
        headers,
    })
}

/// Event ids of the messages, per key, in partition order, first occurrence only.
pub fn first_occurrences_by_key(messages: &[Published]) -> HashMap<String, Vec<Uuid>> {
    let mut sorted: Vec<&Published> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let mut seen = std::collections::HashSet::new();
    let mut by_key: HashMap<String, Vec<Uuid>> = HashMap::new();
    for message in sorted {
        if seen.insert(message.event.event_id) {
            by_key
                .entry(message.key.clone())
                .or_default()
                .push(message.event.event_id);
        }
    }
    by_key
}

/// How often each event id appears.
pub fn counts_by_event(messages: &[Published]) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for message in messages {
        *counts.entry(message.event.event_id).or_insert(0) += 1;
    }
    counts
}

/// Sends `count` readings of each property, properties in parallel and each property's
/// readings one after another; returns each property's event ids in the order they were
/// accepted.
pub async fn send_concurrently(
    base_urls: &[String],
    properties: &[String],
    count: u32,
) -> anyhow::Result<HashMap<String, Vec<Uuid>>> {
    let tasks = properties.iter().enumerate().map(|(i, property)| {
        let property = property.clone();
        // Replicas, when there are several, share the properties round-robin.
        let base_url = base_urls[i % base_urls.len()].clone();
        tokio::spawn(async move {
            let client = client();
            let mut accepted = Vec::new();
            for n in 0..count {
                accepted.push(accept(&client, &base_url, &reading(&property, n)).await?);
            }
            anyhow::Ok((property, accepted))
        })
    });
    let mut by_property = HashMap::new();
    for task in futures::future::join_all(tasks).await {
        let (property, accepted) = task??;
        by_property.insert(property, accepted);
    }
    Ok(by_property)
}

/// Checks that `messages` hold each accepted reading exactly once, keyed and ordered by
/// property, with the contract's headers.
pub fn check_published_once_in_order(
    messages: &[Published],
    accepted: &HashMap<String, Vec<Uuid>>,
) -> anyhow::Result<()> {
    let expected: usize = accepted.values().map(Vec::len).sum();
    ensure!(
        messages.len() == expected,
        "{} messages for {expected} readings",
        messages.len()
    );
    let counts = counts_by_event(messages);
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        repeated.is_empty(),
        "published more than once: {repeated:?}"
    );

    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    for message in messages {
        ensure!(
            message.key == message.event.property_id.as_str(),
            "key {} carries a reading of {}",
            message.key,
            message.event.property_id
        );
        let partition = *partition_of
            .entry(&message.key)
            .or_insert(message.partition);
        ensure!(
            partition == message.partition,
            "{} spans partitions",
            message.key
        );
        check_headers(message)?;
    }

    let published = first_occurrences_by_key(messages);
    for (property, ids) in accepted {
        let got = published
            .get(property)
            .map(Vec::as_slice)
            .unwrap_or_default();
        ensure!(
            got == ids.as_slice(),
            "{property}: published {got:?}, accepted {ids:?}"
        );
    }
    Ok(())
}

fn check_headers(message: &Published) -> anyhow::Result<()> {
    let header = |name: &str| message.headers.get(name).map(String::as_str);
    ensure!(
        header(HEADER_CONTENT_TYPE) == Some("application/json"),
        "{:?}",
        message.headers
    );
    ensure!(
        header(HEADER_EVENT_TYPE) == Some(EVENT_TYPE_CONSUMPTION),
        "{:?}",
        message.headers
    );
    let traceparent = header(HEADER_TRACEPARENT).context("no traceparent header")?;
    ensure!(
        trace_id(traceparent).is_some(),
        "invalid traceparent {traceparent:?}"
    );
    Ok(())
}
