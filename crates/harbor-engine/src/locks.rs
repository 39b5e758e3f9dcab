//! Per-entity write serialisation: a read-modify-write of one entity holds its stripe until
//! the commit is durable, so concurrent updates of the same entity never lose each other.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use harbor_model::Tenant;
use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 1024;

pub struct EntityLocks {
    stripes: Vec<Mutex<()>>,
}

impl EntityLocks {
    pub fn new() -> Self {
        EntityLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(tenant: &Tenant, id: &str) -> usize {
        let mut h = DefaultHasher::new();
        tenant.hash(&mut h);
        id.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    /// Locks one entity.
    pub async fn lock(&self, tenant: &Tenant, id: &str) -> MutexGuard<'_, ()> {
        self.stripes[Self::stripe(tenant, id)].lock().await
    }

    /// Locks several entities, in stripe order so that two batches cannot deadlock.
    pub async fn lock_many<'i>(
        &self,
        tenant: &Tenant,
        ids: impl Iterator<Item = &'i str>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = ids.map(|id| Self::stripe(tenant, id)).collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }
}
