//! The default backend: current state in memory with indexes, made durable in `redb`.
//!
//! Writes go through one commit thread that drains every pending request into a single redb
//! write transaction (group commit): concurrent writers share one fsync, and nobody is answered
//! before their commit is on disk. Start-up loads the whole state back from redb.

mod commit;
mod memory;
mod metrics;
mod temporal;

pub use metrics::StoreMetrics;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use harbor_model::{
    Delivery, Entity, EntityChange, Registration, Subscription, TemporalHeader, TemporalInstance,
    Tenant, Timestamp,
};
use harbor_store::{
    AdminChange, AdminKind, AdminStore, Change, ContextChange, ContextStore, EntityQuery,
    EntityStore, FeedStore, HistoryBatch, InstanceRange, OutboxBatch, Page, Paging, QueryResult,
    RegistrationChange, RegistrationStore, StoreError, StoreResult, SubscriptionChange,
    SubscriptionStore, TemporalChange, TemporalStore,
};
use parking_lot::RwLock;

use commit::{ByTenant, SubscriptionKind};
use memory::Memory;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    memory: Arc<RwLock<Memory>>,
    contexts: Arc<RwLock<commit::Contexts>>,
    records: Arc<RwLock<commit::Records>>,
    spine: Arc<RwLock<commit::Spine>>,
    temporal: Arc<RwLock<temporal::Headers>>,
    /// Shared with the commit thread; temporal reads use their own read transactions.
    db: Arc<redb::Database>,
    feed_seq: Arc<tokio::sync::watch::Sender<u64>>,
    history_seq: Arc<tokio::sync::watch::Sender<u64>>,
    committer: commit::Committer,
    metrics: StoreMetrics,
}

