//! The audit log: who wrote, deleted, or changed keys and policies, in which tenant, when, and
//! how it was answered. Durable (the store's administration records, kind `audit`), ordered by
//! time, and read by operators a page at a time.
//!
//! Entries are ids of the form `<microseconds since 1970, 20 digits>-<sequence>`, so that
//! their order is their time and a timestamp is a cursor. Writes of entities are recorded in
//! the background, gathered into one commit at most every [`FLUSH_EVERY`]: an entry may be
//! lost with the last moments before a crash, never an acknowledged write. Changes of keys and
//! policies are recorded before they are answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harbor_model::Timestamp;
use harbor_store::{AdminChange, AdminKind, AdminStore};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::AuthError;

/// Longest time an entry waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Entries waiting to be written, at most; beyond it new ones are counted and dropped.
const QUEUE: usize = 65_536;
/// Entries written in one commit, at most.
const BATCH: usize = 1_024;

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    #[serde(default)]
    pub id: String,
    pub at: Timestamp,
    /// The identity, as [`crate::Identity::name`] shows it; `anonymous` without auth,
    /// `unauthenticated` for a refused credential.
    pub who: String,
    /// The tenant named by the request ("" for the default one).
    pub tenant: String,
    /// What was asked: method and path, e.g. `DELETE /ngsi-ld/v1/entities/urn:…`.
    pub action: String,
    /// The status it was answered with.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The log: a queue in front of the store.
pub struct AuditLog {
    store: Arc<dyn AdminStore>,
    tx: mpsc::Sender<AuditEntry>,
    seq: AtomicU64,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Starts the writer.
    pub fn start(store: Arc<dyn AdminStore>) -> Arc<AuditLog> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Arc::new(AuditLog {
            store: store.clone(),
            tx,
            seq: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(write_forever(store, rx));
        log
    }

    fn stamp(&self, mut e: AuditEntry) -> AuditEntry {
        let micros = e.at.timestamp_micros().max(0) as u64;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        e.id = format!("{micros:020}-{seq:06}");
        e
    }

    /// Records an entry in the background.
    pub fn record(&self, e: AuditEntry) {
        let e = self.stamp(e);
        if self.tx.try_send(e).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "the audit log cannot keep up; entries are dropped"
                );
            }
        }
    }

    /// Records an entry and returns once it is on disk.
    pub async fn record_now(&self, e: AuditEntry) -> Result<(), AuthError> {
        let e = self.stamp(e);
        commit(&*self.store, vec![e])
            .await
            .map_err(AuthError::Unavailable)
    }

    /// Entries after the cursor `after` (an entry id, or a time as its id prefix), at most
    /// `limit`, oldest first.
    pub async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuthError> {
        let rows = self
            .store
            .admin_page(AdminKind::Audit, after, limit)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, bytes)| {
                let mut e: AuditEntry = serde_json::from_slice(&bytes).ok()?;
                e.id = id;
                Some(e)
            })
            .collect())
    }

    /// Deletes the entries older than `before`; how many.
    pub async fn sweep(&self, before: Timestamp) -> Result<usize, AuthError> {
        let cutoff = cursor_at(before);
        let mut gone = 0;
        loop {
            let rows = self
                .store
                .admin_page(AdminKind::Audit, None, BATCH)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            let old: Vec<AdminChange> = rows
                .iter()
                .take_while(|(id, _)| *id < cutoff)
                .map(|(id, _)| AdminChange::Delete {
                    kind: AdminKind::Audit,
                    id: id.clone(),
                })
                .collect();
            if old.is_empty() {
                return Ok(gone);
            }
            let n = old.len();
            self.store
                .commit_admin(old)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            gone += n;
            if n < BATCH {
                return Ok(gone);
            }
        }
    }
}

/// The cursor just before every entry recorded at or after `at`.
pub fn cursor_at(at: Timestamp) -> String {
    let micros = at.timestamp_micros().max(0) as u64;
    format!("{micros:020}")
}

async fn commit(store: &dyn AdminStore, entries: Vec<AuditEntry>) -> Result<(), String> {
    let changes = entries
        .into_iter()
        .filter_map(|e| {
            let record = serde_json::to_vec(&e).ok()?;
            Some(AdminChange::Put {
                kind: AdminKind::Audit,
                id: e.id,
                record,
            })
        })
        .collect();
    store.commit_admin(changes).await.map_err(|e| e.to_string())
}

async fn write_forever(store: Arc<dyn AdminStore>, mut rx: mpsc::Receiver<AuditEntry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        let entries = std::mem::take(&mut batch);
        let n = entries.len();
        if let Err(e) = commit(&*store, entries).await {
            tracing::error!(error = %e, entries = n, "audit entries could not be written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_kept_in_time_order_and_paged_and_swept() {
        let store = Arc::new(MemoryAdmin::default());
        let log = AuditLog::start(store.clone());
        let t0 = harbor_model::time::now();
        for i in 0..30 {
            log.record(AuditEntry {
                id: String::new(),
                at: t0 + chrono::Duration::milliseconds(i),
                who: format!("key:{i}"),
                tenant: "sg".into(),
                action: "POST /ngsi-ld/v1/entities".into(),
                status: 201,
                detail: None,
            });
        }
        tokio::time::sleep(FLUSH_EVERY * 3).await;
        let first = log.page(None, 20).await.unwrap();
        assert_eq!(first.len(), 20);
        assert_eq!(first[0].who, "key:0");
        let rest = log.page(Some(&first[19].id), 20).await.unwrap();
        assert_eq!(rest.len(), 10);
        assert_eq!(rest[9].who, "key:29");
        let since = log
            .page(
                Some(&cursor_at(t0 + chrono::Duration::milliseconds(25))),
                50,
            )
            .await
            .unwrap();
        assert_eq!(since.first().map(|e| e.who.as_str()), Some("key:25"));
        let gone = log
            .sweep(t0 + chrono::Duration::milliseconds(10))
            .await
            .unwrap();
        assert_eq!(gone, 10);
        assert_eq!(log.page(None, 1).await.unwrap()[0].who, "key:10");
    }

    /// An in-memory administration store, for the log's own logic.
    #[derive(Default)]
    struct MemoryAdmin(parking_lot::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

    #[async_trait::async_trait]
    impl AdminStore for MemoryAdmin {
        async fn commit_admin(&self, changes: Vec<AdminChange>) -> harbor_store::StoreResult<()> {
            let mut m = self.0.lock();
            for c in changes {
                match c {
                    AdminChange::Put { kind, id, record } => {
                        m.insert(format!("{}/{id}", kind.as_str()), record);
                    }
                    AdminChange::Delete { kind, id } => {
                        m.remove(&format!("{}/{id}", kind.as_str()));
                    }
                }
            }
            Ok(())
        }

        async fn admin_records(
            &self,
            kind: AdminKind,
        ) -> harbor_store::StoreResult<Vec<(String, Vec<u8>)>> {
            let prefix = format!("{}/", kind.as_str());
            Ok(self
                .0
                .lock()
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone())))
                .collect())
        }
    }
}
