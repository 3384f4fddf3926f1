//! Whether one reading raises a RED alert for its property.
//!
//! A reading is judged by its rate, kWh per hour of its interval, against two rules that must
//! both hold: the absolute limit and, once the property has a baseline, `relativeFactor` × its
//! typical rate for those hours of the week. The trigger level is the larger of the two.
//!
//! Two things keep one long spike to one alert, both carried in the property's [`AlertState`]:
//!
//! - hysteresis: after an alert the state is raised, and it re-arms only when a reading falls
//!   below the clear level, `clearRatio / relativeFactor` of the trigger level;
//! - a cooldown: an armed property stays quiet until `cooldownSecs` after its last alert, and
//!   raises on the first reading still too high after that.
//!
//! Time here is reading time (period ends), never the clock on the wall, so a replay of the same
//! readings after a crash takes the same decisions, and [`Raise::red_alert`] gives a redelivered
//! reading the same alert id. The adapter stores the new state in the same transaction as the
//! reading's recommendation, keyed by the series (property, kind of energy, meter).

use std::fmt;

use chrono::{DateTime, Utc};
use energy_contracts::{CarbonResponse, ConsumptionEvent, RedAlert};
use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, Outlier, Typical};
use super::reading::Reading;
use super::thresholds::Thresholds;

/// Whether a property can raise its next alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AlertPhase {
    /// No alert is open; a reading above the trigger level raises one (after the cooldown).
    #[default]
    Armed,
    /// An alert is open; nothing more is raised until usage falls below the clear level.
    Raised,
}

/// What the detector remembers about one series between readings. Stored by the adapter as
/// JSON (camelCase); a series never seen before starts from [`AlertState::default`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertState {
    /// Armed or raised.
    pub phase: AlertPhase,
    /// End of the reading that raised the last alert; the cooldown runs from here.
    pub raised_at: Option<DateTime<Utc>>,
    /// End of the last reading judged; older readings leave the state alone.
    pub last_reading_end: Option<DateTime<Utc>>,
    /// Rate of the last reading judged, kWh per hour.
    pub last_kwh_per_hour: Option<f64>,
}

/// The rule that raised an alert. Its name is part of the alert id, so renaming one changes the
/// ids of alerts raised from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The absolute limit alone, while the property has no baseline.
    AbsoluteLimit,
    /// The absolute limit and `relativeFactor` × the property's overall median.
    OverallBaseline,
    /// The absolute limit and `relativeFactor` × the property's median for the hour of the week.
    HourOfWeekBaseline,
}

impl Rule {
    /// The stable name, as used in alert ids and stored results.
    pub fn name(self) -> &'static str {
        match self {
            Self::AbsoluteLimit => "absolute-limit",
            Self::OverallBaseline => "overall-baseline",
            Self::HourOfWeekBaseline => "hour-of-week-baseline",
        }
    }
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    /// The rule that fired.
    pub rule: Rule,
    /// The reading's rate, kWh per hour.
    pub kwh_per_hour: f64,
    /// The trigger level it exceeded, kWh per hour.
    pub threshold_kwh_per_hour: f64,
    /// The trigger level over the reading's interval, kWh: what [`RedAlert::threshold`] carries.
    pub threshold_kwh: f64,
    /// Which rule fired and by how much, for people.
    pub reason: String,
}

impl Raise {
    /// The RED alert for the reading `event` that this decision was taken on. The id comes from
    /// the event id and the rule, so a redelivered reading gives the same alert; `raised_at` is
    /// the adapter's clock.
    pub fn red_alert(
        &self,
        event: &ConsumptionEvent,
        carbon: &CarbonResponse,
        raised_at: DateTime<Utc>,
    ) -> RedAlert {
        RedAlert {
            alert_id: RedAlert::derive_id(event.event_id, self.rule.name()),
            event_id: event.event_id,
            property_id: event.property_id.clone(),
            kwh: event.kwh,
            threshold: self.threshold_kwh,
            reason: self.reason.clone(),
            kg_co2e: carbon.kg_co2e,
            raised_at,
        }
    }
}

