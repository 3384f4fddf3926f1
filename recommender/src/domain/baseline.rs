//! A property's usual usage, learnt from its past readings: the baseline the relative alert
//! rule compares against, the usual range behind the outlier flag, and the night-time minimum
//! that shows standby load.
//!
//! # Hours of the week in local time
//!
//! Every past reading is cut at UTC quarter hours, and each piece is credited, in proportion to
//! its length, to the local clock hour it lies in. Every zone in use today has an offset that is a
//! whole number of quarter hours (India +05:30, Nepal +05:45), so a local hour always begins on
//! one of those cuts, with or without DST. One local hour on one local date gives one *hour
//! sample*: the energy credited to it over the time credited to it. So:
//!
//! - the 23-hour day when clocks go forward has no sample for the skipped hour;
//! - the 25-hour day when clocks go back repeats an hour, and both passes form one sample of
//!   two real hours;
//! - a reading that straddles two local hours (a UTC-aligned hour in Asia/Kolkata) is shared
//!   between them, and an hour that readings cover only in part is rated over that part.
//!
//! # The baseline
//!
//! For each of the 168 hours of the week, the median of its samples over the last
//! `baselineWeeks` weeks. A median rather than a mean: an hour of the week has only a handful of
//! samples (3 to 8 with the defaults), and one odd week (a party, a holiday, an earlier spike) or
//! a gap read as zero moves a mean far enough to hide the next spike or to raise a false one; a
//! median moves only when half of the weeks do. Until an hour of the week has samples from
//! `minHistoryWeeks` weeks, the [`BaselineFallback`] applies.
//!
//! # Known limits
//!
//! Offsets that are not whole quarter hours (local mean time before about 1900) are not
//! handled. One baseline describes one series (one property, one kind of energy, one meter):
//! overlapping readings in `history` are averaged, not added.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use energy_contracts::EnergyKind;

use super::reading::Reading;
use super::thresholds::{BaselineFallback, Thresholds};

/// Fewest hour samples before the overall median, the usual range or the night profile count:
/// one day's worth, so that night and day are both in them. This project's assumption.
pub const MIN_OVERALL_HOURS: usize = 24;

/// Local clock hours whose minimum shows always-on (standby) load: 00:00 to 05:00, when most
/// households are asleep. This project's choice of window; DOMAIN.md says only "night-time".
pub const NIGHT_HOURS: Range<u32> = 0..5;

/// A rate more than this many inter-quartile ranges above the property's median is flagged as
/// outside its usual range (DOMAIN.md, after the CalTRACK data rules).
pub const OUTLIER_IQRS: f64 = 3.0;

/// Slots in a week, one per hour, Monday 00:00 local first.
const HOURS_PER_WEEK: usize = 7 * 24;

/// Readings are cut at these UTC boundaries; see the module documentation.
const QUARTER_HOUR_SECS: i64 = 15 * 60;

/// Seconds in one hour.
const SECS_PER_HOUR: f64 = 3600.0;

/// The usual level of usage a reading is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Typical {
    /// The median for the reading's hours of the week (time-weighted when it spans several).
    HourOfWeek {
        /// Usual rate, kWh per hour.
        kwh_per_hour: f64,
        /// Weeks of history behind it; for a reading over several hours, the fewest of them.
        weeks: usize,
    },
    /// The fallback: the median of all the property's hourly rates in the window.
    Overall {
        /// Usual rate, kWh per hour.
        kwh_per_hour: f64,
        /// Hour samples behind it.
        hours: usize,
    },
    /// Too little history, or no fallback configured: only the absolute limit applies.
    NotEnoughHistory,
}

impl Typical {
    /// The usual rate in kWh per hour, if there is one.
    pub fn kwh_per_hour(&self) -> Option<f64> {
        match *self {
            Self::HourOfWeek { kwh_per_hour, .. } | Self::Overall { kwh_per_hour, .. } => {
                Some(kwh_per_hour)
            }
            Self::NotEnoughHistory => None,
        }
    }
}

/// The spread of a property's hourly rates over the window. Quartiles interpolate linearly
/// between the two nearest ranks (the common "type 7" definition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsualRange {
    /// Median rate, kWh per hour.
    pub median_kwh_per_hour: f64,
    /// First quartile, kWh per hour.
    pub lower_quartile_kwh_per_hour: f64,
    /// Third quartile, kWh per hour.
    pub upper_quartile_kwh_per_hour: f64,
    /// Hour samples it was taken from.
    pub hours: usize,
}

