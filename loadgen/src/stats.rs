//! Latency summaries: an hdrhistogram of microseconds, reported as milliseconds.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of one latency, milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

/// Collects latencies; negative ones (clock steps) count as zero.
pub struct Recorder {
    histogram: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder for latencies from 1 µs to one hour at 3 significant digits.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("the bounds and precision are valid constants");
        Self { histogram }
    }

    /// Records one latency in microseconds.
    pub fn record_micros(&mut self, micros: i64) {
        let value = u64::try_from(micros.max(1)).unwrap_or(1);
        self.histogram.saturating_record(value);
    }

    /// The percentiles of what was recorded (all zero when nothing was).
    pub fn summary(&self) -> Summary {
        if self.histogram.is_empty() {
            return Summary::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Summary {
            count: self.histogram.len(),
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p90_ms: ms(self.histogram.value_at_quantile(0.90)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            max_ms: ms(self.histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut recorder = Recorder::new();
        for ms in 1..=100 {
            recorder.record_micros(ms * 1000);
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn an_empty_recorder_summarises_to_zeroes() {
        assert_eq!(Recorder::new().summary(), Summary::default());
    }

    #[test]
    fn negative_latencies_count_as_the_smallest_value() {
        let mut recorder = Recorder::new();
        recorder.record_micros(-5);
        assert_eq!(recorder.summary().count, 1);
    }
}
