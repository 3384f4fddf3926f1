//! Recommendations people can act on, each with what it saves in kWh and kgCO2e.
//!
//! Three kinds, chosen by the kind of energy:
//!
//! - electricity: shift flexible load to a cleaner hour, when one is known;
//! - electricity: cut standby load, when the night-time minimum is higher than usual;
//! - gas: lower the heating set-point overnight, or while the home is empty.
//!
//! Every saving is for the reading's own interval, so the savings of a series add up over its
//! readings without counting anything twice. Carbon is valued with the reading's effective
//! intensity from the carbon function (`gramsPerKwh`: the hourly intensity when the function was
//! given one, else its table factor). A 0 kWh electricity reading is flagged as suspicious and
//! gets no advice. Every assumption below is a named constant that says where it comes from;
//! money is not stated yet, as no tariff reaches the recommender.

use std::fmt;

use chrono::Timelike;
use energy_contracts::carbon::HourlyIntensity;
use energy_contracts::{CarbonResponse, EnergyKind};
use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, NIGHT_HOURS};
use super::reading::Reading;

/// Share of a reading's electricity that could run at another hour: the washing machine,
/// dishwasher, EV charging and water heating that DOMAIN.md names as flexible. DOMAIN.md gives no
/// share; 0.2 is this project's assumption.
pub const FLEXIBLE_LOAD_SHARE: f64 = 0.2;

/// Share of household electricity that is typically always-on (idle) load: "around a fifth",
/// DOMAIN.md, where it is marked *(verify)*; check it against the primary study before it ships.
/// A night-time minimum above this share of the property's mean rate is treated as avoidable
/// standby, and the excess is the saving.
pub const TYPICAL_IDLE_SHARE: f64 = 0.2;

/// Nights of history before a night-time minimum is trusted. This project's assumption: one
/// night may be a holiday with everything off, or a heater left on by mistake.
pub const STANDBY_MIN_NIGHTS: usize = 3;

/// Degrees Celsius of heating set-back suggested. This project's assumption: a change most
/// people do not notice while asleep or away.
pub const SETBACK_DEGREES_C: f64 = 2.0;

/// Share of the heating gas saved per degree Celsius of set-back during the set-back hours.
/// This project's assumption, not a cited figure: DOMAIN.md asks for a source and gives none.
/// It is a rough steady-state estimate (heat loss grows with the indoor–outdoor difference, and
/// over a heating season that difference is about 10 to 15 °C, so one degree is roughly 7 to
/// 10 % of it), taken below that range because the home must be reheated after a set-back.
/// Replace it with a cited figure before it ships.
pub const SETBACK_SAVING_PER_DEGREE_C: f64 = 0.06;

/// First local hour of the overnight set-back (22:00). This project's assumption.
pub const SETBACK_NIGHT_START_HOUR: u32 = 22;

/// Local hour the overnight set-back ends (06:00, exclusive). This project's assumption.
pub const SETBACK_NIGHT_END_HOUR: u32 = 6;

/// Grams in a kilogram, for intensities given in gCO2e/kWh.
const GRAMS_PER_KG: f64 = 1000.0;

/// What the advice for one reading is drawn from.
#[derive(Debug, Clone, Copy)]
pub struct AdviceInput<'a> {
    /// Electricity or gas.
    pub kind: EnergyKind,
    /// The reading being advised on.
    pub reading: &'a Reading,
    /// The carbon function's answer for this reading.
    pub carbon: &'a CarbonResponse,
    /// A cleaner hour ahead, when a grid-intensity feed names one. Its intensity must be of the
    /// same basis as the reading's (both hourly, both average or both marginal): the shift is
    /// valued by their difference, and DOMAIN.md warns against mixing the two kinds.
    pub cleaner_hour: Option<&'a HourlyIntensity>,
    /// The series' baseline, built with the reading's start as `before`.
    pub baseline: &'a Baseline,
}

/// The advice for one reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Advice {
    /// The reading looks like a data fault; nothing is advised on it.
    Suspicious(Suspicion),
    /// What people can do; empty when nothing would save anything.
    Recommendations(Vec<Recommendation>),
}

/// Why a reading is not advised on. [`fmt::Display`] says it for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Suspicion {
    /// 0 kWh of electricity: more often missing data than no use (CalTRACK data rules in
    /// DOMAIN.md).
    ZeroElectricity,
}

impl fmt::Display for Suspicion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroElectricity => f.write_str(
                "a 0 kWh electricity reading is more often missing data than no use; \
                 it is not advised on",
            ),
        }
    }
}