impl UsualRange {
    /// Rates above this are outside the usual range: median + [`OUTLIER_IQRS`] × IQR.
    pub fn outlier_limit_kwh_per_hour(&self) -> f64 {
        let iqr = self.upper_quartile_kwh_per_hour - self.lower_quartile_kwh_per_hour;
        self.median_kwh_per_hour + OUTLIER_IQRS * iqr
    }
}

/// A rate far above the property's usual range: worth a second look, as it is as likely a
/// meter or data fault as real usage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlier {
    /// The flagged rate, kWh per hour.
    pub kwh_per_hour: f64,
    /// The limit it exceeded, kWh per hour.
    pub limit_kwh_per_hour: f64,
}

impl fmt::Display for Outlier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.2} kWh/h is more than {OUTLIER_IQRS} inter-quartile ranges above this property's \
             median (limit {:.2} kWh/h); check the meter as well",
            self.kwh_per_hour, self.limit_kwh_per_hour
        )
    }
}

/// What the night hours show about always-on load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NightProfile {
    /// Lowest hourly rate in [`NIGHT_HOURS`] over the window, kWh per hour (numerically kW).
    pub minimum_kwh_per_hour: f64,
    /// Local dates whose night hours hold samples.
    pub nights: usize,
    /// Mean rate over the whole window (all energy over all hours covered), kWh per hour.
    pub mean_kwh_per_hour: f64,
}

/// A property's usual usage over the window before one instant. Built once per reading from
/// the history the adapter loaded; holds no readings itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    zone: Tz,
    min_weeks: usize,
    fallback: BaselineFallback,
    /// One entry per hour of the week, Monday 00:00 local first.
    slots: Vec<Option<SlotLevel>>,
    usual_range: Option<UsualRange>,
    night: Option<NightProfile>,
}

/// The median of one hour of the week and how many weeks it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SlotLevel {
    median_kwh_per_hour: f64,
    weeks: usize,
}

impl Baseline {
    /// Learns from the part of `history` that lies in `[before - baselineWeeks, before)`.
    ///
    /// Pass the start of the reading being judged as `before`, so that the reading never counts
    /// towards its own baseline. `history` holds one series of `kind`; it may hold more than the
    /// window (the rest is ignored), in any order. Zero-kWh electricity readings are left out:
    /// the CalTRACK data rules (DOMAIN.md) treat them as likely missing data.
    pub fn build(
        history: &[Reading],
        kind: EnergyKind,
        before: DateTime<Utc>,
        thresholds: &Thresholds,
    ) -> Self {
        let zone = thresholds.time_zone;
        let since = before
            .checked_sub_signed(thresholds.baseline_window())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let samples = hour_samples(history, kind, zone, since..before);

        Self {
            zone,
            min_weeks: usize::try_from(thresholds.min_history_weeks).unwrap_or(usize::MAX),
            fallback: thresholds.baseline_fallback,
            slots: slot_levels(&samples),
            usual_range: usual_range(&samples),
            night: night_profile(&samples),
        }
    }

    /// The zone whose local clock the baseline follows.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The usual rate for the hours of the week `reading` covers, or the fallback when any of
    /// them has too few weeks of history.
    pub fn typical(&self, reading: &Reading) -> Typical {
        let mut weighted_kwh = 0.0;
        let mut hours = 0.0;
        let mut fewest_weeks = usize::MAX;
        for piece in pieces(reading.start(), reading.end(), self.zone) {
            let level = self.slots[piece.hour.slot()].filter(|level| level.weeks >= self.min_weeks);
            let Some(level) = level else {
                return self.fallback();
            };
            weighted_kwh += level.median_kwh_per_hour * piece.hours;
            hours += piece.hours;
            fewest_weeks = fewest_weeks.min(level.weeks);
        }
        Typical::HourOfWeek {
            kwh_per_hour: weighted_kwh / hours,
            weeks: fewest_weeks,
        }
    }

    /// The spread of hourly rates, once the window holds [`MIN_OVERALL_HOURS`] of them.
    pub fn usual_range(&self) -> Option<UsualRange> {
        self.usual_range
    }

    /// Flags a rate above median + 3 × IQR of the usual range; `None` when it is within the
    /// range or there is no range yet.
    pub fn outlier(&self, kwh_per_hour: f64) -> Option<Outlier> {
        let limit_kwh_per_hour = self.usual_range?.outlier_limit_kwh_per_hour();
        (kwh_per_hour > limit_kwh_per_hour).then_some(Outlier {
            kwh_per_hour,
            limit_kwh_per_hour,
        })
    }

