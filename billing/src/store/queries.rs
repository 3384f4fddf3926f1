//! The read side of the API: a property's readings, recommendations and alerts over a time
//! range, newest last.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::readings::parse_kind;

/// A half-open time range `[from, to)` and how many rows at most.
#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    /// Inclusive start; unbounded when absent.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end; unbounded when absent.
    pub to: Option<DateTime<Utc>>,
    /// Most rows to return (the newest ones).
    pub limit: i64,
}

/// One stored reading.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumptionRow {
    /// Event id of the reading.
    pub event_id: Uuid,
    /// Meter, when named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<String>,
    /// `electricity` or `gas`.
    #[schema(value_type = String, example = "electricity")]
    pub kind: energy_contracts::EnergyKind,
    /// Interval energy, kWh.
    pub kwh: f64,
    /// Interval start, in the offset the sender used.
    pub period_start: DateTime<FixedOffset>,
    /// Interval end, in the offset the sender used.
    pub period_end: DateTime<FixedOffset>,
    /// Grid region.
    pub region: String,
    /// When billing accepted it.
    pub received_at: DateTime<Utc>,
}

/// One stored recommendation with the reading's carbon.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationRow {
    /// The reading it is for.
    pub event_id: Uuid,
    /// Energy of the reading, kWh.
    pub kwh: f64,
    /// Emissions of the reading, kgCO2e.
    pub kg_co2e: f64,
    /// Effective intensity, gCO2e/kWh.
    pub grams_per_kwh: f64,
    /// Letter rating A (cleanest) to G.
    pub rating: String,
    /// The emission factor used, with region, year, basis and source.
    #[schema(value_type = Object)]
    pub factor: serde_json::Value,
    /// Advice items: kind, action, savingKwh, savingKgCo2e.
    #[schema(value_type = Vec<Object>)]
    pub advice: serde_json::Value,
    /// Why the reading was not advised on (for example 0 kWh of electricity, often a data
    /// fault), when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspicion: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// One RED alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRow {
    /// Stable alert id.
    pub alert_id: Uuid,
    /// The reading that raised it.
    pub event_id: Uuid,
    /// Energy of the reading, kWh.
    pub kwh: f64,
    /// The limit crossed, kWh.
    pub threshold: f64,
    /// Why, for people.
    pub reason: String,
    /// Emissions of the reading, kgCO2e.
    pub kg_co2e: f64,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
}

/// The property's readings whose interval starts in the range.
pub async fn consumption(
    pool: &PgPool,
    property: &str,
    range: TimeRange,
) -> Result<Vec<ConsumptionRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT event_id, meter_id, kind, kwh, period_start, period_end, \
         utc_offset_secs, region, received_at FROM readings WHERE property_id = $1 \
         AND ($2::timestamptz IS NULL OR period_start >= $2) \
         AND ($3::timestamptz IS NULL OR period_start < $3) \
         ORDER BY period_start DESC, event_id DESC LIMIT $4) newest \
         ORDER BY period_start, event_id",
    )
    .bind(property)
    .bind(range.from)
    .bind(range.to)
    .bind(range.limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(consumption_row).collect()
}

fn consumption_row(row: &sqlx::postgres::PgRow) -> Result<ConsumptionRow, sqlx::Error> {
    let offset_secs: i32 = row.try_get("utc_offset_secs")?;
    // The schema bounds the offset to less than a day, which FixedOffset always accepts.
    let offset = FixedOffset::east_opt(offset_secs).unwrap_or(Utc.fix());
    Ok(ConsumptionRow {
        event_id: row.try_get("event_id")?,
        meter_id: row.try_get("meter_id")?,
        kind: parse_kind(row.try_get("kind")?),
        kwh: row.try_get("kwh")?,
        period_start: row
            .try_get::<DateTime<Utc>, _>("period_start")?
            .with_timezone(&offset),
        period_end: row
            .try_get::<DateTime<Utc>, _>("period_end")?
            .with_timezone(&offset),
        region: row.try_get("region")?,
        received_at: row.try_get("received_at")?,
    })
}

/// The property's recommendations stored in the range.
pub async fn recommendations(
    pool: &PgPool,
    property: &str,
    range: TimeRange,
) -> Result<Vec<RecommendationRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT event_id, kwh, kg_co2e, grams_per_kwh, rating, factor, \
         COALESCE(advice -> 'advice' -> 'recommendations', '[]'::jsonb) AS items, \
         advice ->> 'suspicion' AS suspicion, created_at, processed_seq FROM recommendations WHERE property_id = $1 \
         AND ($2::timestamptz IS NULL OR created_at >= $2) \
         AND ($3::timestamptz IS NULL OR created_at < $3) \
         ORDER BY processed_seq DESC LIMIT $4) newest ORDER BY processed_seq",
    )
    .bind(property)
    .bind(range.from)
    .bind(range.to)
    .bind(range.limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecommendationRow {
                event_id: row.try_get("event_id")?,
                kwh: row.try_get("kwh")?,
                kg_co2e: row.try_get("kg_co2e")?,
                grams_per_kwh: row.try_get("grams_per_kwh")?,
                rating: row.try_get("rating")?,
                factor: row.try_get("factor")?,
                advice: row.try_get("items")?,
                suspicion: row.try_get("suspicion")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// The property's alerts raised in the range.
pub async fn alerts(
    pool: &PgPool,
    property: &str,
    range: TimeRange,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT alert_id, event_id, kwh, threshold, reason, kg_co2e, raised_at \
         FROM alerts WHERE property_id = $1 \
         AND ($2::timestamptz IS NULL OR raised_at >= $2) \
         AND ($3::timestamptz IS NULL OR raised_at < $3) \
         ORDER BY raised_at DESC LIMIT $4) newest ORDER BY raised_at",
    )
    .bind(property)
    .bind(range.from)
    .bind(range.to)
    .bind(range.limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AlertRow {
                alert_id: row.try_get("alert_id")?,
                event_id: row.try_get("event_id")?,
                kwh: row.try_get("kwh")?,
                threshold: row.try_get("threshold")?,
                reason: row.try_get("reason")?,
                kg_co2e: row.try_get("kg_co2e")?,
                raised_at: row.try_get("raised_at")?,
            })
        })
        .collect()
}