/// redb's page cache.
const REDB_CACHE_BYTES: usize = 32 * 1024 * 1024;

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` and loads its state.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        // Reads are served from memory, so redb's page cache only helps commits: keep it small
        // instead of redb's 1 GiB default, which would count against the broker's RSS.
        let db = redb::Builder::new()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(dir.join("infoharbor.redb"))
            .map_err(|e| StoreError::Unavailable(format!("cannot open database: {e}")))?;
        let loaded = commit::load(&db)?;
        let feed_seq = Arc::new(tokio::sync::watch::Sender::new(loaded.spine.last_seq));
        let history_seq = Arc::new(tokio::sync::watch::Sender::new(loaded.spine.history_cursor));
        let shared = commit::Shared {
            memory: Arc::new(RwLock::new(loaded.memory)),
            contexts: Arc::new(RwLock::new(loaded.contexts)),
            records: Arc::new(RwLock::new(loaded.records)),
            spine: Arc::new(RwLock::new(loaded.spine)),
            temporal: Arc::new(RwLock::new(loaded.temporal)),
            feed_seq: feed_seq.clone(),
            history_seq: history_seq.clone(),
            metrics: StoreMetrics::default(),
        };
        let db = Arc::new(db);
        let committer = commit::Committer::start(db.clone(), shared.clone());
        Ok(EmbeddedStore {
            memory: shared.memory,
            contexts: shared.contexts,
            records: shared.records,
            spine: shared.spine,
            temporal: shared.temporal,
            db,
            feed_seq,
            history_seq,
            committer,
            metrics: shared.metrics,
        })
    }

    /// What the store counts about its commits, and the beacon of its commit thread.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }
}

#[async_trait]
impl AdminStore for EmbeddedStore {
    async fn commit_admin(&self, changes: Vec<AdminChange>) -> StoreResult<()> {
        self.committer.submit_admin(changes).await
    }

    async fn admin_records(&self, kind: AdminKind) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            use redb::ReadableDatabase;
            let fail = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
            let prefix = commit::admin_key(kind, "");
            let txn = db.begin_read().map_err(|e| fail(&e))?;
            let table = txn.open_table(commit::ADMIN).map_err(|e| fail(&e))?;
            let mut out = Vec::new();
            for row in table.range(prefix.as_str()..).map_err(|e| fail(&e))? {
                let (k, v) = row.map_err(|e| fail(&e))?;
                let Some(id) = k.value().strip_prefix(prefix.as_str()) else {
                    break;
                };
                out.push((id.to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading administration records: {e}")))?
    }

    async fn admin_page(
        &self,
        kind: AdminKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let db = self.db.clone();
        let after = after.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            use redb::ReadableDatabase;
            let fail = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
            let prefix = commit::admin_key(kind, "");
            let start = commit::admin_key(kind, after.as_deref().unwrap_or(""));
            let txn = db.begin_read().map_err(|e| fail(&e))?;
            let table = txn.open_table(commit::ADMIN).map_err(|e| fail(&e))?;
            let mut out = Vec::new();
            for row in table.range(start.as_str()..).map_err(|e| fail(&e))? {
                let (k, v) = row.map_err(|e| fail(&e))?;
                let Some(id) = k.value().strip_prefix(prefix.as_str()) else {
                    break;
                };
                if after.as_deref().is_some_and(|a| id <= a) {
                    continue;
                }
                out.push((id.to_string(), v.value().to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading administration records: {e}")))?
    }
}

#[async_trait]
impl FeedStore for EmbeddedStore {
    fn changes_after(&self, after: u64, limit: usize) -> Vec<Arc<EntityChange>> {
        self.spine
            .read()
            .feed
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn change(&self, seq: u64) -> Option<Arc<EntityChange>> {
        self.spine.read().feed.get(&seq).cloned()
    }

    fn last_seq(&self) -> u64 {
        *self.feed_seq.borrow()
    }

    async fn wait_for_changes(&self, after: u64) {
        let mut rx = self.feed_seq.subscribe();
        let _ = rx.wait_for(|seq| *seq > after).await;
    }

    fn matcher_cursor(&self) -> u64 {
        self.spine.read().cursor
    }

    fn trim_floor(&self) -> u64 {
        self.spine.read().history_cursor.saturating_add(1)
    }

    fn outbox(&self) -> Vec<Arc<Delivery>> {
        self.spine.read().outbox.values().cloned().collect()
    }

    fn delivery(&self, id: u64) -> Option<Arc<Delivery>> {
        self.spine.read().outbox.get(&id).cloned()
    }

    async fn commit_outbox(&self, batch: OutboxBatch) -> StoreResult<Vec<Arc<Delivery>>> {
        self.committer.submit_outbox(batch).await
    }
}

#[async_trait]
impl EntityStore for EmbeddedStore {
    async fn commit(&self, tenant: &Tenant, changes: Vec<Change>) -> StoreResult<()> {
        self.committer.submit(tenant.clone(), changes).await
    }

    async fn ensure_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        if self.tenant_exists(tenant) {
            return Ok(());
        }
        self.committer.submit(tenant.clone(), Vec::new()).await
    }

    fn tenant_exists(&self, tenant: &Tenant) -> bool {
        tenant.is_default() || self.memory.read().has_tenant(tenant)
    }

    fn tenants(&self) -> Vec<Tenant> {
        let mut t = self.memory.read().tenant_names();
        if !t.iter().any(Tenant::is_default) {
            t.insert(0, Tenant::default_tenant());
        }
        t
    }

    fn get(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<Arc<Entity>>> {
        Ok(self.memory.read().get(tenant, id))
    }

    fn query(&self, tenant: &Tenant, query: &EntityQuery) -> StoreResult<QueryResult> {
        Ok(QueryResult {
            entities: self.memory.read().query(tenant, query),
            exact: true,
        })
    }

    async fn query_page(
        &self,
        tenant: &Tenant,
        query: &EntityQuery,
        paging: &Paging,
        now: Timestamp,
    ) -> StoreResult<Page> {
        Ok(self.memory.read().query_page(tenant, query, paging, now))
    }

    fn expiring(&self, tenant: &Tenant, at: Timestamp) -> StoreResult<Vec<String>> {
        Ok(self.memory.read().expiring(tenant, at))
    }

    fn count(&self, tenant: &Tenant) -> usize {
        self.memory.read().count(tenant)
    }
}

#[async_trait]
impl ContextStore for EmbeddedStore {
    async fn commit_contexts(&self, changes: Vec<ContextChange>) -> StoreResult<()> {
        self.committer.submit_contexts(changes).await
    }

    fn contexts(&self) -> Vec<(String, Vec<u8>)> {
        self.contexts
            .read()
            .iter()
            .map(|(id, record)| (id.clone(), record.clone()))
            .collect()
    }
}

#[async_trait]
impl SubscriptionStore for EmbeddedStore {
    async fn commit_subscriptions(
        &self,
        tenant: &Tenant,
        changes: Vec<SubscriptionChange>,
    ) -> StoreResult<()> {
        self.committer
            .submit_subscriptions(SubscriptionKind::Entities, tenant.clone(), changes)
            .await
    }

    fn subscription(&self, tenant: &Tenant, id: &str) -> Option<Arc<Subscription>> {
        one(&self.records.read().subscriptions, tenant, id)
    }

    fn subscriptions(&self, tenant: &Tenant) -> Vec<Arc<Subscription>> {
        all(&self.records.read().subscriptions, tenant)
    }

    fn subscription_count(&self, tenant: &Tenant) -> usize {
        count(&self.records.read().subscriptions, tenant)
    }
}

#[async_trait]
impl RegistrationStore for EmbeddedStore {
    async fn commit_registrations(
        &self,
        tenant: &Tenant,
        changes: Vec<RegistrationChange>,
    ) -> StoreResult<()> {
        self.committer
            .submit_registrations(tenant.clone(), changes)
            .await
    }

    fn registration(&self, tenant: &Tenant, id: &str) -> Option<Arc<Registration>> {
        one(&self.records.read().registrations, tenant, id)
    }

    fn registrations(&self, tenant: &Tenant) -> Vec<Arc<Registration>> {
        all(&self.records.read().registrations, tenant)
    }

    fn registration_count(&self, tenant: &Tenant) -> usize {
        count(&self.records.read().registrations, tenant)
    }

    async fn commit_csource_subscriptions(
        &self,
        tenant: &Tenant,
        changes: Vec<SubscriptionChange>,
    ) -> StoreResult<()> {
        self.committer
            .submit_subscriptions(SubscriptionKind::Registrations, tenant.clone(), changes)
            .await
    }

    fn csource_subscription(&self, tenant: &Tenant, id: &str) -> Option<Arc<Subscription>> {
        one(&self.records.read().csource_subscriptions, tenant, id)
    }

    fn csource_subscriptions(&self, tenant: &Tenant) -> Vec<Arc<Subscription>> {
        all(&self.records.read().csource_subscriptions, tenant)
    }

    fn csource_subscription_count(&self, tenant: &Tenant) -> usize {
        count(&self.records.read().csource_subscriptions, tenant)
    }
}

#[async_trait]
impl TemporalStore for EmbeddedStore {
    async fn commit_history(&self, batch: HistoryBatch) -> StoreResult<()> {
        self.committer.submit_history(batch).await
    }

    fn history_cursor(&self) -> u64 {
        self.spine.read().history_cursor
    }

    async fn wait_for_history(&self, seq: u64) {
        let mut rx = self.history_seq.subscribe();
        let _ = rx.wait_for(|h| *h >= seq).await;
    }

    async fn commit_temporal(
        &self,
        tenant: &Tenant,
        changes: Vec<TemporalChange>,
    ) -> StoreResult<()> {
        self.committer
            .submit_temporal(tenant.clone(), changes)
            .await
    }

    fn temporal_header(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<TemporalHeader>> {
        Ok(one(&self.temporal.read(), tenant, id).map(|h| (*h).clone()))
    }

    fn temporal_headers(&self, tenant: &Tenant) -> StoreResult<Vec<TemporalHeader>> {
        Ok(all(&self.temporal.read(), tenant)
            .into_iter()
            .map(|h| (*h).clone())
            .collect())
    }

    fn temporal_attrs(&self, tenant: &Tenant, id: &str) -> StoreResult<Vec<String>> {
        temporal::attrs(&self.db, tenant, id)
    }

    fn visit_instances(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        range: InstanceRange,
        visit: &mut dyn FnMut(TemporalInstance) -> bool,
    ) -> StoreResult<()> {
        temporal::visit(&self.db, tenant, id, attr, range, visit)
    }

    fn visit_samples(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        range: InstanceRange,
        time: harbor_model::TimeProperty,
        visit: &mut dyn FnMut(&harbor_store::InstanceSample<'_>) -> bool,
    ) -> StoreResult<()> {
        temporal::visit_samples(&self.db, tenant, id, attr, range, time, visit)
    }
}

fn one<T>(m: &ByTenant<T>, tenant: &Tenant, id: &str) -> Option<Arc<T>> {
    m.get(tenant)?.get(id).cloned()
}

fn count<T>(m: &ByTenant<T>, tenant: &Tenant) -> usize {
    m.get(tenant).map_or(0, |m| m.len())
}

fn all<T>(m: &ByTenant<T>, tenant: &Tenant) -> Vec<Arc<T>> {
    m.get(tenant)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default()
}
