//! What the engine counts: notifications (sent, failed, dead-lettered, how long an attempt
//! takes, how long a change waits until its receiver has it) as they happen, and the depth
//! of the notification pipeline and of the history backlog, read when scraped.

use std::sync::Arc;

use harbor_metrics::{Collector, Counter, DescriptorEncoder, Histogram, Registry, DELAY_BUCKETS};

use crate::history::Historian;
use crate::notify::Notifier;

/// The notification counters; see [`Notifier::metrics`].
#[derive(Debug, Clone)]
pub struct NotifyMetrics {
    /// Notifications the receiver confirmed (HTTP 2xx, MQTT acknowledgement).
    pub sent: Counter,
    /// Attempts that failed (retried later or dead-lettered).
    pub failed: Counter,
    /// Deliveries dead-lettered.
    pub dead_lettered: Counter,
    /// One attempt, from sending to the receiver's answer.
    pub attempt_seconds: Histogram,
    /// From the commit of a change to its confirmed notification, retries included.
    pub latency_seconds: Histogram,
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        NotifyMetrics {
            sent: Counter::default(),
            failed: Counter::default(),
            dead_lettered: Counter::default(),
            attempt_seconds: Histogram::latency(),
            latency_seconds: Histogram::seconds(DELAY_BUCKETS),
        }
    }
}

/// Adds the notification pipeline's and the historian's metrics to `registry`.
pub fn register(
    registry: &mut Registry,
    notifier: Option<Arc<Notifier>>,
    historian: Option<Arc<Historian>>,
) {
    if let Some(n) = &notifier {
        let m = n.metrics();
        registry.register(
            "infoharbor_notifications_sent",
            "Notifications their receiver confirmed",
            m.sent.clone(),
        );
        registry.register(
            "infoharbor_notifications_failed",
            "Notification attempts that failed (each is retried or dead-lettered)",
            m.failed.clone(),
        );
        registry.register(
            "infoharbor_notifications_dead_lettered",
            "Deliveries dead-lettered: kept, listed and replayable under /admin/v1/deadLetters",
            m.dead_lettered.clone(),
        );
        registry.register(
            "infoharbor_notification_attempt_seconds",
            "Duration of one notification attempt, until the receiver answered, in seconds",
            m.attempt_seconds.clone(),
        );
        registry.register(
            "infoharbor_notification_latency_seconds",
            "From the commit of a change to its confirmed notification, in seconds",
            m.latency_seconds.clone(),
        );
    }
    registry.register_collector(Box::new(Depths {
        notifier,
        historian,
    }));
}

/// The depths of the pipeline, read at scrape time.
struct Depths {
    notifier: Option<Arc<Notifier>>,
    historian: Option<Arc<Historian>>,
}

impl std::fmt::Debug for Depths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Depths")
    }
}

impl Collector for Depths {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        if let Some(n) = &self.notifier {
            let (pending, dead) = n.outbox_depth();
            harbor_metrics::gauge(
                &mut enc,
                "infoharbor_outbox_pending",
                "Deliveries owed and not yet confirmed (waiting, in flight or backing off).",
                pending as u64,
            )?;
            harbor_metrics::gauge(
                &mut enc,
                "infoharbor_outbox_dead_letters",
                "Dead-lettered deliveries kept in the outbox.",
                dead as u64,
            )?;
            harbor_metrics::gauge(
                &mut enc,
                "infoharbor_feed_unmatched",
                "Change-feed records the subscription matcher has not handled yet (its lag).",
                n.unmatched(),
            )?;
            harbor_metrics::gauge(
                &mut enc,
                "infoharbor_feed_retained",
                "Change-feed records still kept for the matcher, deliveries owed or history.",
                n.retained(),
            )?;
        }
        if let Some(h) = &self.historian {
            harbor_metrics::gauge(
                &mut enc,
                "infoharbor_history_backlog",
                "Change-feed records not yet recorded as temporal history.",
                h.backlog(),
            )?;
        }
        Ok(())
    }
}

/// The label of the default tenant, which has no name: parentheses cannot occur in a tenant's
/// name, so it cannot be mistaken for one.
pub const DEFAULT_TENANT_LABEL: &str = "(default)";

/// The label under which the tenants beyond the largest are summed.
pub const OTHER_TENANTS_LABEL: &str = "(other)";