/// What a recommendation asks people to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecommendationKind {
    /// Run flexible electric loads in a lower-carbon hour.
    ShiftFlexibleLoad,
    /// Switch off always-on devices.
    CutStandby,
    /// Lower the heating set-point overnight or while away.
    HeatingSetBack,
}

/// One thing to do and what it saves over the reading's interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// What kind of action.
    pub kind: RecommendationKind,
    /// The action, in words for people, with its numbers.
    pub action: String,
    /// Energy saved, kWh; 0 for a shift, which moves energy rather than saving it.
    pub saving_kwh: f64,
    /// Emissions avoided, kgCO2e.
    pub saving_kg_co2e: f64,
}

/// The advice for one reading.
pub fn advise(input: &AdviceInput<'_>) -> Advice {
    if input.kind == EnergyKind::Electricity && input.reading.kwh() == 0.0 {
        return Advice::Suspicious(Suspicion::ZeroElectricity);
    }

    let candidates = match input.kind {
        EnergyKind::Electricity => vec![shift_flexible_load(input), cut_standby(input)],
        EnergyKind::Gas => vec![heating_set_back(input)],
    };
    Advice::Recommendations(candidates.into_iter().flatten().collect())
}

/// Valued by the intensity difference between now and the cleaner hour; no advice when no
/// cleaner hour is known, since a saving that cannot be stated is not one people can weigh.
fn shift_flexible_load(input: &AdviceInput<'_>) -> Option<Recommendation> {
    let cleaner = input.cleaner_hour?;
    let now_grams_per_kwh = input.carbon.grams_per_kwh;
    let avoided_grams_per_kwh = now_grams_per_kwh - cleaner.grams_per_kwh;
    if avoided_grams_per_kwh <= 0.0 || input.reading.kwh() <= 0.0 {
        return None;
    }

    let flexible_kwh = input.reading.kwh() * FLEXIBLE_LOAD_SHARE;
    let saving_kg_co2e = flexible_kwh * avoided_grams_per_kwh / GRAMS_PER_KG;
    let when = cleaner
        .hour_start
        .with_timezone(&input.baseline.zone())
        .format("%a %H:%M");
    let action = format!(
        "Run flexible loads (washing machine, dishwasher, EV charging, water heating) from \
         {when}, when the grid emits {:.0} gCO2e/kWh instead of {now_grams_per_kwh:.0} now: \
         moving the flexible part of this reading, about {flexible_kwh:.2} kWh, avoids \
         {saving_kg_co2e:.3} kgCO2e.",
        cleaner.grams_per_kwh,
    );
    Some(Recommendation {
        kind: RecommendationKind::ShiftFlexibleLoad,
        action,
        saving_kwh: 0.0,
        saving_kg_co2e,
    })
}

/// The night-time minimum above a typical idle share of the mean rate, over the reading's hours.
/// Standby runs around the clock, so valuing it at the reading's intensity is an approximation.
fn cut_standby(input: &AdviceInput<'_>) -> Option<Recommendation> {
    let night = input.baseline.night_profile()?;
    if night.nights < STANDBY_MIN_NIGHTS {
        return None;
    }
    let typical_idle_kwh_per_hour = TYPICAL_IDLE_SHARE * night.mean_kwh_per_hour;
    let excess_kwh_per_hour = night.minimum_kwh_per_hour - typical_idle_kwh_per_hour;
    if excess_kwh_per_hour <= 0.0 {
        return None;
    }

    // Nothing can save more than the reading used.
    let reading = input.reading;
    let saving_kwh = (excess_kwh_per_hour * reading.hours()).min(reading.kwh());
    let saving_kg_co2e = saving_kwh * input.carbon.grams_per_kwh / GRAMS_PER_KG;
    let action = format!(
        "This home never draws less than {:.2} kW between {:02}:00 and {:02}:00, more than the \
         fifth of average use that always-on devices typically take ({:.2} kW here). Switch off \
         or unplug what is left on standby: down to that level saves {saving_kwh:.2} kWh and \
         {saving_kg_co2e:.3} kgCO2e over this reading.",
        night.minimum_kwh_per_hour, NIGHT_HOURS.start, NIGHT_HOURS.end, typical_idle_kwh_per_hour,
    );
    Some(Recommendation {
        kind: RecommendationKind::CutStandby,
        action,
        saving_kwh,
        saving_kg_co2e,
    })
}

