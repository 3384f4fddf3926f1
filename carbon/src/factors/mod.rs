//! The cited default emission factors and how a request picks one.
//!
//! - `table`: the numbers, each with region, year, basis, unit, source and licence.
//! - [`units`]: the conversions from publishers' units to kgCO2e per kWh.
//! - [`lookup`]: region code + energy kind + reporting year -> one [`Factor`].
//!
//! Region codes are `COUNTRY` or `COUNTRY-SUBREGION` (`GB`, `US`, `US-CAMX`, `DE`, plus `EU`).
//! Electricity factors belong to a grid region. Natural gas is a national fuel, so a gas request
//! uses the factor of the region's country: the part of the code before the hyphen. Year choice:
//! the factor of the reading's year, else the nearest earlier year, else the earliest; without a
//! year, the most recent. Nothing here knows about HTTP.

mod table;
pub mod units;

use energy_contracts::{EmissionBasis, EmissionFactor, EnergyKind};
use serde::Serialize;

/// Why no factor matches a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The region code is not in the table.
    #[error("unknown region `{region}`; known regions: {}", known.join(", "))]
    UnknownRegion {
        /// The code as the caller gave it.
        region: String,
        /// Every region code the table has.
        known: Vec<&'static str>,
    },
    /// The region is known, but no sourced natural gas factor covers its country.
    #[error(
        "no sourced natural gas factor for region `{region}` (country `{country}`); \
         gas factors exist for: {}",
        covered.join(", ")
    )]
    UnknownGasRegion {
        /// The region code.
        region: &'static str,
        /// The country part of the code, which gas factors are keyed by.
        country: &'static str,
        /// Countries that have a gas factor.
        covered: Vec<&'static str>,
    },
}

/// How a factor is stated in its publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// kgCO2e per kWh (DESNZ).
    #[serde(rename = "kgCO2e/kWh")]
    KgCo2ePerKwh,
    /// gCO2e per kWh (EEA).
    #[serde(rename = "gCO2e/kWh")]
    GCo2ePerKwh,
    /// gCO2 per kWh, carbon dioxide only (IEA).
    #[serde(rename = "gCO2/kWh")]
    GCo2PerKwh,
    /// lb CO2 per MWh, carbon dioxide only (EPA eGRID).
    #[serde(rename = "lbCO2/MWh")]
    LbCo2PerMwh,
    /// kg CO2 per mmBtu of fuel, carbon dioxide only (EPA fuel factors).
    #[serde(rename = "kgCO2/mmBtu")]
    KgCo2PerMmbtu,
}

impl Unit {
    /// kg per kWh of one of this unit.
    pub fn to_kg_per_kwh(self) -> f64 {
        match self {
            Self::KgCo2ePerKwh => 1.0,
            Self::GCo2ePerKwh | Self::GCo2PerKwh => 1.0 / units::GRAMS_PER_KG,
            Self::LbCo2PerMwh => units::KG_PER_KWH_PER_LB_PER_MWH,
            Self::KgCo2PerMmbtu => 1.0 / units::KWH_PER_MMBTU,
        }
    }

    /// The gases the unit counts: `CO2e` (CO2, CH4 and N2O weighted) or `CO2` alone.
    pub fn gases(self) -> &'static str {
        match self {
            Self::KgCo2ePerKwh | Self::GCo2ePerKwh => "CO2e",
            Self::GCo2PerKwh | Self::LbCo2PerMwh | Self::KgCo2PerMmbtu => "CO2",
        }
    }
}

/// A number as its publication states it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// The value, in `unit`.
    pub value: f64,
    /// The publication's unit.
    pub unit: Unit,
}

impl Published {
    /// A published value in its unit.
    pub const fn new(value: f64, unit: Unit) -> Self {
        Self { value, unit }
    }

    /// The value converted to kg per kWh.
    pub fn kg_per_kwh(self) -> f64 {
        self.value * self.unit.to_kg_per_kwh()
    }
}

/// One row of the factor table.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Region code (`GB`, `US-CAMX`, `DE`, ...).
    pub region: &'static str,
    /// Reporting year the publisher assigns to the number.
    pub year: i32,
    /// Electricity or gas.
    pub kind: EnergyKind,
    /// What the number counts: grid average (location-based) or combustion (direct).
    pub basis: EmissionBasis,
    /// The number as published.
    pub published: Published,
    /// For gas, the publisher's factor per cubic metre, when it states one.
    pub kg_co2e_per_cubic_metre: Option<f64>,
    /// The publication.
    pub source: &'static str,
    /// The publication's licence.
    pub licence: &'static str,
}

impl Factor {
    /// The factor in kg per kWh.
    pub fn kg_per_kwh(&self) -> f64 {
        self.published.kg_per_kwh()
    }

    /// The factor as the carbon contract names it in an answer.
    pub fn to_contract(&self) -> EmissionFactor {
        EmissionFactor {
            region: self.region.to_owned(),
            year: self.year,
            basis: self.basis,
            source: self.source.to_owned(),
            kg_per_kwh: self.kg_per_kwh(),
        }
    }
}

