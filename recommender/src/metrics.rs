//! Prometheus metrics of the recommender, served at `/metrics` in the text format.
//!
//! - `recommender_messages_total{outcome}`: messages settled, by outcome (`stored`,
//!   `duplicate`, `dead_lettered`);
//! - `recommender_transient_failures_total{cause}`: failed attempts that the partition waits
//!   out (`carbon`, `postgres`, `rabbitmq`, `kafka`);
//! - `recommender_alerts_published_total`: RED alerts confirmed by RabbitMQ;
//! - `recommender_message_seconds`: time from receiving a message to settling it, waits included.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a message was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its recommendation (and any alert) was stored and confirmed.
    Stored,
    /// It had been processed before; nothing new was written.
    Duplicate,
    /// It went to the dead-letter topic.
    DeadLettered,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Which dependency a transient failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The carbon function.
    Carbon,
    /// PostgreSQL.
    Postgres,
    /// RabbitMQ.
    RabbitMq,
    /// Kafka (the dead-letter producer).
    Kafka,
}

impl Cause {
    const ALL: [Self; 4] = [Self::Carbon, Self::Postgres, Self::RabbitMq, Self::Kafka];

    fn label(self) -> &'static str {
        match self {
            Self::Carbon => "carbon",
            Self::Postgres => "postgres",
            Self::RabbitMq => "rabbitmq",
            Self::Kafka => "kafka",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

/// The recommender's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<OutcomeLabels, Counter>,
    transient_failures: Family<CauseLabels, Counter>,
    alerts_published: Counter,
    message_seconds: Histogram,
    run_messages: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `recommender` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("recommender");
        let messages = Family::<OutcomeLabels, Counter>::default();
        let transient_failures = Family::<CauseLabels, Counter>::default();
        let alerts_published = Counter::default();
        // 5 ms to about 80 s: a message normally takes milliseconds, an outage much longer.
        let message_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let run_messages = Counter::default();

        registry.register("messages", "Messages settled, by outcome", messages.clone());
        registry.register(
            "transient_failures",
            "Failed attempts the partition waited out, by dependency",
            transient_failures.clone(),
        );
        registry.register(
            "alerts_published",
            "RED alerts confirmed by RabbitMQ",
            alerts_published.clone(),
        );
        registry.register(
            "message_seconds",
            "Time from receiving a message to settling it",
            message_seconds.clone(),
        );
        registry.register(
            "run_messages",
            "Messages settled together with others of their partition in one transaction",
            run_messages.clone(),
        );
        Self {
            registry,
            messages,
            transient_failures,
            alerts_published,
            message_seconds,
            run_messages,
        }
    }

    /// Counts one settled message and how long it took.
    pub fn settled(&self, outcome: Outcome, seconds: f64) {
        self.messages
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label().to_string(),
            })
            .inc();
        self.message_seconds.observe(seconds);
    }

    /// Counts the messages of one run settled together.
    pub fn run_settled(&self, messages: usize) {
        self.run_messages.inc_by(messages as u64);
    }

    /// Messages settled in runs so far.
    pub fn run_messages(&self) -> u64 {
        self.run_messages.get()
    }

    /// Counts one failed attempt.
    pub fn transient_failure(&self, cause: Cause) {
        self.transient_failures
            .get_or_create(&CauseLabels {
                cause: cause.label().to_string(),
            })
            .inc();
    }

    /// Counts one confirmed alert.
    pub fn alert_published(&self) {
        self.alerts_published.inc();
    }

    /// Messages settled with `outcome` so far.
    pub fn messages(&self, outcome: Outcome) -> u64 {
        self.messages
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label().to_string(),
            })
            .get()
    }

    /// Failed attempts so far, over every dependency.
    pub fn transient_failures(&self) -> u64 {
        Cause::ALL
            .iter()
            .map(|cause| {
                self.transient_failures
                    .get_or_create(&CauseLabels {
                        cause: cause.label().to_string(),
                    })
                    .get()
            })
            .sum()
    }

    /// Alerts confirmed so far.
    pub fn alerts_published(&self) -> u64 {
        self.alerts_published.get()
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_messages_are_counted_by_outcome_in_the_text_format() {
        let metrics = Metrics::new();

        metrics.settled(Outcome::Stored, 0.01);
        metrics.settled(Outcome::Stored, 0.02);
        metrics.settled(Outcome::DeadLettered, 0.01);
        let text = metrics.encode().expect("encodes");

        assert_eq!(metrics.messages(Outcome::Stored), 2);
        assert!(
            text.contains("recommender_messages_total{outcome=\"stored\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("recommender_message_seconds_count 3"),
            "{text}"
        );
    }

    #[test]
    fn transient_failures_add_up_over_causes() {
        let metrics = Metrics::new();

        metrics.transient_failure(Cause::Carbon);
        metrics.transient_failure(Cause::RabbitMq);

        assert_eq!(metrics.transient_failures(), 2);
    }
}
