//! Spreading a reading's energy evenly over its interval and weighting each part by the
//! intensity of the hour it falls in.
//!
//! All arithmetic is on instants (UTC), never on wall-clock times: the interval on the night
//! clocks go back is 25 local hours long and one local hour repeats, which only instants get
//! right. Each supplied intensity covers `[hourStart, hourStart + 1 h)` whatever its offset, so
//! hours given in zones with half-hour offsets work too. Parts of the interval that no supplied
//! hour covers use the table factor.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use energy_contracts::carbon::HourlyIntensity;

use super::{CalcError, Result};
use crate::factors::units::GRAMS_PER_KG;

/// A non-empty interval `[start, end)` of real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Interval {
    /// The interval from `at` to `until`, which must be later.
    pub fn new(at: DateTime<FixedOffset>, until: DateTime<FixedOffset>) -> Result<Self> {
        if until <= at {
            return Err(CalcError::EmptyInterval { at, until });
        }
        Ok(Self {
            start: at.to_utc(),
            end: until.to_utc(),
        })
    }

    /// Its length.
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }

    /// How much of the hour starting at `hour_start` lies inside the interval.
    fn overlap_with_hour(&self, hour_start: DateTime<Utc>) -> TimeDelta {
        // An hour starting in the last hour chrono can represent runs to the end of time.
        let hour_end = hour_start
            .checked_add_signed(TimeDelta::hours(1))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let start = self.start.max(hour_start);
        let end = self.end.min(hour_end);
        if end > start {
            end - start
        } else {
            TimeDelta::zero()
        }
    }
}

/// The caller's hourly intensities, checked: each finite and not negative, no two sharing any
/// part of an hour.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppliedHours {
    /// Sorted by start.
    hours: Vec<(DateTime<Utc>, f64)>,
}

impl SuppliedHours {
    /// Checks `intensities` as the request gave them; errors name the offending position.
    pub fn new(intensities: &[HourlyIntensity]) -> Result<Self> {
        for (index, intensity) in intensities.iter().enumerate() {
            let grams = intensity.grams_per_kwh;
            if !(grams.is_finite() && grams >= 0.0) {
                return Err(CalcError::InvalidIntensity { index, grams });
            }
        }

        // Sorting positions rather than values keeps each one's index for the error message.
        let mut order: Vec<usize> = (0..intensities.len()).collect();
        order.sort_by_key(|&index| intensities[index].hour_start);
        for pair in order.windows(2) {
            let (earlier, later) = (&intensities[pair[0]], &intensities[pair[1]]);
            if later.hour_start - earlier.hour_start < TimeDelta::hours(1) {
                return Err(CalcError::OverlappingIntensities {
                    index: pair[1],
                    hour_start: later.hour_start,
                });
            }
        }

        let hours = order
            .into_iter()
            .map(|index| {
                (
                    intensities[index].hour_start.to_utc(),
                    intensities[index].grams_per_kwh,
                )
            })
            .collect();
        Ok(Self { hours })
    }
}

/// The effective factor of an interval whose hours are partly or wholly supplied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blend {
    /// Effective factor, kgCO2e per kWh.
    pub kg_per_kwh: f64,
    /// Time of the interval covered by supplied hours.
    pub covered: TimeDelta,
    /// Length of the interval.
    pub total: TimeDelta,
}

impl Blend {
    /// Whether supplied hours cover the whole interval, so the table factor played no part.
    pub fn is_fully_supplied(&self) -> bool {
        self.covered == self.total
    }
}

