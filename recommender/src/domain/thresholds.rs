//! The alert settings: the `thresholds` section of the `EnergyPlatform` spec, which the operator
//! hands to the recommender in a ConfigMap as camelCase JSON or YAML.
//!
//! Field names and defaults follow the operator's `ThresholdsSpec`, so its ConfigMap reads here
//! unchanged; `baselineFallback` exists only here and may be left out.
//!
//! Deserialising only checks shapes and names (unknown fields are refused, so a typo does not
//! silently fall back to a default). [`Thresholds::validate`] checks the values and names the
//! offending field; call it once after loading, before the settings reach the detector.
//!
//! ```yaml
//! absoluteKwhPerHour: 5.0
//! relativeFactor: 1.5
//! clearRatio: 1.1
//! baselineWeeks: 4
//! minHistoryWeeks: 2
//! baselineFallback: overallMedian
//! cooldownSecs: 3600
//! timeZone: Europe/London
//! ```

use chrono::TimeDelta;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Default of [`Thresholds::relative_factor`]: usage must exceed 1.5 × the property's usual
/// level. This project's assumption (the operator's default too), a starting point to tune.
pub const DEFAULT_RELATIVE_FACTOR: f64 = 1.5;

/// Default of [`Thresholds::clear_ratio`]: a raised alert re-arms below 1.1 × the usual level.
/// This project's assumption (the operator's default too).
pub const DEFAULT_CLEAR_RATIO: f64 = 1.1;

/// Default of [`Thresholds::baseline_weeks`]: four weeks of history. This project's assumption
/// (the operator's default too).
pub const DEFAULT_BASELINE_WEEKS: u32 = 4;

/// Default of [`Thresholds::min_history_weeks`]: two weeks. This project's assumption (the
/// operator's default too).
pub const DEFAULT_MIN_HISTORY_WEEKS: u32 = 2;

/// Default of [`Thresholds::cooldown_secs`]: one hour. This project's assumption (the
/// operator's default too).
pub const DEFAULT_COOLDOWN_SECS: u64 = 3600;

/// Longest accepted [`Thresholds::baseline_weeks`]: one year, beyond which the "usual" level
/// mixes seasons.
pub const MAX_BASELINE_WEEKS: u32 = 52;

/// Longest accepted [`Thresholds::cooldown_secs`]: one week. A larger number is most likely
/// milliseconds given by mistake, and would silence a property for weeks.
pub const MAX_COOLDOWN_SECS: u64 = 7 * 24 * 3600;

/// What stands in for the hour-of-week baseline while an hour of the week has too little
/// history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BaselineFallback {
    /// No baseline: the absolute limit alone decides.
    None,
    /// The median of all the property's hourly rates in the window, once it holds at least a
    /// day of them (see [`super::baseline::MIN_OVERALL_HOURS`]).
    #[default]
    OverallMedian,
}

/// When usage counts as too high, and how often people hear about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Thresholds {
    /// Absolute limit, in kWh per hour of the reading's interval (numerically kW). A reading is
    /// divided by its length before the comparison, so 1.5 kWh in 15 minutes (6 kWh/h) and
    /// 6 kWh in one hour are judged alike. Must be above 0.
    pub absolute_kwh_per_hour: f64,

    /// Relative rule: a reading must also exceed this multiple of the property's baseline
    /// (when one exists). Must be above 1, or typical usage itself would alert.
    #[serde(default = "default_relative_factor")]
    pub relative_factor: f64,

    /// Hysteresis, as a multiple of the baseline: once raised, an alert re-arms only after
    /// usage falls below `clearRatio × baseline`. Without a baseline the same proportional band
    /// applies below the absolute limit: `absoluteKwhPerHour × clearRatio / relativeFactor`.
    /// Must be above 0 and below `relativeFactor`.
    #[serde(default = "default_clear_ratio")]
    pub clear_ratio: f64,

    /// How many recent weeks of history the baseline is taken from. 1 to 52.
    #[serde(default = "default_baseline_weeks")]
    pub baseline_weeks: u32,

    /// Minimum history before an hour-of-week baseline counts: the number of weeks that must
    /// hold readings for that hour of the week. 1 to `baselineWeeks`.
    #[serde(default = "default_min_history_weeks")]
    pub min_history_weeks: u32,

    /// What is used while an hour of the week has fewer than `minHistoryWeeks` weeks.
    #[serde(default)]
    pub baseline_fallback: BaselineFallback,

    /// Per property, the shortest time in seconds between two alerts, measured on reading time
    /// (period ends), so a replay decides as the first run did. At most one week.
    #[serde(default = "default_cooldown_secs")]
    pub cooldown_secs: u64,

    /// IANA time zone (for example `Europe/London`) whose local clock defines the hours of the
    /// week and the night.
    pub time_zone: Tz,
}

