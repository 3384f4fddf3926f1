//! The outbox relay: publishes committed outbox rows to Kafka in sequence order and marks them
//! sent once the broker has acknowledged them.
//!
//! - One relay at a time: the replica holding a PostgreSQL session advisory lock publishes; the
//!   others wait for the lock, so two relays never interleave one property's messages. The
//!   holder checks its lock's connection after every pass and stands down when it is gone.
//! - Woken at once by `NOTIFY outbox_new` (sent by the inserting transaction on commit), with a
//!   periodic sweep as a safety net and a full sweep on start-up for rows left by a crash.
//! - Every pass reads all unsent rows by sequence, never "rows above the last seen": sequence
//!   numbers are taken before commit, so a later commit can hold a smaller one.
//! - The batch is handed to the idempotent producer all at once (many messages in flight, order
//!   per partition kept by the producer) and awaited together. Messages never time out locally:
//!   while Kafka is away the batch waits, and nothing behind it overtakes it.
//! - A relay that dies after sending and before marking sends those rows again after restart;
//!   consumers deduplicate by `eventId`.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::store::OUTBOX_CHANNEL;

/// Advisory lock key that elects the one publishing relay ("outbox" in ASCII).
const RELAY_LOCK_KEY: i64 = 0x6f75_7462_6f78;

/// Longest pause before a new election after an interrupted term.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The Kafka producer could not be created.
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Kafka `bootstrap.servers`.
    pub bootstrap: String,
    /// Rows read and published per pass.
    pub batch_size: i64,
    /// Sweep interval when no notification arrives.
    pub sweep_interval: Duration,
}

/// Creates the idempotent, `acks=all` producer the relay publishes with.
pub fn producer(bootstrap: &str) -> Result<FutureProducer, RelayError> {
    let producer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // 0 = never give up on a message locally: the batch waits for Kafka to come back.
        .set("message.timeout.ms", "0")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .create()?;
    Ok(producer)
}

/// Runs the relay until `shutdown` turns true.
pub async fn run(
    pool: PgPool,
    producer: FutureProducer,
    settings: RelaySettings,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    // PostgreSQL may go away for a while: each term of leadership that ends in an error is
    // followed by a new election after a pause, so the relay outlives a database restart.
    let mut pause = settings.sweep_interval;
    loop {
        match lead(&pool, &producer, &settings, &metrics, &mut shutdown).await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "outbox relay interrupted")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => break,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
    info!("outbox relay stopped");
    Ok(())
}

/// One term: wins the relay lock, then publishes until shutdown (`Ok`) or until the lock's
/// connection or the database fails (`Err`), since a lost connection is a lost lock.
async fn lead(
    pool: &PgPool,
    producer: &FutureProducer,
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), RelayError> {
    // The lock lives as long as this connection; it is released when the process dies.
    let mut leader = pool.acquire().await?.detach();
    loop {
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut leader)
            .await?;
        if won {
            break;
        }
        debug!("another replica relays the outbox; waiting");
        tokio::select! {
            _ = tokio::time::sleep(settings.sweep_interval) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
    info!("outbox relay leads");

    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(OUTBOX_CHANNEL).await?;
    let stopping = shutdown.clone();
    loop {
        // A drain waiting for an absent Kafka is abandoned on shutdown; its rows stay unsent
        // and go out after the restart.
        tokio::select! {
            drained = drain(pool, producer, settings, metrics, &stopping) => drained?,
            _ = shutdown.changed() => return Ok(()),
        }
        tokio::select! {
            notification = listener.try_recv() => {
                // `None` means the listener reconnected and may have missed a notification;
                // the next drain reads everything unsent anyway.
                notification?;
            }
            _ = tokio::time::sleep(settings.sweep_interval) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        // Still holding the lock? Its connection answering is the proof.
        sqlx::query("SELECT 1").execute(&mut leader).await?;
    }
}

/// Publishes unsent rows until none is left.
async fn drain(
    pool: &PgPool,
    producer: &FutureProducer,
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), RelayError> {
    while !*shutdown.borrow() {
        let rows = sqlx::query(
            "SELECT seq, topic, msg_key, payload, headers, \
             extract(epoch FROM (clock_timestamp() - created_at))::float8 AS age_secs \
             FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(settings.batch_size)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }

        let sends = rows.iter().map(|row| send(producer, row));
        let results = join_all(sends).await;

        let mut sent = Vec::with_capacity(rows.len());
        for (row, result) in rows.iter().zip(results) {
            let seq: i64 = row.try_get("seq")?;
            match result {
                Ok(()) => {
                    sent.push(seq);
                    metrics.observe_outbox_age(row.try_get("age_secs")?);
                }
                // With no local timeout this only happens for errors Kafka will not heal by
                // waiting (for example a deleted topic); the row stays unsent and is retried.
                Err(e) => warn!(seq, error = %e, "outbox row not delivered; will retry"),
            }
        }
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE seq = ANY($1)")
            .bind(&sent)
            .execute(pool)
            .await?;
        metrics.outbox_published(sent.len());
        debug!(count = sent.len(), "outbox rows published");
        if sent.len() < rows.len() {
            tokio::time::sleep(settings.sweep_interval).await;
        }
    }
    Ok(())
}

async fn send(producer: &FutureProducer, row: &sqlx::postgres::PgRow) -> Result<(), String> {
    let topic: String = row.try_get("topic").map_err(|e| e.to_string())?;
    let key: String = row.try_get("msg_key").map_err(|e| e.to_string())?;
    let payload: Vec<u8> = row.try_get("payload").map_err(|e| e.to_string())?;
    let headers: serde_json::Value = row.try_get("headers").map_err(|e| e.to_string())?;

    let mut kafka_headers = OwnedHeaders::new();
    if let Some(map) = headers.as_object() {
        for (name, value) in map {
            let value = value.as_str().unwrap_or_default();
            kafka_headers = kafka_headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
    }
    let record = FutureRecord::to(&topic)
        .key(&key)
        .payload(&payload)
        .headers(kafka_headers);
    producer
        .send(record, rdkafka::util::Timeout::Never)
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}
