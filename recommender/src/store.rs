//! PostgreSQL: what the recommender reads (a series' history, its alert state) and writes (one
//! recommendation per reading, RED alerts, the new alert state), all keyed so that a Kafka
//! redelivery inserts nothing new.
//!
//! The per-event writes happen in a [`PropertyTx`]. It opens by locking the property's
//! `alert_state` row (`SELECT ... FOR UPDATE`), so two consumers that briefly own the same
//! partition during a rebalance take turns on a property instead of both deciding from the same
//! old state. The "already processed?" check is repeated under that lock. A run of one
//! partition's messages shares one transaction: [`PropertyTx::relock`] moves it on to the next
//! message's property, keeping the locks taken so far until the commit.
//!
//! Layout choices the schema leaves open:
//! - `alert_state.state` holds one [`AlertState`] per series (kind of energy and meter) of the
//!   property: `{"series": {"electricity/m-1": {...}}}`, as the detector keys state by series.
//! - `recommendations.advice` is the document [`crate::process::advice_document`] builds; its
//!   `reading` member keeps the interval, kind and meter, which the table has no columns for.
//!   The history fallback reads them from there (see [`PropertyTx::history`]).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use energy_contracts::{CarbonResponse, ConsumptionEvent, EnergyKind, PropertyId, RedAlert};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::domain::{AlertState, Reading};

/// How long a query waits for a free connection before the attempt fails and is retried.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why PostgreSQL could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The pool could not be set up (a malformed URL).
    #[error("cannot set up the PostgreSQL pool")]
    Connect(#[source] sqlx::Error),
    /// The schema could not be migrated.
    #[error("cannot migrate the PostgreSQL schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("PostgreSQL failed to {action}")]
    Query {
        /// What was being done, in words.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A stored alert names a property id that is no longer valid.
    #[error("stored alert {alert_id} has an invalid property id")]
    BadPropertyId {
        /// The alert.
        alert_id: Uuid,
        /// Why the id is invalid.
        #[source]
        source: energy_contracts::PropertyIdError,
    },
}

impl StoreError {
    /// Whether waiting may help. A data exception or constraint violation (SQLSTATE classes 22
    /// and 23) is about the row being written and will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Query {
                source: sqlx::Error::Database(db),
                ..
            } => !db.code().is_some_and(|code| is_permanent_sqlstate(&code)),
            Self::BadPropertyId { .. } => false,
            Self::Connect(_) | Self::Migrate(_) | Self::Query { .. } => true,
        }
    }
}

/// SQLSTATE classes that a retry cannot fix: 22 (data exception), 23 (integrity constraint).
pub fn is_permanent_sqlstate(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23")
}

fn query_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// Where a Kafka message was read from; stored with its recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaPosition {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// The key of one series within a property: its kind of energy and meter.
pub fn series_key(kind: EnergyKind, meter_id: Option<&str>) -> String {
    match meter_id {
        Some(meter) => format!("{}/{meter}", kind.as_str()),
        None => kind.as_str().to_string(),
    }
}

/// The JSON stored in `alert_state.state`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SeriesStates {
    #[serde(default)]
    series: BTreeMap<String, AlertState>,
}

/// The recommendation row of one reading.
#[derive(Debug, Clone, Copy)]
pub struct NewRecommendation<'a> {
    /// The reading.
    pub event: &'a ConsumptionEvent,
    /// Where it was read from.
    pub position: KafkaPosition,
    /// The carbon function's answer.
    pub carbon: &'a CarbonResponse,
    /// The advice document.
    pub advice: &'a serde_json::Value,
}

