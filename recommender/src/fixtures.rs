//! Events for unit tests.

use chrono::{DateTime, TimeDelta, Utc};
use energy_contracts::event::SCHEMA_VERSION;
use energy_contracts::{ConsumptionEvent, EnergyKind, PropertyId};
use uuid::Uuid;

/// An hour of electricity on `property`'s meter `meter`, `hour` hours after Monday
/// 2026-01-05 00:00 UTC.
pub fn hourly_event(property: &str, meter: Option<&str>, hour: i64, kwh: f64) -> ConsumptionEvent {
    let start = DateTime::parse_from_rfc3339("2026-01-05T00:00:00+00:00").expect("time")
        + TimeDelta::hours(hour);
    ConsumptionEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::now_v7(),
        property_id: PropertyId::parse(property).expect("valid id"),
        meter_id: meter.map(str::to_string),
        kind: EnergyKind::Electricity,
        kwh,
        period_start: start,
        period_end: start + TimeDelta::hours(1),
        region: "GB".into(),
        received_at: Utc::now(),
    }
}
