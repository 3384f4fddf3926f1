//! The one retry policy of the recommender, stated here and nowhere else.
//!
//! Exponential backoff from `min_backoff`, doubling, capped at `max_backoff`, with jitter (backon
//! adds a random share of up to one more delay, so replicas that failed together do not retry
//! together). The count is unbounded: while a dependency is down the partition waits, because
//! skipping a reading would lose it. Callers that want fewer attempts (the carbon client) bound
//! the count on top of the same shape.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Factor each wait grows by.
const BACKOFF_FACTOR: f32 = 2.0;

/// Bounds of the exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First wait.
    pub min_backoff: Duration,
    /// Longest wait before jitter.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The backon builder for this policy, with no limit on attempts.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(BACKOFF_FACTOR)
            .with_jitter()
            .without_max_times()
    }

    /// The same policy stopping after `attempts` calls in all (so `attempts - 1` waits).
    pub fn bounded(&self, attempts: usize) -> ExponentialBuilder {
        self.backoff().with_max_times(attempts.saturating_sub(1))
    }

    /// The waits of one retry sequence, for loops that must also watch for shutdown.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        self.backoff().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
        }
    }

    #[test]
    fn waits_grow_but_stay_within_twice_the_cap_with_jitter() {
        let delays: Vec<Duration> = policy().delays().take(20).collect();

        assert_eq!(delays.len(), 20, "the sequence never ends");
        assert!(delays[0] >= Duration::from_millis(100), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(2_000)),
            "{delays:?}"
        );
        assert!(delays[19] >= Duration::from_millis(1_000), "{delays:?}");
    }

    #[test]
    fn a_bounded_policy_stops_after_its_attempts() {
        let waits = policy().bounded(3).build().count();

        assert_eq!(waits, 2);
    }
}
