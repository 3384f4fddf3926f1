//! The machine's ceilings: the same work as billing does, without billing.
//!
//! - PostgreSQL, single: the reading + outbox transaction billing runs per request (advisory
//!   lock per property, both inserts, `pg_notify`, commit) from a bare sqlx pool of the same
//!   size, driven by the same number of lanes.
//! - PostgreSQL, batch: the same rows as one multi-row insert per table per batch (`UNNEST`
//!   arrays), in one transaction per batch.
//! - Kafka: the same event messages (payload, key and headers) from an idempotent `acks=all`
//!   producer configured like billing's relay, to a scratch topic with the platform topic's
//!   partition count.
//!
//! The PostgreSQL ceilings write to a scratch database with the platform's schema on the same
//! server (so nothing reaches the platform's relay), dropped afterwards; the scratch topic is
//! deleted afterwards too.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use energy_contracts::names::{
    EVENT_TYPE_CONSUMPTION, HEADER_CONTENT_TYPE, HEADER_EVENT_TYPE, HEADER_TRACEPARENT,
};
use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::probe::{db, kafka};
use crate::workload::{Lanes, Reading};
use crate::{Error, Result};

/// The platform's schema, applied to the scratch database.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Channel billing notifies its relay on.
const OUTBOX_CHANNEL: &str = "outbox_new";

/// Rows (or messages) done and the time they took.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rate {
    /// Readings written or messages acknowledged.
    pub count: usize,
    /// Seconds from the first to the last.
    pub secs: f64,
    /// `count / secs`.
    pub per_sec: f64,
}

impl Rate {
    fn new(count: usize, elapsed: Duration) -> Self {
        Self {
            count,
            secs: elapsed.as_secs_f64(),
            per_sec: crate::driver::per_second(count, elapsed),
        }
    }
}

/// A database with the platform's schema, on the platform's server, for this run only.
pub struct ScratchDatabase {
    admin: PgConnectOptions,
    name: String,
    /// A pool of the given size on it.
    pub pool: PgPool,
}

impl ScratchDatabase {
    /// Creates the database next to the one of `database_url` and migrates it.
    pub async fn create(database_url: &str, run_id: &str, pool_size: u32) -> Result<Self> {
        let admin =
            PgConnectOptions::from_str(database_url).map_err(db("parse the database URL"))?;
        let name = format!("loadgen_ceiling_{}", run_id.replace('-', "_"));
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .map_err(db("connect to create the scratch database"))?;
        // The name holds only [a-z0-9_], from the run id.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .map_err(db("create the scratch database"))?;
        conn.close().await.ok();

        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .min_connections(pool_size)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(admin.clone().database(&name))
            .await
            .map_err(db("connect to the scratch database"))?;
        MIGRATOR.run(&pool).await.map_err(|e| Error::Database {
            action: "migrate the scratch database".into(),
            source: e.into(),
        })?;
        Ok(Self { admin, name, pool })
    }

    /// Closes the pool and drops the database.
    pub async fn drop_database(self) -> Result<()> {
        self.pool.close().await;
        let mut conn = PgConnection::connect_with(&self.admin)
            .await
            .map_err(db("connect to drop the scratch database"))?;
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .map_err(db("drop the scratch database"))?;
        Ok(())
    }
}

/// Runs billing's per-reading transaction for every reading, one lane per task, until done or
/// `limit` passes.
pub async fn single_transactions(
    pool: &PgPool,
    topic: &str,
    lanes: Lanes,
    limit: Duration,
) -> Result<Rate> {
    let start = Instant::now();
    let deadline = start + limit;
    let tasks = lanes.into_iter().map(|lane| {
        let pool = pool.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            let mut done = 0;
            for planned in lane {
                if Instant::now() >= deadline {
                    break;
                }
                insert_one(&pool, &topic, &planned.reading).await?;
                done += 1;
            }
            Ok::<usize, Error>(done)
        })
    });
    let mut count = 0;
    for task in join_all(tasks).await {
        count += task.expect("a ceiling lane does not panic")?;
    }
    Ok(Rate::new(count, start.elapsed()))
}

