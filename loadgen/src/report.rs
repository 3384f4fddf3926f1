//! What a run found: the figures, the machine they were measured on, the terminal table and
//! the JSON file.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ceiling::Rate;
use crate::driver::Driver;
use crate::probe::Probe;
use crate::stats::Summary;
use crate::{Error, Result};

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Prefix of the run's property ids (`<run_id>-p00001`).
    pub run_id: String,
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// Whether this was a smoke run.
    pub smoke: bool,
    /// Concurrent connections of the single and batch phases.
    pub concurrency: usize,
    /// Readings per batch request.
    pub batch_size: usize,
    /// Pool size of the bare sqlx client.
    pub pool_size: u32,
    /// Properties the readings were spread over.
    pub properties: usize,
    /// Length of one reading's interval, minutes.
    pub interval_mins: i64,
    /// The machine.
    pub machine: Machine,
    /// The load phases: steady, single, batch.
    pub phases: Vec<PhaseReport>,
    /// From the request of a RED reading to its alert on the WebSocket.
    pub alert_latency: Summary,
    /// RED readings accepted in the steady phase (alerts expected).
    pub alerts_expected: usize,
    /// Largest resident memory of billing during the run, MiB (when its pid was given).
    pub billing_rss_max_mib: Option<f64>,
    /// The process held stopped while the single and batch phases loaded (`--hold-pid`).
    pub held_pid: Option<u32>,
    /// The machine's ceilings (absent when skipped).
    pub ceilings: Option<Ceilings>,
    /// The no-loss check.
    pub no_loss: NoLossCheck,
}

/// The figures of one load phase.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    /// `steady`, `single` or `batch`.
    pub name: &'static str,
    /// Readings planned.
    pub planned: usize,
    /// Readings accepted.
    pub accepted: usize,
    /// Readings refused or lost to request errors.
    pub failed: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Length of the phase, seconds.
    pub secs: f64,
    /// Accepted readings per second.
    pub accepted_per_sec: f64,
    /// HTTP round trip per request.
    pub request_latency: Summary,
    /// From the request to the stored recommendation.
    pub end_to_end: Summary,
    /// From commit (`outbox.created_at`) to Kafka's acknowledgement (`outbox.sent_at`).
    pub outbox_age: Summary,
    /// Outbox rows published per second, first commit to last acknowledgement.
    pub relay_per_sec: f64,
    /// Whether the `--hold-pid` process was held stopped while this phase loaded.
    pub held: bool,
    /// Wall clock (Unix milliseconds) when the phase's load started, when its last request was
    /// answered, and when the recommender had caught up: to cut a system-wide CPU profile
    /// (`dev/bench` with `EP_BENCH_PROFILE=1`) into phases.
    pub window: PhaseWindow,
}

/// When a phase ran, in Unix milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PhaseWindow {
    /// The first request left.
    pub started_ms: i64,
    /// The last request was answered.
    pub loaded_ms: i64,
    /// Every accepted reading had its recommendation.
    pub settled_ms: i64,
}

/// What the machine does without the platform in between.
#[derive(Debug, Serialize)]
pub struct Ceilings {
    /// billing's reading + outbox transaction from a bare sqlx pool.
    pub postgres_single: Rate,
    /// The same rows as multi-row inserts, one transaction per batch.
    pub postgres_batch: Rate,
    /// The same event messages from a bare idempotent `acks=all` producer.
    pub kafka_producer: Rate,
}

/// Counts that must agree for the run's accepted readings.
#[derive(Debug, Serialize)]
pub struct NoLossCheck {
    /// Whether every count agrees. Refused readings are no loss: they are reported in `failed`
    /// and in each phase, and the counts cover accepted readings only.
    pub passed: bool,
    /// Readings billing accepted.
    pub accepted: i64,
    /// Distinct event ids among them.
    pub distinct: i64,
    /// Of them, rows in `readings`.
    pub readings: i64,
    /// Of them, rows in `outbox`.
    pub outbox_rows: i64,
    /// Outbox rows never marked sent.
    pub outbox_unsent: i64,
    /// Messages added to the topic during the run (end offsets after minus before).
    pub kafka_messages: i64,
    /// Of them, rows in `recommendations`.
    pub recommendations: i64,
    /// Readings billing did not accept.
    pub failed: usize,
    /// Each disagreement, in words.
    pub problems: Vec<String>,
}

/// The machine the figures were measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// CPU model.
    pub cpu: Option<String>,
    /// Physical memory, MiB.
    pub memory_mib: Option<u64>,
    /// Operating system.
    pub os: Option<String>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// PostgreSQL server version.
    pub postgres: Option<String>,
    /// librdkafka version of the load generator's clients.
    pub librdkafka: String,
    /// billing's API version.
    pub billing: Option<String>,
    /// This generator's version.
    pub loadgen: String,
}

impl Machine {
    /// Describes this machine and the services' versions.
    pub async fn describe(probe: &Probe, driver: &Driver) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let cpu = read("/proc/cpuinfo").and_then(|text| {
            let line = text
                .lines()
                .find(|l| l.starts_with("model name"))?
                .to_string();
            Some(line.split_once(':')?.1.trim().to_string())
        });
        let memory_mib = read("/proc/meminfo").and_then(|text| {
            let line = text
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .to_string();
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024)
        });
        let os = read("/etc/os-release").and_then(|text| {
            let line = text
                .lines()
                .find(|l| l.starts_with("PRETTY_NAME="))?
                .to_string();
            Some(
                line.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string(),
            )
        });
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            memory_mib,
            os,
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_string()),
            postgres: probe.server_version().await.ok(),
            librdkafka: rdkafka::util::get_rdkafka_version().1,
            billing: driver.billing_version().await,
            loadgen: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

