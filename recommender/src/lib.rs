//! The recommender: consumes consumption events, scores them for carbon, stores savings advice
//! and raises RED alerts when a property's usage is too high.
//!
//! [`domain`] holds the rules themselves, free of any broker, database or HTTP type, so they can
//! be tested on plain values. Around it, one adapter per dependency:
//!
//! - [`kafka`]: the consumer group, manual commits and rebalances; [`dead_letter`]: the DLQ;
//! - [`carbon`]: the carbon function client; [`store`]: PostgreSQL; [`alerts`]: RabbitMQ;
//! - [`process`]: the steps for one message; [`service`]: one worker per partition that runs
//!   them in order, waits out failures with the [`retry`] policy and shuts down cleanly;
//! - [`config`], [`telemetry`], [`metrics`], [`health`]: configuration, logs and probes, wired
//!   by the thin `main.rs`.
//!
//! Run it with `cargo run -p recommender -- --help` for the flags.

pub mod alerts;
pub mod carbon;
pub mod config;
pub mod dead_letter;
pub mod domain;
#[cfg(test)]
mod fixtures;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod process;
pub mod retry;
pub mod service;
pub mod store;
pub mod telemetry;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Once;

pub use config::{Config, LogFormat};
pub use metrics::Metrics;
pub use service::Recommender;

/// Result of the recommender's start-up and run.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the recommender could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot work.
    #[error("invalid configuration")]
    Config(#[from] config::ConfigError),
    /// PostgreSQL could not be set up or migrated.
    #[error("cannot prepare PostgreSQL")]
    Store(#[from] store::StoreError),
    /// The carbon client could not be built.
    #[error("cannot build the carbon function client")]
    Carbon(#[from] carbon::CarbonError),
    /// A Kafka client could not be created or subscribed.
    #[error("cannot set up the Kafka clients")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Installs ring as the process-wide rustls provider, once. reqwest is built without a provider
/// of its own, so this must run before the first client is built.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider was installed first, which serves just as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Displays an error with its chain of sources, `outer: inner: root`, for one-line logs.
pub struct ErrorChain<'a>(pub &'a dyn StdError);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_shows_every_cause() {
        let io = std::io::Error::other("connection refused");
        let err = config::ConfigError::ReadThresholds {
            path: "/t.yaml".into(),
            source: io,
        };

        assert_eq!(
            ErrorChain(&err).to_string(),
            "cannot read the thresholds file /t.yaml: connection refused"
        );
    }
}