/// Every factor the function ships.
pub fn all() -> &'static [Factor] {
    table::FACTORS
}

/// Region codes that have an electricity factor, in table order. These are the codes a request
/// may name.
pub fn known_regions() -> Vec<&'static str> {
    distinct_regions(EnergyKind::Electricity)
}

/// The table's spelling of `code`. Codes are matched without regard to ASCII case.
pub fn canonical_region(code: &str) -> Result<&'static str, LookupError> {
    known_regions()
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(code.trim()))
        .ok_or_else(|| LookupError::UnknownRegion {
            region: code.to_owned(),
            known: known_regions(),
        })
}

/// The factor for `kind` in `region` for a reading in `year` (the most recent when `None`).
pub fn lookup(
    kind: EnergyKind,
    region: &str,
    year: Option<i32>,
) -> Result<&'static Factor, LookupError> {
    let region = canonical_region(region)?;
    match kind {
        EnergyKind::Electricity => Ok(select_year(rows(kind, region), year)
            .expect("every region in known_regions() has an electricity row")),
        EnergyKind::Gas => {
            let country = country_of(region);
            select_year(rows(kind, country), year).ok_or_else(|| LookupError::UnknownGasRegion {
                region,
                country,
                covered: distinct_regions(EnergyKind::Gas),
            })
        }
    }
}

/// Kilograms CO2e of `cubic_metres` of natural gas in `region` for `year`, with the publisher's
/// per-m3 factor. `None` when the country's gas factor is not also published per cubic metre.
pub fn gas_kg_for_cubic_metres(
    region: &str,
    year: Option<i32>,
    cubic_metres: f64,
) -> Result<Option<f64>, LookupError> {
    let factor = lookup(EnergyKind::Gas, region, year)?;
    Ok(factor
        .kg_co2e_per_cubic_metre
        .map(|per_m3| per_m3 * cubic_metres))
}

fn rows(kind: EnergyKind, region: &str) -> impl Iterator<Item = &'static Factor> + Clone {
    table::FACTORS
        .iter()
        .filter(move |factor| factor.kind == kind && factor.region == region)
}

/// The year rule of the module docs, applied to the rows of one region and kind.
fn select_year(
    rows: impl Iterator<Item = &'static Factor> + Clone,
    year: Option<i32>,
) -> Option<&'static Factor> {
    match year {
        None => rows.max_by_key(|factor| factor.year),
        Some(year) => rows
            .clone()
            .filter(|factor| factor.year <= year)
            .max_by_key(|factor| factor.year)
            .or_else(|| rows.min_by_key(|factor| factor.year)),
    }
}

