//! Reads the platform's own stores to follow a run's readings: recommendations and outbox rows
//! in PostgreSQL, and the end offsets of the topic in Kafka.
//!
//! Every query selects by the run's event ids (primary keys), in chunks, so the figures are the
//! run's own whatever else the database holds.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::{Error, Result};

/// Event ids per query.
const CHUNK: usize = 5_000;
/// Longest wait for a Kafka metadata or offsets answer.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(15);

/// When a reading's outbox row was written and when Kafka acknowledged it.
#[derive(Debug, Clone, Copy)]
pub struct OutboxTimes {
    /// Commit time of the reading (the row's `created_at`).
    pub created_at: DateTime<Utc>,
    /// When the relay marked it sent; `None` while unsent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Connections to the platform's database and broker.
pub struct Probe {
    /// Pool on the platform's database.
    pub pool: PgPool,
    bootstrap: String,
    topic: String,
}

impl Probe {
    /// Connects to the platform's database; Kafka is reached per call.
    pub async fn connect(database_url: &str, bootstrap: &str, topic: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(database_url)
            .await
            .map_err(|e| Error::Database {
                action: "connect to the platform's database".into(),
                source: e,
            })?;
        Ok(Self {
            pool,
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
        })
    }

    /// PostgreSQL's version string.
    pub async fn server_version(&self) -> Result<String> {
        sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.pool)
            .await
            .map_err(db("read the server version"))
    }

    /// How many of `ids` are stored in `table` (`readings` or `recommendations`).
    pub async fn count(&self, table: Table, ids: &[Uuid]) -> Result<i64> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE event_id = ANY($1)",
            table.name()
        );
        let mut total = 0;
        for chunk in ids.chunks(CHUNK) {
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .bind(chunk)
                .fetch_one(&self.pool)
                .await
                .map_err(db("count the run's rows"))?;
            total += count;
        }
        Ok(total)
    }

    /// When the recommendation of each of `ids` was stored.
    pub async fn recommended_at(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, DateTime<Utc>>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let rows = sqlx::query(
                "SELECT event_id, created_at FROM recommendations WHERE event_id = ANY($1)",
            )
            .bind(chunk)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read the run's recommendations"))?;
            for row in rows {
                found.insert(row.get("event_id"), row.get("created_at"));
            }
        }
        Ok(found)
    }

    /// The outbox times of each of `ids`.
    pub async fn outbox_times(&self, ids: &[Uuid]) -> Result<Vec<OutboxTimes>> {
        let mut times = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let rows =
                sqlx::query("SELECT created_at, sent_at FROM outbox WHERE event_id = ANY($1)")
                    .bind(chunk)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("read the run's outbox rows"))?;
            times.extend(rows.iter().map(|row| OutboxTimes {
                created_at: row.get("created_at"),
                sent_at: row.get("sent_at"),
            }));
        }
        Ok(times)
    }

    /// Polls until every one of `ids` has a recommendation or `limit` passes; the count found.
    /// Each poll asks only for the ids still missing, so the load the probe puts on PostgreSQL
    /// while the recommender catches up shrinks with the backlog (a poll over every id scans
    /// the whole table four times a second).
    pub async fn wait_recommended(&self, ids: &[Uuid], limit: Duration) -> Result<i64> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut missing: Vec<Uuid> = ids.to_vec();
        loop {
            let found = self.recommended_at(&missing).await?;
            missing.retain(|id| !found.contains_key(id));
            if missing.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok((ids.len() - missing.len()) as i64);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The sum of the end offsets of every partition of the topic.
    pub async fn topic_end_offsets(&self) -> Result<i64> {
        end_offsets(&self.bootstrap, &self.topic).await
    }

    /// Waits until the consumer group `group` is stable with every member assigned, or fails
    /// after `limit`. A group that has just started waits for its first rebalance (the broker
    /// holds it for `group.initial.rebalance.delay.ms`, 3 s by default); readings sent meanwhile
    /// would count that wait as end-to-end latency.
    pub async fn wait_group_stable(&self, group: &str, limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (state, members) = group_state(&self.bootstrap, group).await?;
            if state == "Stable" && members > 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotReady(format!(
                    "consumer group {group} is {state:?} with {members} assigned members after \
                     {} s",
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The topic's partition count.
    pub async fn partitions(&self) -> Result<i32> {
        let bootstrap = self.bootstrap.clone();
        let topic = self.topic.clone();
        blocking_kafka(move || {
            let consumer = consumer(&bootstrap)?;
            let count = partition_ids(&consumer, &topic)?.len();
            Ok(i32::try_from(count).unwrap_or(i32::MAX))
        })
        .await
    }
}

/// The platform tables a run's event ids are counted in.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Accepted readings.
    Readings,
    /// The recommender's results.
    Recommendations,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Readings => "readings",
            Self::Recommendations => "recommendations",
        }
    }
}

/// The sum of the end offsets of every partition of `topic`.
pub async fn end_offsets(bootstrap: &str, topic: &str) -> Result<i64> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    blocking_kafka(move || {
        let consumer = consumer(&bootstrap)?;
        let mut total = 0;
        for partition in partition_ids(&consumer, &topic)? {
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, KAFKA_TIMEOUT)
                .map_err(kafka("read the topic's end offsets"))?;
            total += high;
        }
        Ok(total)
    })
    .await
}

/// A consumer group's state as the broker names it (`Empty` when unknown) and how many of its
/// members hold an assignment.
async fn group_state(bootstrap: &str, group: &str) -> Result<(String, usize)> {
    let bootstrap = bootstrap.to_string();
    let group = group.to_string();
    blocking_kafka(move || {
        let consumer = consumer(&bootstrap)?;
        let list = consumer
            .fetch_group_list(Some(&group), KAFKA_TIMEOUT)
            .map_err(kafka("describe the consumer group"))?;
        let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
            return Ok(("Empty".to_string(), 0));
        };
        let assigned = info
            .members()
            .iter()
            .filter(|m| m.assignment().is_some_and(|a| !a.is_empty()))
            .count();
        Ok((info.state().to_string(), assigned))
    })
    .await
}

fn consumer(bootstrap: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(kafka("create a Kafka client"))
}

fn partition_ids(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .map_err(kafka("read the topic's metadata"))?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(Error::NotReady(format!("topic {topic} has no partitions")));
    }
    Ok(ids)
}

/// Runs a blocking librdkafka call off the async workers.
async fn blocking_kafka<T: Send + 'static>(
    call: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| Error::NotReady(format!("a Kafka call did not finish: {e}")))?
}

/// Wraps a sqlx error with what was being done.
pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        action: action.to_string(),
        source,
    }
}

/// Wraps a Kafka error with what was being done.
pub(crate) fn kafka(action: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> Error {
    move |source| Error::Kafka {
        action: action.to_string(),
        source,
    }
}
