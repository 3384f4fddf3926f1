//! Prometheus metrics of billing, served at `/metrics` in the text format.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of a rejected reading: the error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// Handles to billing's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    accepted: Counter,
    replayed: Counter,
    rejected: Family<CodeLabel, Counter>,
    published: Counter,
    outbox_age: Histogram,
    group_size: Histogram,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("billing");
        let accepted = Counter::default();
        registry.register(
            "readings_accepted",
            "Readings stored for the first time",
            accepted.clone(),
        );
        let replayed = Counter::default();
        registry.register(
            "readings_replayed",
            "Retries answered from a stored reading",
            replayed.clone(),
        );
        let rejected = Family::<CodeLabel, Counter>::default();
        registry.register(
            "readings_rejected",
            "Readings refused, by error code",
            rejected.clone(),
        );
        let published = Counter::default();
        registry.register(
            "outbox_published",
            "Outbox rows acknowledged by Kafka",
            published.clone(),
        );
        // 1 ms to about 65 s, doubling.
        let outbox_age = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 17),
        );
        registry.register(
            "outbox_age_seconds",
            "Time from commit of a reading to Kafka's acknowledgement",
            outbox_age.clone(),
        );
        // 1 to 512 readings, doubling.
        let group_size = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 10),
        );
        registry.register(
            "group_commit_readings",
            "Single-reading requests stored together in one transaction",
            group_size.clone(),
        );
        Self {
            registry: Arc::new(registry),
            accepted,
            replayed,
            rejected,
            published,
            outbox_age,
            group_size,
        }
    }

    /// A reading was stored.
    pub fn accepted(&self) {
        self.accepted.inc();
    }

    /// A retry was answered from the stored reading.
    pub fn replayed(&self) {
        self.replayed.inc();
    }

    /// A reading was refused with `code`.
    pub fn rejected(&self, code: &str) {
        self.rejected
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// `count` outbox rows were acknowledged by Kafka.
    pub fn outbox_published(&self, count: usize) {
        self.published.inc_by(count as u64);
    }

    /// One outbox row reached Kafka `age_secs` after it was written.
    pub fn observe_outbox_age(&self, age_secs: f64) {
        self.outbox_age.observe(age_secs);
    }

    /// A group of `readings` single-reading requests went into one transaction.
    pub fn group_committed(&self, readings: usize) {
        self.group_size.observe(readings as f64);
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