/// A threshold value that cannot work; each variant names its field as the ConfigMap spells it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdsError {
    /// The absolute limit was not a finite number above 0.
    #[error("absoluteKwhPerHour must be a finite number above 0; got {0}")]
    AbsoluteLimit(f64),
    /// The relative factor was not a finite number above 1.
    #[error("relativeFactor must be a finite number above 1; got {0}")]
    RelativeFactor(f64),
    /// The clear ratio was not above 0 and below the relative factor.
    #[error(
        "clearRatio must be above 0 and below relativeFactor ({relative_factor}); got {clear_ratio}"
    )]
    ClearRatio {
        /// The rejected clear ratio.
        clear_ratio: f64,
        /// The relative factor it must stay below.
        relative_factor: f64,
    },
    /// The baseline window was shorter than a week or longer than [`MAX_BASELINE_WEEKS`].
    #[error("baselineWeeks must be between 1 and {MAX_BASELINE_WEEKS}; got {0}")]
    BaselineWeeks(u32),
    /// The minimum history was 0 or more weeks than the window holds.
    #[error("minHistoryWeeks must be between 1 and baselineWeeks ({baseline_weeks}); got {min}")]
    MinHistoryWeeks {
        /// The rejected minimum.
        min: u32,
        /// The window it must fit in.
        baseline_weeks: u32,
    },
    /// The cooldown was longer than [`MAX_COOLDOWN_SECS`].
    #[error("cooldownSecs must be at most {MAX_COOLDOWN_SECS} (one week); got {0}")]
    CooldownSecs(u64),
}

impl ThresholdsError {
    /// The offending field as the ConfigMap spells it, for a status condition or an error body.
    pub fn field(&self) -> &'static str {
        match self {
            Self::AbsoluteLimit(_) => "absoluteKwhPerHour",
            Self::RelativeFactor(_) => "relativeFactor",
            Self::ClearRatio { .. } => "clearRatio",
            Self::BaselineWeeks(_) => "baselineWeeks",
            Self::MinHistoryWeeks { .. } => "minHistoryWeeks",
            Self::CooldownSecs(_) => "cooldownSecs",
        }
    }
}

impl Thresholds {
    /// Settings with this project's defaults around the two values that have none: the
    /// absolute limit and the time zone.
    pub fn new(absolute_kwh_per_hour: f64, time_zone: Tz) -> Self {
        Self {
            absolute_kwh_per_hour,
            relative_factor: DEFAULT_RELATIVE_FACTOR,
            clear_ratio: DEFAULT_CLEAR_RATIO,
            baseline_weeks: DEFAULT_BASELINE_WEEKS,
            min_history_weeks: DEFAULT_MIN_HISTORY_WEEKS,
            baseline_fallback: BaselineFallback::default(),
            cooldown_secs: DEFAULT_COOLDOWN_SECS,
            time_zone,
        }
    }

