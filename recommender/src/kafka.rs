//! The Kafka side of the consumer: subscription, offset commits and rebalances.
//!
//! Auto-commit is off. A partition's worker calls [`EventConsumer::settle`] for a message only
//! once its results are stored and confirmed; that records the offset after it. The recorded
//! offsets are committed asynchronously by [`EventConsumer::commit_pending`], which the service
//! calls on a short tick (a lost commit only means a redelivery, which the store deduplicates),
//! and again synchronously when partitions are revoked and at shutdown, so the next owner starts
//! where this one ended.
//!
//! Which partitions this consumer owns is tracked in [`Ownership`], shared with the rebalance
//! callbacks. librdkafka runs those callbacks inside `recv`. A worker may still be busy with a
//! message of a partition that was just revoked: [`EventConsumer::settle`] then refuses to record
//! it, and the next owner reads the message again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// How long the final synchronous commit may take at shutdown.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A topic and partition.
type PartitionKey = (String, i32);

/// The partitions this consumer owns and the next offset to commit for each.
#[derive(Debug, Default)]
struct Ownership {
    assigned: HashSet<PartitionKey>,
    /// Next offset to commit (last settled + 1), per owned partition.
    settled: HashMap<PartitionKey, i64>,
    /// The offsets last sent in a commit, so a tick with nothing new sends nothing.
    committed: HashMap<PartitionKey, i64>,
}

impl Ownership {
    fn forget(&mut self, key: &PartitionKey) {
        self.assigned.remove(key);
        self.settled.remove(key);
        self.committed.remove(key);
    }

    /// Settled offsets not yet sent in a commit, marked as sent.
    fn take_uncommitted(&mut self) -> Vec<(PartitionKey, i64)> {
        let pending: Vec<_> = self
            .settled
            .iter()
            .filter(|(key, offset)| self.committed.get(*key) != Some(*offset))
            .map(|(key, offset)| (key.clone(), *offset))
            .collect();
        for (key, offset) in &pending {
            self.committed.insert(key.clone(), *offset);
        }
        pending
    }
}

/// Whether a settled message's offset was recorded for the next commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Recorded; the next commit carries it.
    Recorded,
    /// The partition was revoked meanwhile; its next owner reads the message again.
    NotOwned,
}

/// Rebalance and commit callbacks, sharing [`Ownership`] with the consumer.
pub struct RebalanceContext {
    /// Locked briefly by the callbacks and by `commit`; never held across an await or a
    /// blocking call.
    ownership: Arc<Mutex<Ownership>>,
}

impl RebalanceContext {
    fn ownership(&self) -> MutexGuard<'_, Ownership> {
        lock(&self.ownership)
    }
}

/// The ownership lock; a panic while holding it leaves plain maps behind, still usable.
fn lock(ownership: &Mutex<Ownership>) -> MutexGuard<'_, Ownership> {
    ownership
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let keys = partition_keys(revoked);

        // Settled offsets of revoked partitions are committed before the next owner starts. When
        // the assignment was lost (session timed out) the group has moved on and a commit would
        // be refused; the next owner re-reads, and the store deduplicates.
        let pending = {
            let ownership = self.ownership();
            offsets_list(
                keys.iter()
                    .filter_map(|key| ownership.settled.get(key).map(|offset| (key, *offset))),
            )
        };
        if pending.count() > 0
            && !consumer.assignment_lost()
            && let Err(err) = consumer.commit(&pending, CommitMode::Sync)
        {
            tracing::warn!(error = %err, "could not commit revoked partitions' offsets");
        }

        let mut ownership = self.ownership();
        for key in &keys {
            ownership.forget(key);
        }
        tracing::info!(partitions = ?keys, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let keys = partition_keys(assigned);
                self.ownership().assigned.extend(keys.iter().cloned());
                tracing::info!(partitions = ?keys, "partitions assigned");
            }
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = ?offsets_text(offsets), "offsets committed"),
            // Sent again on the next tick; until then a restart or rebalance re-reads the
            // messages, and the store deduplicates them.
            Err(err) => {
                tracing::warn!(error = %err, "offset commit failed");
                let mut ownership = self.ownership();
                for key in partition_keys(offsets) {
                    ownership.committed.remove(&key);
                }
            }
        }
    }
}

/// The consumer of the consumption topic; clones share the one librdkafka consumer.
#[derive(Clone)]
pub struct EventConsumer {
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    ownership: Arc<Mutex<Ownership>>,
}

impl EventConsumer {
    /// Joins `group` on `bootstrap` and subscribes to `topic`, manual commits, reading a new
    /// group's partitions from the earliest offset.
    pub fn subscribe(bootstrap: &str, group: &str, topic: &str) -> Result<Self, KafkaError> {
        let ownership = Arc::new(Mutex::new(Ownership::default()));
        let context = RebalanceContext {
            ownership: Arc::clone(&ownership),
        };
        let consumer: StreamConsumer<RebalanceContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("client.id", "recommender")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(context)?;
        consumer.subscribe(&[topic])?;
        Ok(Self {
            consumer: Arc::new(consumer),
            ownership,
        })
    }

