//! What the broker counts about itself, and how it is read out: the metric primitives every
//! crate that counts shares (a lock-free [`Histogram`], prometheus-client's counters and
//! gauges), readiness [`Beacon`]s, the process's own figures from `/proc/self`, and the
//! Prometheus text exposition of a [`Registry`].
//!
//! Counting is an atomic add on the hot path: no lock, no allocation. Values that are cheap
//! to read but costly to keep up to date (queue depths, lags) are read at scrape time by a
//! [`Collector`] instead of being counted.

mod beacon;
mod histogram;
pub mod process;

pub use beacon::{Beacon, BeaconGuard, BeaconState};
pub use histogram::{Histogram, DELAY_BUCKETS, LATENCY_BUCKETS, SIZE_BUCKETS};
pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
pub use prometheus_client::metrics::counter::{ConstCounter, Counter};
pub use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
pub use prometheus_client::metrics::MetricType;
pub use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric of `registry` in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// Encodes one unlabelled gauge from a [`Collector`].
pub fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug,
) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    g.encode(m)
}

/// Encodes one unlabelled counter from a [`Collector`]; `name` without `_total`.
pub fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let c: ConstCounter<u64> = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    c.encode(m)
}