    /// Checks every value, reporting the first field that cannot work.
    pub fn validate(&self) -> Result<(), ThresholdsError> {
        let limit = self.absolute_kwh_per_hour;
        if !(limit.is_finite() && limit > 0.0) {
            return Err(ThresholdsError::AbsoluteLimit(limit));
        }

        let relative_factor = self.relative_factor;
        if !(relative_factor.is_finite() && relative_factor > 1.0) {
            return Err(ThresholdsError::RelativeFactor(relative_factor));
        }

        // NaN fails both comparisons, so it is refused here too.
        let clear_ratio = self.clear_ratio;
        if !(clear_ratio > 0.0 && clear_ratio < relative_factor) {
            return Err(ThresholdsError::ClearRatio {
                clear_ratio,
                relative_factor,
            });
        }

        let weeks = self.baseline_weeks;
        if !(1..=MAX_BASELINE_WEEKS).contains(&weeks) {
            return Err(ThresholdsError::BaselineWeeks(weeks));
        }

        // A minimum above the window could never be met, leaving the baseline off for good.
        let min = self.min_history_weeks;
        if !(1..=weeks).contains(&min) {
            return Err(ThresholdsError::MinHistoryWeeks {
                min,
                baseline_weeks: weeks,
            });
        }

        if self.cooldown_secs > MAX_COOLDOWN_SECS {
            return Err(ThresholdsError::CooldownSecs(self.cooldown_secs));
        }
        Ok(())
    }

    /// How far back the baseline looks; the adapter loads readings from this long before the
    /// reading being judged.
    pub fn baseline_window(&self) -> TimeDelta {
        TimeDelta::try_weeks(i64::from(self.baseline_weeks)).unwrap_or(TimeDelta::MAX)
    }

    /// The cooldown as a duration. Saturates rather than panics on settings that skipped
    /// [`Thresholds::validate`].
    pub fn cooldown(&self) -> TimeDelta {
        i64::try_from(self.cooldown_secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .unwrap_or(TimeDelta::MAX)
    }
}

fn default_relative_factor() -> f64 {
    DEFAULT_RELATIVE_FACTOR
}

fn default_clear_ratio() -> f64 {
    DEFAULT_CLEAR_RATIO
}

fn default_baseline_weeks() -> u32 {
    DEFAULT_BASELINE_WEEKS
}

fn default_min_history_weeks() -> u32 {
    DEFAULT_MIN_HISTORY_WEEKS
}

fn default_cooldown_secs() -> u64 {
    DEFAULT_COOLDOWN_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> Thresholds {
        Thresholds::new(5.0, chrono_tz::Europe::London)
    }

    #[test]
    fn reads_every_field_from_camel_case_json() {
        let json = r#"{
            "absoluteKwhPerHour": 4.5,
            "relativeFactor": 2.0,
            "clearRatio": 1.25,
            "baselineWeeks": 6,
            "minHistoryWeeks": 2,
            "baselineFallback": "none",
            "cooldownSecs": 1800,
            "timeZone": "Asia/Kolkata"
        }"#;

        let thresholds: Thresholds = serde_json::from_str(json).expect("valid json");

        assert_eq!(
            thresholds,
            Thresholds {
                absolute_kwh_per_hour: 4.5,
                relative_factor: 2.0,
                clear_ratio: 1.25,
                baseline_weeks: 6,
                min_history_weeks: 2,
                baseline_fallback: BaselineFallback::None,
                cooldown_secs: 1800,
                time_zone: chrono_tz::Asia::Kolkata,
            }
        );
        assert_eq!(thresholds.validate(), Ok(()));
    }

    #[test]
    fn reads_a_config_map_yaml_and_fills_in_the_defaults() {
        let yaml = "absoluteKwhPerHour: 5\ntimeZone: Europe/London\n";

        let thresholds: Thresholds = serde_norway::from_str(yaml).expect("valid yaml");

        assert_eq!(thresholds, london());
        assert_eq!(thresholds.validate(), Ok(()));
    }

    #[test]
    fn reads_the_config_map_the_operator_writes_from_its_thresholds_spec() {
        // Every field of the operator's ThresholdsSpec, at the operator's defaults.
        let yaml = "\
absoluteKwhPerHour: 5.0
relativeFactor: 1.5
clearRatio: 1.1
baselineWeeks: 4
minHistoryWeeks: 2
cooldownSecs: 3600
timeZone: UTC
";

        let thresholds: Thresholds = serde_norway::from_str(yaml).expect("valid yaml");

        assert_eq!(thresholds, Thresholds::new(5.0, chrono_tz::UTC));
        assert_eq!(thresholds.validate(), Ok(()));
    }