/// Overnight readings get the set-back as a plain saving; daytime ones only if nobody is home,
/// which the recommender cannot know, so the text says so.
fn heating_set_back(input: &AdviceInput<'_>) -> Option<Recommendation> {
    let reading = input.reading;
    let saving_kwh = reading.kwh() * SETBACK_DEGREES_C * SETBACK_SAVING_PER_DEGREE_C;
    if saving_kwh <= 0.0 {
        return None;
    }

    let saving_kg_co2e = saving_kwh * input.carbon.grams_per_kwh / GRAMS_PER_KG;
    let local_hour = reading.start().with_timezone(&input.baseline.zone()).hour();
    let overnight = !(SETBACK_NIGHT_END_HOUR..SETBACK_NIGHT_START_HOUR).contains(&local_hour);
    let action = if overnight {
        format!(
            "Lower the heating set-point by {SETBACK_DEGREES_C:.0} °C overnight \
             ({SETBACK_NIGHT_START_HOUR:02}:00 to {SETBACK_NIGHT_END_HOUR:02}:00): over this \
             reading that saves {saving_kwh:.2} kWh of gas and {saving_kg_co2e:.3} kgCO2e."
        )
    } else {
        format!(
            "When nobody is home, lower the heating set-point by {SETBACK_DEGREES_C:.0} °C: had \
             the home been empty during this reading, that would have saved {saving_kwh:.2} kWh \
             of gas and {saving_kg_co2e:.3} kgCO2e."
        )
    };
    Some(Recommendation {
        kind: RecommendationKind::HeatingSetBack,
        action,
        saving_kwh,
        saving_kg_co2e,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use chrono_tz::Europe::London;
    use energy_contracts::{EmissionBasis, EmissionFactor, Rating};

    use super::*;
    use crate::domain::thresholds::Thresholds;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test instants are valid RFC 3339")
            .to_utc()
    }

    fn reading(start: &str, minutes: i64, kwh: f64) -> Reading {
        let start = at(start);
        Reading::new(start, start + TimeDelta::minutes(minutes), kwh).expect("valid reading")
    }

    /// The carbon function's answer for `kwh` at `grams_per_kwh`.
    fn carbon(kwh: f64, grams_per_kwh: f64) -> CarbonResponse {
        CarbonResponse {
            kg_co2e: kwh * grams_per_kwh / 1000.0,
            grams_per_kwh,
            rating: Rating::C,
            factor: EmissionFactor {
                region: "GB".into(),
                year: 2025,
                basis: EmissionBasis::LocationBased,
                source: "test factor".into(),
                kg_per_kwh: grams_per_kwh / 1000.0,
            },
        }
    }

    fn baseline_from(history: &[Reading], kind: EnergyKind, before: &str) -> Baseline {
        Baseline::build(history, kind, at(before), &Thresholds::new(5.0, London))
    }

    /// `days` January days (local = UTC) of hourly readings: `night` kWh/h from 00:00 to 05:00,
    /// `day` kWh/h for the other 19 hours.
    fn days_of(days: usize, night: f64, day: f64) -> Vec<Reading> {
        let start = at("2026-01-05T00:00:00Z");
        (0..days * 24)
            .map(|h| {
                let from = start + TimeDelta::hours(h as i64);
                let kwh = if h % 24 < 5 { night } else { day };
                Reading::new(from, from + TimeDelta::hours(1), kwh).expect("valid reading")
            })
            .collect()
    }

    fn recommendations(advice: Advice) -> Vec<Recommendation> {
        match advice {
            Advice::Recommendations(recommendations) => recommendations,
            Advice::Suspicious(why) => panic!("expected recommendations, got suspicion: {why}"),
        }
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn a_zero_kwh_electricity_reading_is_flagged_not_advised_on() {
        let reading = reading("2026-01-05T10:00:00Z", 60, 0.0);
        let baseline = baseline_from(&[], EnergyKind::Electricity, "2026-01-05T10:00:00Z");
        let cleaner = HourlyIntensity {
            hour_start: at("2026-01-06T02:00:00Z").fixed_offset(),
            grams_per_kwh: 50.0,
        };

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Electricity,
            reading: &reading,
            carbon: &carbon(0.0, 250.0),
            cleaner_hour: Some(&cleaner),
            baseline: &baseline,
        });

        assert_eq!(advice, Advice::Suspicious(Suspicion::ZeroElectricity));
        assert!(
            Suspicion::ZeroElectricity
                .to_string()
                .contains("missing data")
        );
    }

    #[test]
    fn shifting_to_a_cleaner_hour_is_valued_by_the_intensity_difference() {
        // 2 kWh, a fifth flexible: 0.4 kWh × (250 - 100) g/kWh = 60 g = 0.06 kgCO2e.
        let reading = reading("2026-01-05T18:00:00Z", 60, 2.0);
        let baseline = baseline_from(&[], EnergyKind::Electricity, "2026-01-05T18:00:00Z");
        let cleaner = HourlyIntensity {
            hour_start: at("2026-01-06T02:00:00Z").fixed_offset(),
            grams_per_kwh: 100.0,
        };

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Electricity,
            reading: &reading,
            carbon: &carbon(2.0, 250.0),
            cleaner_hour: Some(&cleaner),
            baseline: &baseline,
        });

        let recommendations = recommendations(advice);
        assert_eq!(recommendations.len(), 1);
        let shift = &recommendations[0];
        assert_eq!(shift.kind, RecommendationKind::ShiftFlexibleLoad);
        assert_eq!(shift.saving_kwh, 0.0);
        assert_close(shift.saving_kg_co2e, 0.06);
        assert_eq!(
            shift.action,
            "Run flexible loads (washing machine, dishwasher, EV charging, water heating) from \
             Tue 02:00, when the grid emits 100 gCO2e/kWh instead of 250 now: moving the \
             flexible part of this reading, about 0.40 kWh, avoids 0.060 kgCO2e."
        );
    }

    #[test]
    fn no_shift_is_advised_when_the_other_hour_is_not_cleaner_or_none_is_known() {
        let reading = reading("2026-01-05T18:00:00Z", 60, 2.0);
        let baseline = baseline_from(&[], EnergyKind::Electricity, "2026-01-05T18:00:00Z");
        let dirtier = HourlyIntensity {
            hour_start: at("2026-01-06T02:00:00Z").fixed_offset(),
            grams_per_kwh: 300.0,
        };

        for cleaner_hour in [Some(&dirtier), None] {
            let advice = advise(&AdviceInput {
                kind: EnergyKind::Electricity,
                reading: &reading,
                carbon: &carbon(2.0, 250.0),
                cleaner_hour,
                baseline: &baseline,
            });
            assert_eq!(advice, Advice::Recommendations(Vec::new()));
        }
    }

    #[test]
    fn a_high_night_time_minimum_is_advised_down_to_the_typical_idle_share() {
        // Three days: 0.5 kWh/h at night, 1 kWh/h by day. Mean (5 × 0.5 + 19) / 24 = 21.5 / 24;
        // typical idle is a fifth of it, 4.3 / 24; the excess is 0.5 - 4.3 / 24 = 7.7 / 24 kWh/h,
        // saved over a one-hour reading. At 200 g/kWh that is 1.54 / 24 kg.
        let history = days_of(3, 0.5, 1.0);
        let baseline = baseline_from(&history, EnergyKind::Electricity, "2026-01-08T10:00:00Z");
        let reading = reading("2026-01-08T10:00:00Z", 60, 1.0);

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Electricity,
            reading: &reading,
            carbon: &carbon(1.0, 200.0),
            cleaner_hour: None,
            baseline: &baseline,
        });

        let recommendations = recommendations(advice);
        assert_eq!(recommendations.len(), 1);
        let standby = &recommendations[0];
        assert_eq!(standby.kind, RecommendationKind::CutStandby);
        assert_close(standby.saving_kwh, 7.7 / 24.0);
        assert_close(standby.saving_kg_co2e, 1.54 / 24.0);
        assert!(
            standby
                .action
                .starts_with("This home never draws less than 0.50 kW between 00:00 and 05:00"),
            "{}",
            standby.action
        );
    }

    #[test]
    fn the_standby_saving_never_exceeds_what_the_reading_used() {
        let history = days_of(3, 0.5, 1.0);
        let baseline = baseline_from(&history, EnergyKind::Electricity, "2026-01-08T10:00:00Z");
        let reading = reading("2026-01-08T10:00:00Z", 60, 0.1);

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Electricity,
            reading: &reading,
            carbon: &carbon(0.1, 200.0),
            cleaner_hour: None,
            baseline: &baseline,
        });

        assert_eq!(recommendations(advice)[0].saving_kwh, 0.1);
    }

    #[test]
    fn no_standby_advice_when_the_night_minimum_is_already_typical() {
        // Night 0.1 kWh/h against a typical idle of 0.2 × (0.5 + 19) / 24 = 0.1625 kWh/h.
        let history = days_of(3, 0.1, 1.0);
        let baseline = baseline_from(&history, EnergyKind::Electricity, "2026-01-08T10:00:00Z");
        let reading = reading("2026-01-08T10:00:00Z", 60, 1.0);

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Electricity,
            reading: &reading,
            carbon: &carbon(1.0, 200.0),
            cleaner_hour: None,
            baseline: &baseline,
        });

        assert_eq!(advice, Advice::Recommendations(Vec::new()));
    }

    #[test]
    fn no_standby_advice_from_fewer_than_three_nights() {
        let history = days_of(2, 0.5, 1.0);
        let baseline = baseline_from(&history, EnergyKind::Electricity, "2026-01-07T10:00:00Z");
        let reading = reading("2026-01-07T10:00:00Z", 60, 1.0);

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Electricity,
            reading: &reading,
            carbon: &carbon(1.0, 200.0),
            cleaner_hour: None,
            baseline: &baseline,
        });

        assert_eq!(advice, Advice::Recommendations(Vec::new()));
    }

    #[test]
    fn overnight_gas_gets_a_set_back_saving_of_twelve_percent() {
        // 3 kWh × 2 °C × 6 % = 0.36 kWh; at 183 g/kWh, 0.06588 kgCO2e. No shift or standby
        // advice for gas, even with a cleaner hour and a standby-heavy history.
        let history = days_of(3, 0.5, 1.0);
        let baseline = baseline_from(&history, EnergyKind::Gas, "2026-01-08T23:00:00Z");
        let reading = reading("2026-01-08T23:00:00Z", 60, 3.0);
        let cleaner = HourlyIntensity {
            hour_start: at("2026-01-09T02:00:00Z").fixed_offset(),
            grams_per_kwh: 50.0,
        };

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Gas,
            reading: &reading,
            carbon: &carbon(3.0, 183.0),
            cleaner_hour: Some(&cleaner),
            baseline: &baseline,
        });

        let recommendations = recommendations(advice);
        assert_eq!(recommendations.len(), 1);
        let set_back = &recommendations[0];
        assert_eq!(set_back.kind, RecommendationKind::HeatingSetBack);
        assert_close(set_back.saving_kwh, 0.36);
        assert_close(set_back.saving_kg_co2e, 0.06588);
        assert_eq!(
            set_back.action,
            "Lower the heating set-point by 2 °C overnight (22:00 to 06:00): over this reading \
             that saves 0.36 kWh of gas and 0.066 kgCO2e."
        );
    }

    #[test]
    fn daytime_gas_advice_is_conditional_on_the_home_being_empty() {
        // 10:00 BST on 1 June is 09:00 UTC: the local hour decides, not the UTC one.
        let baseline = baseline_from(&[], EnergyKind::Gas, "2026-06-01T09:00:00Z");
        let reading = reading("2026-06-01T09:00:00Z", 60, 1.0);

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Gas,
            reading: &reading,
            carbon: &carbon(1.0, 183.0),
            cleaner_hour: None,
            baseline: &baseline,
        });

        let recommendations = recommendations(advice);
        assert!(
            recommendations[0].action.starts_with("When nobody is home"),
            "{recommendations:?}"
        );
        assert_close(recommendations[0].saving_kwh, 0.12);
    }

    #[test]
    fn a_zero_gas_reading_is_plausible_and_simply_saves_nothing() {
        let baseline = baseline_from(&[], EnergyKind::Gas, "2026-06-01T09:00:00Z");
        let reading = reading("2026-06-01T09:00:00Z", 60, 0.0);

        let advice = advise(&AdviceInput {
            kind: EnergyKind::Gas,
            reading: &reading,
            carbon: &carbon(0.0, 183.0),
            cleaner_hour: None,
            baseline: &baseline,
        });

        assert_eq!(advice, Advice::Recommendations(Vec::new()));
    }

    #[test]
    fn advice_is_stored_as_camel_case_json() {
        let advice = Advice::Recommendations(vec![Recommendation {
            kind: RecommendationKind::CutStandby,
            action: "Switch off the old freezer.".into(),
            saving_kwh: 0.25,
            saving_kg_co2e: 0.05,
        }]);

        let json = serde_json::to_value(&advice).expect("advice serialises");

        assert_eq!(
            json,
            serde_json::json!({ "recommendations": [{
                "kind": "cut-standby",
                "action": "Switch off the old freezer.",
                "savingKwh": 0.25,
                "savingKgCo2e": 0.05
            }]})
        );
        assert_eq!(
            serde_json::to_value(Advice::Suspicious(Suspicion::ZeroElectricity)).expect("json"),
            serde_json::json!({ "suspicious": "zeroElectricity" })
        );
    }
}
