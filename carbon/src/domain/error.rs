//! Why a calculation request cannot be answered, with the request field at fault.

use chrono::{DateTime, FixedOffset};

use crate::factors::LookupError;

/// Result of the calculation functions.
pub type Result<T, E = CalcError> = std::result::Result<T, E>;

/// A request the calculator rejects. Every variant names the request field at fault
/// ([`CalcError::field`]) and a stable machine-readable code ([`CalcError::code`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    /// No factor matches the region (or its country, for gas).
    #[error(transparent)]
    Factor(#[from] LookupError),
    /// `kwh` is negative or not a finite number.
    #[error("kwh must be a finite number of at least 0, got {kwh}")]
    InvalidKwh {
        /// The value received.
        kwh: f64,
    },
    /// `until` was given without `at`.
    #[error("`until` needs `at`: an interval needs its start")]
    UntilWithoutAt,
    /// The interval is empty or runs backwards.
    #[error("`until` ({until}) must be after `at` ({at})")]
    EmptyInterval {
        /// Start of the interval.
        at: DateTime<FixedOffset>,
        /// End of the interval.
        until: DateTime<FixedOffset>,
    },
    /// Hourly intensities were given without the interval they are spread over.
    #[error("`intensities` need the interval they apply to: `{missing}` is missing")]
    IntensitiesWithoutInterval {
        /// The missing field, `at` or `until`.
        missing: &'static str,
    },
    /// Hourly grid intensities were given for gas.
    #[error("hourly grid intensities apply to electricity, not gas")]
    IntensitiesForGas,
    /// One intensity is negative or not a finite number.
    #[error("intensities[{index}].gramsPerKwh must be a finite number of at least 0, got {grams}")]
    InvalidIntensity {
        /// Position in the request's `intensities`.
        index: usize,
        /// The value received.
        grams: f64,
    },
    /// Two intensities claim part of the same hour, so the energy there would count twice.
    #[error("intensities[{index}] starts at {hour_start}, inside the hour of another intensity")]
    OverlappingIntensities {
        /// Position in the request's `intensities` of the later of the two.
        index: usize,
        /// Its start.
        hour_start: DateTime<FixedOffset>,
    },
    /// The emissions overflow a 64-bit float: the inputs are far beyond any real reading.
    #[error("the result does not fit a 64-bit number; kwh or an intensity is too large")]
    OutOfRange,
}

impl CalcError {
    /// Stable code for clients, e.g. `unknown_region`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Factor(LookupError::UnknownRegion { .. }) => "unknown_region",
            Self::Factor(LookupError::UnknownGasRegion { .. }) => "unknown_gas_region",
            Self::InvalidKwh { .. } => "invalid_kwh",
            Self::UntilWithoutAt => "missing_at",
            Self::EmptyInterval { .. } => "invalid_interval",
            Self::IntensitiesWithoutInterval { .. } => "missing_interval",
            Self::IntensitiesForGas => "intensities_for_gas",
            Self::InvalidIntensity { .. } => "invalid_intensity",
            Self::OverlappingIntensities { .. } => "overlapping_intensities",
            Self::OutOfRange => "out_of_range",
        }
    }

    /// The request field at fault, as named on the wire (`kwh`, `intensities[2].gramsPerKwh`).
    pub fn field(&self) -> String {
        match self {
            Self::Factor(_) => "region".to_owned(),
            Self::InvalidKwh { .. } | Self::OutOfRange => "kwh".to_owned(),
            Self::UntilWithoutAt => "at".to_owned(),
            Self::EmptyInterval { .. } => "until".to_owned(),
            Self::IntensitiesWithoutInterval { missing } => (*missing).to_owned(),
            Self::IntensitiesForGas => "intensities".to_owned(),
            Self::InvalidIntensity { index, .. } => format!("intensities[{index}].gramsPerKwh"),
            Self::OverlappingIntensities { index, .. } => format!("intensities[{index}].hourStart"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_region_is_blamed_on_the_region_field() {
        let err = CalcError::from(LookupError::UnknownRegion {
            region: "XX".into(),
            known: vec!["GB"],
        });
        assert_eq!(
            (err.code(), err.field().as_str()),
            ("unknown_region", "region")
        );
        assert_eq!(err.to_string(), "unknown region `XX`; known regions: GB");
    }

    #[test]
    fn an_intensity_error_points_at_its_position_in_the_list() {
        let err = CalcError::InvalidIntensity {
            index: 3,
            grams: -1.0,
        };
        assert_eq!(err.field(), "intensities[3].gramsPerKwh");
        assert_eq!(err.code(), "invalid_intensity");
    }
}
