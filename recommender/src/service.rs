//! The running consumer: wires the adapters, reads the topic and hands each message to the
//! worker of its partition.
//!
//! One worker per partition processes that partition's messages strictly one after another,
//! which keeps every partition in order (and every property, since billing keys by property);
//! the partitions' workers run side by side, so the carbon call and the store of one partition
//! overlap with those of the others. A message is settled when its results are stored and
//! confirmed, or when it is dead-lettered; only then is its offset recorded for the next commit,
//! which a committer task sends every [`COMMIT_INTERVAL`]. A transient failure is retried with
//! the [`RetryPolicy`] until it passes: that partition's worker waits, and nothing behind the
//! message in that partition is processed meanwhile.
//!
//! Each worker's queue holds at most [`LANE_CAPACITY`] messages; when one is full the reader
//! waits for it, and librdkafka buffers what follows.
//!
//! Runs: when a worker finds more than one message queued, it takes up to [`RUN_MAX`] of them
//! and settles them together ([`Processor::process_run`]): still in order, each judged as on its
//! own, but with one transaction and one commit for the run. If the run fails in any way it is
//! rolled back and its messages go the one-at-a-time way, with dead-lettering and retries. A
//! worker that keeps up sees one message at a time, so runs only form under a backlog.
//!
//! Shutdown protocol: cancelling the token stops the reader; each worker finishes the attempt in
//! progress (each step has its own timeout) and leaves what is queued behind it uncommitted for
//! the next owner; a wait between attempts is cut short. Then the settled offsets are committed
//! synchronously and [`Recommender::run`] returns.
//!
//! Known limit: an outage longer than `max.poll.interval.ms` (5 minutes) that fills a worker's
//! queue makes librdkafka leave the group while the reader waits; it rejoins on the next read and
//! the messages are redelivered and deduplicated.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::alerts::AlertPublisher;
use crate::carbon::CarbonClient;
use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::domain::Thresholds;
use crate::health::Probes;
use crate::kafka::{EventConsumer, SettleOutcome};
use crate::metrics::{Metrics, Outcome};
use crate::process::{self, Processor};
use crate::retry::RetryPolicy;
use crate::store::Store;
use crate::{Error, ErrorChain};

/// Messages a partition's worker may have queued before the reader waits for it.
pub const LANE_CAPACITY: usize = 256;
/// Most messages a worker takes from its queue to settle together (one transaction).
pub const RUN_MAX: usize = 32;
/// How often settled offsets are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

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
        // workers so that a RabbitMQ outage at start-up does not hold up readings.
        let sweep = tokio::spawn(republish_pending(
            Arc::clone(&self.processor),
            self.policy,
            shutdown.clone(),
        ));
        let committer = tokio::spawn(commit_every(
            self.consumer.clone(),
            COMMIT_INTERVAL,
            shutdown.clone(),
        ));

        let mut lanes = Lanes::default();
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
            let lane = lanes.sender(message.partition(), || self.worker(shutdown.clone()));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                // A worker only ends at shutdown, so a refused send means shutdown is under way.
                sent = lane.send(message) => if sent.is_err() { break },
            }
        }

        tracing::info!("stopping: waiting for the workers, then committing settled offsets");
        lanes.finish().await;
        if let Err(err) = committer.await {
            tracing::error!(error = %err, "offset committer failed");
        }
        if let Err(err) = self.consumer.commit_settled().await {
            tracing::warn!(error = %err, "final offset commit failed; redelivery follows");
        }
        if let Err(err) = sweep.await {
            tracing::error!(error = %err, "start-up alert sweep failed");
        }
        tracing::info!("recommender stopped");
        Ok(())
    }

    /// The worker of one partition, ready to be spawned with its queue's receiving end.
    fn worker(&self, shutdown: CancellationToken) -> Worker {
        Worker {
            consumer: self.consumer.clone(),
            processor: Arc::clone(&self.processor),
            policy: self.policy,
            shutdown,
        }
    }
}