/// Why a reading raised nothing. [`fmt::Display`] says it for people.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quiet {
    /// The rate is not above the absolute limit.
    BelowAbsoluteLimit {
        /// The reading's rate, kWh per hour.
        kwh_per_hour: f64,
        /// The absolute limit, kWh per hour.
        limit_kwh_per_hour: f64,
    },
    /// Above the absolute limit, but not above `relativeFactor` × the typical rate.
    WithinBaseline {
        /// The reading's rate, kWh per hour.
        kwh_per_hour: f64,
        /// `relativeFactor` × the typical rate, kWh per hour.
        level_kwh_per_hour: f64,
    },
    /// An alert is open and usage has not fallen below the clear level.
    StillRaised {
        /// The reading's rate, kWh per hour.
        kwh_per_hour: f64,
        /// The clear level, kWh per hour.
        clear_kwh_per_hour: f64,
    },
    /// Usage fell below the clear level: the property is armed again.
    Cleared {
        /// The reading's rate, kWh per hour.
        kwh_per_hour: f64,
        /// The clear level, kWh per hour.
        clear_kwh_per_hour: f64,
    },
    /// Too high, but within the cooldown after the last alert.
    CoolingDown {
        /// The reading's rate, kWh per hour.
        kwh_per_hour: f64,
        /// Readings ending at or after this instant may raise again.
        until: DateTime<Utc>,
    },
    /// The reading ends no later than one already judged; the state was left as it was.
    OutOfOrder {
        /// End of the latest reading judged so far.
        last_reading_end: DateTime<Utc>,
    },
}

impl fmt::Display for Quiet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BelowAbsoluteLimit {
                kwh_per_hour,
                limit_kwh_per_hour,
            } => write!(
                f,
                "{kwh_per_hour:.2} kWh/h is not above the absolute limit of \
                 {limit_kwh_per_hour:.2} kWh/h"
            ),
            Self::WithinBaseline {
                kwh_per_hour,
                level_kwh_per_hour,
            } => write!(
                f,
                "{kwh_per_hour:.2} kWh/h is above the absolute limit but not above \
                 {level_kwh_per_hour:.2} kWh/h, the level set by this property's baseline"
            ),
            Self::StillRaised {
                kwh_per_hour,
                clear_kwh_per_hour,
            } => write!(
                f,
                "an alert is open; at {kwh_per_hour:.2} kWh/h usage has not yet fallen below \
                 the clear level of {clear_kwh_per_hour:.2} kWh/h"
            ),
            Self::Cleared {
                kwh_per_hour,
                clear_kwh_per_hour,
            } => write!(
                f,
                "{kwh_per_hour:.2} kWh/h is below the clear level of {clear_kwh_per_hour:.2} \
                 kWh/h; alerts are armed again"
            ),
            Self::CoolingDown {
                kwh_per_hour,
                until,
            } => write!(
                f,
                "{kwh_per_hour:.2} kWh/h is too high, but the last alert was raised less than \
                 the cooldown ago; the next can be raised from {until}"
            ),
            Self::OutOfOrder { last_reading_end } => write!(
                f,
                "the reading ends no later than one already judged (ending {last_reading_end}); \
                 alert state left unchanged"
            ),
        }
    }
}

/// Raise an alert, or stay quiet and say why.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Publish a RED alert.
    Raise(Raise),
    /// Publish nothing.
    Quiet(Quiet),
}

/// Everything the detector concluded about one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Raise or stay quiet.
    pub decision: Decision,
    /// The series' state after this reading, to store.
    pub state: AlertState,
    /// The typical level the reading was measured against.
    pub typical: Typical,
    /// Set when the rate is far outside the property's usual range (CalTRACK-style flag),
    /// whatever the decision.
    pub outlier: Option<Outlier>,
}

/// Judges one reading of a series, given the settings, the series' baseline (built with the
/// reading's start as `before`) and its state after the previous reading.
pub fn assess(
    reading: &Reading,
    baseline: &Baseline,
    thresholds: &Thresholds,
    state: &AlertState,
) -> Assessment {
    let typical = baseline.typical(reading);
    let outlier = baseline.outlier(reading.kwh_per_hour());

    // A backfilled or repeated reading must not move hysteresis or the cooldown back in time.
    if let Some(last_reading_end) = state.last_reading_end
        && reading.end() <= last_reading_end
    {
        let decision = Decision::Quiet(Quiet::OutOfOrder { last_reading_end });
        return Assessment {
            decision,
            state: state.clone(),
            typical,
            outlier,
        };
    }

    let levels = Levels::new(thresholds, typical);
    let mut next = AlertState {
        last_reading_end: Some(reading.end()),
        last_kwh_per_hour: Some(reading.kwh_per_hour()),
        ..state.clone()
    };
    let decision = match state.phase {
        AlertPhase::Raised => stay_raised_or_clear(reading, &levels, &mut next),
        AlertPhase::Armed => raise_or_hold(reading, &levels, thresholds, outlier, &mut next),
    };
    Assessment {
        decision,
        state: next,
        typical,
        outlier,
    }
}

