//! PostgreSQL: what the recommender reads (a series' history, its alert state) and writes (one
//! recommendation per reading, RED alerts, the new alert state), all keyed so that a Kafka
//! redelivery inserts nothing new.
//!
//! The writes of step 4 happen in a [`RunTx`] (see [`run`]): one transaction for a run of one
//! partition's messages, a single message being a run of one. It holds the `alert_state` locks
//! of every property in the run, so two consumers that briefly own the same partition during a
//! rebalance take turns on a property instead of both deciding from the same old state.
//!
//! Layout choices the schema leaves open:
//! - `alert_state.state` holds one [`AlertState`] per series (kind of energy and meter) of the
//!   property: `{"series": {"electricity/m-1": {...}}}`, as the detector keys state by series.
//! - `recommendations.advice` is the document [`crate::process::advice_document`] builds; its
//!   `reading` member keeps the interval, kind and meter, which the table has no columns for.
//!   The history fallback reads them from there (see [`RunTx::histories`]).

mod run;

pub use run::{HistoryWindow, RunTx};

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use energy_contracts::{CarbonResponse, ConsumptionEvent, EnergyKind, PropertyId, RedAlert};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::domain::AlertState;

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
    ///
    /// Statements are planned on every execution (`plan_cache_mode = force_custom_plan`). The
    /// tables start empty and grow fast; a generic plan cached while `readings` was small
    /// scans the whole table for every run's history until the next `ANALYZE`, where a fresh
    /// plan uses the index (a load run read 32 million rows in 4,643 sequential scans).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::Connect)?
            .options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
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