/// The workers, one per partition seen so far, each behind a bounded queue.
#[derive(Default)]
struct Lanes {
    senders: HashMap<i32, mpsc::Sender<OwnedMessage>>,
    workers: JoinSet<()>,
}

impl Lanes {
    /// The queue of `partition`'s worker, spawning the worker on first use.
    fn sender(
        &mut self,
        partition: i32,
        worker: impl FnOnce() -> Worker,
    ) -> &mpsc::Sender<OwnedMessage> {
        self.senders.entry(partition).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(LANE_CAPACITY);
            let worker = worker();
            self.workers.spawn(
                worker
                    .run(receiver)
                    .instrument(tracing::info_span!("worker", partition)),
            );
            sender
        })
    }

    /// Closes every queue and waits for the workers to stop.
    async fn finish(mut self) {
        self.senders.clear();
        while let Some(joined) = self.workers.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "partition worker failed");
            }
        }
    }
}

/// Processes one partition's messages in order.
struct Worker {
    consumer: EventConsumer,
    processor: Arc<Processor>,
    policy: RetryPolicy,
    shutdown: CancellationToken,
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<OwnedMessage>) {
        loop {
            let first = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                message = queue.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            // What else is queued, without waiting for more: a run grows only with a backlog.
            let mut run = vec![first];
            while run.len() < RUN_MAX {
                match queue.try_recv() {
                    Ok(message) => run.push(message),
                    Err(_) => break,
                }
            }
            // Queued before its partition was revoked: the next owner reads it again.
            run.retain(|message| self.consumer.owns(message));

            if run.len() > 1 && self.settle_run(&run).await {
                continue;
            }
            for message in &run {
                let span = message_span(message);
                let settled = self.settle(message).instrument(span.clone()).await;
                let Some(outcome) = settled else { return };
                let _entered = span.enter();
                self.record_settled(message, outcome);
            }
        }
    }

    /// One attempt at `run` together; false (nothing settled) when it must go one by one.
    async fn settle_run(&self, run: &[OwnedMessage]) -> bool {
        let started = Instant::now();
        let span = tracing::info_span!(
            "run",
            messages = run.len(),
            first_offset = run.first().map(Message::offset),
        );
        let outcomes = match self
            .processor
            .process_run(run)
            .instrument(span.clone())
            .await
        {
            Ok(outcomes) => outcomes,
            Err(err) => {
                let _entered = span.enter();
                tracing::debug!(error = %ErrorChain(&err), "run taken one message at a time");
                return false;
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let _entered = span.enter();
        self.processor.metrics.run_settled(run.len());
        for (message, outcome) in run.iter().zip(outcomes) {
            self.processor.metrics.settled(outcome, seconds);
            self.record_settled(message, outcome);
        }
        true
    }

    /// Records a settled message's offset for the next commit.
    fn record_settled(&self, message: &OwnedMessage, outcome: Outcome) {
        match self.consumer.settle(message) {
            SettleOutcome::Recorded => tracing::debug!(?outcome, "settled"),
            SettleOutcome::NotOwned => {
                tracing::info!(?outcome, "settled, but the partition was revoked meanwhile")
            }
        }
    }

    /// Attempts `message` until it is settled; `None` when shutdown came during a wait.
    async fn settle(&self, message: &OwnedMessage) -> Option<Outcome> {
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
                () = self.shutdown.cancelled() => {
                    tracing::info!("shutdown during a retry wait; the message stays uncommitted");
                    return None;
                }
            }
        }
    }
}

/// Commits newly settled offsets every `interval` until shutdown.
async fn commit_every(consumer: EventConsumer, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match consumer.commit_pending() {
            Ok(0) => {}
            Ok(partitions) => tracing::debug!(partitions, "settled offsets sent"),
            Err(err) => tracing::warn!(error = %err, "offset commit failed; retried next tick"),
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
