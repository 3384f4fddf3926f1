//! Storing accepted readings: readings and their outbox rows in one transaction, many at a time.
//!
//! [`insert_many`] writes any number of readings with a fixed number of statements: the rows go
//! to PostgreSQL as arrays and are inserted by `UNNEST` (one statement for the readings, one for
//! the outbox), so a batch of 500 costs what a single reading costs in round trips. Single
//! readings reach it through [`super::GroupCommit`], which gathers concurrent requests into one
//! transaction.
//!
//! Idempotency: the event id (client-chosen or a fresh UUID v7) is the primary key and the
//! `Idempotency-Key` header is unique, so a retry inserts nothing; the stored reading is
//! compared with the retry and answered as a replay, or refused as a conflict when it differs.
//! Within one call, the first of two readings with the same id or key is the one stored.
//!
//! Order: a transaction-scoped advisory lock per property serialises concurrent inserts of one
//! property, so outbox sequence numbers of a property follow commit order and the relay, which
//! publishes by sequence, keeps each property's readings in the order they were accepted. The
//! locks are taken in one fixed order, so two transactions sharing properties cannot deadlock;
//! within a transaction the outbox rows are numbered in the order of the readings given.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

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

/// Why a reading could not be stored. Cloneable, because one failed transaction is the answer
/// to every request it carried.
#[derive(Debug, Clone, thiserror::Error)]
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
    Database(Arc<sqlx::Error>),
    /// The writer tasks have stopped: billing is shutting down.
    #[error("the reading writers have stopped")]
    Closed,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

/// One reading to store, with what its outbox row carries besides the event.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The validated reading.
    pub reading: NewReading,
    /// The request's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// W3C trace context for the Kafka message headers.
    pub traceparent: Option<String>,
}

/// Stores `items` and their outbox rows (for `topic`) in one transaction; each item gets its own
/// outcome, in order. An `Err` of the whole call means nothing was stored.
pub async fn insert_many(
    pool: &PgPool,
    topic: &str,
    items: &[Submission],
) -> Result<Vec<Result<Ingested, StoreError>>, StoreError> {
    let outcomes = insert_many_if(pool, topic, items, || true).await?;
    Ok(outcomes.unwrap_or_default())
}