/// Spreads the energy evenly over `interval`: each supplied hour weighs by the share of the
/// interval it covers, and the table factor takes the share no hour covers.
pub fn blend(interval: &Interval, hours: &SuppliedHours, table_kg_per_kwh: f64) -> Blend {
    let total = interval.duration();
    let share = |part: TimeDelta| part.as_seconds_f64() / total.as_seconds_f64();

    let mut covered = TimeDelta::zero();
    let mut kg_per_kwh = 0.0;
    for &(hour_start, grams) in &hours.hours {
        let overlap = interval.overlap_with_hour(hour_start);
        covered += overlap;
        kg_per_kwh += share(overlap) * grams / GRAMS_PER_KG;
    }
    // Supplied hours never overlap each other, so `covered` cannot exceed `total`.
    kg_per_kwh += share(total - covered) * table_kg_per_kwh;

    Blend {
        kg_per_kwh,
        covered,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).expect("test times are valid RFC 3339")
    }

    fn hour(start: &str, grams_per_kwh: f64) -> HourlyIntensity {
        HourlyIntensity {
            hour_start: time(start),
            grams_per_kwh,
        }
    }

    fn blended(at: &str, until: &str, hours: &[HourlyIntensity], table: f64) -> Blend {
        let interval = Interval::new(time(at), time(until)).expect("a valid interval");
        let hours = SuppliedHours::new(hours).expect("valid hours");
        blend(&interval, &hours, table)
    }

    #[test]
    fn an_interval_split_across_two_hours_weighs_each_by_its_share() {
        // 45 min at 100 g and 15 min at 300 g: (0.75 x 100 + 0.25 x 300) g = 150 g/kWh.
        let hours = [
            hour("2025-06-01T10:00:00Z", 100.0),
            hour("2025-06-01T11:00:00Z", 300.0),
        ];
        let blend = blended("2025-06-01T10:15:00Z", "2025-06-01T11:15:00Z", &hours, 0.5);
        assert!((blend.kg_per_kwh - 0.150).abs() < 1e-12, "{blend:?}");
        assert!(blend.is_fully_supplied());
    }

    #[test]
    fn uncovered_parts_use_the_table_factor() {
        // Half an hour at 100 g supplied, half an hour at the table's 0.3 kg: 0.2 kg/kWh.
        let hours = [hour("2025-06-01T10:00:00Z", 100.0)];
        let blend = blended("2025-06-01T10:30:00Z", "2025-06-01T11:30:00Z", &hours, 0.3);
        assert!((blend.kg_per_kwh - 0.2).abs() < 1e-12, "{blend:?}");
        assert_eq!(blend.covered, TimeDelta::minutes(30));
        assert!(!blend.is_fully_supplied());
    }

    #[test]
    fn hours_outside_the_interval_play_no_part() {
        let hours = [
            hour("2025-06-01T08:00:00Z", 900.0),
            hour("2025-06-01T12:00:00Z", 900.0),
        ];
        let blend = blended("2025-06-01T10:00:00Z", "2025-06-01T11:00:00Z", &hours, 0.25);
        assert_eq!(blend.kg_per_kwh, 0.25);
        assert_eq!(blend.covered, TimeDelta::zero());
    }

    #[test]
    fn the_night_clocks_go_back_counts_two_real_hours_not_one_local_hour() {
        // London, 26 October 2025: 00:30 BST (+01:00) to 01:30 GMT (+00:00) is 23:30Z to 01:30Z,
        // two real hours, although the wall clock moved one. Local 01:00 happens twice; the
        // hours are given as the grid operator would, in the offset in force at each start.
        let hours = [
            hour("2025-10-26T00:00:00+01:00", 100.0),
            hour("2025-10-26T01:00:00+01:00", 200.0),
            hour("2025-10-26T01:00:00+00:00", 300.0),
        ];
        let blend = blended(
            "2025-10-26T00:30:00+01:00",
            "2025-10-26T01:30:00+00:00",
            &hours,
            9.0,
        );
        // 30 min x 100 + 60 min x 200 + 30 min x 300 over 120 min = 200 g/kWh.
        assert_eq!(blend.total, TimeDelta::hours(2));
        assert!((blend.kg_per_kwh - 0.200).abs() < 1e-12, "{blend:?}");
        assert!(blend.is_fully_supplied());
    }

    #[test]
    fn hours_in_a_half_hour_offset_zone_split_utc_hours_in_half() {
        // India is +05:30: the local hour 10:00 starts at 04:30Z. A UTC hour 04:00Z to 05:00Z
        // takes half from the local hour 09:00 (100 g) and half from 10:00 (200 g).
        let hours = [
            hour("2025-06-01T09:00:00+05:30", 100.0),
            hour("2025-06-01T10:00:00+05:30", 200.0),
        ];
        let blend = blended("2025-06-01T04:00:00Z", "2025-06-01T05:00:00Z", &hours, 9.0);
        assert!((blend.kg_per_kwh - 0.150).abs() < 1e-12, "{blend:?}");
    }

    #[test]
    fn an_interval_that_ends_where_it_starts_is_rejected() {
        let at = time("2025-06-01T10:00:00+01:00");
        let same_instant = time("2025-06-01T09:00:00Z");
        let err = Interval::new(at, same_instant).expect_err("empty interval");
        assert_eq!(err.field(), "until");
    }

    #[test]
    fn a_negative_intensity_is_rejected_with_its_position() {
        let hours = [
            hour("2025-06-01T10:00:00Z", 10.0),
            hour("2025-06-01T11:00:00Z", -5.0),
        ];
        let err = SuppliedHours::new(&hours).expect_err("negative intensity");
        assert_eq!(
            err,
            CalcError::InvalidIntensity {
                index: 1,
                grams: -5.0
            }
        );
    }

    #[test]
    fn intensities_sharing_part_of_an_hour_are_rejected() {
        // 10:00Z and 11:30+01:00 (10:30Z) both claim 10:30Z to 11:00Z.
        let hours = [
            hour("2025-06-01T11:30:00+01:00", 10.0),
            hour("2025-06-01T10:00:00Z", 20.0),
        ];
        let err = SuppliedHours::new(&hours).expect_err("overlapping hours");
        assert_eq!(err.field(), "intensities[0].hourStart");
    }

    #[test]
    fn the_same_instant_written_in_two_offsets_is_one_hour_given_twice() {
        let hours = [
            hour("2025-10-26T01:00:00+00:00", 10.0),
            hour("2025-10-26T02:00:00+01:00", 20.0),
        ];
        let err = SuppliedHours::new(&hours).expect_err("duplicate hour");
        assert_eq!(err.code(), "overlapping_intensities");
    }

    #[test]
    fn an_hour_at_the_end_of_representable_time_does_not_overflow() {
        let interval = Interval {
            start: DateTime::<Utc>::MAX_UTC - TimeDelta::minutes(30),
            end: DateTime::<Utc>::MAX_UTC,
        };
        let overlap = interval.overlap_with_hour(DateTime::<Utc>::MAX_UTC - TimeDelta::minutes(45));
        assert_eq!(overlap, TimeDelta::minutes(30));
    }
}
