//! Quotas: how much one tenant may hold (entities, subscriptions, registrations) and how many
//! tenants may exist, in all and created by one identity. Over a quota the operation is
//! refused with `QuotaExceeded`, naming the quota and its option.
//!
//! Counting is cheap and exact under concurrency. Subscriptions and registrations are written
//! under the engine's lock for their kind, so a count read under it stays true until the
//! commit. Entities of different ids are created in parallel: a create first reserves its
//! place (store count + reservations in flight, under one short mutex) and gives it back once
//! its commit is over, when the store counts it. Tenants are created one at a time.
//!
//! Which identity created a tenant is kept in memory only: after a restart every identity
//! starts again from zero, while the total is counted from the store.

use harbor_model::{NgsiError, NgsiResult, Tenant};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use crate::{store_err, Engine};

/// Quotas, each 0 for unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Entities of one tenant.
    pub entities: usize,
    /// Subscriptions of one tenant; subscriptions to registrations are counted apart, to
    /// the same quota.
    pub subscriptions: usize,
    /// Context source registrations of one tenant.
    pub registrations: usize,
    /// Tenants in all, the default tenant included.
    pub max_tenants: usize,
    /// Tenants one identity may bring into existence (see [`Engine::admit_tenant`]).
    pub tenants_per_identity: usize,
}

/// A short lock never held across `.await`; a panic while it was held left nothing half done.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Entity creates between their check and the end of their commit, per tenant.
#[derive(Default)]
pub(crate) struct Pending {
    entities: Mutex<HashMap<Tenant, usize>>,
}

/// Places taken for entities about to be committed; given back on drop.
pub(crate) struct Reserved<'a> {
    pending: &'a Pending,
    tenant: Tenant,
    pub count: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut m = lock(&self.pending.entities);
        if let Some(n) = m.get_mut(&self.tenant) {
            *n -= self.count;
            if *n == 0 {
                m.remove(&self.tenant);
            }
        }
    }
}

/// Who brought which tenants into existence, and the lock under which tenants are created.
#[derive(Default)]
pub(crate) struct Tenants {
    creating: tokio::sync::Mutex<()>,
    by_identity: Mutex<HashMap<String, HashSet<Tenant>>>,
}

fn shown(t: &Tenant) -> String {
    if t.is_default() {
        "the default tenant".into()
    } else {
        format!("tenant \"{}\"", t.as_str())
    }
}

/// `QuotaExceeded` for a tenant that already holds `max` of `what`.
pub(crate) fn exceeded(tenant: &Tenant, max: usize, what: &str, option: &str) -> NgsiError {
    NgsiError::quota(format!(
        "{} already has {max} {what}, the most one tenant may have ({option}); delete some first",
        shown(tenant)
    ))
}

impl Engine {
    /// The engine with these quotas (by default there are none).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Reserves places for up to `wanted` new entities of `tenant`: all of them, or with
    /// `partial` as many as are left (possibly none). Without `partial`, too few places left
    /// is `QuotaExceeded`.
    pub(crate) fn reserve_entities(
        &self,
        tenant: &Tenant,
        wanted: usize,
        partial: bool,
    ) -> NgsiResult<Reserved<'_>> {
        let max = self.quotas.entities;
        let mut pending = lock(&self.pending.entities);
        let count = if max == 0 {
            0
        } else {
            let in_flight = pending.get(tenant).copied().unwrap_or(0);
            let have = self.store.count(tenant) + in_flight;
            let left = max.saturating_sub(have);
            if wanted > left && !partial {
                return Err(exceeded(tenant, max, "entities", "quota_entities"));
            }
            wanted.min(left)
        };
        if count > 0 {
            *pending.entry(tenant.clone()).or_default() += count;
        }
        Ok(Reserved {
            pending: &self.pending,
            tenant: tenant.clone(),
            count,
        })
    }

    /// The error for an entity refused by the entity quota.
    pub(crate) fn entities_exceeded(&self, tenant: &Tenant) -> NgsiError {
        exceeded(tenant, self.quotas.entities, "entities", "quota_entities")
    }

    /// Makes `tenant` exist, unless that would exceed `max_tenants`. Every operation that may
    /// bring a tenant into existence goes through here.
    pub(crate) async fn ensure_tenant(&self, tenant: &Tenant) -> NgsiResult<()> {
        if self.store.tenant_exists(tenant) {
            return Ok(());
        }
        let _one_at_a_time = self.tenants.creating.lock().await;
        if self.store.tenant_exists(tenant) {
            return Ok(());
        }
        let max = self.quotas.max_tenants;
        if max > 0 {
            let have = self.store.tenants().len();
            if have >= max {
                return Err(NgsiError::quota(format!(
                    "{} does not exist and cannot be created: the broker already has {have} \
                     tenants, the most it keeps (max_tenants)",
                    shown(tenant)
                )));
            }
        }
        self.store.ensure_tenant(tenant).await.map_err(store_err)
    }

    /// Lets `identity` name `tenant` in a write that may create it: refused when the tenant
    /// does not exist yet and the identity already brought `tenants_per_identity` tenants into
    /// existence. Naming a tenant that exists, or one the identity named before, costs
    /// nothing. The HTTP layer calls this for authenticated writes; the total
    /// (`max_tenants`) is checked when the tenant is actually created.
    pub fn admit_tenant(&self, tenant: &Tenant, identity: &str) -> NgsiResult<()> {
        let max = self.quotas.tenants_per_identity;
        if max == 0 || self.store.tenant_exists(tenant) {
            return Ok(());
        }
        let mut by_identity = lock(&self.tenants.by_identity);
        let named = by_identity.entry(identity.to_string()).or_default();
        if named.contains(tenant) {
            return Ok(());
        }
        // Tenants it named that were never created (the write failed) still count: they are
        // what it asked for.
        if named.len() >= max {
            return Err(NgsiError::quota(format!(
                "{} does not exist and {identity} may not create it: it already created {} \
                 tenants, the most one identity may (tenants_per_identity)",
                shown(tenant),
                named.len()
            )));
        }
        named.insert(tenant.clone());
        Ok(())
    }
}
