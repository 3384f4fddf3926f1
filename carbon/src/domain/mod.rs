//! The calculator's domain: pure functions from an [`energy_contracts::CarbonRequest`] to an
//! [`energy_contracts::CarbonResponse`], with no I/O and no HTTP.
//!
//! - [`calculate()`]: validation, factor choice and the arithmetic (kgCO2e = kWh x kg/kWh).
//! - [`hours`]: spreading energy over an interval against hourly intensities.
//! - [`rating`]: the letter bands.
//! - [`CalcError`]: every way a request can be refused, each naming its field.

pub mod calculate;
mod error;
pub mod hours;
pub mod rating;

pub use calculate::calculate;
pub use error::{CalcError, Result};