    /// The next message, detached from the consumer's buffer. Cancel-safe: a message is taken
    /// from the queue only by the poll that returns it.
    pub async fn recv(&self) -> Result<OwnedMessage, KafkaError> {
        self.consumer.recv().await.map(|message| message.detach())
    }

    /// Whether the partition `message` came from is still owned: a worker skips messages of a
    /// revoked partition, which its next owner reads again.
    pub fn owns(&self, message: &OwnedMessage) -> bool {
        let key = (message.topic().to_string(), message.partition());
        lock(&self.ownership).assigned.contains(&key)
    }

    /// Records `message` as settled: the next commit carries the offset after it, if the
    /// partition is still owned. The recorded offset only moves forward.
    pub fn settle(&self, message: &OwnedMessage) -> SettleOutcome {
        let key = (message.topic().to_string(), message.partition());
        let next = message.offset() + 1;
        let mut ownership = lock(&self.ownership);
        if !ownership.assigned.contains(&key) {
            return SettleOutcome::NotOwned;
        }
        let settled = ownership.settled.entry(key).or_insert(next);
        *settled = (*settled).max(next);
        SettleOutcome::Recorded
    }

    /// Sends the settled offsets recorded since the last commit, without waiting for the
    /// broker; returns how many partitions it named.
    pub fn commit_pending(&self) -> Result<usize, KafkaError> {
        let pending = lock(&self.ownership).take_uncommitted();
        if pending.is_empty() {
            return Ok(0);
        }
        let list = offsets_list(pending.iter().map(|(key, offset)| (key, *offset)));
        self.consumer.commit(&list, CommitMode::Async)?;
        Ok(pending.len())
    }

    /// Commits every settled offset synchronously: the last step of shutdown.
    pub async fn commit_settled(&self) -> Result<(), KafkaError> {
        let list = {
            let ownership = lock(&self.ownership);
            offsets_list(ownership.settled.iter().map(|(key, offset)| (key, *offset)))
        };
        if list.count() == 0 {
            return Ok(());
        }
        let consumer = Arc::clone(&self.consumer);
        // A synchronous commit blocks its thread until the broker answers.
        let commit = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync));
        match tokio::time::timeout(FINAL_COMMIT_TIMEOUT, commit).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => {
                tracing::error!(error = %join, "final commit task failed");
                Ok(())
            }
            Err(_) => Err(KafkaError::Canceled),
        }
    }

    /// The underlying consumer, for readiness checks.
    pub fn client(&self) -> Arc<StreamConsumer<RebalanceContext>> {
        Arc::clone(&self.consumer)
    }
}

fn partition_keys(list: &TopicPartitionList) -> Vec<PartitionKey> {
    list.elements()
        .iter()
        .map(|element| (element.topic().to_string(), element.partition()))
        .collect()
}

fn offsets_list<'a>(
    offsets: impl IntoIterator<Item = (&'a PartitionKey, i64)>,
) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        // Only fails for an offset rdkafka cannot express; a settled offset + 1 always fits.
        if let Err(err) = list.add_partition_offset(topic, *partition, Offset::Offset(offset)) {
            tracing::error!(error = %err, topic, partition, offset, "offset not committable");
        }
    }
    list
}

fn offsets_text(list: &TopicPartitionList) -> Vec<String> {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_lists_name_each_partition_with_its_next_offset() {
        let key = ("events".to_string(), 3);

        let list = offsets_list([(&key, 42)]);

        assert_eq!(list.count(), 1);
        assert_eq!(offsets_text(&list), vec!["events/3@Offset(42)".to_string()]);
    }

    #[test]
    fn only_offsets_that_moved_since_the_last_commit_are_taken() {
        let key = ("events".to_string(), 0);
        let other = ("events".to_string(), 1);
        let mut ownership = Ownership::default();
        ownership.settled.insert(key.clone(), 10);
        ownership.settled.insert(other.clone(), 4);

        let first = ownership.take_uncommitted();
        ownership.settled.insert(key.clone(), 12);
        let second = ownership.take_uncommitted();
        let third = ownership.take_uncommitted();

        assert_eq!(first.len(), 2);
        assert_eq!(second, vec![(key, 12)]);
        assert!(third.is_empty());
    }

    #[test]
    fn a_revoked_partition_is_forgotten_entirely() {
        let key = ("events".to_string(), 2);
        let mut ownership = Ownership::default();
        ownership.assigned.insert(key.clone());
        ownership.settled.insert(key.clone(), 7);
        ownership.committed.insert(key.clone(), 7);

        ownership.forget(&key);

        assert!(ownership.assigned.is_empty());
        assert!(ownership.settled.is_empty());
        assert!(ownership.committed.is_empty());
    }
}
