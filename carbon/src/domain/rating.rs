//! The letter rating of an effective intensity.

use energy_contracts::Rating;

/// Exclusive upper bounds of bands A to F in gCO2e per kWh; at or above the last bound is G.
///
/// These are this project's own bands, not a published scale. Even 100 g steps keep the rule
/// easy to state and spread the shipped factors over the letters: Sweden (34 g) and France
/// (60 g) rate A, GB 2025 (177 g) B, the EU 2021 average (264 g) C, the US average (373 g) D,
/// RFCW (454 g) E, MROE (671 g) and Poland (748 g) G.
pub const BAND_UPPER_BOUNDS_G_PER_KWH: [(Rating, f64); 6] = [
    (Rating::A, 100.0),
    (Rating::B, 200.0),
    (Rating::C, 300.0),
    (Rating::D, 400.0),
    (Rating::E, 500.0),
    (Rating::F, 600.0),
];

/// The band of `grams_per_kwh`.
pub fn rate(grams_per_kwh: f64) -> Rating {
    BAND_UPPER_BOUNDS_G_PER_KWH
        .iter()
        .find(|(_, upper)| grams_per_kwh < *upper)
        .map_or(Rating::G, |(rating, _)| *rating)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_belongs_to_the_band_above_it() {
        assert_eq!(rate(0.0), Rating::A);
        assert_eq!(rate(99.999), Rating::A);
        assert_eq!(rate(100.0), Rating::B);
        assert_eq!(rate(299.9), Rating::C);
        assert_eq!(rate(300.0), Rating::D);
        assert_eq!(rate(450.0), Rating::E);
        assert_eq!(rate(599.0), Rating::F);
        assert_eq!(rate(600.0), Rating::G);
    }

    #[test]
    fn intensities_far_above_the_last_band_rate_g() {
        assert_eq!(rate(1_479.621 * 0.453_59), Rating::G);
        assert_eq!(rate(f64::MAX), Rating::G);
    }

    #[test]
    fn bands_rise_with_the_letter() {
        let bounds: Vec<f64> = BAND_UPPER_BOUNDS_G_PER_KWH
            .iter()
            .map(|(_, upper)| *upper)
            .collect();
        assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]));
        let letters: Vec<Rating> = BAND_UPPER_BOUNDS_G_PER_KWH
            .iter()
            .map(|(r, _)| *r)
            .collect();
        assert!(letters.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
