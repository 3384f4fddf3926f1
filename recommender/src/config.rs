//! The recommender's configuration: one clap struct, every flag also readable from the
//! environment (how the operator's Deployment passes it), and the thresholds file the operator
//! mounts from a ConfigMap.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use energy_contracts::names::{ALERT_EXCHANGE, CONSUMPTION_TOPIC, RECOMMENDER_GROUP};
use reqwest::Url;

use crate::domain::{Thresholds, ThresholdsError};
use crate::retry::RetryPolicy;

/// Command line and environment of the recommender.
#[derive(Debug, Clone, Parser)]
#[command(name = "recommender", version, about)]
pub struct Config {
    /// Kafka bootstrap servers, `host:port` separated by commas.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// Topic of consumption events; undecodable ones go to `<topic>.dlq`.
    #[arg(long, env = "KAFKA_TOPIC", default_value = CONSUMPTION_TOPIC)]
    pub kafka_topic: String,

    /// Kafka consumer group; replicas in one group share the topic's partitions.
    #[arg(long, env = "KAFKA_GROUP", default_value = RECOMMENDER_GROUP)]
    pub kafka_group: String,

    /// PostgreSQL URL of the platform database (the schema is migrated at start-up).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/energy"
    )]
    pub database_url: String,

    /// Most PostgreSQL connections the recommender holds; each partition's worker uses one at a
    /// time.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// URL the carbon function answers `POST` requests on.
    #[arg(
        long,
        env = "CARBON_URL",
        default_value = "http://gateway.openfaas:8080/function/carbon-calculator"
    )]
    pub carbon_url: Url,

    /// Longest one carbon function call may take, in milliseconds.
    #[arg(
        long,
        env = "CARBON_TIMEOUT_MS",
        default_value_t = 2_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub carbon_timeout_ms: u64,

    /// Calls made to the carbon function for one reading before the partition falls back to
    /// waiting with the retry backoff.
    #[arg(
        long,
        env = "CARBON_ATTEMPTS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..=20)
    )]
    pub carbon_attempts: u64,

    /// First wait after a transient failure, in milliseconds; each further wait doubles.
    #[arg(
        long,
        env = "RETRY_MIN_BACKOFF_MS",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retry_min_backoff_ms: u64,

    /// Longest wait between two retries, in milliseconds (jitter may add up to as much again).
    #[arg(
        long,
        env = "RETRY_MAX_BACKOFF_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retry_max_backoff_ms: u64,

    /// AMQP URL of RabbitMQ, with the vhost as its path.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Topic exchange RED alerts are published to (declared durable if missing).
    #[arg(long, env = "ALERT_EXCHANGE", default_value = ALERT_EXCHANGE)]
    pub alert_exchange: String,

    /// Longest wait for RabbitMQ to confirm one alert, in milliseconds.
    #[arg(
        long,
        env = "ALERT_CONFIRM_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub alert_confirm_timeout_ms: u64,

    /// Thresholds file, JSON (`.json`) or YAML (anything else), with the camelCase fields of the
    /// operator's thresholds ConfigMap.
    #[arg(
        long,
        env = "THRESHOLDS_FILE",
        default_value = "/etc/recommender/thresholds.yaml"
    )]
    pub thresholds_file: PathBuf,

    /// Address of the `/healthz`, `/readyz` and `/metrics` server.
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:9090")]
    pub metrics_address: SocketAddr,

    /// Log format: `text` for a terminal, `json` for deployments.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the message span's fields.
    Json,
}

/// A setting that cannot work, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The retry bounds are upside down.
    #[error("retry-max-backoff-ms ({max}) must not be below retry-min-backoff-ms ({min})")]
    BackoffBounds {
        /// The configured first wait, ms.
        min: u64,
        /// The configured longest wait, ms.
        max: u64,
    },
    /// The thresholds file could not be read.
    #[error("cannot read the thresholds file {path}")]
    ReadThresholds {
        /// The configured path.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The thresholds file is not JSON or YAML of the expected shape.
    #[error("the thresholds file {path} is not valid: {reason}")]
    ParseThresholds {
        /// The configured path.
        path: PathBuf,
        /// What the parser said, with the line when it knows one.
        reason: String,
    },
    /// A threshold value cannot work.
    #[error("the thresholds file {path} holds a bad value")]
    InvalidThresholds {
        /// The configured path.
        path: PathBuf,
        /// Which field and why.
        #[source]
        source: ThresholdsError,
    },
}

