//! What the embedded store counts: group commits (how long, how many requests each carried,
//! how long redb's durable commit took) and whether its commit thread is alive. The commit
//! thread is the only writer, so these are plain atomic adds off the request path.

use harbor_metrics::{Beacon, Counter, Histogram, Registry, SIZE_BUCKETS};

/// The store's metrics; see [`crate::EmbeddedStore::metrics`].
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// One redb write transaction: writing every request of the group, then committing.
    pub commit_seconds: Histogram,
    /// The durable part of a commit (redb `commit`, which ends with the fsync).
    pub fsync_seconds: Histogram,
    /// Requests folded into one commit.
    pub group_size: Histogram,
    /// Commits that failed (every request of the group was answered with the error).
    pub commit_failures: Counter,
    /// Lit while the commit thread runs.
    pub beacon: Beacon,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            commit_seconds: Histogram::latency(),
            fsync_seconds: Histogram::latency(),
            group_size: Histogram::sizes(SIZE_BUCKETS),
            commit_failures: Counter::default(),
            beacon: Beacon::new(),
        }
    }
}

impl StoreMetrics {
    /// Adds the store's metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "infoharbor_store_commit_seconds",
            "Duration of one group commit (write transaction and durable commit), in seconds",
            self.commit_seconds.clone(),
        );
        registry.register(
            "infoharbor_store_fsync_seconds",
            "Duration of the durable part of a commit (redb commit with fsync), in seconds",
            self.fsync_seconds.clone(),
        );
        registry.register(
            "infoharbor_store_commit_group_size",
            "Write requests carried by one group commit",
            self.group_size.clone(),
        );
        registry.register(
            "infoharbor_store_commit_failures",
            "Group commits that failed; their writers were answered with an error",
            self.commit_failures.clone(),
        );
    }
}
