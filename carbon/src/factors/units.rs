//! Unit conversions that turn a publisher's number into kgCO2e per kWh, each with its source.
//!
//! Publishers state factors in their own units (lb/MWh, kg/mmBtu, g/kWh). The table keeps the
//! published number and unit, and the conversions here are applied when a factor is used, so a
//! reader can check every figure against its publication and every conversion against its
//! definition. [`CONVERSIONS`] lists them for the `/factors` document.

use serde::Serialize;

/// kg/kWh per lb/MWh: 1 lb = 0.45359237 kg exactly (international avoirdupois pound, defined by
/// the International Yard and Pound Agreement of 1959) and 1 MWh = 1,000 kWh.
///
/// DOMAIN.md states the factor as 0.00045359; that rounding is kept so figures match its worked
/// values. It sits 5 parts per million below the exact 0.00045359237.
pub const KG_PER_KWH_PER_LB_PER_MWH: f64 = 0.000_453_59;

/// kWh in one mmBtu (10^6 British thermal units): the International Table Btu is
/// 1,055.05585262 J (NIST Special Publication 811, Appendix B) and 1 kWh is 3.6 MJ, so
/// 1.05505585262e9 J / 3.6e6 J/kWh = 293.07107 kWh.
pub const KWH_PER_MMBTU: f64 = 293.071_07;

/// Grams per kilogram.
pub const GRAMS_PER_KG: f64 = 1_000.0;

/// Megajoules per kWh, exact by definition of the watt-hour (3,600 J per Wh).
pub const MJ_PER_KWH: f64 = 3.6;

/// Volume correction factor UK gas bills apply to metered cubic metres, for the temperature and
/// pressure of delivered gas (Gas (Calculation of Thermal Energy) Regulations 1996, as amended;
/// the figure as DOMAIN.md gives it).
pub const GAS_VOLUME_CORRECTION: f64 = 1.022_64;

/// kWh of natural gas in `cubic_metres` as a UK bill computes it: volume × volume correction ×
/// calorific value (MJ/m3, printed on the bill, about 38–41) / 3.6 MJ per kWh.
pub fn gas_kwh_from_cubic_metres(cubic_metres: f64, calorific_value_mj_per_m3: f64) -> f64 {
    cubic_metres * GAS_VOLUME_CORRECTION * calorific_value_mj_per_m3 / MJ_PER_KWH
}

/// One conversion constant with what it converts and where its value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversion {
    /// What the constant converts, e.g. `lb/MWh -> kg/kWh`.
    pub converts: &'static str,
    /// Multiply the first unit by this to get the second.
    pub factor: f64,
    /// The definition or publication the value rests on.
    pub source: &'static str,
}

/// Every conversion the factor table applies, as published in the `/factors` document.
pub const CONVERSIONS: &[Conversion] = &[
    Conversion {
        converts: "lb/MWh -> kg/kWh",
        factor: KG_PER_KWH_PER_LB_PER_MWH,
        source: "1 lb = 0.45359237 kg (International Yard and Pound Agreement, 1959), \
                 1 MWh = 1000 kWh; rounded as DOMAIN.md states it",
    },
    Conversion {
        converts: "kg/mmBtu -> kg/kWh",
        factor: 1.0 / KWH_PER_MMBTU,
        source: "1 mmBtu = 293.07107 kWh: 1 Btu(IT) = 1055.05585262 J \
                 (NIST Special Publication 811, Appendix B), 1 kWh = 3.6 MJ",
    },
    Conversion {
        converts: "g/kWh -> kg/kWh",
        factor: 1.0 / GRAMS_PER_KG,
        source: "SI prefixes",
    },
    Conversion {
        converts: "m3 of gas -> kWh, per MJ/m3 of calorific value",
        factor: GAS_VOLUME_CORRECTION / MJ_PER_KWH,
        source: "UK gas billing: volume x 1.02264 (Gas (Calculation of Thermal Energy) \
                 Regulations 1996) x calorific value / 3.6 MJ per kWh",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pound_conversion_is_the_exact_pound_rounded_to_five_figures() {
        let exact = 0.453_592_37 / 1_000.0;
        assert!((KG_PER_KWH_PER_LB_PER_MWH - exact).abs() / exact < 1e-5);
    }

    #[test]
    fn one_mmbtu_is_the_international_table_btu_in_kwh() {
        let joules_per_mmbtu = 1_055.055_852_62 * 1e6;
        let kwh = joules_per_mmbtu / (MJ_PER_KWH * 1e6);
        assert!((KWH_PER_MMBTU - kwh).abs() < 1e-5, "{kwh}");
    }

    #[test]
    fn a_cubic_metre_of_gas_at_39_point_5_mj_is_about_eleven_kwh() {
        // 1 m3 x 1.02264 x 39.5 MJ/m3 / 3.6 = 11.2206 kWh, worked by hand.
        let kwh = gas_kwh_from_cubic_metres(1.0, 39.5);
        assert!((kwh - 11.220_6).abs() < 1e-4, "{kwh}");
    }

    #[test]
    fn every_listed_conversion_names_its_source() {
        for conversion in CONVERSIONS {
            assert!(!conversion.source.is_empty(), "{}", conversion.converts);
            assert!(conversion.factor.is_finite() && conversion.factor > 0.0);
        }
    }
}
