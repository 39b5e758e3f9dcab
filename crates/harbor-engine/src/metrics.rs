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
