//! The historian (ADR 0006): turns the change feed into temporal history, in batches, off the
//! write path.
//!
//! Every acknowledged change is in the durable change feed already. The historian reads the
//! feed from its cursor, derives each record's temporal rows ([`HistoryBatch::derive`]), and
//! commits the rows of many records together
//! with the new cursor, so each change is recorded exactly once, across crashes too (the store
//! keeps every feed record the cursor has not passed). A batch gathers for up to
//! [`HistoryConfig::flush`]: the instances of one series then share B-tree pages, and an
//! entity's header is written once per batch rather than once per change. Temporal reads and
//! writes call [`Historian::caught_up`] first, which flushes at once: whoever reads history
//! sees every change acknowledged before the read.

use std::sync::Arc;
use std::time::Duration;

use harbor_store::{FeedStore, HistoryBatch, TemporalStore};

/// How the historian batches.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Whether changes of the current state become temporal instances. When off, the cursor
    /// still moves, so that the feed does not grow for the historian's sake.
    pub record: bool,
    /// How long a batch may gather before it is committed (unless a reader asks for it).
    pub flush: Duration,
    /// Feed records per batch at most.
    pub max_batch: usize,
    /// Rows per commit at most (about: an entity's rows are never split), so that writes
    /// waiting behind a history commit do not wait long.
    pub max_commit_rows: usize,
    /// How long a temporal read waits for history to catch up before it answers anyway.
    pub catch_up_limit: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            record: true,
            flush: Duration::from_millis(2000),
            max_batch: 32_768,
            max_commit_rows: 4096,
            catch_up_limit: Duration::from_secs(10),
        }
    }
}

pub struct Historian {
    feed: Arc<dyn FeedStore>,
    store: Arc<dyn TemporalStore>,
    cfg: HistoryConfig,
    /// Woken when someone waits for history to catch up.
    wanted: tokio::sync::Notify,
    /// Lit while the recording loop runs.
    beacon: harbor_metrics::Beacon,
}

impl Historian {
    pub fn new(
        feed: Arc<dyn FeedStore>,
        store: Arc<dyn TemporalStore>,
        cfg: HistoryConfig,
    ) -> Arc<Self> {
        Arc::new(Historian {
            feed,
            store,
            cfg,
            wanted: tokio::sync::Notify::new(),
            beacon: harbor_metrics::Beacon::new(),
        })
    }

    /// Up while the recording loop runs; down for good once it stopped (it does not stop on
    /// its own: a panic or an abort).
    pub fn beacon(&self) -> harbor_metrics::Beacon {
        self.beacon.clone()
    }

    /// Change-feed records not yet recorded.
    pub fn backlog(&self) -> u64 {
        self.feed
            .last_seq()
            .saturating_sub(self.store.history_cursor())
    }

    /// Starts recording in the background, from where the last run stopped.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }

    /// Resolves once every change acknowledged before the call is recorded, or after
    /// `catch_up_limit` (then a warning says history lags).
    pub async fn caught_up(&self) {
        let target = self.feed.last_seq();
        if self.store.history_cursor() >= target {
            return;
        }
        self.wanted.notify_one();
        let wait = self.store.wait_for_history(target);
        if tokio::time::timeout(self.cfg.catch_up_limit, wait)
            .await
            .is_err()
        {
            tracing::warn!(
                target,
                recorded = self.store.history_cursor(),
                "temporal history lags behind the current state; answering with what is recorded"
            );
        }
    }

    async fn run(self: Arc<Self>) {
        let _running = self.beacon.hold();
        loop {
            let cursor = self.store.history_cursor();
            if self.feed.last_seq() <= cursor {
                self.feed.wait_for_changes(cursor).await;
            }
            let behind = self.feed.last_seq().saturating_sub(cursor);
            if (behind as usize) < self.cfg.max_batch {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg.flush) => {}
                    _ = self.wanted.notified() => {}
                }
            }
            let changes = self.feed.changes_after(cursor, self.cfg.max_batch);
            let Some(last) = changes.last().map(|c| c.seq) else {
                continue;
            };
            let derived = if self.cfg.record {
                HistoryBatch::derive(&changes, self.store.as_ref())
            } else {
                Ok(HistoryBatch {
                    rows: Vec::new(),
                    cursor: last,
                })
            };
            let batch = match derived {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "deriving temporal history failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            for part in batch.split(self.cfg.max_commit_rows, cursor) {
                if let Err(e) = self.store.commit_history(part).await {
                    tracing::error!(error = %e, "recording temporal history failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}
