//! `ConsumptionEvent`: one accepted meter reading, as billing publishes it to Kafka.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PropertyId;

/// Version of the event layout; readers reject versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// What was metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyKind {
    /// Grid electricity, in kWh.
    #[default]
    Electricity,
    /// Natural gas, converted to kWh (gross calorific value).
    Gas,
}

impl EnergyKind {
    /// The wire name (`electricity` or `gas`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Electricity => "electricity",
            Self::Gas => "gas",
        }
    }
}

/// One reading of interval energy over `[periodStart, periodEnd)`, never a cumulative register
/// value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumptionEvent {
    /// Layout version, [`SCHEMA_VERSION`] when written by this code.
    pub schema_version: u32,
    /// Unique id of the reading (UUID v7, time-ordered); consumers deduplicate by it.
    pub event_id: Uuid,
    /// The property the reading belongs to; also the Kafka key.
    pub property_id: PropertyId,
    /// The meter, when the sender named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<String>,
    /// Electricity or gas.
    #[serde(default)]
    pub kind: EnergyKind,
    /// Energy used in the interval, kWh (finite, not negative).
    pub kwh: f64,
    /// Start of the interval, with the offset the sender gave.
    pub period_start: DateTime<FixedOffset>,
    /// End of the interval (exclusive), after the start.
    pub period_end: DateTime<FixedOffset>,
    /// Grid region code whose emission factors apply.
    pub region: String,
    /// When billing accepted the reading.
    pub received_at: DateTime<Utc>,
}

/// Why a Kafka value is not a consumption event this code can process.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not JSON of the event's shape.
    #[error("value is not a ConsumptionEvent: {0}")]
    Json(#[from] serde_json::Error),
    /// The event carries a layout version this code does not know.
    #[error("unsupported schemaVersion {0}; this reader knows {SCHEMA_VERSION}")]
    UnsupportedVersion(u32),
    /// The interval ends before it starts, or the energy is not a finite non-negative number.
    #[error("event is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl ConsumptionEvent {
    /// Length of the interval in seconds.
    pub fn duration_secs(&self) -> i64 {
        (self.period_end - self.period_start).num_seconds()
    }

    /// Serialises the event to its JSON wire form.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain fields of known types into a Vec cannot fail.
        serde_json::to_vec(self).expect("a ConsumptionEvent always serialises")
    }

    /// Parses and checks a Kafka value.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let event: Self = serde_json::from_slice(bytes)?;
        if event.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(event.schema_version));
        }
        if !(event.kwh.is_finite() && event.kwh >= 0.0) {
            return Err(DecodeError::Inconsistent(
                "kwh must be finite and not negative",
            ));
        }
        if event.period_end <= event.period_start {
            return Err(DecodeError::Inconsistent(
                "periodEnd must be after periodStart",
            ));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConsumptionEvent {
        ConsumptionEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            property_id: PropertyId::parse("house-1").expect("valid id"),
            meter_id: Some("m-1".into()),
            kind: EnergyKind::Electricity,
            kwh: 1.25,
            period_start: DateTime::parse_from_rfc3339("2026-03-29T00:30:00+00:00").expect("time"),
            period_end: DateTime::parse_from_rfc3339("2026-03-29T02:30:00+01:00").expect("time"),
            region: "GB".into(),
            received_at: Utc::now(),
        }
    }

    #[test]
    fn round_trips_through_json_with_camel_case_fields() {
        let event = sample();
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).expect("json");
        assert_eq!(json["propertyId"], "house-1");
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["periodEnd"], "2026-03-29T02:30:00+01:00");
        assert_eq!(
            ConsumptionEvent::from_json(&event.to_json()).expect("decodes"),
            event
        );
    }

    #[test]
    fn keeps_the_senders_offset_and_measures_across_a_dst_change() {
        // 00:30Z to 02:30+01:00 is one hour of real time on the night clocks go forward.
        assert_eq!(sample().duration_secs(), 3600);
    }

    #[test]
    fn kind_defaults_to_electricity_when_absent() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&sample().to_json()).expect("json");
        json.as_object_mut().expect("object").remove("kind");
        let bytes = serde_json::to_vec(&json).expect("json");
        assert_eq!(
            ConsumptionEvent::from_json(&bytes).expect("decodes").kind,
            EnergyKind::Electricity
        );
    }

    #[test]
    fn rejects_unknown_schema_versions() {
        let mut event = sample();
        event.schema_version = 99;
        let err = ConsumptionEvent::from_json(&event.to_json()).expect_err("must fail");
        assert!(matches!(err, DecodeError::UnsupportedVersion(99)));
    }

    #[test]
    fn rejects_an_interval_that_ends_before_it_starts() {
        let mut event = sample();
        std::mem::swap(&mut event.period_start, &mut event.period_end);
        assert!(matches!(
            ConsumptionEvent::from_json(&event.to_json()),
            Err(DecodeError::Inconsistent(_))
        ));
    }

    #[test]
    fn rejects_garbage_with_the_json_reason() {
        let err = ConsumptionEvent::from_json(b"{not json").expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("value is not a ConsumptionEvent"),
            "{err}"
        );
    }
}