/// Writes every lane's readings as multi-row inserts of `batch_size` rows, one transaction per
/// batch, until done or `limit` passes.
pub async fn batch_inserts(
    pool: &PgPool,
    topic: &str,
    lanes: Lanes,
    batch_size: usize,
    limit: Duration,
) -> Result<Rate> {
    let start = Instant::now();
    let deadline = start + limit;
    let tasks = lanes.into_iter().map(|lane| {
        let pool = pool.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            let mut done = 0;
            for batch in lane.chunks(batch_size.max(1)) {
                if Instant::now() >= deadline {
                    break;
                }
                let readings: Vec<Reading> = batch.iter().map(|p| p.reading.clone()).collect();
                insert_many(&pool, &topic, &readings).await?;
                done += readings.len();
            }
            Ok::<usize, Error>(done)
        })
    });
    let mut count = 0;
    for task in join_all(tasks).await {
        count += task.expect("a ceiling lane does not panic")?;
    }
    Ok(Rate::new(count, start.elapsed()))
}

/// The headers billing stores with each outbox row.
fn outbox_headers() -> serde_json::Value {
    let trace_id = Uuid::new_v4().simple().to_string();
    let span_id = &Uuid::new_v4().simple().to_string()[..16];
    json!({
        HEADER_CONTENT_TYPE: "application/json",
        HEADER_EVENT_TYPE: EVENT_TYPE_CONSUMPTION,
        HEADER_TRACEPARENT: format!("00-{trace_id}-{span_id}-01"),
    })
}

async fn insert_one(pool: &PgPool, topic: &str, reading: &Reading) -> Result<()> {
    let received_at = Utc::now();
    let event = reading.to_event(received_at);
    let mut tx = pool
        .begin()
        .await
        .map_err(db("begin a ceiling transaction"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&reading.property_id)
        .execute(&mut *tx)
        .await
        .map_err(db("take the property lock"))?;
    sqlx::query(
        "INSERT INTO readings (event_id, property_id, meter_id, kind, kwh, period_start, \
         period_end, utc_offset_secs, region, received_at, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(reading.event_id)
    .bind(&reading.property_id)
    .bind(None::<String>)
    .bind("electricity")
    .bind(reading.kwh)
    .bind(reading.period_start)
    .bind(reading.period_end)
    .bind(0_i32)
    .bind(&event.region)
    .bind(received_at)
    .bind(None::<String>)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("insert a ceiling reading"))?;
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(reading.event_id)
    .bind(topic)
    .bind(&reading.property_id)
    .bind(event.to_json())
    .bind(outbox_headers())
    .execute(&mut *tx)
    .await
    .map_err(db("insert a ceiling outbox row"))?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(&mut *tx)
        .await
        .map_err(db("notify"))?;
    tx.commit()
        .await
        .map_err(db("commit a ceiling transaction"))
}

async fn insert_many(pool: &PgPool, topic: &str, readings: &[Reading]) -> Result<()> {
    let received_at = Utc::now();
    let ids: Vec<Uuid> = readings.iter().map(|r| r.event_id).collect();
    let properties: Vec<&str> = readings.iter().map(|r| r.property_id.as_str()).collect();
    let kwh: Vec<f64> = readings.iter().map(|r| r.kwh).collect();
    let starts: Vec<_> = readings.iter().map(|r| r.period_start).collect();
    let ends: Vec<_> = readings.iter().map(|r| r.period_end).collect();
    let payloads: Vec<Vec<u8>> = readings
        .iter()
        .map(|r| r.to_event(received_at).to_json())
        .collect();
    let headers = outbox_headers();

    let mut tx = pool.begin().await.map_err(db("begin a ceiling batch"))?;
    // The same per-property locks billing takes, in the same fixed order.
    let locked: BTreeSet<&str> = properties.iter().copied().collect();
    let locked: Vec<&str> = locked.into_iter().collect();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(p, 0)) FROM unnest($1::text[]) p")
        .bind(&locked)
        .execute(&mut *tx)
        .await
        .map_err(db("take the property locks"))?;
    sqlx::query(
        "INSERT INTO readings (event_id, property_id, kind, kwh, period_start, period_end, \
         utc_offset_secs, region, received_at) \
         SELECT id, p, 'electricity', k, s, e, 0, 'GB', $6 \
         FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::timestamptz[], $5::timestamptz[]) \
         AS t(id, p, k, s, e) ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&properties)
    .bind(&kwh)
    .bind(&starts)
    .bind(&ends)
    .bind(received_at)
    .execute(&mut *tx)
    .await
    .map_err(db("insert ceiling readings"))?;
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers) \
         SELECT id, $4, p, b, $5 FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS t(id, p, b)",
    )
    .bind(&ids)
    .bind(&properties)
    .bind(&payloads)
    .bind(topic)
    .bind(headers)
    .execute(&mut *tx)
    .await
    .map_err(db("insert ceiling outbox rows"))?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(&mut *tx)
        .await
        .map_err(db("notify"))?;
    tx.commit().await.map_err(db("commit a ceiling batch"))
}

