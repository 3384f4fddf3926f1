//! The shipped emission factors: every number with its region, year, basis, unit, source and
//! licence, copied from the publication named beside it (as collected in DOMAIN.md).
//!
//! Numbers stay in the unit their publisher uses; [`super::units`] converts them. A factor
//! without a source does not belong here.

use energy_contracts::{EmissionBasis, EnergyKind};

use super::{Factor, Published, Unit};

const DESNZ_LICENCE: &str = "Open Government Licence v3.0";
const EPA_LICENCE: &str = "Public domain (work of the US Government)";
const EEA_LICENCE: &str = "CC BY 4.0";
const SDES_IEA_LICENCE: &str =
    "SDES publication under Licence Ouverte 2.0 (verify); underlying IEA data under IEA terms";

const DESNZ_2023: &str = "UK Government GHG Conversion Factors for Company Reporting 2023 (DESNZ)";
const DESNZ_2024: &str = "UK Government GHG Conversion Factors for Company Reporting 2024 (DESNZ)";
const DESNZ_2025: &str = "UK Government GHG Conversion Factors for Company Reporting 2025 (DESNZ)";
const EGRID_2022: &str =
    "US EPA GHG Emission Factors Hub 2024, eGRID2022 total output CO2 emission rates";
const EPA_HUB_2024_FUELS: &str =
    "US EPA GHG Emission Factors Hub 2024, stationary combustion, natural gas (CO2)";
const EEA_INTENSITY: &str =
    "EEA indicator: greenhouse gas emission intensity of electricity generation, EU-27";
const SDES_IEA_2021: &str =
    "SDES (French Ministry statistics service), Chiffres clés du climat, after IEA data for 2021";

/// One grid-electricity factor published per kWh by a national table.
const fn grid(
    region: &'static str,
    year: i32,
    published: Published,
    source: &'static str,
    licence: &'static str,
) -> Factor {
    Factor {
        region,
        year,
        kind: EnergyKind::Electricity,
        basis: EmissionBasis::LocationBased,
        published,
        kg_co2e_per_cubic_metre: None,
        source,
        licence,
    }
}

/// A DESNZ "UK electricity" factor: electricity generated, kgCO2e/kWh, one table per year.
const fn desnz(year: i32, kg_per_kwh: f64, source: &'static str) -> Factor {
    let published = Published::new(kg_per_kwh, Unit::KgCo2ePerKwh);
    grid("GB", year, published, source, DESNZ_LICENCE)
}

/// An eGRID2022 subregion (or US total) output rate, published in lb CO2/MWh.
const fn egrid(region: &'static str, pounds_per_mwh: f64) -> Factor {
    let published = Published::new(pounds_per_mwh, Unit::LbCo2PerMwh);
    grid(region, 2022, published, EGRID_2022, EPA_LICENCE)
}

/// An IEA 2021 country (or EU) figure as quoted by SDES, in gCO2/kWh.
const fn iea_2021(region: &'static str, grams_per_kwh: f64) -> Factor {
    let published = Published::new(grams_per_kwh, Unit::GCo2PerKwh);
    grid(region, 2021, published, SDES_IEA_2021, SDES_IEA_LICENCE)
}

/// The table itself. Order is for readers only; look-ups do not depend on it.
pub(super) const FACTORS: &[Factor] = &[
    desnz(2023, 0.207_074, DESNZ_2023),
    desnz(2024, 0.207_05, DESNZ_2024),
    desnz(2025, 0.177_00, DESNZ_2025),
    // UK natural gas, gross calorific value, burnt on site; DESNZ also states it per m3.
    Factor {
        region: "GB",
        year: 2025,
        kind: EnergyKind::Gas,
        basis: EmissionBasis::Direct,
        published: Published::new(0.182_31, Unit::KgCo2ePerKwh),
        kg_co2e_per_cubic_metre: Some(2.026_33),
        source: DESNZ_2025,
        licence: DESNZ_LICENCE,
    },
    // US: eGRID2022 data as the EPA hub (2024 edition) publishes it, CO2 only, lb/MWh.
    egrid("US", 823.149),
    egrid("US-CAMX", 497.443),
    egrid("US-ERCT", 771.083),
    egrid("US-MROE", 1_479.621),
    egrid("US-NWPP", 602.088),
    egrid("US-NYUP", 274.559),
    egrid("US-RFCW", 1_000.053),
    // US natural gas combustion, per mmBtu (higher heating value), CO2 only.
    Factor {
        region: "US",
        year: 2024,
        kind: EnergyKind::Gas,
        basis: EmissionBasis::Direct,
        published: Published::new(53.06, Unit::KgCo2PerMmbtu),
        kg_co2e_per_cubic_metre: None,
        source: EPA_HUB_2024_FUELS,
        licence: EPA_LICENCE,
    },
    // EU-27 grid average from the EEA indicator (CO2e), then IEA 2021 figures (CO2 only).
    grid(
        "EU",
        2018,
        Published::new(281.0, Unit::GCo2ePerKwh),
        EEA_INTENSITY,
        EEA_LICENCE,
    ),
    iea_2021("EU", 264.0),
    iea_2021("DE", 384.0),
    iea_2021("FR", 60.0),
    iea_2021("PL", 748.0),
    iea_2021("SE", 34.0),
];
