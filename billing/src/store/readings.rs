//! Storing accepted readings: the reading and its outbox row in one transaction.
//!
//! Idempotency: the event id (client-chosen or a fresh UUID v7) is the primary key and the
//! `Idempotency-Key` header is unique, so a retry inserts nothing; the stored reading is
//! compared with the retry and answered as a replay, or refused as a conflict when it differs.
//!
//! Order: a transaction-scoped advisory lock per property serialises concurrent inserts of one
//! property, so outbox sequence numbers of a property follow commit order and the relay, which
//! publishes by sequence, keeps each property's readings in the order they were accepted.

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, Utc};
use energy_contracts::event::SCHEMA_VERSION;
use energy_contracts::names::{EVENT_TYPE_CONSUMPTION, HEADER_CONTENT_TYPE, HEADER_EVENT_TYPE};
use energy_contracts::{ConsumptionEvent, EnergyKind};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::OUTBOX_CHANNEL;
use crate::domain::NewReading;

/// What became of one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now, with this event id.
    Created(Uuid),
    /// Stored before (same event id or idempotency key, same content): nothing new was written.
    Replayed(Uuid),
}

impl Ingested {
    /// The reading's event id.
    pub fn event_id(self) -> Uuid {
        match self {
            Self::Created(id) | Self::Replayed(id) => id,
        }
    }
}

/// Why a reading could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The event id or idempotency key is taken by a reading with other content.
    #[error("{key} was already used for a different reading (event {existing})")]
    Conflict {
        /// Which key collided (`eventId` or `Idempotency-Key`).
        key: &'static str,
        /// The stored reading's event id.
        existing: Uuid,
    },
    /// PostgreSQL failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What the outbox carries to Kafka for one reading.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// Kafka topic.
    pub topic: String,
    /// W3C trace context to put in the message headers, when the request had one.
    pub traceparent: Option<String>,
}

/// Stores one reading and its outbox row. `idempotency_key` comes from the request header.
pub async fn insert_reading(
    pool: &PgPool,
    reading: &NewReading,
    idempotency_key: Option<&str>,
    outbox: &OutboxMessage,
) -> Result<Ingested, StoreError> {
    let mut tx = pool.begin().await?;
    lock_properties(&mut tx, [reading.property_id.as_str()]).await?;
    match insert_one(&mut tx, reading, idempotency_key, outbox, Utc::now()).await? {
        Some(created) => {
            notify_relay(&mut tx).await?;
            tx.commit().await?;
            Ok(Ingested::Created(created))
        }
        None => {
            tx.rollback().await?;
            replay(pool, reading, idempotency_key).await
        }
    }
}

/// Stores the valid readings of a batch in one transaction; each gets its own outcome.
pub async fn insert_batch(
    pool: &PgPool,
    readings: &[NewReading],
    outbox: &OutboxMessage,
) -> Result<Vec<Result<Ingested, StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    // Locks in a fixed order, so two batches sharing properties cannot deadlock.
    let properties: BTreeSet<&str> = readings.iter().map(|r| r.property_id.as_str()).collect();
    lock_properties(&mut tx, properties).await?;

    let received_at = Utc::now();
    let mut inserted = Vec::with_capacity(readings.len());
    for reading in readings {
        inserted.push(insert_one(&mut tx, reading, None, outbox, received_at).await?);
    }
    if inserted.iter().any(Option::is_some) {
        notify_relay(&mut tx).await?;
    }
    tx.commit().await?;

    let mut outcomes = Vec::with_capacity(readings.len());
    for (reading, created) in readings.iter().zip(inserted) {
        outcomes.push(match created {
            Some(id) => Ok(Ingested::Created(id)),
            None => replay(pool, reading, None).await,
        });
    }
    Ok(outcomes)
}

