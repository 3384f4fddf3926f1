//! Configuration of the load generator: one clap struct, every flag also an environment
//! variable. The defaults point at the platform `dev/up` runs on this machine.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// loadgen: ingest throughput, end-to-end and alert latency of the platform, beside the
/// machine's ceilings for the same rows and messages.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", version)]
pub struct Config {
    /// Base URL of billing's HTTP API (loopback).
    #[arg(
        long,
        env = "LOADGEN_BILLING_URL",
        default_value = "http://127.0.0.1:18080"
    )]
    pub billing_url: String,
    /// PostgreSQL URL of the platform's database (readings, outbox, recommendations).
    #[arg(
        long,
        env = "LOADGEN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:25432/energy"
    )]
    pub database_url: String,
    /// Kafka bootstrap servers of the platform's broker.
    #[arg(
        long,
        env = "LOADGEN_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:29092"
    )]
    pub kafka_bootstrap: String,
    /// Topic billing publishes readings to.
    #[arg(long, env = "LOADGEN_TOPIC", default_value = "raw-consumption-events")]
    pub topic: String,
    /// Concurrent HTTP connections of the single-reading and batch phases.
    #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
    /// Readings sent one per request in the single-reading phase (at most).
    #[arg(long, env = "LOADGEN_SINGLE_READINGS", default_value_t = 20_000)]
    pub single_readings: usize,
    /// Readings sent in batch requests in the batch phase (at most).
    #[arg(long, env = "LOADGEN_BATCH_READINGS", default_value_t = 40_000)]
    pub batch_readings: usize,
    /// Readings per batch request.
    #[arg(long, env = "LOADGEN_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    /// Longest time of each load phase, seconds: a phase ends at its count or at this time.
    #[arg(long, env = "LOADGEN_PHASE_SECS", default_value_t = 60)]
    pub phase_secs: u64,
    /// Rate of the steady phase, readings per second (the latency phase).
    #[arg(long, env = "LOADGEN_STEADY_RATE", default_value_t = 200)]
    pub steady_rate: u32,
    /// Length of the steady phase, seconds.
    #[arg(long, env = "LOADGEN_STEADY_SECS", default_value_t = 30)]
    pub steady_secs: u64,
    /// Length of an unmeasured warm-up at the steady rate before the first phase, seconds:
    /// a freshly started Kafka broker spends its first seconds compiling its own code (the
    /// JVM's JIT), which would count as the platform's latency. Its readings are still in the
    /// no-loss check.
    #[arg(long, env = "LOADGEN_WARMUP_SECS", default_value_t = 10)]
    pub warmup_secs: u64,
    /// In the steady phase, one reading in this many is above the RED limit (on a property of
    /// its own, so cooldown does not swallow it).
    #[arg(long, env = "LOADGEN_ALERT_EVERY", default_value_t = 20)]
    pub alert_every: usize,
    /// Energy of a RED reading, kWh per interval (above `absoluteKwhPerHour` of the platform).
    #[arg(long, env = "LOADGEN_ALERT_KWH", default_value_t = 6.0)]
    pub alert_kwh: f64,
    /// Properties the ordinary readings are spread over.
    #[arg(long, env = "LOADGEN_PROPERTIES", default_value_t = 2_000)]
    pub properties: usize,
    /// Length of one reading's interval, minutes; a property's readings are back to back.
    #[arg(long, env = "LOADGEN_INTERVAL_MINS", default_value_t = 30)]
    pub interval_mins: i64,
    /// Connections in the pool of the bare sqlx client (billing's default pool size).
    #[arg(long, env = "LOADGEN_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
    /// Skip the machine's ceilings (the bare sqlx client and the bare Kafka producer).
    #[arg(long, env = "LOADGEN_SKIP_CEILINGS", default_value_t = false)]
    pub skip_ceilings: bool,
    /// Time allowed for the pipeline to catch up after a phase, seconds.
    #[arg(long, env = "LOADGEN_SETTLE_SECS", default_value_t = 180)]
    pub settle_secs: u64,
    /// The recommender's consumer group: the run waits until it is stable before the first
    /// reading, so a freshly started recommender's first rebalance is not measured.
    #[arg(long, env = "LOADGEN_GROUP")]
    pub group: Option<String>,
    /// Process id of billing, to sample its resident memory (none: not sampled).
    #[arg(long, env = "LOADGEN_BILLING_PID")]
    pub billing_pid: Option<u32>,
    /// Process to hold stopped (SIGSTOP) while the single and batch phases load, resumed before
    /// the wait for recommendations: given the recommender's, billing's ingest is measured
    /// without the recommender on the same cores. Those phases' end-to-end figures include the
    /// hold.
    #[arg(long, env = "LOADGEN_HOLD_PID")]
    pub hold_pid: Option<u32>,
    /// Where the JSON results are written.
    #[arg(long, env = "LOADGEN_OUTPUT", default_value = "bench-results.json")]
    pub output: PathBuf,
    /// Smoke mode for tests: a few hundred readings, no ceilings, then the no-loss check.
    #[arg(long, env = "LOADGEN_SMOKE", default_value_t = false)]
    pub smoke: bool,
}

impl Config {
    /// The settings a run uses: in smoke mode the counts shrink to a few hundred readings and the
    /// ceilings are skipped.
    pub fn effective(&self) -> Config {
        if !self.smoke {
            return self.clone();
        }
        Config {
            single_readings: self.single_readings.min(200),
            batch_readings: self.batch_readings.min(100),
            batch_size: self.batch_size.min(50),
            steady_rate: self.steady_rate.min(50),
            steady_secs: self.steady_secs.min(2),
            warmup_secs: 0,
            concurrency: self.concurrency.min(8),
            properties: self.properties.min(40),
            skip_ceilings: true,
            ..self.clone()
        }
    }

    /// The longest time of one load phase.
    pub fn phase_limit(&self) -> Duration {
        Duration::from_secs(self.phase_secs)
    }

    /// The time allowed for the pipeline to catch up.
    pub fn settle_limit(&self) -> Duration {
        Duration::from_secs(self.settle_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_mode_sends_a_few_hundred_readings_and_skips_the_ceilings() {
        let config = Config::parse_from(["loadgen", "--smoke"]).effective();
        let total = config.single_readings + config.batch_readings;
        assert!((100..=500).contains(&total), "{total}");
        assert!(config.skip_ceilings);
    }

    #[test]
    fn defaults_match_billing_and_the_dev_platform() {
        let config = Config::parse_from(["loadgen"]);
        assert_eq!(config.concurrency, 32);
        assert_eq!(config.pool_size, 16);
        assert_eq!(config.billing_url, "http://127.0.0.1:18080");
    }
}