fn country_of(region: &'static str) -> &'static str {
    region
        .split_once('-')
        .map_or(region, |(country, _)| country)
}

fn distinct_regions(kind: EnergyKind) -> Vec<&'static str> {
    let mut regions: Vec<&'static str> = Vec::new();
    for factor in table::FACTORS.iter().filter(|factor| factor.kind == kind) {
        if !regions.contains(&factor.region) {
            regions.push(factor.region);
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    fn electricity(region: &str, year: i32) -> &'static Factor {
        lookup(EnergyKind::Electricity, region, Some(year)).expect("region is in the table")
    }

    #[test]
    fn ten_kwh_in_gb_in_2025_is_1_77_kg() {
        let factor = electricity("GB", 2025);
        assert!(close(10.0 * factor.kg_per_kwh(), 1.77, 1e-12));
        assert_eq!(factor.basis, EmissionBasis::LocationBased);
    }

    #[test]
    fn one_mwh_in_camx_is_497_443_lb_times_0_45359_kg_per_lb() {
        // 497.443 lb x 0.45359 kg/lb = 225.63517 kg, worked by hand.
        let factor = electricity("US-CAMX", 2022);
        assert_eq!(factor.published, Published::new(497.443, Unit::LbCo2PerMwh));
        assert!(close(1_000.0 * factor.kg_per_kwh(), 225.635, 1e-3));
    }

    #[test]
    fn egrid_rates_convert_to_the_kg_per_kwh_domain_md_quotes() {
        let quoted = [
            ("US", 0.373),
            ("US-CAMX", 0.226),
            ("US-NYUP", 0.125),
            ("US-NWPP", 0.273),
            ("US-ERCT", 0.350),
            ("US-RFCW", 0.454),
            ("US-MROE", 0.671),
        ];
        for (region, kg_per_kwh) in quoted {
            let factor = electricity(region, 2022);
            assert!(close(factor.kg_per_kwh(), kg_per_kwh, 5e-4), "{region}");
        }
    }

    #[test]
    fn a_hundred_cubic_metres_of_gb_gas_in_2025_is_202_633_kg() {
        let kg = gas_kg_for_cubic_metres("GB", Some(2025), 100.0).expect("GB has gas");
        assert!(close(
            kg.expect("DESNZ publishes a per-m3 factor"),
            202.633,
            1e-9
        ));
    }

    #[test]
    fn gb_gas_per_m3_and_per_kwh_imply_a_calorific_value_inside_the_billed_range() {
        let factor = lookup(EnergyKind::Gas, "GB", Some(2025)).expect("GB has gas");
        let kwh_per_m3 = factor.kg_co2e_per_cubic_metre.expect("per-m3 factor") / 0.182_31;
        let calorific_value = kwh_per_m3 * units::MJ_PER_KWH / units::GAS_VOLUME_CORRECTION;
        assert!(
            (38.0..=41.0).contains(&calorific_value),
            "{calorific_value}"
        );
    }

    #[test]
    fn us_gas_is_53_06_kg_per_mmbtu_over_293_07107_kwh() {
        // 53.06 / 293.07107 = 0.181048 kg/kWh, worked by hand.
        let factor = lookup(EnergyKind::Gas, "US", Some(2024)).expect("US has gas");
        assert_eq!(factor.basis, EmissionBasis::Direct);
        assert!(close(factor.kg_per_kwh(), 0.181_048, 1e-6));
    }

    #[test]
    fn gas_in_a_us_subregion_uses_the_national_epa_factor() {
        let subregion = lookup(EnergyKind::Gas, "US-CAMX", None).expect("US has gas");
        assert_eq!(subregion.region, "US");
        assert_eq!(subregion.published.unit, Unit::KgCo2PerMmbtu);
    }

    #[test]
    fn gas_in_a_country_without_a_sourced_factor_is_an_error_naming_the_covered_ones() {
        let err = lookup(EnergyKind::Gas, "DE", None).expect_err("no German gas factor ships");
        assert_eq!(
            err,
            LookupError::UnknownGasRegion {
                region: "DE",
                country: "DE",
                covered: vec!["GB", "US"]
            }
        );
    }

    #[test]
    fn iea_country_figures_are_grams_of_co2_per_kwh() {
        let expected = [
            ("EU", 0.264),
            ("DE", 0.384),
            ("PL", 0.748),
            ("FR", 0.060),
            ("SE", 0.034),
        ];
        for (region, kg_per_kwh) in expected {
            let factor = electricity(region, 2021);
            assert_eq!(factor.year, 2021);
            assert_eq!(factor.published.unit.gases(), "CO2");
            assert!(close(factor.kg_per_kwh(), kg_per_kwh, 1e-12), "{region}");
        }
    }

    #[test]
    fn the_year_of_the_reading_picks_its_own_factor() {
        assert_eq!(electricity("GB", 2023).published.value, 0.207_074);
        assert_eq!(electricity("GB", 2024).published.value, 0.207_05);
    }

    #[test]
    fn a_year_without_a_factor_takes_the_nearest_earlier_one() {
        assert_eq!(electricity("GB", 2030).year, 2025);
        assert_eq!(electricity("EU", 2020).year, 2018);
    }

    #[test]
    fn a_year_before_the_table_takes_the_earliest_factor() {
        assert_eq!(electricity("GB", 1999).year, 2023);
    }

    #[test]
    fn no_year_takes_the_most_recent_factor() {
        let factor = lookup(EnergyKind::Electricity, "EU", None).expect("EU is known");
        assert_eq!(factor.year, 2021);
    }

    #[test]
    fn region_codes_match_without_regard_to_case() {
        assert_eq!(canonical_region("us-camx"), Ok("US-CAMX"));
        assert_eq!(canonical_region(" gb "), Ok("GB"));
    }

    #[test]
    fn an_unknown_region_lists_every_known_one() {
        let err = canonical_region("XX").expect_err("XX is not a region");
        let message = err.to_string();
        assert!(message.starts_with("unknown region `XX`"), "{message}");
        for region in known_regions() {
            assert!(message.contains(region), "{region} missing from {message}");
        }
    }

    #[test]
    fn every_factor_carries_a_source_a_licence_and_a_positive_finite_value() {
        for factor in all() {
            assert!(
                !factor.source.is_empty() && !factor.licence.is_empty(),
                "{factor:?}"
            );
            assert!(
                factor.kg_per_kwh().is_finite() && factor.kg_per_kwh() > 0.0,
                "{factor:?}"
            );
            assert_ne!(factor.basis, EmissionBasis::Supplied, "{factor:?}");
        }
    }

    #[test]
    fn no_region_has_two_factors_for_the_same_kind_and_year() {
        for (index, factor) in all().iter().enumerate() {
            let twin = all()[index + 1..].iter().find(|other| {
                other.region == factor.region
                    && other.kind == factor.kind
                    && other.year == factor.year
            });
            assert!(twin.is_none(), "{factor:?}");
        }
    }

    #[test]
    fn gas_factors_are_keyed_by_country_codes() {
        for factor in all().iter().filter(|factor| factor.kind == EnergyKind::Gas) {
            assert_eq!(country_of(factor.region), factor.region);
            assert_eq!(factor.basis, EmissionBasis::Direct);
        }
    }
}
