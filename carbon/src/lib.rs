//! The carbon calculator: an HTTP function, run by OpenFaaS, that turns energy into emissions
//! with a cited default factor table and, when given, the caller's hourly grid intensities.
//!
//! `POST /` takes an [`energy_contracts::CarbonRequest`] and answers an
//! [`energy_contracts::CarbonResponse`]: kgCO2e, the effective gCO2e/kWh, a letter rating and
//! the factor used with its region, year, basis and source. `GET /factors` publishes the table
//! with every source and licence; `GET /_/health` is the readiness probe OpenFaaS uses.
//!
//! Layout, from the core outwards:
//! - [`factors`]: the cited table and the rules that pick a factor (no HTTP).
//! - [`domain`]: validation and the arithmetic, pure functions (no HTTP, no I/O).
//! - [`http`]: the axum router and tower-http layers, the JSON error answer.
//! - [`config`], [`telemetry`], [`server`]: configuration, logs, serving and shutdown, wired
//!   by the thin `main.rs`.
//!
//! Run it with `cargo run -p carbon-calculator -- --help` for the flags.
//!
//! Known limits:
//! - The table holds the factors DOMAIN.md collected; regions or years outside it use the
//!   rules in [`factors`] (nearest earlier year, or an error for an unknown region).
//! - eGRID, EPA fuel and IEA figures count CO2 only; DESNZ and EEA figures count CO2e. The
//!   answer's `source` names the publication; `GET /factors` states the gases of each row.
//! - Gas is answered per kWh only: the request has no volume field, so the per-m3 factor is
//!   offered through [`factors::gas_kg_for_cubic_metres`] and `GET /factors`.
//! - When supplied intensities cover only part of an interval, the answer's `factor` is the
//!   table factor while `gramsPerKwh` is the blend; the contract has no field for the share.

#![forbid(unsafe_code)]

pub mod config;
pub mod domain;
pub mod factors;
pub mod http;
pub mod server;
pub mod telemetry;

pub use config::{Config, LogFormat};
pub use domain::{CalcError, calculate};
pub use http::{HttpSettings, router};
