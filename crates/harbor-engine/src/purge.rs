//! Purge Entities (5.6.21) and the removal of expired transient state (4.22): deletes that
//! select their entities by a query or by time rather than by id.

use harbor_model::{names, time, Entity, NgsiError, NgsiResult, Tenant, Timestamp};
use harbor_store::{Change, EntityQuery};

use crate::{store_err, Engine};

/// What a purge does to each matching entity (5.6.21.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeAction {
    /// Delete the entity.
    Delete,
    /// Keep only these attributes (expanded names); the entity stays.
    Keep(Vec<String>),
    /// Delete these attributes (expanded names); the entity stays.
    Drop(Vec<String>),
}

/// The selection of a purge: the query and whether it is limited to the local scope.
pub struct PurgeFilter<'a> {
    pub query: &'a EntityQuery,
    pub local: bool,
}

/// Whether an (expanded) name is an Entity member or system attribute rather than an
/// attribute the user wrote (`createdAt`, `modifiedAt`, ...).
fn is_system(name: &str) -> bool {
    let short = name.strip_prefix(names::NGSI_LD).unwrap_or(name);
    names::ENTITY_RESERVED.contains(&short)
}

/// 5.6.21.4: a purge must be restricted by a type, an attribute list or query naming at least
/// one non-system attribute, a geo-query, or the local scope; a linked-entity query cannot
/// select what to purge.
fn check_filter(f: &PurgeFilter<'_>) -> NgsiResult<()> {
    let q = f.query;
    if let Some(expr) = &q.q {
        if expr.link_depth() > 0 {
            return Err(NgsiError::bad_request(
                "Purge Entities cannot select by attributes of linked entities: remove the rel{attr} form from q",
            ));
        }
    }
    let names_user_attr = |names: &[String]| names.iter().any(|n| !is_system(n));
    let qualifies = q.types.is_some()
        || q.attrs.as_deref().is_some_and(names_user_attr)
        || q.q
            .as_ref()
            .is_some_and(|e| names_user_attr(&e.attributes()))
        || q.geo.is_some()
        || f.local;
    if qualifies {
        return Ok(());
    }
    Err(NgsiError::bad_request(
        "Purge Entities needs a narrower selection: give a type, attrs or q naming at least one non-system attribute, a geo-query, or local=true",
    ))
}

/// Applies the action to one entity; None when the entity is to be deleted.
fn apply(mut e: Entity, action: &PurgeAction, now: Timestamp) -> Option<Entity> {
    let before = e.attrs.len();
    match action {
        PurgeAction::Delete => return None,
        PurgeAction::Keep(keep) => e.attrs.retain(|name, _| keep.contains(name)),
        PurgeAction::Drop(drop) => e.attrs.retain(|name, _| !drop.contains(name)),
    }
    if e.attrs.len() != before {
        e.modified_at = now;
    }
    Some(e)
}

/// Removes what has expired at `now` from one entity: None when the entity itself has expired,
/// Some(None) when nothing changed, Some(Some(e)) with the expired attribute instances removed.
fn without_expired(e: &Entity, now: Timestamp) -> Option<Option<Entity>> {
    if e.expires_at.is_some_and(|t| t <= now) {
        return None;
    }
    let expired = |a: &harbor_model::Attribute| a.expires_at.is_some_and(|t| t <= now);
    if !e.instances().any(|(_, a)| expired(a)) {
        return Some(None);
    }
    let mut copy = e.clone();
    for list in copy.attrs.values_mut() {
        list.retain(|a| !expired(a));
    }
    copy.attrs.retain(|_, l| !l.is_empty());
    Some(Some(copy))
}

impl Engine {
    /// 5.6.21 Purge Entities: deletes every matching entity, or keeps / drops attributes of
    /// each. Returns the number of entities affected.
    pub async fn purge_entities(
        &self,
        tenant: &Tenant,
        filter: PurgeFilter<'_>,
        action: PurgeAction,
    ) -> NgsiResult<usize> {
        check_filter(&filter)?;
        let ids: Vec<String> = self
            .query_entities(tenant, filter.query)?
            .iter()
            .map(|e| e.id.clone())
            .collect();
        let mut n = 0;
        for chunk in ids.chunks(self.limits.max_batch.max(1)) {
            let _guards = self
                .locks
                .lock_many(tenant, chunk.iter().map(String::as_str))
                .await;
            let now = time::now();
            let mut changes = Vec::new();
            for id in chunk {
                // Re-read under the lock: the entity may have changed since the query.
                let Some(e) = self.current(tenant, id)? else {
                    continue;
                };
                if !filter.query.matches(&e) {
                    continue;
                }
                match apply((*e).clone(), &action, now) {
                    None => changes.push(Change::Delete(id.clone())),
                    Some(updated) if updated != *e => changes.push(Change::Put(updated)),
                    Some(_) => {}
                }
            }
            n += changes.len();
            if !changes.is_empty() {
                self.store
                    .commit(tenant, changes)
                    .await
                    .map_err(store_err)?;
            }
        }
        Ok(n)
    }

    /// Makes the expiry of transient entities and attributes (4.22) durable: deletes every
    /// entity of every tenant that has expired at `now` and removes expired attribute
    /// instances. Readers already stop seeing them at their `expiresAt`; this reclaims them.
    /// Returns the number of entities changed or deleted.
    pub async fn sweep_expired(&self, now: Timestamp) -> NgsiResult<usize> {
        let mut n = 0;
        for tenant in self.store.tenants() {
            let stale = self.store.expiring(&tenant, now).map_err(store_err)?;
            for chunk in stale.chunks(self.limits.max_batch.max(1)) {
                let _guards = self
                    .locks
                    .lock_many(&tenant, chunk.iter().map(String::as_str))
                    .await;
                let mut changes = Vec::new();
                for id in chunk {
                    let Some(e) = self.store.get(&tenant, id).map_err(store_err)? else {
                        continue;
                    };
                    match without_expired(&e, now) {
                        None => changes.push(Change::Delete(id.clone())),
                        Some(Some(kept)) => changes.push(Change::Put(kept)),
                        Some(None) => {}
                    }
                }
                n += changes.len();
                if !changes.is_empty() {
                    self.store
                        .commit(&tenant, changes)
                        .await
                        .map_err(store_err)?;
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_are_not_user_attributes() {
        for (name, system) in [
            ("createdAt", true),
            ("https://uri.etsi.org/ngsi-ld/modifiedAt", true),
            ("https://uri.etsi.org/ngsi-ld/location", false),
            ("https://example.org/speed", false),
        ] {
            assert_eq!(is_system(name), system, "{name}");
        }
    }
}