    /// The night-time minimum and the mean rate, once the window holds [`MIN_OVERALL_HOURS`]
    /// hour samples, some of them at night.
    pub fn night_profile(&self) -> Option<NightProfile> {
        self.night
    }

    fn fallback(&self) -> Typical {
        match (self.fallback, self.usual_range) {
            (BaselineFallback::OverallMedian, Some(range)) => Typical::Overall {
                kwh_per_hour: range.median_kwh_per_hour,
                hours: range.hours,
            },
            _ => Typical::NotEnoughHistory,
        }
    }
}

/// One local clock hour on one local date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct LocalHour {
    date: NaiveDate,
    hour: u32,
}

impl LocalHour {
    /// Index among the hours of the week, Monday 00:00 being 0.
    fn slot(self) -> usize {
        let day = self.date.weekday().num_days_from_monday() as usize;
        day * 24 + self.hour as usize
    }
}

/// Part of an interval that lies within one local hour.
struct Piece {
    hour: LocalHour,
    hours: f64,
}

/// Energy and time credited to one local hour on one date.
#[derive(Debug, Clone, Copy)]
struct HourSample {
    hour: LocalHour,
    kwh: f64,
    hours: f64,
}

impl HourSample {
    fn kwh_per_hour(&self) -> f64 {
        self.kwh / self.hours
    }
}

/// Cuts `[start, end)` at UTC quarter hours and names the local hour of each piece.
fn pieces(start: DateTime<Utc>, end: DateTime<Utc>, zone: Tz) -> impl Iterator<Item = Piece> {
    let mut cursor = start;
    std::iter::from_fn(move || {
        if cursor >= end {
            return None;
        }
        let next = next_quarter_hour(cursor).min(end);
        let local = cursor.with_timezone(&zone);
        let piece = Piece {
            hour: LocalHour {
                date: local.date_naive(),
                hour: local.hour(),
            },
            hours: (next - cursor).as_seconds_f64() / SECS_PER_HOUR,
        };
        cursor = next;
        Some(piece)
    })
}

