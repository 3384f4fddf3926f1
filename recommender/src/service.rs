//! The running consumer: wires the adapters, then reads the topic one message at a time.
//!
//! Messages are processed strictly one after another, which keeps every partition in order
//! (and every property, since billing keys by property). A message is settled when its results
//! are stored and confirmed, or when it is dead-lettered; only then is its offset committed. A
//! transient failure is retried with the [`RetryPolicy`] until it passes: the consumer waits,
//! and nothing behind the message is read meanwhile.
//!
//! Shutdown protocol: cancelling the token stops the loop from taking another message. An
//! attempt in progress runs to its end (each step has its own timeout); a wait between attempts
//! is cut short, leaving that message uncommitted for the next owner. Then the settled offsets
//! are committed synchronously and [`Recommender::run`] returns.
//!
//! Known limits: one message at a time bounds throughput by the carbon call's latency, where a
//! consumer per partition would overlap them. An outage longer than `max.poll.interval.ms`
//! (5 minutes) makes librdkafka leave the group while the loop waits; it rejoins on the next
//! read and the message is redelivered and deduplicated.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::alerts::AlertPublisher;
use crate::carbon::CarbonClient;
use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::domain::Thresholds;
use crate::health::Probes;
use crate::kafka::{CommitOutcome, EventConsumer};
use crate::metrics::{Metrics, Outcome};
use crate::process::{self, Processor};
use crate::retry::RetryPolicy;
use crate::store::Store;
use crate::{Error, ErrorChain};

/// The consumer and everything it needs, connected and ready to run.
pub struct Recommender {
    consumer: EventConsumer,
    processor: Arc<Processor>,
    policy: RetryPolicy,
    topic: String,
}

impl Recommender {
    /// Migrates the schema, builds the clients and subscribes. RabbitMQ and the carbon function
    /// are reached on first use, so the consumer starts while either is down and waits there.
    pub async fn start(
        config: &Config,
        thresholds: Thresholds,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        crate::install_crypto_provider();
        config.validate()?;
        let policy = config.retry_policy();

        let store = Store::connect_lazy(&config.database_url, config.database_max_connections)?;
        store.migrate().await?;

        // The attempt count is range-checked by clap to at most 20.
        let attempts = usize::try_from(config.carbon_attempts).unwrap_or(usize::MAX);
        let carbon = CarbonClient::new(
            config.carbon_url.clone(),
            config.carbon_timeout(),
            policy,
            attempts,
        )?;
        let alerts = Arc::new(AlertPublisher::new(
            config.amqp_url.clone(),
            config.alert_exchange.clone(),
            config.alert_confirm_timeout(),
        ));
        let dead_letters = DeadLetters::new(
            &config.kafka_bootstrap,
            &config.kafka_topic,
            config.alert_confirm_timeout(),
        )?;
        let consumer = EventConsumer::subscribe(
            &config.kafka_bootstrap,
            &config.kafka_group,
            &config.kafka_topic,
        )?;

        tracing::info!(
            topic = %config.kafka_topic,
            group = %config.kafka_group,
            carbon_url = %config.carbon_url,
            exchange = %config.alert_exchange,
            "recommender started"
        );
        let processor = Processor {
            store,
            carbon,
            alerts,
            dead_letters,
            thresholds,
            metrics,
        };
        Ok(Self {
            consumer,
            processor: Arc::new(processor),
            policy,
            topic: config.kafka_topic.clone(),
        })
    }

    /// What the health server checks.
    pub fn probes(&self) -> Probes {
        Probes {
            store: self.processor.store.clone(),
            alerts: Arc::clone(&self.processor.alerts),
            kafka: self.consumer.client(),
            topic: self.topic.clone(),
            metrics: Arc::clone(&self.processor.metrics),
        }
    }

    /// Consumes until `shutdown` is cancelled, then commits what is settled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        // Alerts stored before a crash but never confirmed go out first; this runs beside the
        // loop so that a RabbitMQ outage at start-up does not hold up readings.
        let sweep = tokio::spawn(republish_pending(
            Arc::clone(&self.processor),
            self.policy,
            shutdown.clone(),
        ));

        loop {
            let received = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                received = self.consumer.recv() => received,
            };
            let message = match received {
                Ok(message) => message,
                Err(err) => {
                    // librdkafka reconnects by itself; the error is only reported.
                    tracing::warn!(error = %err, "Kafka consumer error");
                    tokio::time::sleep(self.policy.min_backoff).await;
                    continue;
                }
            };

            let span = message_span(&message);
            let settled = self
                .settle(&message, &shutdown)
                .instrument(span.clone())
                .await;
            let Some(outcome) = settled else { break };
            let _entered = span.enter();
            match self.consumer.commit(&message) {
                Ok(CommitOutcome::Sent) => tracing::debug!(?outcome, "settled and committed"),
                Ok(CommitOutcome::NotOwned) => {
                    tracing::info!(?outcome, "settled, but the partition was revoked meanwhile")
                }
                Err(err) => {
                    tracing::warn!(error = %err, "offset commit failed; redelivery follows")
                }
            }
        }

        tracing::info!("stopping: committing settled offsets");
        if let Err(err) = self.consumer.commit_settled().await {
            tracing::warn!(error = %err, "final offset commit failed; redelivery follows");
        }
        if let Err(err) = sweep.await {
            tracing::error!(error = %err, "start-up alert sweep failed");
        }
        tracing::info!("recommender stopped");
        Ok(())
    }

    /// Attempts `message` until it is settled; `None` when shutdown came during a wait.
    async fn settle(
        &self,
        message: &OwnedMessage,
        shutdown: &CancellationToken,
    ) -> Option<Outcome> {
        let started = Instant::now();
        let mut delays = self.policy.delays();
        loop {
            let failure = match self.processor.process(message).await {
                Ok(outcome) => {
                    let seconds = started.elapsed().as_secs_f64();
                    self.processor.metrics.settled(outcome, seconds);
                    return Some(outcome);
                }
                Err(failure) => failure,
            };

            self.processor.metrics.transient_failure(failure.cause());
            let delay = delays.next().unwrap_or(self.policy.max_backoff);
            tracing::warn!(
                error = %ErrorChain(&failure),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "processing failed; the partition waits and retries"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => {
                    tracing::info!("shutdown during a retry wait; the message stays uncommitted");
                    return None;
                }
            }
        }
    }
}

/// The span of one message. `property_id` and `event_id` are filled in once it is decoded.
fn message_span(message: &OwnedMessage) -> tracing::Span {
    let span = tracing::info_span!(
        "message",
        partition = message.partition(),
        offset = message.offset(),
        property_id = Empty,
        event_id = Empty,
        traceparent = Empty,
    );
    if let Some(traceparent) = process::traceparent(message) {
        span.record("traceparent", traceparent.as_str());
    }
    span
}

/// Publishes every stored, unconfirmed alert, retrying with `policy` until it succeeds or
/// shutdown comes.
async fn republish_pending(
    processor: Arc<Processor>,
    policy: RetryPolicy,
    shutdown: CancellationToken,
) {
    let mut delays = policy.delays();
    loop {
        match processor.publish_pending(None).await {
            Ok(0) => return,
            Ok(count) => {
                tracing::info!(
                    count,
                    "alerts left unconfirmed by an earlier run were published"
                );
                return;
            }
            Err(err) => {
                let delay = delays.next().unwrap_or(policy.max_backoff);
                tracing::warn!(
                    error = %ErrorChain(&err),
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "cannot publish unconfirmed alerts yet; retrying"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}