/// [`insert_many`], except that `wanted` is asked just before the commit: when it answers false
/// the transaction is rolled back and `Ok(None)` says that nothing was stored.
pub async fn insert_many_if(
    pool: &PgPool,
    topic: &str,
    items: &[Submission],
    wanted: impl Fn() -> bool,
) -> Result<Option<Vec<Result<Ingested, StoreError>>>, StoreError> {
    if items.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let received_at = Utc::now();
    let events: Vec<ConsumptionEvent> = items
        .iter()
        .map(|item| event_for(&item.reading, received_at))
        .collect();

    let mut tx = pool.begin().await?;
    let properties: BTreeSet<&str> = events.iter().map(|e| e.property_id.as_str()).collect();
    lock_properties(&mut tx, properties).await?;
    let stored = insert_readings(&mut tx, items, &events, received_at).await?;
    let created = claim_first(&events, &stored);
    if created.iter().any(|&c| c) {
        insert_outbox(&mut tx, topic, items, &events, &created).await?;
        notify_relay(&mut tx).await?;
    }
    if !wanted() {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;

    let mut outcomes = Vec::with_capacity(items.len());
    for ((item, event), created) in items.iter().zip(&events).zip(created) {
        outcomes.push(if created {
            Ok(Ingested::Created(event.event_id))
        } else {
            replay(pool, &item.reading, item.idempotency_key.as_deref()).await
        });
    }
    Ok(Some(outcomes))
}

/// Takes the advisory lock of every property, in sorted order, in one statement.
async fn lock_properties(
    tx: &mut PgConnection,
    properties: BTreeSet<&str>,
) -> Result<(), sqlx::Error> {
    let properties: Vec<&str> = properties.into_iter().collect();
    // Volatile target-list functions run after the sort, so the locks follow `ORDER BY`.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended(property, 0)) AS \"locked!: ()\" \
         FROM unnest($1::text[]) WITH ORDINALITY AS p (property, n) ORDER BY n",
        &properties as &[&str],
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(())
}

/// Inserts the readings that are new; returns the event ids stored.
async fn insert_readings(
    tx: &mut PgConnection,
    items: &[Submission],
    events: &[ConsumptionEvent],
    received_at: DateTime<Utc>,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let properties: Vec<&str> = events.iter().map(|e| e.property_id.as_str()).collect();
    let meters: Vec<Option<&str>> = events.iter().map(|e| e.meter_id.as_deref()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let kwh: Vec<f64> = events.iter().map(|e| e.kwh).collect();
    let starts: Vec<DateTime<Utc>> = events.iter().map(|e| e.period_start.to_utc()).collect();
    let ends: Vec<DateTime<Utc>> = events.iter().map(|e| e.period_end.to_utc()).collect();
    let offsets: Vec<i32> = events
        .iter()
        .map(|e| e.period_start.offset().local_minus_utc())
        .collect();
    let regions: Vec<&str> = events.iter().map(|e| e.region.as_str()).collect();
    let keys: Vec<Option<&str>> = items.iter().map(|i| i.idempotency_key.as_deref()).collect();

    // Checked against the schema at compile time (offline data in `.sqlx/`).
    let stored = sqlx::query_scalar!(
        "INSERT INTO readings (event_id, property_id, meter_id, kind, kwh, period_start, \
         period_end, utc_offset_secs, region, received_at, idempotency_key) \
         SELECT r.event_id, r.property_id, r.meter_id, r.kind, r.kwh, r.period_start, \
         r.period_end, r.utc_offset_secs, r.region, $10, r.idempotency_key \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::float8[], \
         $6::timestamptz[], $7::timestamptz[], $8::int4[], $9::text[], $11::text[]) \
         WITH ORDINALITY AS r (event_id, property_id, meter_id, kind, kwh, period_start, \
         period_end, utc_offset_secs, region, idempotency_key, n) \
         ORDER BY r.n \
         ON CONFLICT DO NOTHING RETURNING event_id",
        &ids,
        &properties as &[&str],
        &meters as &[Option<&str>],
        &kinds as &[&str],
        &kwh,
        &starts,
        &ends,
        &offsets,
        &regions as &[&str],
        received_at,
        &keys as &[Option<&str>],
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(stored.into_iter().collect())
}

/// Which items were stored now: the first item of each stored event id (a later item with the
/// same id, or any item whose id was not stored, is answered from the stored row).
fn claim_first(events: &[ConsumptionEvent], stored: &HashSet<Uuid>) -> Vec<bool> {
    let mut claimed = HashSet::with_capacity(stored.len());
    events
        .iter()
        .map(|e| stored.contains(&e.event_id) && claimed.insert(e.event_id))
        .collect()
}

/// The outbox rows of the created readings, numbered in the order given.
async fn insert_outbox(
    tx: &mut PgConnection,
    topic: &str,
    items: &[Submission],
    events: &[ConsumptionEvent],
    created: &[bool],
) -> Result<(), sqlx::Error> {
    let rows = items.iter().zip(events).zip(created).filter(|(_, c)| **c);
    let (mut ids, mut keys, mut payloads, mut headers_list) = (vec![], vec![], vec![], vec![]);
    for ((item, event), _) in rows {
        ids.push(event.event_id);
        keys.push(event.property_id.as_str());
        payloads.push(event.to_json());
        headers_list.push(headers(item.traceparent.as_deref()));
    }
    sqlx::query!(
        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers) \
         SELECT o.event_id, $2, o.msg_key, o.payload, o.headers \
         FROM unnest($1::uuid[], $3::text[], $4::bytea[], $5::jsonb[]) \
         WITH ORDINALITY AS o (event_id, msg_key, payload, headers, n) ORDER BY o.n",
        &ids,
        topic,
        &keys as &[&str],
        &payloads,
        &headers_list,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
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