/// The recommender's PostgreSQL pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A lazily connecting pool: the process starts even while PostgreSQL is down, and every
    /// query waits at most [`ACQUIRE_TIMEOUT`] for a connection.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy(url)
            .map_err(StoreError::Connect)?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies the platform's migrations. billing runs the same set; sqlx's advisory lock lets
    /// both run at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// Answers a trivial query, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_error("answer a readiness query"))
    }

    /// Whether a recommendation for `event_id` is stored already.
    pub async fn is_processed(&self, event_id: Uuid) -> Result<bool, StoreError> {
        let found = self.processed_among(&[event_id]).await?;
        Ok(found.contains(&event_id))
    }

    /// Opens the transaction of one reading, holding its property's alert-state lock.
    pub async fn lock_property(&self, property: &PropertyId) -> Result<PropertyTx, StoreError> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("begin a transaction"))?;
        PropertyTx::lock(tx, property).await
    }

    /// The ids among `event_ids` whose recommendation is stored already.
    pub async fn processed_among(&self, event_ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let found: Vec<Uuid> =
            sqlx::query_scalar("SELECT event_id FROM recommendations WHERE event_id = ANY($1)")
                .bind(event_ids)
                .fetch_all(&self.pool)
                .await
                .map_err(query_error("look up recommendations"))?;
        Ok(found.into_iter().collect())
    }

    /// Alerts not yet confirmed by RabbitMQ: all of them, or those of one reading.
    pub async fn pending_alerts(
        &self,
        event_id: Option<Uuid>,
    ) -> Result<Vec<RedAlert>, StoreError> {
        const COLUMNS: &str = "SELECT alert_id, event_id, property_id, kwh, threshold, reason, \
                               kg_co2e, raised_at FROM alerts WHERE published_at IS NULL";
        let rows = match event_id {
            Some(event_id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} AND event_id = $1")))
                    .bind(event_id)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{COLUMNS} ORDER BY raised_at, alert_id"
                )))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(query_error("list unpublished alerts"))?;
        rows.iter().map(alert_from_row).collect()
    }

    /// Stamps an alert as confirmed by RabbitMQ.
    pub async fn mark_published(&self, alert_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alerts SET published_at = now() WHERE alert_id = $1 AND published_at IS NULL",
        )
        .bind(alert_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_error("mark an alert published"))
    }
}

fn alert_from_row(row: &PgRow) -> Result<RedAlert, StoreError> {
    let read_error = || query_error("read an alert row");
    let alert_id: Uuid = row.try_get("alert_id").map_err(read_error())?;
    let property: String = row.try_get("property_id").map_err(read_error())?;
    let property_id = PropertyId::parse(property)
        .map_err(|source| StoreError::BadPropertyId { alert_id, source })?;
    let columns = || -> Result<RedAlert, sqlx::Error> {
        Ok(RedAlert {
            alert_id,
            event_id: row.try_get("event_id")?,
            property_id,
            kwh: row.try_get("kwh")?,
            threshold: row.try_get("threshold")?,
            reason: row.try_get("reason")?,
            kg_co2e: row.try_get("kg_co2e")?,
            raised_at: row.try_get("raised_at")?,
        })
    };
    columns().map_err(read_error())
}

/// The property's alert state, locked until the transaction ends; `None` when it has no row.
async fn lock_alert_state(
    tx: &mut Transaction<'static, Postgres>,
    property: &PropertyId,
) -> Result<Option<serde_json::Value>, StoreError> {
    sqlx::query_scalar("SELECT state FROM alert_state WHERE property_id = $1 FOR UPDATE")
        .bind(property.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error("lock an alert state"))
}

/// Creates a new property's alert state, with no series, and locks it.
async fn create_alert_state(
    tx: &mut Transaction<'static, Postgres>,
    property: &PropertyId,
) -> Result<serde_json::Value, StoreError> {
    // Another consumer may create it first; the insert then waits for it and does nothing.
    sqlx::query(
        "INSERT INTO alert_state (property_id, state) VALUES ($1, '{}'::jsonb) \
         ON CONFLICT (property_id) DO NOTHING",
    )
    .bind(property.as_str())
    .execute(&mut **tx)
    .await
    .map_err(query_error("create an alert state"))?;
    lock_alert_state(tx, property)
        .await?
        .ok_or_else(|| query_error("lock an alert state")(sqlx::Error::RowNotFound))
}

