//! Configuration of the billing binary: one clap struct, every flag also an environment
//! variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// billing: REST ingestion of meter readings into PostgreSQL and Kafka.
#[derive(Debug, Clone, Parser)]
#[command(name = "billing", version)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub bind_address: SocketAddr,
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: u32,
    /// Writer tasks that store single readings, each gathering concurrent requests into one
    /// transaction (group commit); each holds at most one pool connection.
    #[arg(long, env = "GROUP_COMMIT_WRITERS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub group_commit_writers: u16,
    /// Most single readings stored in one group-commit transaction.
    #[arg(long, env = "GROUP_COMMIT_MAX_READINGS", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub group_commit_max_readings: u16,
    /// Kafka bootstrap servers, `host:port[,host:port]`.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka_bootstrap_servers: String,
    /// Kafka topic readings are published to.
    #[arg(long, env = "KAFKA_TOPIC", default_value = energy_contracts::names::CONSUMPTION_TOPIC)]
    pub kafka_topic: String,
    /// AMQP URI of RabbitMQ, for relaying RED alerts to the page; no relay when absent.
    #[arg(long, env = "AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Topic exchange RED alerts are published to.
    #[arg(long, env = "ALERT_EXCHANGE", default_value = energy_contracts::names::ALERT_EXCHANGE)]
    pub alert_exchange: String,
    /// Folder of the web page's files (web/dist after `npm run build`); no page when absent.
    #[arg(long, env = "WEB_ROOT")]
    pub web_root: Option<std::path::PathBuf>,
    /// Bearer tokens accepted on write endpoints, comma-separated; empty turns auth off.
    #[arg(long, env = "API_TOKENS", value_delimiter = ',', default_value = "")]
    pub api_tokens: Vec<String>,
    /// Region codes readings may name, comma-separated (those the carbon function knows).
    #[arg(
        long,
        env = "REGIONS",
        value_delimiter = ',',
        default_value = "GB,US,US-CAMX,US-NYUP,US-NWPP,US-ERCT,US-RFCW,US-MROE,EU,DE,PL,FR,SE"
    )]
    pub regions: Vec<String>,
    /// Region applied to readings that name none.
    #[arg(long, env = "DEFAULT_REGION", default_value = "GB")]
    pub default_region: String,
    /// Largest request body, bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Most readings in one batch request.
    #[arg(long, env = "MAX_BATCH_ITEMS", default_value_t = 10_000)]
    pub max_batch_items: usize,
    /// Outbox rows the relay publishes per pass.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 1000)]
    pub relay_batch_size: i64,
    /// Relay sweep interval when no notification arrives, milliseconds.
    #[arg(long, env = "RELAY_SWEEP_MS", default_value_t = 1000)]
    pub relay_sweep_ms: u64,
    /// Time a request may take before it is answered 503, milliseconds.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Time allowed for in-flight requests on shutdown, seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// Log format: `text` for terminals, `json` for deployments.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The tokens that are set (an empty list switches auth off).
    pub fn tokens(&self) -> Vec<String> {
        self.api_tokens
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }
}