    #[test]
    fn a_misspelt_field_is_refused_rather_than_defaulted() {
        let json = r#"{"absoluteKwhPerHour": 5, "timeZone": "UTC", "coolDownSecs": 60}"#;

        let err = serde_json::from_str::<Thresholds>(json).expect_err("unknown field");

        assert!(err.to_string().contains("coolDownSecs"), "{err}");
    }

    #[test]
    fn an_unknown_time_zone_is_refused() {
        let json = r#"{"absoluteKwhPerHour": 5, "timeZone": "Europe/Atlantis"}"#;

        assert!(serde_json::from_str::<Thresholds>(json).is_err());
    }

    #[test]
    fn a_clear_ratio_at_the_relative_factor_is_refused_and_named() {
        let thresholds = Thresholds {
            clear_ratio: 1.5,
            ..london()
        };

        let err = thresholds.validate().expect_err("no hysteresis band");

        assert_eq!(
            err,
            ThresholdsError::ClearRatio {
                clear_ratio: 1.5,
                relative_factor: 1.5
            }
        );
        assert_eq!(err.field(), "clearRatio");
        assert_eq!(
            err.to_string(),
            "clearRatio must be above 0 and below relativeFactor (1.5); got 1.5"
        );
    }

    #[test]
    fn a_zero_or_nan_clear_ratio_is_refused() {
        for clear_ratio in [0.0, f64::NAN] {
            let err = Thresholds {
                clear_ratio,
                ..london()
            }
            .validate()
            .expect_err("bad ratio");
            assert_eq!(err.field(), "clearRatio");
        }
    }

    #[test]
    fn a_relative_factor_of_one_is_refused_because_usual_usage_would_alert() {
        let err = Thresholds {
            relative_factor: 1.0,
            ..london()
        }
        .validate()
        .expect_err("ratio");

        assert_eq!(err, ThresholdsError::RelativeFactor(1.0));
        assert_eq!(err.field(), "relativeFactor");
    }

    #[test]
    fn a_zero_negative_or_infinite_absolute_limit_is_refused() {
        for limit in [0.0, -1.0, f64::INFINITY] {
            let thresholds = Thresholds {
                absolute_kwh_per_hour: limit,
                ..london()
            };
            let err = thresholds.validate().expect_err("bad limit");
            assert_eq!(err.field(), "absoluteKwhPerHour");
        }
    }

    #[test]
    fn a_window_of_zero_or_more_than_fifty_two_weeks_is_refused() {
        for weeks in [0, 53] {
            let thresholds = Thresholds {
                baseline_weeks: weeks,
                min_history_weeks: 1,
                ..london()
            };
            assert_eq!(
                thresholds.validate(),
                Err(ThresholdsError::BaselineWeeks(weeks))
            );
        }
    }

    #[test]
    fn a_minimum_history_longer_than_the_window_is_refused() {
        let thresholds = Thresholds {
            baseline_weeks: 4,
            min_history_weeks: 5,
            ..london()
        };

        let err = thresholds.validate().expect_err("minimum never met");

        assert_eq!(
            err,
            ThresholdsError::MinHistoryWeeks {
                min: 5,
                baseline_weeks: 4
            }
        );
        assert_eq!(err.field(), "minHistoryWeeks");
    }

    #[test]
    fn a_cooldown_given_in_milliseconds_by_mistake_is_refused() {
        let thresholds = Thresholds {
            cooldown_secs: 3_600_000_000,
            ..london()
        };

        let err = thresholds.validate().expect_err("too long");

        assert_eq!(err, ThresholdsError::CooldownSecs(3_600_000_000));
        assert_eq!(err.field(), "cooldownSecs");
    }

    #[test]
    fn durations_follow_the_settings() {
        assert_eq!(london().baseline_window(), TimeDelta::weeks(4));
        assert_eq!(london().cooldown(), TimeDelta::hours(1));
    }
}
