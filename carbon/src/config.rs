//! The function's configuration: one clap struct, every flag also readable from the
//! environment, which is how OpenFaaS and Kubernetes pass it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::factors;
use crate::http::HttpSettings;

/// Command line and environment of the carbon calculator.
#[derive(Debug, Clone, Parser)]
#[command(name = "carbon-calculator", version, about)]
pub struct Config {
    /// Address and port to listen on; OpenFaaS expects port 8080.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,

    /// Region code for requests that name none (GB, US, US-CAMX, EU, DE, ...; see GET /factors).
    #[arg(long, env = "DEFAULT_REGION", default_value = "GB", value_parser = parse_region)]
    pub default_region: &'static str,

    /// Largest accepted request body, in bytes.
    #[arg(
        long,
        env = "BODY_LIMIT_BYTES",
        default_value_t = 1_048_576,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub body_limit_bytes: u64,

    /// Longest a request may take, body upload included, in seconds; slower ones answer 408.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub request_timeout_secs: u64,

    /// After SIGTERM or SIGINT, how long in-flight requests may run before the process exits,
    /// in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Log format: `text` for a terminal, `json` for deployments.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the request span's fields.
    Json,
}

impl Config {
    /// The settings the HTTP adapter needs.
    pub fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            default_region: self.default_region,
            // A limit beyond the address space cannot be reached anyway.
            body_limit_bytes: usize::try_from(self.body_limit_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        }
    }

    /// How long shutdown waits for in-flight requests.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Accepts only codes the factor table has, so a typo fails at start-up, not per request.
fn parse_region(code: &str) -> Result<&'static str, String> {
    factors::canonical_region(code).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_8080_for_gb_with_text_logs() {
        let config = Config::try_parse_from(["carbon-calculator"]).expect("defaults parse");
        assert_eq!(config.bind, "0.0.0.0:8080".parse().expect("valid address"));
        assert_eq!(config.default_region, "GB");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.http_settings().body_limit_bytes, 1_048_576);
    }

    #[test]
    fn the_default_region_is_normalised_to_the_tables_spelling() {
        let config = Config::try_parse_from(["carbon-calculator", "--default-region", "us-camx"])
            .expect("known region");
        assert_eq!(config.default_region, "US-CAMX");
    }

    #[test]
    fn an_unknown_default_region_fails_at_start_up() {
        let err = Config::try_parse_from(["carbon-calculator", "--default-region", "XX"])
            .expect_err("unknown region");
        assert!(err.to_string().contains("unknown region `XX`"), "{err}");
    }

    #[test]
    fn a_zero_body_limit_is_refused() {
        let result = Config::try_parse_from(["carbon-calculator", "--body-limit-bytes", "0"]);
        assert!(result.is_err());
    }

    #[test]
    fn json_logs_are_chosen_by_flag() {
        let config = Config::try_parse_from(["carbon-calculator", "--log-format", "json"])
            .expect("valid format");
        assert_eq!(config.log_format, LogFormat::Json);
    }
}