impl Config {
    /// Checks what clap cannot check field by field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retry_max_backoff_ms < self.retry_min_backoff_ms {
            return Err(ConfigError::BackoffBounds {
                min: self.retry_min_backoff_ms,
                max: self.retry_max_backoff_ms,
            });
        }
        Ok(())
    }

    /// The retry policy every transient failure is waited out with.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            min_backoff: Duration::from_millis(self.retry_min_backoff_ms),
            max_backoff: Duration::from_millis(self.retry_max_backoff_ms),
        }
    }

    /// Timeout of one carbon function call.
    pub fn carbon_timeout(&self) -> Duration {
        Duration::from_millis(self.carbon_timeout_ms)
    }

    /// Timeout of one RabbitMQ confirm.
    pub fn alert_confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.alert_confirm_timeout_ms)
    }

    /// Reads and validates the thresholds file.
    pub fn load_thresholds(&self) -> Result<Thresholds, ConfigError> {
        let path = &self.thresholds_file;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadThresholds {
            path: path.clone(),
            source,
        })?;
        parse_thresholds(path, &text)
    }
}

/// Parses thresholds as JSON when the file is named `*.json`, else as YAML (what a ConfigMap
/// key usually holds), then validates them.
pub fn parse_thresholds(path: &Path, text: &str) -> Result<Thresholds, ConfigError> {
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let parsed: Result<Thresholds, String> = if is_json {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        serde_norway::from_str(text).map_err(|e| e.to_string())
    };
    let thresholds = parsed.map_err(|reason| ConfigError::ParseThresholds {
        path: path.to_path_buf(),
        reason,
    })?;

    thresholds
        .validate()
        .map_err(|source| ConfigError::InvalidThresholds {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_kafka_and_rabbitmq_contracts() {
        let config = Config::try_parse_from(["recommender"]).expect("defaults parse");

        assert_eq!(config.kafka_topic, "raw-consumption-events");
        assert_eq!(config.kafka_group, "recommender");
        assert_eq!(config.alert_exchange, "energy.alerts");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.carbon_timeout(), Duration::from_secs(2));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn upside_down_backoff_bounds_are_refused() {
        let config = Config::try_parse_from([
            "recommender",
            "--retry-min-backoff-ms",
            "500",
            "--retry-max-backoff-ms",
            "100",
        ])
        .expect("each flag parses");

        let err = config.validate().expect_err("max below min");

        assert!(
            err.to_string().contains("retry-max-backoff-ms (100)"),
            "{err}"
        );
    }

    #[test]
    fn a_carbon_url_that_is_not_a_url_fails_at_start_up() {
        let result = Config::try_parse_from(["recommender", "--carbon-url", "not a url"]);

        assert!(result.is_err());
    }

    #[test]
    fn thresholds_are_read_from_json_by_extension() {
        let json = r#"{"absoluteKwhPerHour": 4, "timeZone": "Europe/London"}"#;

        let thresholds = parse_thresholds(Path::new("t.json"), json).expect("valid json");

        assert_eq!(thresholds.absolute_kwh_per_hour, 4.0);
    }

    #[test]
    fn thresholds_are_read_from_yaml_otherwise() {
        let yaml = "absoluteKwhPerHour: 6\ncooldownSecs: 60\ntimeZone: UTC\n";

        let thresholds = parse_thresholds(Path::new("thresholds"), yaml).expect("valid yaml");

        assert_eq!(thresholds.cooldown_secs, 60);
    }

    #[test]
    fn a_bad_threshold_value_names_the_file_and_the_field() {
        let yaml = "absoluteKwhPerHour: 0\ntimeZone: UTC\n";

        let err = parse_thresholds(Path::new("/cfg/t.yaml"), yaml).expect_err("limit of 0");

        assert!(err.to_string().contains("/cfg/t.yaml"), "{err}");
        let ConfigError::InvalidThresholds { source, .. } = err else {
            panic!("expected an invalid value, got {err}");
        };
        assert_eq!(source.field(), "absoluteKwhPerHour");
    }
}
