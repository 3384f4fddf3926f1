//! The endpoints: `POST /` calculates, `GET /_/health` answers readiness, `GET /factors`
//! publishes the factor table with its sources.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use energy_contracts::{CarbonRequest, CarbonResponse, EmissionBasis, EnergyKind, Rating};
use serde::Serialize;

use super::HttpSettings;
use super::error::ApiError;
use crate::domain::{self, rating};
use crate::factors::{self, Unit, units};

/// `POST /`: one calculation. OpenFaaS forwards `<gateway>/function/carbon-calculator` here.
pub async fn calculate(
    State(settings): State<HttpSettings>,
    payload: Result<Json<CarbonRequest>, JsonRejection>,
) -> Result<Json<CarbonResponse>, ApiError> {
    let Json(request) = payload
        .map_err(|rejection| ApiError::from_json_rejection(rejection, settings.body_limit_bytes))?;

    // Only a code from the table goes on the span, never arbitrary caller text.
    let region = request.region.as_deref().unwrap_or(settings.default_region);
    if let Ok(region) = factors::canonical_region(region) {
        tracing::Span::current().record("region", region);
    }

    let answer = domain::calculate(&request, settings.default_region)?;
    tracing::debug!(
        kg_co2e = answer.kg_co2e,
        grams_per_kwh = answer.grams_per_kwh,
        factor_year = answer.factor.year,
        supplied = answer.factor.basis == EmissionBasis::Supplied,
        "calculated"
    );
    Ok(Json(answer))
}

/// Readiness answer of `GET /_/health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`: the function has no dependency that could be down.
    pub status: &'static str,
}

/// `GET /_/health`: the factor table is compiled in, so serving at all means ready.
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The document `GET /factors` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactorsDocument {
    /// Region used when a request names none.
    pub default_region: &'static str,
    /// Every shipped factor.
    pub factors: Vec<FactorEntry>,
    /// The unit conversions applied to published numbers.
    pub conversions: &'static [units::Conversion],
    /// The rating bands.
    pub rating_bands: Vec<RatingBand>,
}

/// One factor as `GET /factors` lists it: the published number and what it becomes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactorEntry {
    /// Region code.
    pub region: &'static str,
    /// Reporting year.
    pub year: i32,
    /// Electricity or gas.
    pub kind: EnergyKind,
    /// Location-based or direct.
    pub basis: EmissionBasis,
    /// The number as published.
    pub published_value: f64,
    /// The publication's unit.
    pub published_unit: Unit,
    /// `CO2e` or `CO2` alone.
    pub gases: &'static str,
    /// The number in kg per kWh, as the calculation uses it.
    pub kg_per_kwh: f64,
    /// For gas, the publisher's factor per cubic metre, when it states one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kg_co2e_per_cubic_metre: Option<f64>,
    /// The publication.
    pub source: &'static str,
    /// Its licence.
    pub licence: &'static str,
}

/// One rating band: intensities below `below_grams_per_kwh` (and at or above the previous
/// band's bound) get `rating`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatingBand {
    /// The letter.
    pub rating: Rating,
    /// Exclusive upper bound, gCO2e per kWh; absent for G, which has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below_grams_per_kwh: Option<f64>,
}

/// `GET /factors`: the table, its conversions and the rating bands.
pub async fn factors(State(settings): State<HttpSettings>) -> Json<FactorsDocument> {
    let entries = factors::all()
        .iter()
        .map(|factor| FactorEntry {
            region: factor.region,
            year: factor.year,
            kind: factor.kind,
            basis: factor.basis,
            published_value: factor.published.value,
            published_unit: factor.published.unit,
            gases: factor.published.unit.gases(),
            kg_per_kwh: factor.kg_per_kwh(),
            kg_co2e_per_cubic_metre: factor.kg_co2e_per_cubic_metre,
            source: factor.source,
            licence: factor.licence,
        })
        .collect();
    let mut bands: Vec<RatingBand> = rating::BAND_UPPER_BOUNDS_G_PER_KWH
        .iter()
        .map(|&(rating, upper)| RatingBand {
            rating,
            below_grams_per_kwh: Some(upper),
        })
        .collect();
    bands.push(RatingBand {
        rating: Rating::G,
        below_grams_per_kwh: None,
    });

    Json(FactorsDocument {
        default_region: settings.default_region,
        factors: entries,
        conversions: units::CONVERSIONS,
        rating_bands: bands,
    })
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
