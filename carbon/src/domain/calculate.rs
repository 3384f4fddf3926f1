//! The calculation: a request's energy, kind, region and time -> kgCO2e, the effective
//! intensity, its rating and the factor used.

use chrono::Datelike;
use energy_contracts::{CarbonRequest, CarbonResponse, EmissionBasis, EmissionFactor, EnergyKind};

use super::hours::{Interval, SuppliedHours, blend};
use super::{CalcError, Result, rating};
use crate::factors::{self, units::GRAMS_PER_KG};

/// `source` of the factor in an answer computed wholly from the caller's intensities.
pub const SUPPLIED_SOURCE: &str = "hourly intensities supplied by the caller";

/// Answers one request. `default_region` applies when the request names none.
///
/// The reporting year is the calendar year of `at` in the caller's own offset: a reading at
/// 23:30 on 31 December in New York belongs to that year's report even though it is already
/// January in UTC.
pub fn calculate(request: &CarbonRequest, default_region: &str) -> Result<CarbonResponse> {
    // Check the input before any look-up, so an error names the caller's first mistake.
    if !(request.kwh.is_finite() && request.kwh >= 0.0) {
        return Err(CalcError::InvalidKwh { kwh: request.kwh });
    }
    let interval = interval(request)?;
    let supplied = supplied_hours(request, interval)?;

    let region = request.region.as_deref().unwrap_or(default_region);
    let year = request.at.map(|at| at.year());
    let factor = factors::lookup(request.kind, region, year)?;

    let (kg_per_kwh, used) = match supplied {
        None => (factor.kg_per_kwh(), factor.to_contract()),
        Some((interval, hours)) => {
            let blend = blend(&interval, &hours, factor.kg_per_kwh());
            // A blend that leans on the table even for a minute reports the table's factor,
            // so the answer never claims more than the caller supplied.
            let used = if blend.is_fully_supplied() {
                EmissionFactor {
                    region: factor.region.to_owned(),
                    year: year.unwrap_or(factor.year),
                    basis: EmissionBasis::Supplied,
                    source: SUPPLIED_SOURCE.to_owned(),
                    kg_per_kwh: blend.kg_per_kwh,
                }
            } else {
                factor.to_contract()
            };
            (blend.kg_per_kwh, used)
        }
    };

    let kg_co2e = request.kwh * kg_per_kwh;
    let grams_per_kwh = kg_per_kwh * GRAMS_PER_KG;
    if !(kg_co2e.is_finite() && grams_per_kwh.is_finite()) {
        return Err(CalcError::OutOfRange);
    }
    Ok(CarbonResponse {
        kg_co2e,
        grams_per_kwh,
        rating: rating::rate(grams_per_kwh),
        factor: used,
    })
}

fn interval(request: &CarbonRequest) -> Result<Option<Interval>> {
    match (request.at, request.until) {
        (Some(at), Some(until)) => Interval::new(at, until).map(Some),
        (None, Some(_)) => Err(CalcError::UntilWithoutAt),
        (_, None) => Ok(None),
    }
}