/// Adds per-tenant counts, read when scraped: entities, subscriptions and registrations of
/// the `top` tenants with the most entities, each under its name, and the rest summed under
/// `(other)`, so that a broker with thousands of tenants still exposes at most `top + 1`
/// series per metric.
pub fn register_tenants(registry: &mut Registry, engine: Arc<crate::Engine>, top: usize) {
    registry.register_collector(Box::new(TenantCollector { engine, top }));
}

struct TenantCollector {
    engine: Arc<crate::Engine>,
    top: usize,
}

impl std::fmt::Debug for TenantCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantCollector")
    }
}

/// The series of the per-tenant metrics: `(label, entities, subscriptions, registrations)`,
/// the `top` tenants with the most entities first (ties by name), then `(other)` when some
/// are left out.
pub fn tenant_series(
    mut counts: Vec<crate::TenantCounts>,
    top: usize,
) -> Vec<(String, [usize; 3])> {
    counts.sort_by(|a, b| {
        b.entities
            .cmp(&a.entities)
            .then_with(|| a.tenant.as_str().cmp(b.tenant.as_str()))
    });
    let rest = counts.split_off(top.min(counts.len()));
    let mut series: Vec<(String, [usize; 3])> = counts
        .into_iter()
        .map(|c| {
            let label = if c.tenant.is_default() {
                DEFAULT_TENANT_LABEL.to_string()
            } else {
                c.tenant.as_str().to_string()
            };
            (label, [c.entities, c.subscriptions, c.registrations])
        })
        .collect();
    if !rest.is_empty() {
        let sum = rest.iter().fold([0; 3], |s, c| {
            [
                s[0] + c.entities,
                s[1] + c.subscriptions,
                s[2] + c.registrations,
            ]
        });
        series.push((OTHER_TENANTS_LABEL.to_string(), sum));
    }
    series
}

impl Collector for TenantCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        use harbor_metrics::EncodeMetric as _;
        let counts = self.engine.tenant_counts();
        harbor_metrics::gauge(
            &mut enc,
            "infoharbor_tenants",
            "Tenants that exist, the default one included.",
            counts.len() as u64,
        )?;
        let series = tenant_series(counts, self.top);
        let metrics = [
            (
                "infoharbor_tenant_entities",
                "Entities of a tenant (the largest tenants by name, the rest as (other)).",
            ),
            (
                "infoharbor_tenant_subscriptions",
                "Subscriptions of a tenant (the largest tenants by name, the rest as (other)).",
            ),
            (
                "infoharbor_tenant_registrations",
                "Context source registrations of a tenant (the largest tenants by name, the rest as (other)).",
            ),
        ];
        for (i, (name, help)) in metrics.into_iter().enumerate() {
            let mut m =
                enc.encode_descriptor(name, help, None, harbor_metrics::MetricType::Gauge)?;
            for (label, values) in &series {
                harbor_metrics::ConstGauge::new(values[i] as u64)
                    .encode(m.encode_family(&[("tenant", label.as_str())])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbor_model::Tenant;

    fn counts(name: &str, entities: usize) -> crate::TenantCounts {
        crate::TenantCounts {
            tenant: Tenant::parse(name).expect("a tenant name"),
            entities,
            subscriptions: 1,
            registrations: 2,
        }
    }

    #[test]
    fn the_largest_tenants_by_name_and_the_rest_summed() {
        let all = vec![
            counts("", 5),
            counts("small", 1),
            counts("big", 100),
            counts("mid", 10),
            counts("tiny", 0),
        ];
        let s = tenant_series(all.clone(), 3);
        assert_eq!(
            s,
            vec![
                ("big".to_string(), [100, 1, 2]),
                ("mid".to_string(), [10, 1, 2]),
                (DEFAULT_TENANT_LABEL.to_string(), [5, 1, 2]),
                (OTHER_TENANTS_LABEL.to_string(), [1, 2, 4]),
            ]
        );
        assert_eq!(
            tenant_series(all.clone(), 10).len(),
            5,
            "no (other) when all fit"
        );
        assert_eq!(
            tenant_series(all, 0),
            vec![(OTHER_TENANTS_LABEL.to_string(), [116, 5, 10])]
        );
    }
}
