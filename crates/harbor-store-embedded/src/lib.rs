//! The default backend: current state in memory with indexes, made durable in `redb`.
//!
//! Writes go through one commit thread that drains every pending request into a single redb
//! write transaction (group commit): concurrent writers share one fsync, and nobody is answered
//! before their commit is on disk. Start-up loads the whole state back from redb.

mod commit;
mod memory;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use harbor_model::{Entity, Subscription, Tenant, Timestamp};
use harbor_store::{
    Change, ContextChange, ContextStore, EntityQuery, EntityStore, QueryResult, StoreError,
    StoreResult, SubscriptionChange, SubscriptionStore,
};
use parking_lot::RwLock;

use memory::Memory;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    memory: Arc<RwLock<Memory>>,
    contexts: Arc<RwLock<commit::Contexts>>,
    subscriptions: Arc<RwLock<commit::Subscriptions>>,
    committer: commit::Committer,
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
        let memory = Arc::new(RwLock::new(loaded.memory));
        let contexts = Arc::new(RwLock::new(loaded.contexts));
        let subscriptions = Arc::new(RwLock::new(loaded.subscriptions));
        let committer =
            commit::Committer::start(db, memory.clone(), contexts.clone(), subscriptions.clone());
        Ok(EmbeddedStore {
            memory,
            contexts,
            subscriptions,
            committer,
        })
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
            .submit_subscriptions(tenant.clone(), changes)
            .await
    }

    fn subscription(&self, tenant: &Tenant, id: &str) -> Option<Arc<Subscription>> {
        self.subscriptions.read().get(tenant)?.get(id).cloned()
    }

    fn subscriptions(&self, tenant: &Tenant) -> Vec<Arc<Subscription>> {
        self.subscriptions
            .read()
            .get(tenant)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}
