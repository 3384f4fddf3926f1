//! The carbon calculator's contract: `POST <gateway>/function/carbon-calculator`.
//!
//! The answer always names the factor it used (region, year, basis, source), so a figure can be
//! traced to its table. Location-based grid averages, direct combustion factors and lifecycle
//! factors are different things; [`EmissionBasis`] keeps them apart.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::EnergyKind;

/// One calculation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarbonRequest {
    /// Energy, kWh (finite, not negative).
    pub kwh: f64,
    /// Electricity or gas.
    #[serde(default)]
    pub kind: EnergyKind,
    /// Grid region code; the function's default region applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Start of the interval the energy was used in; picks the reporting year and, with
    /// `intensities`, the hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<FixedOffset>>,
    /// End of the interval (exclusive); with `intensities` the energy is spread evenly over
    /// `[at, until)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<FixedOffset>>,
    /// Hourly grid intensities the caller knows (for example from a grid operator's feed); used
    /// instead of the annual table factor for the hours they cover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intensities: Vec<HourlyIntensity>,
}

/// The grid's carbon intensity during one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourlyIntensity {
    /// Start of the hour.
    pub hour_start: DateTime<FixedOffset>,
    /// Intensity, gCO2e per kWh.
    pub grams_per_kwh: f64,
}

/// How a factor counts emissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmissionBasis {
    /// Grid-average factor of the GHG Protocol's location-based Scope 2 method.
    LocationBased,
    /// Combustion emissions only (fuel burnt on site).
    Direct,
    /// Including upstream and lifecycle emissions.
    Lifecycle,
    /// Hourly intensities supplied by the caller.
    Supplied,
}

/// The factor an answer used, with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmissionFactor {
    /// Region code of the factor (`GB`, `US-CAMX`, `DE`, ...).
    pub region: String,
    /// Reporting year of the factor.
    pub year: i32,
    /// What the factor counts.
    pub basis: EmissionBasis,
    /// The publication the number is taken from.
    pub source: String,
    /// Factor, kgCO2e per kWh.
    pub kg_per_kwh: f64,
}

/// Letter rating of an intensity, A (cleanest) to G.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rating {
    /// Cleanest band.
    A,
    /// Second band.
    B,
    /// Third band.
    C,
    /// Fourth band.
    D,
    /// Fifth band.
    E,
    /// Sixth band.
    F,
    /// Most carbon-intensive band.
    G,
}

/// The function's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarbonResponse {
    /// Emissions of the energy, kgCO2e.
    pub kg_co2e: f64,
    /// Effective intensity, gCO2e per kWh.
    pub grams_per_kwh: f64,
    /// Letter rating of the intensity.
    pub rating: Rating,
    /// The factor used.
    pub factor: EmissionFactor,
}