/// The levels one reading is measured against, kWh per hour.
struct Levels {
    absolute: f64,
    /// `relativeFactor` × the typical rate, when there is one.
    relative: Option<f64>,
    /// The larger of the two: a reading must exceed both.
    trigger: f64,
    clear: f64,
    rule: Rule,
    typical: Typical,
    relative_factor: f64,
}

impl Levels {
    fn new(thresholds: &Thresholds, typical: Typical) -> Self {
        let absolute = thresholds.absolute_kwh_per_hour;
        let relative = typical
            .kwh_per_hour()
            .map(|usual| usual * thresholds.relative_factor);
        let trigger = relative.map_or(absolute, |relative| relative.max(absolute));
        let rule = match typical {
            Typical::HourOfWeek { .. } => Rule::HourOfWeekBaseline,
            Typical::Overall { .. } => Rule::OverallBaseline,
            Typical::NotEnoughHistory => Rule::AbsoluteLimit,
        };

        // Clearing either rule by its band is enough: below clearRatio × baseline, or below
        // the absolute limit scaled by the same band. Both come to this share of the trigger.
        let clear = trigger * thresholds.clear_ratio / thresholds.relative_factor;
        Self {
            absolute,
            relative,
            trigger,
            clear,
            rule,
            typical,
            relative_factor: thresholds.relative_factor,
        }
    }
}

fn stay_raised_or_clear(reading: &Reading, levels: &Levels, next: &mut AlertState) -> Decision {
    let kwh_per_hour = reading.kwh_per_hour();
    let clear_kwh_per_hour = levels.clear;
    if kwh_per_hour < clear_kwh_per_hour {
        next.phase = AlertPhase::Armed;
        return Decision::Quiet(Quiet::Cleared {
            kwh_per_hour,
            clear_kwh_per_hour,
        });
    }
    Decision::Quiet(Quiet::StillRaised {
        kwh_per_hour,
        clear_kwh_per_hour,
    })
}

fn raise_or_hold(
    reading: &Reading,
    levels: &Levels,
    thresholds: &Thresholds,
    outlier: Option<Outlier>,
    next: &mut AlertState,
) -> Decision {
    let kwh_per_hour = reading.kwh_per_hour();
    if kwh_per_hour <= levels.absolute {
        let limit_kwh_per_hour = levels.absolute;
        return Decision::Quiet(Quiet::BelowAbsoluteLimit {
            kwh_per_hour,
            limit_kwh_per_hour,
        });
    }
    if let Some(level_kwh_per_hour) = levels.relative
        && kwh_per_hour <= level_kwh_per_hour
    {
        return Decision::Quiet(Quiet::WithinBaseline {
            kwh_per_hour,
            level_kwh_per_hour,
        });
    }

    // The cooldown holds the property armed, so a spike that outlasts it still raises once.
    if let Some(raised_at) = next.raised_at {
        let until = raised_at
            .checked_add_signed(thresholds.cooldown())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if reading.end() < until {
            return Decision::Quiet(Quiet::CoolingDown {
                kwh_per_hour,
                until,
            });
        }
    }

    next.phase = AlertPhase::Raised;
    next.raised_at = Some(reading.end());
    Decision::Raise(Raise {
        rule: levels.rule,
        kwh_per_hour,
        threshold_kwh_per_hour: levels.trigger,
        threshold_kwh: levels.trigger * reading.hours(),
        reason: reason(reading, levels, outlier),
    })
}

