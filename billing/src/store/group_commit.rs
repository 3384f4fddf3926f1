//! Group commit: concurrent single-reading requests share one transaction.
//!
//! Each request hands its reading to a queue and waits for its own outcome. A few writer tasks
//! take turns at the queue: a writer takes the first reading waiting (it never waits for more
//! to arrive, so a lone request is written at once) plus whatever else is queued at that moment,
//! up to [`GroupSettings::max_readings`], and stores them with [`insert_many_if`]: one
//! transaction, one commit and one WAL flush for the whole group. While one writer's transaction
//! runs, the next writer is already gathering the following group, so the groups grow with the
//! load.
//!
//! Nothing about a reading's meaning changes: each request still gets 202 only after the
//! commit that holds its reading, and its own replay or conflict answer. When the transaction
//! fails, every request in the group gets the error (503), and none of their readings is
//! stored. A request that gives up while its group is being written (the request timeout, or a
//! client that hangs up) is taken out of it: just before the commit the writer checks that every
//! requester still waits, and if one has gone it rolls back and writes the group again without
//! it. So a 503 for a timeout means the reading was not stored, as when each request had its own
//! transaction; only a requester that leaves between that check and the commit finds its reading
//! stored, and a retry with the same key or id is answered as a replay.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument;

use super::readings::{Ingested, StoreError, Submission, insert_many_if};
use crate::metrics::Metrics;

/// How the writers group readings.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    /// Writer tasks; each holds at most one pool connection at a time.
    pub writers: usize,
    /// Most readings in one transaction.
    pub max_readings: usize,
}

/// A reading waiting for its group, and where its outcome goes.
struct Job {
    submission: Submission,
    reply: oneshot::Sender<Result<Ingested, StoreError>>,
}

/// The queue in front of the writer tasks; cheap to clone. The writers stop once every clone is
/// dropped and the queue is empty.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Spawns the writer tasks, storing into `pool` with outbox rows for `topic`.
    pub fn start(pool: PgPool, topic: String, settings: GroupSettings, metrics: Metrics) -> Self {
        let max_readings = settings.max_readings.max(1);
        let (jobs, queue) = mpsc::channel(max_readings * settings.writers.max(1));
        let queue = Arc::new(Mutex::new(queue));
        let topic: Arc<str> = topic.into();
        for writer in 0..settings.writers.max(1) {
            let task = Writer {
                pool: pool.clone(),
                topic: Arc::clone(&topic),
                queue: Arc::clone(&queue),
                max_readings,
                metrics: metrics.clone(),
            };
            tokio::spawn(
                task.run()
                    .instrument(tracing::info_span!("group_writer", writer)),
            );
        }
        Self { jobs }
    }

    /// Stores one reading in the next group and answers once that group is committed.
    pub async fn submit(&self, submission: Submission) -> Result<Ingested, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job { submission, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }
}

/// One writer task.
struct Writer {
    pool: PgPool,
    topic: Arc<str>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_readings: usize,
    metrics: Metrics,
}

impl Writer {
    async fn run(self) {
        while let Some(group) = self.next_group().await {
            self.write(group).await;
        }
    }

    /// Waits for a reading, then takes what else is queued, up to the limit; `None` once the
    /// queue is closed and empty.
    async fn next_group(&self) -> Option<Vec<Job>> {
        let mut queue = self.queue.lock().await;
        let first = queue.recv().await?;
        let mut group = Vec::with_capacity(self.max_readings.min(64));
        group.push(first);
        while group.len() < self.max_readings {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        Some(group)
    }

    /// Writes the group, again without any requester that has gone, until the commit is for
    /// requesters that all still wait (or none is left).
    async fn write(&self, group: Vec<Job>) {
        let (mut submissions, mut replies): (Vec<Submission>, Vec<_>) = group
            .into_iter()
            .map(|job| (job.submission, job.reply))
            .unzip();
        loop {
            // One reading of who still waits, applied to both lists so they stay aligned.
            let waiting: Vec<bool> = replies.iter().map(|reply| !reply.is_closed()).collect();
            let mut keep = waiting.iter().copied();
            submissions.retain(|_| keep.next().unwrap_or(false));
            let mut keep = waiting.iter().copied();
            replies.retain(|_| keep.next().unwrap_or(false));
            if submissions.is_empty() {
                return;
            }
            let all_waiting = || replies.iter().all(|reply| !reply.is_closed());
            match insert_many_if(&self.pool, &self.topic, &submissions, all_waiting).await {
                Ok(Some(outcomes)) => {
                    self.metrics.group_committed(submissions.len());
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        // A requester that left after the check no longer needs its answer.
                        let _ = reply.send(outcome);
                    }
                    return;
                }
                Ok(None) => {
                    tracing::debug!(
                        readings = submissions.len(),
                        "a requester left; group rolled back"
                    );
                }
                Err(err) => {
                    tracing::warn!(error = %err, readings = replies.len(), "group not stored");
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                    return;
                }
            }
        }
    }
}