fn supplied_hours(
    request: &CarbonRequest,
    interval: Option<Interval>,
) -> Result<Option<(Interval, SuppliedHours)>> {
    if request.intensities.is_empty() {
        return Ok(None);
    }
    if request.kind == EnergyKind::Gas {
        return Err(CalcError::IntensitiesForGas);
    }
    let Some(interval) = interval else {
        let missing = if request.at.is_none() { "at" } else { "until" };
        return Err(CalcError::IntensitiesWithoutInterval { missing });
    };
    Ok(Some((interval, SuppliedHours::new(&request.intensities)?)))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, FixedOffset};
    use energy_contracts::Rating;
    use energy_contracts::carbon::HourlyIntensity;

    use super::*;

    fn time(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).expect("test times are valid RFC 3339")
    }

    fn request(kwh: f64, region: &str) -> CarbonRequest {
        CarbonRequest {
            kwh,
            kind: EnergyKind::Electricity,
            region: Some(region.to_owned()),
            at: None,
            until: None,
            intensities: Vec::new(),
        }
    }

    fn at(mut request: CarbonRequest, at: &str, until: &str) -> CarbonRequest {
        request.at = Some(time(at));
        request.until = Some(time(until));
        request
    }

    fn hours(starts_and_grams: &[(&str, f64)]) -> Vec<HourlyIntensity> {
        starts_and_grams
            .iter()
            .map(|&(start, grams_per_kwh)| HourlyIntensity {
                hour_start: time(start),
                grams_per_kwh,
            })
            .collect()
    }

    #[test]
    fn ten_kwh_in_gb_during_2025_is_1_77_kg_rated_b() {
        let request = at(
            request(10.0, "GB"),
            "2025-03-01T10:00:00Z",
            "2025-03-01T11:00:00Z",
        );
        let answer = calculate(&request, "US").expect("valid request");
        assert!((answer.kg_co2e - 1.77).abs() < 1e-12);
        assert!((answer.grams_per_kwh - 177.0).abs() < 1e-9);
        assert_eq!(answer.rating, Rating::B);
        assert_eq!(answer.factor.year, 2025);
        assert_eq!(answer.factor.basis, EmissionBasis::LocationBased);
    }

    #[test]
    fn the_default_region_applies_when_the_request_names_none() {
        let mut request = request(1_000.0, "unused");
        request.region = None;
        let answer = calculate(&request, "US-CAMX").expect("valid request");
        assert_eq!(answer.factor.region, "US-CAMX");
        assert!((answer.kg_co2e - 225.635).abs() < 1e-3);
    }

    #[test]
    fn the_reporting_year_is_the_callers_calendar_year_not_utcs() {
        // 23:30 on 31 Dec 2023 in New York is 2024 in UTC; the 2023 factor applies.
        let mut request = request(1.0, "GB");
        request.at = Some(time("2023-12-31T23:30:00-05:00"));
        let answer = calculate(&request, "GB").expect("valid request");
        assert_eq!(answer.factor.year, 2023);
        assert_eq!(answer.factor.kg_per_kwh, 0.207_074);
    }

    #[test]
    fn gas_uses_the_direct_combustion_factor_of_the_country() {
        let mut request = request(100.0, "US-NYUP");
        request.kind = EnergyKind::Gas;
        let answer = calculate(&request, "GB").expect("valid request");
        assert_eq!(answer.factor.region, "US");
        assert_eq!(answer.factor.basis, EmissionBasis::Direct);
        assert!((answer.kg_co2e - 100.0 * 53.06 / 293.071_07).abs() < 1e-9);
    }

    #[test]
    fn intensities_covering_the_whole_interval_answer_with_the_supplied_basis() {
        let mut request = at(
            request(2.0, "GB"),
            "2025-01-15T17:30:00Z",
            "2025-01-15T18:30:00Z",
        );
        request.intensities = hours(&[
            ("2025-01-15T17:00:00Z", 250.0),
            ("2025-01-15T18:00:00Z", 150.0),
        ]);
        let answer = calculate(&request, "GB").expect("valid request");
        // Half an hour at 250 g and half at 150 g: 200 g/kWh, 2 kWh -> 0.4 kg.
        assert!((answer.grams_per_kwh - 200.0).abs() < 1e-9);
        assert!((answer.kg_co2e - 0.4).abs() < 1e-12);
        assert_eq!(answer.rating, Rating::C);
        assert_eq!(answer.factor.basis, EmissionBasis::Supplied);
        assert_eq!(answer.factor.source, SUPPLIED_SOURCE);
        assert_eq!(
            (answer.factor.region.as_str(), answer.factor.year),
            ("GB", 2025)
        );
    }

    #[test]
    fn intensities_covering_part_of_the_interval_keep_the_table_factor_in_the_answer() {
        let mut request = at(
            request(1.0, "GB"),
            "2025-01-15T17:00:00Z",
            "2025-01-15T19:00:00Z",
        );
        request.intensities = hours(&[("2025-01-15T17:00:00Z", 77.0)]);
        let answer = calculate(&request, "GB").expect("valid request");
        // One hour at 77 g, one at the 2025 table's 177 g: 127 g/kWh.
        assert!((answer.grams_per_kwh - 127.0).abs() < 1e-9);
        assert_eq!(answer.factor.basis, EmissionBasis::LocationBased);
        assert_eq!(answer.factor.kg_per_kwh, 0.177);
    }

    #[test]
    fn zero_kwh_is_zero_kg_at_the_regions_intensity() {
        let answer = calculate(&request(0.0, "SE"), "GB").expect("valid request");
        assert_eq!(answer.kg_co2e, 0.0);
        assert_eq!(answer.rating, Rating::A);
    }

    #[test]
    fn negative_or_non_finite_kwh_is_rejected() {
        for kwh in [-0.5, f64::NAN, f64::INFINITY] {
            let err = calculate(&request(kwh, "GB"), "GB").expect_err("invalid kwh");
            assert_eq!(err.field(), "kwh");
        }
    }

    #[test]
    fn an_interval_that_runs_backwards_is_rejected() {
        let request = at(
            request(1.0, "GB"),
            "2025-01-15T18:00:00Z",
            "2025-01-15T17:00:00Z",
        );
        let err = calculate(&request, "GB").expect_err("backwards interval");
        assert_eq!(
            (err.code(), err.field().as_str()),
            ("invalid_interval", "until")
        );
    }

    #[test]
    fn until_without_at_is_rejected() {
        let mut request = request(1.0, "GB");
        request.until = Some(time("2025-01-15T18:00:00Z"));
        assert_eq!(calculate(&request, "GB"), Err(CalcError::UntilWithoutAt));
    }

    #[test]
    fn intensities_without_an_end_name_the_missing_field() {
        let mut request = request(1.0, "GB");
        request.at = Some(time("2025-01-15T17:00:00Z"));
        request.intensities = hours(&[("2025-01-15T17:00:00Z", 77.0)]);
        let err = calculate(&request, "GB").expect_err("no interval");
        assert_eq!(
            err,
            CalcError::IntensitiesWithoutInterval { missing: "until" }
        );
    }

    #[test]
    fn intensities_for_gas_are_rejected() {
        let mut request = at(
            request(1.0, "GB"),
            "2025-01-15T17:00:00Z",
            "2025-01-15T18:00:00Z",
        );
        request.kind = EnergyKind::Gas;
        request.intensities = hours(&[("2025-01-15T17:00:00Z", 77.0)]);
        assert_eq!(calculate(&request, "GB"), Err(CalcError::IntensitiesForGas));
    }

    #[test]
    fn an_unknown_region_is_a_typed_error() {
        let err = calculate(&request(1.0, "ATLANTIS"), "GB").expect_err("unknown region");
        assert_eq!(err.code(), "unknown_region");
    }

    #[test]
    fn a_result_beyond_f64_is_an_error_not_infinity() {
        // The largest float of kWh at 2 kg/kWh overflows; JSON would carry it as null.
        let mut request = at(
            request(f64::MAX, "PL"),
            "2025-01-15T17:00:00Z",
            "2025-01-15T18:00:00Z",
        );
        request.intensities = hours(&[("2025-01-15T17:00:00Z", 2_000.0)]);
        assert_eq!(calculate(&request, "GB"), Err(CalcError::OutOfRange));
    }
}