async fn lock_properties<'a>(
    tx: &mut PgConnection,
    properties: impl IntoIterator<Item = &'a str>,
) -> Result<(), sqlx::Error> {
    for property in properties {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(property)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Inserts the reading and its outbox row; `None` when the event id or key already exists.
async fn insert_one(
    tx: &mut PgConnection,
    reading: &NewReading,
    idempotency_key: Option<&str>,
    outbox: &OutboxMessage,
    received_at: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let event = event_for(reading, received_at);
    // Checked against the schema at compile time (offline data in `.sqlx/`).
    let inserted = sqlx::query_scalar!(
        "INSERT INTO readings (event_id, property_id, meter_id, kind, kwh, period_start, \
         period_end, utc_offset_secs, region, received_at, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT DO NOTHING RETURNING event_id",
        event.event_id,
        event.property_id.as_str(),
        event.meter_id.as_deref(),
        event.kind.as_str(),
        event.kwh,
        event.period_start.with_timezone(&Utc),
        event.period_end.with_timezone(&Utc),
        event.period_start.offset().local_minus_utc(),
        &event.region,
        received_at,
        idempotency_key,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(event_id) = inserted else {
        return Ok(None);
    };

    sqlx::query!(
        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers) \
         VALUES ($1, $2, $3, $4, $5)",
        event_id,
        &outbox.topic,
        event.property_id.as_str(),
        event.to_json(),
        headers(outbox.traceparent.as_deref()),
    )
    .execute(&mut *tx)
    .await?;
    Ok(Some(event_id))
}

fn event_for(reading: &NewReading, received_at: DateTime<Utc>) -> ConsumptionEvent {
    ConsumptionEvent {
        schema_version: SCHEMA_VERSION,
        event_id: reading.event_id.unwrap_or_else(Uuid::now_v7),
        property_id: reading.property_id.clone(),
        meter_id: reading.meter_id.clone(),
        kind: reading.kind,
        kwh: reading.kwh,
        period_start: reading.period_start,
        period_end: reading.period_end,
        region: reading.region.clone(),
        received_at,
    }
}

fn headers(traceparent: Option<&str>) -> serde_json::Value {
    let mut headers = json!({
        HEADER_CONTENT_TYPE: "application/json",
        HEADER_EVENT_TYPE: EVENT_TYPE_CONSUMPTION,
    });
    if let Some(traceparent) = traceparent {
        headers[energy_contracts::names::HEADER_TRACEPARENT] = json!(traceparent);
    }
    headers
}

async fn notify_relay(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Answers a retry: the stored reading under the same event id or key, if its content matches.
async fn replay(
    pool: &PgPool,
    reading: &NewReading,
    idempotency_key: Option<&str>,
) -> Result<Ingested, StoreError> {
    let row = sqlx::query!(
        "SELECT event_id, property_id, meter_id, kind, kwh, period_start, period_end, region, \
         (event_id = $1) AS by_event_id FROM readings WHERE event_id = $1 OR \
         ($2::text IS NOT NULL AND idempotency_key = $2) ORDER BY by_event_id DESC LIMIT 1",
        reading.event_id,
        idempotency_key,
    )
    .fetch_one(pool)
    .await?;

    let existing = row.event_id;
    let key = if row.by_event_id.unwrap_or(false) {
        "eventId"
    } else {
        "Idempotency-Key"
    };
    let same = row.property_id == reading.property_id.as_str()
        && row.meter_id == reading.meter_id
        && row.kind == reading.kind.as_str()
        && row.kwh == reading.kwh
        && same_instant(row.period_start, reading.period_start)
        && same_instant(row.period_end, reading.period_end)
        && row.region == reading.region;
    if same {
        Ok(Ingested::Replayed(existing))
    } else {
        Err(StoreError::Conflict { key, existing })
    }
}

fn same_instant(stored: DateTime<Utc>, sent: DateTime<FixedOffset>) -> bool {
    // PostgreSQL keeps microseconds; compare at that precision.
    (stored - sent.with_timezone(&Utc)).num_microseconds() == Some(0)
}

/// Whether a stored kind string is one this code knows (used by the read queries).
pub(super) fn parse_kind(kind: &str) -> EnergyKind {
    match kind {
        "gas" => EnergyKind::Gas,
        _ => EnergyKind::Electricity,
    }
}
