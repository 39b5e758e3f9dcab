//! A histogram that observes with atomic adds only. prometheus-client's own takes a mutex per
//! observation; the broker observes on every request, from every worker thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds for latencies of requests and commits, in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds for slower things (a notification from change to receipt), in seconds.
pub const DELAY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// Upper bounds for sizes (requests per group commit, entities per batch).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A distribution with fixed buckets. Clones share the same counts.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One per bound, then the overflow (`+Inf`); not cumulative.
    counts: Box<[AtomicU64]>,
    /// The sum of observations in `1 / scale` units, so that it adds atomically.
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    fn with_scale(bounds: &'static [f64], scale: f64) -> Self {
        Histogram(Arc::new(Inner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }))
    }

    /// A histogram of durations, in seconds (the sum is kept in nanoseconds).
    pub fn seconds(bounds: &'static [f64]) -> Self {
        Histogram::with_scale(bounds, 1e9)
    }

    /// A histogram of whole quantities.
    pub fn sizes(bounds: &'static [f64]) -> Self {
        Histogram::with_scale(bounds, 1.0)
    }

    /// A request or commit latency histogram ([`LATENCY_BUCKETS`]).
    pub fn latency() -> Self {
        Histogram::seconds(LATENCY_BUCKETS)
    }

    fn bucket(&self, v: f64) -> &AtomicU64 {
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.0.bounds.len());
        &self.0.counts[i]
    }

    /// Observes a duration (a histogram made with [`Histogram::seconds`]).
    pub fn observe_duration(&self, d: Duration) {
        self.bucket(d.as_secs_f64()).fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observes a quantity (a histogram made with [`Histogram::sizes`]).
    pub fn observe_count(&self, n: u64) {
        self.bucket(n as f64).fetch_add(1, Ordering::Relaxed);
        self.0.sum.fetch_add(n, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the observations, in seconds or units.
    pub fn sum(&self) -> f64 {
        self.0.sum.load(Ordering::Relaxed) as f64 / self.0.scale
    }

    /// Encodes the histogram under an encoder that already carries its name and labels.
    pub fn encode_into(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(self.0.counts.len());
        let mut count = 0;
        for (i, c) in self.0.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            let bound = self.0.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, encoder: MetricEncoder) -> std::fmt::Result {
        self.encode_into(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::seconds(&[0.01, 0.1]);
        h.observe_duration(Duration::from_millis(5));
        h.observe_duration(Duration::from_millis(50));
        h.observe_duration(Duration::from_millis(50));
        h.observe_duration(Duration::from_secs(3));
        let mut reg = Registry::default();
        reg.register("t_seconds", "test", h.clone());
        let text = crate::encode(&reg);
        for line in [
            "t_seconds_bucket{le=\"0.01\"} 1",
            "t_seconds_bucket{le=\"0.1\"} 3",
            "t_seconds_bucket{le=\"+Inf\"} 4",
            "t_seconds_sum 3.105",
            "t_seconds_count 4",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn sizes_count_whole_units() {
        let h = Histogram::sizes(&[1.0, 4.0]);
        h.observe_count(1);
        h.observe_count(3);
        h.observe_count(9);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum(), 13.0);
    }
}