/// Produces the event messages of `readings` to a scratch topic of `partitions` partitions with
/// a producer configured like billing's relay; the acknowledged rate. The topic is deleted after.
pub async fn kafka_producer(
    bootstrap: &str,
    run_id: &str,
    partitions: i32,
    readings: &[Reading],
    limit: Duration,
) -> Result<Rate> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(kafka("create the Kafka admin client"))?;
    let topic = format!("loadgen-ceiling-{run_id}");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let new_topic = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
    admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(kafka("create the scratch topic"))?;
    let rate = produce(bootstrap, &topic, readings, limit).await;
    admin
        .delete_topics(&[topic.as_str()], &options)
        .await
        .map_err(kafka("delete the scratch topic"))?;
    rate
}

async fn produce(
    bootstrap: &str,
    topic: &str,
    readings: &[Reading],
    limit: Duration,
) -> Result<Rate> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set(
            "message.timeout.ms",
            limit.as_millis().max(1000).to_string(),
        )
        .create()
        .map_err(kafka("create the ceiling producer"))?;
    // Wait for the new topic's leaders, so the first sends do not measure topic creation.
    let warmup = FutureRecord::to(topic).key("warmup").payload("{}");
    producer
        .send(warmup, Duration::from_secs(15))
        .await
        .map_err(|(e, _)| kafka("send a warm-up message")(e))?;

    let received_at = Utc::now();
    let messages: Vec<(String, Vec<u8>, OwnedHeaders)> = readings
        .iter()
        .map(|r| {
            let headers = outbox_headers();
            let mut kafka_headers = OwnedHeaders::new();
            for (name, value) in headers.as_object().into_iter().flatten() {
                kafka_headers = kafka_headers.insert(Header {
                    key: name,
                    value: Some(value.as_str().unwrap_or_default()),
                });
            }
            (
                r.property_id.clone(),
                r.to_event(received_at).to_json(),
                kafka_headers,
            )
        })
        .collect();

    // All messages in flight at once, as the relay hands over a whole batch.
    let start = Instant::now();
    let sends = messages.iter().map(|(key, payload, headers)| {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers.clone());
        producer.send(record, limit)
    });
    let results = join_all(sends).await;
    let elapsed = start.elapsed();
    let delivered = results.iter().filter(|r| r.is_ok()).count();
    if let Some(Err((e, _))) = results.into_iter().find(Result::is_err) {
        return Err(kafka("produce ceiling messages")(e));
    }
    Ok(Rate::new(delivered, elapsed))
}