impl Report {
    /// Writes the report as pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("the report always serialises");
        std::fs::write(path, text).map_err(|source| Error::Output {
            path: path.display().to_string(),
            source,
        })
    }

    fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "machine: {} cores ({}), {} MiB, {}; PostgreSQL {}, librdkafka {}, billing {}",
            m.cores,
            m.cpu.as_deref().unwrap_or("?"),
            m.memory_mib.unwrap_or(0),
            m.os.as_deref().unwrap_or("?"),
            m.postgres.as_deref().unwrap_or("?"),
            m.librdkafka,
            m.billing.as_deref().unwrap_or("?"),
        );
        let _ = writeln!(
            out,
            "run {}: {} connections, batches of {}, {} properties, {}-minute readings\n",
            self.run_id, self.concurrency, self.batch_size, self.properties, self.interval_mins
        );
        if let Some(pid) = self.held_pid {
            let _ = writeln!(
                out,
                "held: process {pid} stopped while the single and batch phases loaded \
                 (their end-to-end figures include the hold)\n"
            );
        }

        let _ = writeln!(
            out,
            "| {:<48} | {:>12} | {:>12} | {:>8} |",
            "figure", "platform", "ceiling", "ratio"
        );
        let _ = writeln!(out, "|{:-<50}|{:->14}|{:->14}|{:->10}|", "", "", "", "");
        let ceilings = self.ceilings.as_ref();
        let mut rate_row = |label: &str, platform: Option<f64>, ceiling: Option<f64>| {
            let platform_text = platform.map_or("-".into(), |v| format!("{v:.0}/s"));
            let ceiling_text = ceiling.map_or("-".into(), |v| format!("{v:.0}/s"));
            let ratio = match (platform, ceiling) {
                (Some(p), Some(c)) if c > 0.0 => format!("{:.0} %", 100.0 * p / c),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {label:<48} | {platform_text:>12} | {ceiling_text:>12} | {ratio:>8} |"
            );
        };
        let single = self.phase("single");
        let batch = self.phase("batch");
        rate_row(
            "single readings accepted (vs bare sqlx tx)",
            single.map(|p| p.accepted_per_sec),
            ceilings.map(|c| c.postgres_single.per_sec),
        );
        rate_row(
            "batch readings accepted (vs multi-row insert)",
            batch.map(|p| p.accepted_per_sec),
            ceilings.map(|c| c.postgres_batch.per_sec),
        );
        rate_row(
            "relay publish, single phase (vs bare producer)",
            single.map(|p| p.relay_per_sec),
            ceilings.map(|c| c.kafka_producer.per_sec),
        );
        rate_row(
            "relay publish, batch phase (vs bare producer)",
            batch.map(|p| p.relay_per_sec),
            ceilings.map(|c| c.kafka_producer.per_sec),
        );
        out.push('\n');

        let _ = writeln!(
            out,
            "| {:<36} | {:>7} | {:>9} | {:>9} | {:>9} | {:>9} |",
            "latency (ms)", "count", "p50", "p90", "p99", "max"
        );
        let _ = writeln!(
            out,
            "|{:-<38}|{:->9}|{:->11}|{:->11}|{:->11}|{:->11}|",
            "", "", "", "", "", ""
        );
        let mut latency_row = |label: String, s: &Summary| {
            let _ = writeln!(
                out,
                "| {label:<36} | {:>7} | {:>9.1} | {:>9.1} | {:>9.1} | {:>9.1} |",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        };
        for p in &self.phases {
            let rate = format!("{:.0}/s", p.accepted_per_sec);
            latency_row(format!("{} ({rate}) request", p.name), &p.request_latency);
            latency_row(format!("{} ({rate}) end to end", p.name), &p.end_to_end);
            latency_row(format!("{} ({rate}) outbox age", p.name), &p.outbox_age);
        }
        latency_row(
            format!("steady alert ({} RED readings)", self.alerts_expected),
            &self.alert_latency,
        );
        out.push('\n');

        if let Some(rss) = self.billing_rss_max_mib {
            let _ = writeln!(out, "billing resident memory, largest sample: {rss:.1} MiB");
        }
        let n = &self.no_loss;
        let _ = writeln!(
            out,
            "no-loss check: {} (accepted {}, distinct {}, readings {}, outbox {} with {} unsent, \
             kafka +{}, recommendations {}, failed {})",
            if n.passed { "passed" } else { "FAILED" },
            n.accepted,
            n.distinct,
            n.readings,
            n.outbox_rows,
            n.outbox_unsent,
            n.kafka_messages,
            n.recommendations,
            n.failed,
        );
        for problem in &n.problems {
            let _ = writeln!(out, "  - {problem}");
        }
        for p in self.phases.iter().filter(|p| p.first_error.is_some()) {
            let _ = writeln!(
                out,
                "{}: first error: {}",
                p.name,
                p.first_error.as_deref().unwrap_or("")
            );
        }
        out
    }
}
