//! Prometheus metrics of the controller: reconciles run, failures by reason, and how long a
//! reconcile takes. Rendered in the text exposition format by `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    /// The failure's reason, as in conditions and Events.
    reason: String,
}

/// The controller's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    writes: Counter,
    failures: Family<FailureLabels, Counter>,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the metrics under the `energyplatform_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("energyplatform");
        let reconciles = Counter::default();
        let writes = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        // 10 ms to about 80 s: a reconcile is a few API calls unless a broker is slow.
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "writes",
            "Objects and statuses written (a steady state writes none)",
            writes.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        Self {
            registry,
            reconciles,
            writes,
            failures,
            duration,
        }
    }

    /// Counts a finished reconcile, successful or not.
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts writes a reconcile made (objects applied, function deployed, status).
    pub fn wrote(&self, count: u64) {
        self.writes.inc_by(count);
    }

    /// Writes made so far.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Counts a failed reconcile.
    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Reconciles run so far (tests wait on it to know a resync happened).
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding into a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_name_reconciles_failures_and_duration() {
        let metrics = Metrics::new();
        metrics.reconciled(Duration::from_millis(30));
        metrics.failed("PartitionDecrease");

        let text = metrics.render();

        assert!(text.contains("energyplatform_reconciles_total 1"), "{text}");
        assert!(
            text.contains(
                r#"energyplatform_reconcile_failures_total{reason="PartitionDecrease"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("energyplatform_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert_eq!(metrics.reconciles(), 1);
    }
}
