//! One reading of interval energy, the unit every rule in this module works on.
//!
//! A reading is the energy used over `[start, end)`, never a cumulative register value. The
//! rules compare kWh per hour of the interval, so a 15-minute and a 1-hour reading are judged on
//! the same scale. Instants are held in UTC; local time matters only when usage is bucketed by
//! hour of the week, which [`super::baseline`] does.

use chrono::{DateTime, Utc};
use energy_contracts::ConsumptionEvent;

/// Seconds in one hour, to turn an interval's length into hours.
const SECS_PER_HOUR: f64 = 3600.0;

/// Why values cannot form a [`Reading`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadingError {
    /// The energy was NaN or infinite.
    #[error("reading energy must be a finite number of kWh; got {0}")]
    NotFinite(f64),
    /// The energy was below zero.
    #[error(
        "reading of {0} kWh is negative, which suggests exported energy (net metering); \
         the recommender rates consumption only"
    )]
    Negative(f64),
    /// The interval did not end after it started.
    #[error("reading interval must end after it starts; got {start} to {end}")]
    EmptyInterval {
        /// Start of the rejected interval.
        start: DateTime<Utc>,
        /// End of the rejected interval.
        end: DateTime<Utc>,
    },
}

/// Energy used over `[start, end)`, checked: finite, not negative, and a non-empty interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    kwh: f64,
}

impl Reading {
    /// Checks the values and wraps them.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, kwh: f64) -> Result<Self, ReadingError> {
        if !kwh.is_finite() {
            return Err(ReadingError::NotFinite(kwh));
        }
        if kwh < 0.0 {
            return Err(ReadingError::Negative(kwh));
        }
        if end <= start {
            return Err(ReadingError::EmptyInterval { start, end });
        }
        Ok(Self { start, end, kwh })
    }

    /// Start of the interval.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// End of the interval (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Energy used in the interval, kWh.
    pub fn kwh(&self) -> f64 {
        self.kwh
    }

    /// Length of the interval in hours (0.25 for a 15-minute reading).
    pub fn hours(&self) -> f64 {
        (self.end - self.start).as_seconds_f64() / SECS_PER_HOUR
    }

    /// Average rate over the interval, kWh per hour (numerically the mean power in kW).
    pub fn kwh_per_hour(&self) -> f64 {
        self.kwh / self.hours()
    }
}

impl TryFrom<&ConsumptionEvent> for Reading {
    type Error = ReadingError;

    fn try_from(event: &ConsumptionEvent) -> Result<Self, Self::Error> {
        Self::new(
            event.period_start.to_utc(),
            event.period_end.to_utc(),
            event.kwh,
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use energy_contracts::event::SCHEMA_VERSION;
    use energy_contracts::{ConsumptionEvent, EnergyKind, PropertyId};
    use uuid::Uuid;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test instants are valid RFC 3339")
            .to_utc()
    }

    #[test]
    fn a_quarter_hour_reading_is_rated_per_hour() {
        let start = at("2026-01-05T10:00:00Z");
        let reading = Reading::new(start, start + TimeDelta::minutes(15), 0.5).expect("valid");

        assert_eq!(reading.hours(), 0.25);
        assert_eq!(reading.kwh_per_hour(), 2.0);
    }

    #[test]
    fn a_quarter_hour_and_an_hour_at_the_same_rate_compare_equal() {
        let start = at("2026-01-05T10:00:00Z");
        let quarter = Reading::new(start, start + TimeDelta::minutes(15), 0.75).expect("valid");
        let hour = Reading::new(start, start + TimeDelta::hours(1), 3.0).expect("valid");

        assert_eq!(quarter.kwh_per_hour(), hour.kwh_per_hour());
    }

    #[test]
    fn an_event_across_the_spring_forward_night_lasts_one_real_hour() {
        // 00:30 GMT to 02:30 BST on 29 March 2026 reads as two clock hours but is one real hour.
        let event = ConsumptionEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            property_id: PropertyId::parse("house-1").expect("valid id"),
            meter_id: None,
            kind: EnergyKind::Electricity,
            kwh: 1.5,
            period_start: DateTime::parse_from_rfc3339("2026-03-29T00:30:00+00:00").expect("time"),
            period_end: DateTime::parse_from_rfc3339("2026-03-29T02:30:00+01:00").expect("time"),
            region: "GB".into(),
            received_at: Utc::now(),
        };

        let reading = Reading::try_from(&event).expect("valid event");

        assert_eq!(reading.hours(), 1.0);
        assert_eq!(reading.kwh_per_hour(), 1.5);
    }

    #[test]
    fn a_negative_reading_is_refused_and_named_as_possible_export() {
        let start = at("2026-01-05T10:00:00Z");
        let err = Reading::new(start, start + TimeDelta::hours(1), -0.4).expect_err("negative");

        assert_eq!(err, ReadingError::Negative(-0.4));
        assert!(err.to_string().contains("net metering"), "{err}");
    }

    #[test]
    fn a_reading_that_ends_where_it_starts_is_refused() {
        let start = at("2026-01-05T10:00:00Z");

        let err = Reading::new(start, start, 1.0).expect_err("empty interval");

        assert_eq!(err, ReadingError::EmptyInterval { start, end: start });
    }

    #[test]
    fn a_reading_of_nan_kwh_is_refused() {
        let start = at("2026-01-05T10:00:00Z");

        let err = Reading::new(start, start + TimeDelta::hours(1), f64::NAN).expect_err("nan");

        assert!(matches!(err, ReadingError::NotFinite(value) if value.is_nan()));
    }
}