/// The first UTC quarter hour after `instant`.
fn next_quarter_hour(instant: DateTime<Utc>) -> DateTime<Utc> {
    let into_quarter = TimeDelta::seconds(instant.timestamp().rem_euclid(QUARTER_HOUR_SECS))
        + TimeDelta::nanoseconds(i64::from(instant.timestamp_subsec_nanos()));
    let quarter = TimeDelta::seconds(QUARTER_HOUR_SECS);
    instant
        .checked_add_signed(quarter - into_quarter)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Credits each reading's energy within `window` to local hours, in time order.
fn hour_samples(
    history: &[Reading],
    kind: EnergyKind,
    zone: Tz,
    window: Range<DateTime<Utc>>,
) -> Vec<HourSample> {
    let mut credits: BTreeMap<LocalHour, (f64, f64)> = BTreeMap::new();
    for reading in history
        .iter()
        .filter(|reading| counts_as_usage(reading, kind))
    {
        let start = reading.start().max(window.start);
        let end = reading.end().min(window.end);
        for piece in pieces(start, end, zone) {
            let (kwh, hours) = credits.entry(piece.hour).or_default();
            *kwh += reading.kwh() * piece.hours / reading.hours();
            *hours += piece.hours;
        }
    }

    let into_sample = |(hour, (kwh, hours))| HourSample { hour, kwh, hours };
    credits.into_iter().map(into_sample).collect()
}

/// A 0 kWh electricity reading is more often a gap than an empty house (CalTRACK data rules in
/// DOMAIN.md). Gas is different: no heating in summer is a real zero.
fn counts_as_usage(reading: &Reading, kind: EnergyKind) -> bool {
    !(kind == EnergyKind::Electricity && reading.kwh() == 0.0)
}

fn slot_levels(samples: &[HourSample]) -> Vec<Option<SlotLevel>> {
    let mut rates = vec![Vec::new(); HOURS_PER_WEEK];
    for sample in samples {
        rates[sample.hour.slot()].push(sample.kwh_per_hour());
    }

    let levels = rates.into_iter().map(|mut rates| {
        rates.sort_by(f64::total_cmp);
        let median_kwh_per_hour = quantile(&rates, 0.5)?;
        Some(SlotLevel {
            median_kwh_per_hour,
            weeks: rates.len(),
        })
    });
    levels.collect()
}

fn usual_range(samples: &[HourSample]) -> Option<UsualRange> {
    if samples.len() < MIN_OVERALL_HOURS {
        return None;
    }
    let mut rates: Vec<f64> = samples.iter().map(HourSample::kwh_per_hour).collect();
    rates.sort_by(f64::total_cmp);

    Some(UsualRange {
        median_kwh_per_hour: quantile(&rates, 0.5)?,
        lower_quartile_kwh_per_hour: quantile(&rates, 0.25)?,
        upper_quartile_kwh_per_hour: quantile(&rates, 0.75)?,
        hours: rates.len(),
    })
}

fn night_profile(samples: &[HourSample]) -> Option<NightProfile> {
    if samples.len() < MIN_OVERALL_HOURS {
        return None;
    }
    let night: Vec<&HourSample> = samples
        .iter()
        .filter(|sample| NIGHT_HOURS.contains(&sample.hour.hour))
        .collect();
    let minimum_kwh_per_hour = night
        .iter()
        .map(|sample| sample.kwh_per_hour())
        .min_by(f64::total_cmp)?;
    let nights = night
        .iter()
        .map(|sample| sample.hour.date)
        .collect::<BTreeSet<_>>()
        .len();

    let kwh: f64 = samples.iter().map(|sample| sample.kwh).sum();
    let hours: f64 = samples.iter().map(|sample| sample.hours).sum();
    Some(NightProfile {
        minimum_kwh_per_hour,
        nights,
        mean_kwh_per_hour: kwh / hours,
    })
}

/// The `p` quantile of sorted values, interpolating between the two nearest ranks; `None` for
/// no values.
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = last as f64 * p;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let (low, high) = (sorted[below], sorted[above]);
    Some(low + (rank - below as f64) * (high - low))
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Europe::London;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test instants are valid RFC 3339")
            .to_utc()
    }

    /// Consecutive readings of `minutes` each from `start`, one per value.
    fn readings(start: &str, minutes: i64, kwhs: &[f64]) -> Vec<Reading> {
        let length = TimeDelta::minutes(minutes);
        let mut from = at(start);
        let mut out = Vec::new();
        for &kwh in kwhs {
            out.push(Reading::new(from, from + length, kwh).expect("test readings are valid"));
            from += length;
        }
        out
    }

    fn hour(start: &str, kwh: f64) -> Reading {
        readings(start, 60, &[kwh])[0]
    }

    fn settings(zone: Tz, weeks: u32, min_weeks: u32) -> Thresholds {
        let mut thresholds = Thresholds::new(5.0, zone);
        thresholds.baseline_weeks = weeks;
        thresholds.min_history_weeks = min_weeks;
        thresholds
    }

    fn typical_for(
        history: &[Reading],
        kind: EnergyKind,
        t: &Thresholds,
        judged: &Reading,
    ) -> Typical {
        Baseline::build(history, kind, judged.start(), t).typical(judged)
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn the_baseline_is_the_median_of_the_same_hour_over_recent_weeks() {
        // Mondays in January 2026, 10:00 in London, which is UTC in winter. The mean would be 4.0;
        // the one odd week does not drag the median.
        let history = [
            hour("2026-01-05T10:00:00Z", 1.0),
            hour("2026-01-12T10:00:00Z", 2.0),
            hour("2026-01-19T10:00:00Z", 3.0),
            hour("2026-01-26T10:00:00Z", 10.0),
        ];
        let judged = hour("2026-02-02T10:00:00Z", 9.0);

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 8, 3),
            &judged,
        );

        assert_eq!(
            typical,
            Typical::HourOfWeek {
                kwh_per_hour: 2.5,
                weeks: 4
            }
        );
    }

    #[test]
    fn quarter_hour_readings_add_up_to_one_hour_sample() {
        // 0.25 + 0.5 + 0.25 + 0.5 = 1.5 kWh in each Monday 10:00 hour.
        let mut history = Vec::new();
        for monday in ["2026-01-05", "2026-01-12", "2026-01-19"] {
            let start = format!("{monday}T10:00:00Z");
            history.extend(readings(&start, 15, &[0.25, 0.5, 0.25, 0.5]));
        }
        let judged = readings("2026-01-26T10:30:00Z", 15, &[1.0])[0];

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 8, 3),
            &judged,
        );

        assert_eq!(
            typical,
            Typical::HourOfWeek {
                kwh_per_hour: 1.5,
                weeks: 3
            }
        );
    }

    #[test]
    fn readings_older_than_the_window_are_ignored() {
        // With a two-week window only the last two Mondays count: median of 2.0 and 4.0.
        let history = [
            hour("2026-01-05T10:00:00Z", 100.0),
            hour("2026-01-12T10:00:00Z", 2.0),
            hour("2026-01-19T10:00:00Z", 4.0),
        ];
        let judged = hour("2026-01-26T10:00:00Z", 1.0);

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 2, 2),
            &judged,
        );

        assert_eq!(
            typical,
            Typical::HourOfWeek {
                kwh_per_hour: 3.0,
                weeks: 2
            }
        );
    }

    #[test]
    fn zero_electricity_readings_are_left_out_as_likely_gaps_but_zero_gas_counts() {
        let history = [
            hour("2026-01-05T10:00:00Z", 0.0),
            hour("2026-01-12T10:00:00Z", 2.0),
            hour("2026-01-19T10:00:00Z", 4.0),
            hour("2026-01-26T10:00:00Z", 6.0),
        ];
        let judged = hour("2026-02-02T10:00:00Z", 1.0);
        let t = settings(London, 8, 3);

        let electricity = typical_for(&history, EnergyKind::Electricity, &t, &judged);
        let gas = typical_for(&history, EnergyKind::Gas, &t, &judged);

        assert_eq!(
            electricity,
            Typical::HourOfWeek {
                kwh_per_hour: 4.0,
                weeks: 3
            }
        );
        assert_eq!(
            gas,
            Typical::HourOfWeek {
                kwh_per_hour: 3.0,
                weeks: 4
            }
        );
    }

    #[test]
    fn before_enough_weeks_the_overall_median_stands_in() {
        // One Monday of hourly readings, 1 to 24 kWh: the 10:00 slot has one week, fewer than
        // three. The overall median of 1..=24 is 12.5.
        let values: Vec<f64> = (1..=24).map(f64::from).collect();
        let history = readings("2026-01-05T00:00:00Z", 60, &values);
        let judged = hour("2026-01-12T10:00:00Z", 1.0);

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 8, 3),
            &judged,
        );

        assert_eq!(
            typical,
            Typical::Overall {
                kwh_per_hour: 12.5,
                hours: 24
            }
        );
    }

    #[test]
    fn without_a_fallback_too_little_history_means_no_baseline() {
        let values: Vec<f64> = (1..=24).map(f64::from).collect();
        let history = readings("2026-01-05T00:00:00Z", 60, &values);
        let judged = hour("2026-01-12T10:00:00Z", 1.0);
        let mut t = settings(London, 8, 3);
        t.baseline_fallback = BaselineFallback::None;

        let typical = typical_for(&history, EnergyKind::Electricity, &t, &judged);

        assert_eq!(typical, Typical::NotEnoughHistory);
        assert_eq!(typical.kwh_per_hour(), None);
    }

    #[test]
    fn less_than_a_day_of_history_gives_no_overall_median_either() {
        let history = readings("2026-01-05T00:00:00Z", 60, &[1.0; 23]);
        let judged = hour("2026-01-12T10:00:00Z", 1.0);

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 8, 3),
            &judged,
        );

        assert_eq!(typical, Typical::NotEnoughHistory);
    }

    #[test]
    fn after_the_clocks_go_forward_the_baseline_follows_the_local_clock() {
        // Three winter Sundays: 17:00 GMT uses 1 kWh and 18:00 GMT uses 3 kWh. On 29 March 2026
        // (BST, UTC+1) 18:00 local is 17:00 UTC, and must be compared with the 3 kWh hour.
        let mut history = Vec::new();
        for sunday in ["2026-03-08", "2026-03-15", "2026-03-22"] {
            history.extend(readings(&format!("{sunday}T17:00:00Z"), 60, &[1.0, 3.0]));
        }
        let judged = hour("2026-03-29T17:00:00Z", 1.0);

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 8, 3),
            &judged,
        );

        assert_eq!(
            typical,
            Typical::HourOfWeek {
                kwh_per_hour: 3.0,
                weeks: 3
            }
        );
    }

    #[test]
    fn the_spring_forward_sunday_is_a_23_hour_day_with_no_01_00_sample() {
        // Hourly readings over local Sunday 29 March 2026: 00:00 GMT to 00:00 BST on Monday is
        // 23 real hours. Reading i (from 00:00 UTC plus i hours) is worth 10 + i kWh.
        let values: Vec<f64> = (0..23).map(|i| 10.0 + f64::from(i)).collect();
        let history = readings("2026-03-29T00:00:00Z", 60, &values);
        let t = Thresholds {
            baseline_fallback: BaselineFallback::None,
            ..settings(London, 2, 1)
        };

        // The next Sunday, 5 April, is in BST all day: local midnight is 23:00 UTC on Saturday.
        let next_sunday: Vec<Typical> = (0..24)
            .map(|h| {
                let start = at("2026-04-04T23:00:00Z") + TimeDelta::hours(h);
                let judged = Reading::new(start, start + TimeDelta::hours(1), 1.0).expect("valid");
                typical_for(&history, EnergyKind::Electricity, &t, &judged)
            })
            .collect();

        let missing: Vec<usize> = (0..24)
            .filter(|&h| next_sunday[h] == Typical::NotEnoughHistory)
            .collect();
        assert_eq!(missing, [1], "only 01:00 local is skipped");
        assert_eq!(
            next_sunday[0],
            Typical::HourOfWeek {
                kwh_per_hour: 10.0,
                weeks: 1
            }
        );
        assert_eq!(
            next_sunday[2],
            Typical::HourOfWeek {
                kwh_per_hour: 11.0,
                weeks: 1
            }
        );
        assert_eq!(
            next_sunday[23],
            Typical::HourOfWeek {
                kwh_per_hour: 32.0,
                weeks: 1
            }
        );
    }

    #[test]
    fn the_repeated_hour_of_the_fall_back_night_is_one_sample_of_two_hours() {
        // On 25 October 2026 London repeats 01:00: 00:00-01:00 UTC is 01:00 BST and 01:00-02:00
        // UTC is 01:00 GMT. 1 + 3 kWh over two hours is 2 kWh/h.
        let history = readings("2026-10-25T00:00:00Z", 60, &[1.0, 3.0]);
        let judged = hour("2026-11-01T01:00:00Z", 1.0);

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 2, 1),
            &judged,
        );

        assert_eq!(
            typical,
            Typical::HourOfWeek {
                kwh_per_hour: 2.0,
                weeks: 1
            }
        );
    }

    #[test]
    fn the_fall_back_sunday_is_a_25_hour_day_in_24_hour_slots() {
        // One reading over local Sunday 25 October 2026 (23:00 UTC Saturday to 00:00 UTC
        // Monday): 25 kWh over 25 real hours is 1 kWh/h in every local hour, the doubled one too.
        let start = at("2026-10-24T23:00:00Z");
        let day = Reading::new(start, at("2026-10-26T00:00:00Z"), 25.0).expect("valid");
        assert_eq!(day.hours(), 25.0);
        let t = settings(London, 2, 1);

        // 1 November is in GMT, so local hours are UTC hours.
        for h in 0..24 {
            let start = at("2026-11-01T00:00:00Z") + TimeDelta::hours(h);
            let judged = Reading::new(start, start + TimeDelta::hours(1), 1.0).expect("valid");
            let typical = typical_for(&[day], EnergyKind::Electricity, &t, &judged);
            assert_eq!(
                typical,
                Typical::HourOfWeek {
                    kwh_per_hour: 1.0,
                    weeks: 1
                },
                "hour {h}"
            );
        }
    }

    #[test]
    fn half_hour_offset_zones_share_a_utc_hour_between_two_local_hours() {
        // Asia/Kolkata is UTC+05:30. Each day 12:00-13:00 UTC uses 2 kWh and 13:00-14:00 UTC
        // uses 4 kWh. Local 18:00-19:00 is 12:30-13:30 UTC: 1 + 2 = 3 kWh/h. Local 17:00-18:00
        // is covered only from 12:00 to 12:30 UTC: 1 kWh over half an hour, 2 kWh/h.
        let mut history = Vec::new();
        for day in ["2026-01-05", "2026-01-12", "2026-01-19"] {
            history.extend(readings(&format!("{day}T12:00:00Z"), 60, &[2.0, 4.0]));
        }
        let t = settings(Kolkata, 8, 3);
        let evening = hour("2026-01-26T12:30:00Z", 1.0);
        let before_evening = hour("2026-01-26T11:30:00Z", 1.0);

        let at_18 = typical_for(&history, EnergyKind::Electricity, &t, &evening);
        let at_17 = typical_for(&history, EnergyKind::Electricity, &t, &before_evening);

        assert_eq!(
            at_18,
            Typical::HourOfWeek {
                kwh_per_hour: 3.0,
                weeks: 3
            }
        );
        assert_eq!(
            at_17,
            Typical::HourOfWeek {
                kwh_per_hour: 2.0,
                weeks: 3
            }
        );
    }

    #[test]
    fn a_reading_over_two_hours_is_compared_with_their_time_weighted_baseline() {
        // Slots 10:00 (1 kWh/h) and 11:00 (3 kWh/h); a reading from 10:30 to 12:00 spends half
        // an hour in the first and an hour in the second: (0.5 × 1 + 1 × 3) / 1.5 = 7/3.
        let mut history = Vec::new();
        for monday in ["2026-01-05", "2026-01-12", "2026-01-19"] {
            history.extend(readings(&format!("{monday}T10:00:00Z"), 60, &[1.0, 3.0]));
        }
        let judged = readings("2026-01-26T10:30:00Z", 90, &[1.0])[0];

        let typical = typical_for(
            &history,
            EnergyKind::Electricity,
            &settings(London, 8, 3),
            &judged,
        );

        let Typical::HourOfWeek {
            kwh_per_hour,
            weeks: 3,
        } = typical
        else {
            panic!("expected an hour-of-week baseline, got {typical:?}");
        };
        assert_close(kwh_per_hour, 7.0 / 3.0);
    }

    #[test]
    fn a_rate_above_median_plus_three_iqr_is_flagged_as_an_outlier() {
        // Rates 1..=24: median 12.5, quartiles 6.75 and 18.25, so the limit is
        // 12.5 + 3 × 11.5 = 47.
        let values: Vec<f64> = (1..=24).map(f64::from).collect();
        let history = readings("2026-01-05T00:00:00Z", 60, &values);
        let baseline = Baseline::build(
            &history,
            EnergyKind::Electricity,
            at("2026-01-06T00:00:00Z"),
            &settings(London, 8, 3),
        );

        let range = baseline.usual_range().expect("a day of history");
        assert_eq!(range.median_kwh_per_hour, 12.5);
        assert_eq!(range.lower_quartile_kwh_per_hour, 6.75);
        assert_eq!(range.upper_quartile_kwh_per_hour, 18.25);
        assert_eq!(baseline.outlier(47.0), None);
        assert_eq!(
            baseline.outlier(47.5),
            Some(Outlier {
                kwh_per_hour: 47.5,
                limit_kwh_per_hour: 47.0
            })
        );
    }

    #[test]
    fn nothing_is_flagged_as_an_outlier_before_a_day_of_history() {
        let history = readings("2026-01-05T00:00:00Z", 60, &[1.0; 10]);
        let baseline = Baseline::build(
            &history,
            EnergyKind::Electricity,
            at("2026-01-06T00:00:00Z"),
            &settings(London, 8, 3),
        );

        assert_eq!(baseline.outlier(1000.0), None);
    }

    #[test]
    fn the_night_profile_holds_the_lowest_rate_between_midnight_and_five() {
        // Two January days (local = UTC): nights 0.3, 0.25, 0.2, 0.2, 0.3 kWh/h, days 1 kWh/h,
        // with one 0 kWh gap at 03:00 on the second night that must not count as the minimum.
        // Per day 1.25 + 19 = 20.25 kWh over 24 h; the gap's hour is left out of the mean.
        let night = [0.3, 0.25, 0.2, 0.2, 0.3];
        let mut day: Vec<f64> = night.to_vec();
        day.extend([1.0; 19]);
        let mut second_day = day.clone();
        second_day[3] = 0.0;
        let mut values = day;
        values.extend(second_day);
        let history = readings("2026-01-05T00:00:00Z", 60, &values);

        let baseline = Baseline::build(
            &history,
            EnergyKind::Electricity,
            at("2026-01-07T00:00:00Z"),
            &settings(London, 8, 3),
        );

        let profile = baseline.night_profile().expect("two days of history");
        assert_close(profile.minimum_kwh_per_hour, 0.2);
        assert_eq!(profile.nights, 2);
        assert_close(profile.mean_kwh_per_hour, (20.25 + 20.05) / 47.0);
    }
}