/// What the database knows of a reading, read under its property's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its recommendation is stored already.
    pub processed: bool,
    /// billing's `readings` hold it.
    pub in_readings: bool,
}

/// The transaction of one reading: reads and writes of one property under its lock. Dropping
/// it without [`PropertyTx::commit`] rolls everything back.
pub struct PropertyTx {
    tx: Transaction<'static, Postgres>,
    property: PropertyId,
    states: SeriesStates,
}

impl PropertyTx {
    /// Locks `property`'s alert state in `tx`; a new property's row is created first, with no
    /// series.
    async fn lock(
        mut tx: Transaction<'static, Postgres>,
        property: &PropertyId,
    ) -> Result<Self, StoreError> {
        let state = match lock_alert_state(&mut tx, property).await? {
            Some(state) => state,
            None => create_alert_state(&mut tx, property).await?,
        };

        // A state written by an older layout is not worth blocking the property over: it
        // starts again from armed, which at worst raises one alert early.
        let states = serde_json::from_value(state).unwrap_or_else(|err| {
            tracing::warn!(property_id = %property, error = %err, "alert state unreadable; reset");
            SeriesStates::default()
        });
        Ok(Self {
            tx,
            property: property.clone(),
            states,
        })
    }

    /// Goes on to the next reading in the same transaction: locks `property` (which may be the
    /// same one again) and reads its alert state as this transaction left it. Locks taken so
    /// far are kept until the commit.
    pub async fn relock(self, property: &PropertyId) -> Result<Self, StoreError> {
        Self::lock(self.tx, property).await
    }

    /// Whether the reading's recommendation is stored already and whether billing stored the
    /// reading, in one round trip.
    pub async fn seen(&mut self, event_id: Uuid) -> Result<Seen, StoreError> {
        let (processed, in_readings): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM recommendations WHERE event_id = $1), \
                    EXISTS (SELECT 1 FROM readings WHERE event_id = $1)",
        )
        .bind(event_id)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(query_error("look up a reading and its recommendation"))?;
        Ok(Seen {
            processed,
            in_readings,
        })
    }

    /// The series' readings that overlap `[since, event.periodStart)`, the event itself left
    /// out. billing's `readings` are the history when they hold the event (`in_readings`, from
    /// [`PropertyTx::seen`]); when it reached Kafka some other way, the intervals kept with
    /// earlier recommendations stand in.
    pub async fn history(
        &mut self,
        event: &ConsumptionEvent,
        in_readings: bool,
        since: DateTime<Utc>,
    ) -> Result<Vec<Reading>, StoreError> {
        let sql = if in_readings {
            "SELECT period_start, period_end, kwh FROM readings \
             WHERE property_id = $1 AND kind = $2 AND meter_id IS NOT DISTINCT FROM $3 \
               AND period_end > $4 AND period_start < $5 AND event_id <> $6"
        } else {
            "SELECT period_start, period_end, kwh FROM ( \
               SELECT (advice->'reading'->>'periodStart')::timestamptz AS period_start, \
                      (advice->'reading'->>'periodEnd')::timestamptz AS period_end, \
                      kwh, event_id, property_id, \
                      advice->'reading'->>'kind' AS kind, \
                      advice->'reading'->>'meterId' AS meter_id \
               FROM recommendations WHERE property_id = $1 \
             ) AS history \
             WHERE kind = $2 AND meter_id IS NOT DISTINCT FROM $3 \
               AND period_end > $4 AND period_start < $5 AND event_id <> $6"
        };
        let rows = sqlx::query(sql)
            .bind(event.property_id.as_str())
            .bind(event.kind.as_str())
            .bind(event.meter_id.as_deref())
            .bind(since)
            .bind(event.period_start.to_utc())
            .bind(event.event_id)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(query_error("load a series' history"))?;

        let mut history = Vec::with_capacity(rows.len());
        for row in &rows {
            let start: DateTime<Utc> = row.try_get(0).map_err(query_error("read history"))?;
            let end: DateTime<Utc> = row.try_get(1).map_err(query_error("read history"))?;
            let kwh: f64 = row.try_get(2).map_err(query_error("read history"))?;
            // Rows that break the reading rules were never advised on; they teach nothing.
            if let Ok(reading) = Reading::new(start, end, kwh) {
                history.push(reading);
            }
        }
        Ok(history)
    }

    /// The stored state of one series, or the default for a series never seen.
    pub fn alert_state(&self, series: &str) -> AlertState {
        self.states.series.get(series).cloned().unwrap_or_default()
    }

    /// Writes the recommendation, the alert (if any) and the series' new state. Returns false,
    /// writing nothing else, when the recommendation was stored already.
    pub async fn save(
        &mut self,
        recommendation: NewRecommendation<'_>,
        alert: Option<&RedAlert>,
        series: &str,
        state: AlertState,
    ) -> Result<bool, StoreError> {
        let NewRecommendation {
            event,
            position,
            carbon,
            advice,
        } = recommendation;
        let inserted = sqlx::query(
            // `created_at` is when the row was written, not when its transaction began: a run
            // of messages shares one transaction.
            "INSERT INTO recommendations (event_id, property_id, kwh, kg_co2e, grams_per_kwh, \
               rating, factor, advice, kafka_partition, kafka_offset, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp()) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.event_id)
        .bind(event.property_id.as_str())
        .bind(event.kwh)
        .bind(carbon.kg_co2e)
        .bind(carbon.grams_per_kwh)
        .bind(rating_text(carbon))
        .bind(Json(&carbon.factor))
        .bind(Json(advice))
        .bind(position.partition)
        .bind(position.offset)
        .execute(&mut *self.tx)
        .await
        .map_err(query_error("insert a recommendation"))?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }

        if let Some(alert) = alert {
            insert_alert(&mut self.tx, alert).await?;
        }

        self.states.series.insert(series.to_string(), state);
        sqlx::query("UPDATE alert_state SET state = $2, updated_at = now() WHERE property_id = $1")
            .bind(self.property.as_str())
            .bind(Json(&self.states))
            .execute(&mut *self.tx)
            .await
            .map_err(query_error("update an alert state"))?;
        Ok(true)
    }

    /// Commits every write of the reading.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx
            .commit()
            .await
            .map_err(query_error("commit a reading's results"))
    }
}