/// The alert's reason for people: the reading, the levels it crossed and what they rest on.
fn reason(reading: &Reading, levels: &Levels, outlier: Option<Outlier>) -> String {
    let mut text = format!(
        "{:.2} kWh in {} is {:.2} kWh/h, above the absolute limit of {:.2} kWh/h",
        reading.kwh(),
        duration_text(reading.hours()),
        reading.kwh_per_hour(),
        levels.absolute,
    );
    let ratio = levels.relative_factor;
    text.push_str(&match levels.typical {
        Typical::HourOfWeek {
            kwh_per_hour,
            weeks,
        } => format!(
            " and {ratio} × the usual {kwh_per_hour:.2} kWh/h for this time of the week \
             (median of {weeks} weeks)"
        ),
        Typical::Overall {
            kwh_per_hour,
            hours,
        } => format!(
            " and {ratio} × this property's overall median of {kwh_per_hour:.2} kWh/h \
             ({hours} hours of history; too few weeks yet for a time-of-week baseline)"
        ),
        Typical::NotEnoughHistory => {
            "; this property has too little history yet for a baseline".to_owned()
        }
    });
    if let Some(outlier) = outlier {
        text.push_str(&format!("; {outlier}"));
    }
    text
}

/// "15 min", "60 min", "6.0 h".
fn duration_text(hours: f64) -> String {
    let minutes = hours * 60.0;
    if minutes < 120.0 {
        format!("{minutes:.0} min")
    } else {
        format!("{hours:.1} h")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use chrono_tz::Europe::London;
    use energy_contracts::event::SCHEMA_VERSION;
    use energy_contracts::{EmissionBasis, EmissionFactor, EnergyKind, PropertyId, Rating};
    use uuid::Uuid;

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test instants are valid RFC 3339")
            .to_utc()
    }

    /// 5 kWh/h absolute limit, 1.5 × baseline to trigger, 1.2 × to clear (so 0.8 of the trigger),
    /// three hours of cooldown, an hour-of-week baseline from three of the last eight weeks.
    fn thresholds() -> Thresholds {
        Thresholds {
            clear_ratio: 1.2,
            cooldown_secs: 3 * 3600,
            baseline_weeks: 8,
            min_history_weeks: 3,
            ..Thresholds::new(5.0, London)
        }
    }

    fn reading(start: DateTime<Utc>, minutes: i64, kwh: f64) -> Reading {
        Reading::new(start, start + TimeDelta::minutes(minutes), kwh).expect("valid reading")
    }

    /// Hourly readings from 00:00 UTC on Monday 5 January 2026, one per value.
    fn hourly(kwhs: &[f64]) -> Vec<Reading> {
        let start = at("2026-01-05T00:00:00Z");
        let hours = (0..).map(|h| start + TimeDelta::hours(h));
        hours
            .zip(kwhs)
            .map(|(from, &kwh)| reading(from, 60, kwh))
            .collect()
    }

    fn no_history(thresholds: &Thresholds) -> Baseline {
        Baseline::build(
            &[],
            EnergyKind::Electricity,
            at("2026-01-05T00:00:00Z"),
            thresholds,
        )
    }

    /// Runs a series through the detector from a fresh state.
    fn decide_all(series: &[Reading], baseline: &Baseline, t: &Thresholds) -> Vec<Decision> {
        let mut state = AlertState::default();
        let mut decisions = Vec::new();
        for reading in series {
            let assessment = assess(reading, baseline, t, &state);
            state = assessment.state;
            decisions.push(assessment.decision);
        }
        decisions
    }

    fn raised(decisions: &[Decision]) -> usize {
        decisions
            .iter()
            .filter(|d| matches!(d, Decision::Raise(_)))
            .count()
    }

    /// A baseline of 4 kWh/h on Mondays at 10:00 UTC, three weeks deep.
    fn four_kwh_on_monday_mornings(t: &Thresholds) -> Baseline {
        let history: Vec<Reading> = ["2026-01-05", "2026-01-12", "2026-01-19"]
            .iter()
            .map(|day| reading(at(&format!("{day}T10:00:00Z")), 60, 4.0))
            .collect();
        Baseline::build(
            &history,
            EnergyKind::Electricity,
            at("2026-01-26T10:00:00Z"),
            t,
        )
    }

    fn event(kwh: f64) -> ConsumptionEvent {
        ConsumptionEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            property_id: PropertyId::parse("house-1").expect("valid id"),
            meter_id: None,
            kind: EnergyKind::Electricity,
            kwh,
            period_start: DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z").expect("time"),
            period_end: DateTime::parse_from_rfc3339("2026-01-05T01:00:00Z").expect("time"),
            region: "GB".into(),
            received_at: at("2026-01-05T01:00:05Z"),
        }
    }

    fn carbon(kg_co2e: f64) -> CarbonResponse {
        CarbonResponse {
            kg_co2e,
            grams_per_kwh: 177.0,
            rating: Rating::C,
            factor: EmissionFactor {
                region: "GB".into(),
                year: 2025,
                basis: EmissionBasis::LocationBased,
                source: "test factor".into(),
                kg_per_kwh: 0.177,
            },
        }
    }

    #[test]
    fn one_long_spike_of_ten_readings_raises_exactly_one_alert() {
        let t = thresholds();

        let decisions = decide_all(&hourly(&[8.0; 10]), &no_history(&t), &t);

        assert_eq!(raised(&decisions), 1);
        assert!(matches!(decisions[0], Decision::Raise(_)));
        for decision in &decisions[1..] {
            assert_eq!(
                *decision,
                Decision::Quiet(Quiet::StillRaised {
                    kwh_per_hour: 8.0,
                    clear_kwh_per_hour: 4.0
                })
            );
        }
    }

    #[test]
    fn falling_below_the_clear_level_and_rising_after_the_cooldown_raises_a_second_alert() {
        // Raised at 01:00; cleared by the 1 kWh hour ending 11:00; the spike ending 12:00 is long
        // past the three-hour cooldown.
        let t = thresholds();
        let mut kwhs = vec![8.0; 10];
        kwhs.extend([1.0, 8.0]);

        let decisions = decide_all(&hourly(&kwhs), &no_history(&t), &t);

        assert_eq!(raised(&decisions), 2);
        assert_eq!(
            decisions[10],
            Decision::Quiet(Quiet::Cleared {
                kwh_per_hour: 1.0,
                clear_kwh_per_hour: 4.0
            })
        );
        assert!(matches!(decisions[11], Decision::Raise(_)));
    }

    #[test]
    fn a_dip_that_stays_above_the_clear_level_does_not_re_arm() {
        // 4.5 kWh/h is under the 5 kWh/h trigger but over the 4 kWh/h clear level.
        let t = thresholds();

        let decisions = decide_all(
            &hourly(&[8.0, 4.5, 4.5, 4.5, 4.5, 8.0]),
            &no_history(&t),
            &t,
        );

        assert_eq!(raised(&decisions), 1);
        assert_eq!(
            decisions[5],
            Decision::Quiet(Quiet::StillRaised {
                kwh_per_hour: 8.0,
                clear_kwh_per_hour: 4.0
            })
        );
    }

    #[test]
    fn a_new_spike_within_the_cooldown_waits_and_raises_when_the_cooldown_ends() {
        // Raised by the hour ending 01:00, so the cooldown runs until 04:00. Re-armed at 02:00;
        // the hour ending 03:00 is too early, the one ending 04:00 is not.
        let t = thresholds();

        let decisions = decide_all(&hourly(&[8.0, 1.0, 8.0, 8.0]), &no_history(&t), &t);

        assert!(matches!(decisions[0], Decision::Raise(_)));
        assert_eq!(
            decisions[2],
            Decision::Quiet(Quiet::CoolingDown {
                kwh_per_hour: 8.0,
                until: at("2026-01-05T04:00:00Z")
            })
        );
        assert!(matches!(decisions[3], Decision::Raise(_)));
        assert_eq!(raised(&decisions), 2);
    }

    #[test]
    fn a_zero_cooldown_leaves_hysteresis_alone_in_charge() {
        let t = Thresholds {
            cooldown_secs: 0,
            ..thresholds()
        };

        let decisions = decide_all(&hourly(&[8.0, 1.0, 8.0]), &no_history(&t), &t);

        assert_eq!(raised(&decisions), 2);
    }

    #[test]
    fn a_quarter_hour_and_an_hour_are_judged_on_their_rate() {
        // 1.5 kWh in 15 minutes is 6 kWh/h; the same energy over an hour is 1.5 kWh/h.
        let t = thresholds();
        let start = at("2026-01-05T10:00:00Z");
        let quarter = assess(
            &reading(start, 15, 1.5),
            &no_history(&t),
            &t,
            &AlertState::default(),
        );
        let hour = assess(
            &reading(start, 60, 1.5),
            &no_history(&t),
            &t,
            &AlertState::default(),
        );

        let Decision::Raise(raise) = quarter.decision else {
            panic!("6 kWh/h is above 5 kWh/h: {:?}", quarter.decision);
        };
        assert_eq!(raise.rule, Rule::AbsoluteLimit);
        assert_eq!(raise.threshold_kwh_per_hour, 5.0);
        assert_eq!(raise.threshold_kwh, 1.25);
        assert_eq!(
            hour.decision,
            Decision::Quiet(Quiet::BelowAbsoluteLimit {
                kwh_per_hour: 1.5,
                limit_kwh_per_hour: 5.0
            })
        );
    }

    #[test]
    fn above_the_absolute_limit_but_within_the_baseline_stays_quiet() {
        // Usual 4 kWh/h, so the relative level is 6 kWh/h; 5.5 kWh/h passes only the limit.
        let t = thresholds();
        let judged = reading(at("2026-01-26T10:00:00Z"), 60, 5.5);

        let assessment = assess(
            &judged,
            &four_kwh_on_monday_mornings(&t),
            &t,
            &AlertState::default(),
        );

        assert_eq!(
            assessment.decision,
            Decision::Quiet(Quiet::WithinBaseline {
                kwh_per_hour: 5.5,
                level_kwh_per_hour: 6.0
            })
        );
        assert_eq!(
            assessment.typical,
            Typical::HourOfWeek {
                kwh_per_hour: 4.0,
                weeks: 3
            }
        );
    }

    #[test]
    fn above_both_the_limit_and_the_baseline_raises_with_the_hour_of_week_rule() {
        let t = thresholds();
        let judged = reading(at("2026-01-26T10:00:00Z"), 60, 6.5);

        let assessment = assess(
            &judged,
            &four_kwh_on_monday_mornings(&t),
            &t,
            &AlertState::default(),
        );

        let Decision::Raise(raise) = assessment.decision else {
            panic!("6.5 kWh/h is above 6 kWh/h: {:?}", assessment.decision);
        };
        assert_eq!(raise.rule, Rule::HourOfWeekBaseline);
        assert_eq!(raise.threshold_kwh_per_hour, 6.0);
        assert_eq!(
            raise.reason,
            "6.50 kWh in 60 min is 6.50 kWh/h, above the absolute limit of 5.00 kWh/h and 1.5 × \
             the usual 4.00 kWh/h for this time of the week (median of 3 weeks)"
        );
    }

    #[test]
    fn with_a_baseline_the_clear_level_is_the_clear_ratio_times_the_baseline() {
        // Trigger 1.5 × 4 = 6 kWh/h; clear 1.2 × 4 = 4.8 kWh/h.
        let t = thresholds();
        let baseline = four_kwh_on_monday_mornings(&t);
        let raised = AlertState {
            phase: AlertPhase::Raised,
            ..AlertState::default()
        };
        let judged = reading(at("2026-01-26T10:00:00Z"), 60, 4.7);

        let assessment = assess(&judged, &baseline, &t, &raised);

        let Decision::Quiet(Quiet::Cleared {
            clear_kwh_per_hour, ..
        }) = assessment.decision
        else {
            panic!("4.7 kWh/h is below 4.8 kWh/h: {:?}", assessment.decision);
        };
        assert!(
            (clear_kwh_per_hour - 4.8).abs() < 1e-12,
            "{clear_kwh_per_hour}"
        );
        assert_eq!(assessment.state.phase, AlertPhase::Armed);
    }

    #[test]
    fn a_low_baseline_does_not_lower_the_absolute_limit() {
        // A usual 1 kWh/h makes the relative level 1.5 kWh/h; 4 kWh/h is still under the limit.
        let t = thresholds();
        let history: Vec<Reading> = ["2026-01-05", "2026-01-12", "2026-01-19"]
            .iter()
            .map(|day| reading(at(&format!("{day}T10:00:00Z")), 60, 1.0))
            .collect();
        let baseline = Baseline::build(
            &history,
            EnergyKind::Electricity,
            at("2026-01-26T10:00:00Z"),
            &t,
        );
        let judged = reading(at("2026-01-26T10:00:00Z"), 60, 4.0);

        let assessment = assess(&judged, &baseline, &t, &AlertState::default());

        assert_eq!(
            assessment.decision,
            Decision::Quiet(Quiet::BelowAbsoluteLimit {
                kwh_per_hour: 4.0,
                limit_kwh_per_hour: 5.0
            })
        );
    }

    #[test]
    fn an_outlier_raised_on_the_overall_fallback_says_so_in_its_reason() {
        // A day of 1..=24 kWh/h: overall median 12.5, so the trigger is 18.75 kWh/h, and the
        // outlier limit is 47 kWh/h. 50 kWh/h crosses both.
        let t = thresholds();
        let values: Vec<f64> = (1..=24).map(f64::from).collect();
        let history = hourly(&values);
        let judged = reading(at("2026-01-06T00:00:00Z"), 60, 50.0);
        let baseline = Baseline::build(&history, EnergyKind::Electricity, judged.start(), &t);

        let assessment = assess(&judged, &baseline, &t, &AlertState::default());

        let Decision::Raise(raise) = assessment.decision else {
            panic!("50 kWh/h is above 18.75 kWh/h: {:?}", assessment.decision);
        };
        assert_eq!(raise.rule, Rule::OverallBaseline);
        assert_eq!(raise.threshold_kwh_per_hour, 18.75);
        assert_eq!(
            assessment.outlier,
            Some(Outlier {
                kwh_per_hour: 50.0,
                limit_kwh_per_hour: 47.0
            })
        );
        assert!(
            raise.reason.contains("overall median of 12.50 kWh/h"),
            "{}",
            raise.reason
        );
        assert!(raise.reason.contains("check the meter"), "{}", raise.reason);
    }

    #[test]
    fn an_out_of_order_reading_leaves_the_state_alone() {
        let t = thresholds();
        let baseline = no_history(&t);
        let first = assess(&hourly(&[8.0])[0], &baseline, &t, &AlertState::default());
        let late = reading(at("2026-01-04T22:00:00Z"), 60, 1.0);

        let assessment = assess(&late, &baseline, &t, &first.state);

        assert_eq!(
            assessment.decision,
            Decision::Quiet(Quiet::OutOfOrder {
                last_reading_end: at("2026-01-05T01:00:00Z")
            })
        );
        assert_eq!(assessment.state, first.state);
    }

    #[test]
    fn the_state_is_stored_as_camel_case_json_and_read_back() {
        let t = thresholds();
        let state = assess(
            &hourly(&[8.0])[0],
            &no_history(&t),
            &t,
            &AlertState::default(),
        )
        .state;

        let json = serde_json::to_value(&state).expect("state serialises");

        assert_eq!(
            json,
            serde_json::json!({
                "phase": "raised",
                "raisedAt": "2026-01-05T01:00:00Z",
                "lastReadingEnd": "2026-01-05T01:00:00Z",
                "lastKwhPerHour": 8.0
            })
        );
        assert_eq!(
            serde_json::from_value::<AlertState>(json).expect("reads back"),
            state
        );
    }

    #[test]
    fn the_red_alert_id_comes_from_the_reading_and_the_rule_so_a_redelivery_repeats_it() {
        let t = thresholds();
        let event = event(8.0);
        let reading = Reading::try_from(&event).expect("valid event");
        let assessment = assess(&reading, &no_history(&t), &t, &AlertState::default());
        let Decision::Raise(raise) = assessment.decision else {
            panic!("8 kWh/h is above 5 kWh/h: {:?}", assessment.decision);
        };
        let now = at("2026-01-05T01:00:06Z");

        let alert = raise.red_alert(&event, &carbon(1.416), now);
        let again = raise.red_alert(&event, &carbon(1.416), now + TimeDelta::seconds(30));

        assert_eq!(
            alert.alert_id,
            RedAlert::derive_id(event.event_id, "absolute-limit")
        );
        assert_eq!(again.alert_id, alert.alert_id);
        assert_eq!(alert.event_id, event.event_id);
        assert_eq!(alert.property_id.as_str(), "house-1");
        assert_eq!(alert.kwh, 8.0);
        assert_eq!(alert.threshold, 5.0);
        assert_eq!(alert.kg_co2e, 1.416);
        assert_eq!(alert.raised_at, now);
        assert_eq!(
            alert.reason,
            "8.00 kWh in 60 min is 8.00 kWh/h, above the absolute limit of 5.00 kWh/h; this \
             property has too little history yet for a baseline"
        );
    }

    #[test]
    fn every_quiet_reason_reads_as_a_sentence_with_its_numbers() {
        let quiet = Quiet::StillRaised {
            kwh_per_hour: 8.0,
            clear_kwh_per_hour: 4.0,
        };

        assert_eq!(
            quiet.to_string(),
            "an alert is open; at 8.00 kWh/h usage has not yet fallen below the clear level of \
             4.00 kWh/h"
        );
    }
}