async fn insert_alert(
    tx: &mut Transaction<'static, Postgres>,
    alert: &RedAlert,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alerts (alert_id, event_id, property_id, kwh, threshold, reason, kg_co2e, \
           raised_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (alert_id) DO NOTHING",
    )
    .bind(alert.alert_id)
    .bind(alert.event_id)
    .bind(alert.property_id.as_str())
    .bind(alert.kwh)
    .bind(alert.threshold)
    .bind(&alert.reason)
    .bind(alert.kg_co2e)
    .bind(alert.raised_at)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(query_error("insert an alert"))
}

/// The rating letter as the contract spells it.
fn rating_text(carbon: &CarbonResponse) -> String {
    match serde_json::to_value(carbon.rating) {
        Ok(serde_json::Value::String(letter)) => letter,
        // A unit enum always serialises to a string; this arm only keeps the match total.
        _ => format!("{:?}", carbon.rating),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_exceptions_and_constraint_violations_are_permanent() {
        for code in ["22003", "22P02", "23505", "23514"] {
            assert!(is_permanent_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn connection_lock_and_resource_failures_are_retried() {
        for code in ["08006", "40001", "40P01", "53300", "57P01"] {
            assert!(!is_permanent_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn series_keys_name_the_kind_and_the_meter() {
        assert_eq!(series_key(EnergyKind::Electricity, None), "electricity");
        assert_eq!(series_key(EnergyKind::Gas, Some("g-1")), "gas/g-1");
    }

    #[test]
    fn an_empty_state_document_reads_as_no_series() {
        let states: SeriesStates = serde_json::from_str("{}").expect("empty object");

        assert!(states.series.is_empty());
    }
}
