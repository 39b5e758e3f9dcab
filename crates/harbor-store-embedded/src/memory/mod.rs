//! The in-memory state: entities per tenant with indexes by type, attribute, geometry and
//! value (`values`); `query` plans and pages queries over them.

mod load;
mod packed;
mod query;
#[cfg(test)]
mod tests;
mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use harbor_model::{AttrValue, Attribute, Entity, Tenant, Timestamp};
use harbor_store::Change;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

pub use load::{Prepared, TenantLoad};
use packed::{Names, Packed};
use values::{Id, Keyed, ValueIndex};

type GeoEntry = GeomWithData<Rectangle<[f64; 2]>, Id>;

#[derive(Default)]
struct TenantState {
    /// Every entity, packed ([`packed`]).
    entities: BTreeMap<Id, Packed>,
    by_type: HashMap<String, BTreeSet<Id>>,
    by_attr: HashMap<String, BTreeSet<Id>>,
    /// One R-tree per GeoProperty name, holding the envelope of every instance.
    geo: HashMap<String, RTree<GeoEntry>>,
    /// Entities with something transient, by the earliest `expiresAt` they hold.
    expiry: BTreeSet<(Timestamp, Id)>,
    /// The value index of every attribute of every type: type -> attribute -> index.
    values: HashMap<String, HashMap<String, ValueIndex>>,
}

/// Every tenant's current state.
#[derive(Default)]
pub struct Memory {
    tenants: HashMap<Tenant, TenantState>,
    /// The names of every packed entity.
    names: Names,
}

impl Memory {
    pub fn has_tenant(&self, t: &Tenant) -> bool {
        self.tenants.contains_key(t)
    }

    pub fn tenant_names(&self) -> Vec<Tenant> {
        let mut v: Vec<Tenant> = self.tenants.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn get(&self, t: &Tenant, id: &str) -> Option<Arc<Entity>> {
        self.tenants.get(t)?.entity(id, &self.names)
    }

    /// Ids of entities holding an `expiresAt` at or before `at`.
    pub fn expiring(&self, t: &Tenant, at: Timestamp) -> Vec<String> {
        let Some(state) = self.tenants.get(t) else {
            return Vec::new();
        };
        state
            .expiry
            .iter()
            .take_while(|(when, _)| *when <= at)
            .map(|(_, id)| id.to_string())
            .collect()
    }

    pub fn count(&self, t: &Tenant) -> usize {
        self.tenants.get(t).map_or(0, |s| s.entities.len())
    }

    pub fn apply(&mut self, t: &Tenant, changes: Vec<Change>) {
        let puts = changes.into_iter().map(|c| match c {
            Change::Put(e) => Put {
                id: e.id.clone(),
                before: None,
                next: Some(Arc::new(e)),
            },
            Change::Delete(id) => Put {
                id,
                before: None,
                next: None,
            },
        });
        self.apply_shared(t, puts);
    }

    /// Applies changes already shared with the change feed.
    pub fn apply_shared(&mut self, t: &Tenant, changes: impl IntoIterator<Item = Put>) {
        let state = self.tenants.entry(t.clone()).or_default();
        let names = &mut self.names;
        for Put { id, before, next } in changes {
            let old = match state.entities.remove_entry(id.as_str()) {
                // The commit read the state it replaces already: no need to unpack it again.
                Some((key, _)) if before.is_some() => before.map(|b| (key, b)),
                Some((key, packed)) => match packed.unpack(&key, names) {
                    Ok(old) => Some((key, Arc::new(old))),
                    Err(e) => {
                        // Its index entries cannot be found: index the others again.
                        tracing::error!(error = %e, entity = %key, "rebuilding the indexes");
                        state.rebuild(names);
                        None
                    }
                },
                None => None,
            };
            match (old, next) {
                (Some((key, old)), Some(e)) => {
                    state.reindex(&key, &old, &e);
                    state.entities.insert(key, Packed::pack(&e, names));
                }
                (Some((key, old)), None) => state.unindex(&key, &old),
                (None, Some(e)) => {
                    let key: Id = Arc::from(id);
                    state.index(&key, &e);
                    state.entities.insert(key, Packed::pack(&e, names));
                }
                (None, None) => {}
            }
        }
    }
}

/// One entity change as the commit resolved it: the state it replaces (`None` when the
/// commit did not read it, or there was none) and the new one (`None`: deleted).
#[derive(Debug, Default)]
pub struct Put {
    pub id: String,
    pub before: Option<Arc<Entity>>,
    pub next: Option<Arc<Entity>>,
}

impl TenantState {
    /// The entity with this id, unpacked.
    fn entity(&self, id: &str, names: &Names) -> Option<Arc<Entity>> {
        let (key, packed) = self.entities.get_key_value(id)?;
        unpacked(key, packed, names)
    }

    /// Every index built again from the entities that read back.
    fn rebuild(&mut self, names: &Names) {
        let entities = std::mem::take(&mut self.entities);
        *self = TenantState::default();
        for (id, packed) in entities {
            if let Some(e) = unpacked(&id, &packed, names) {
                self.index(&id, &e);
                self.entities.insert(id, packed);
            }
        }
    }

    fn index(&mut self, id: &Id, e: &Entity) {
        if let Some(t) = earliest_expiry(e) {
            self.expiry.insert((t, id.clone()));
        }
        for t in &e.types {
            self.by_type
                .entry(t.clone())
                .or_default()
                .insert(id.clone());
            self.index_values(t, id, e, e.attrs.keys(), true);
        }
        for (name, instances) in &e.attrs {
            self.by_attr
                .entry(name.clone())
                .or_default()
                .insert(id.clone());
            for env in envelopes(Some(instances)) {
                self.geo
                    .entry(name.clone())
                    .or_default()
                    .insert(GeoEntry::new(env, id.clone()));
            }
        }
    }

    /// Moves the index entries of an entity from its `old` state to its `new` one, touching
    /// only what differs: an attribute whose instances did not change changes no index.
    fn reindex(&mut self, id: &Id, old: &Entity, new: &Entity) {
        let (was, is) = (earliest_expiry(old), earliest_expiry(new));
        if was != is {
            if let Some(t) = was {
                self.expiry.remove(&(t, id.clone()));
            }
            if let Some(t) = is {
                self.expiry.insert((t, id.clone()));
            }
        }
        for t in old.types.iter().filter(|t| !new.types.contains(t)) {
            remove_from(&mut self.by_type, t, id);
            self.index_values(t, id, old, old.attrs.keys(), false);
        }
        for t in new.types.iter().filter(|t| !old.types.contains(t)) {
            self.by_type
                .entry(t.clone())
                .or_default()
                .insert(id.clone());
            self.index_values(t, id, new, new.attrs.keys(), true);
        }
        for name in old.attrs.keys().filter(|k| !new.attrs.contains_key(*k)) {
            remove_from(&mut self.by_attr, name, id);
        }
        for name in new.attrs.keys().filter(|k| !old.attrs.contains_key(*k)) {
            self.by_attr
                .entry(name.clone())
                .or_default()
                .insert(id.clone());
        }
        let changed: Vec<&String> = old
            .attrs
            .keys()
            .chain(new.attrs.keys().filter(|k| !old.attrs.contains_key(*k)))
            .filter(|name| old.attrs.get(*name) != new.attrs.get(*name))
            .collect();
        for t in new.types.iter().filter(|t| old.types.contains(t)) {
            for name in &changed {
                let before = Keyed::of(old, name);
                let after = Keyed::of(new, name);
                if before != after {
                    let index = self.value_index(t, name);
                    index.remove(id, &before);
                    index.insert(id, &after);
                    self.drop_if_empty(t, name);
                }
            }
        }
        for name in changed {
            let before = envelopes(old.attrs.get(name));
            let after = envelopes(new.attrs.get(name));
            if before == after {
                continue;
            }
            if let Some(tree) = self.geo.get_mut(name) {
                for env in before {
                    tree.remove(&GeoEntry::new(env, id.clone()));
                }
            }
            if !after.is_empty() {
                let tree = self.geo.entry(name.clone()).or_default();
                for env in after {
                    tree.insert(GeoEntry::new(env, id.clone()));
                }
            }
        }
    }

    fn unindex(&mut self, id: &Id, e: &Entity) {
        if let Some(t) = earliest_expiry(e) {
            self.expiry.remove(&(t, id.clone()));
        }
        for t in &e.types {
            remove_from(&mut self.by_type, t, id);
            self.index_values(t, id, e, e.attrs.keys(), false);
        }
        for (name, instances) in &e.attrs {
            remove_from(&mut self.by_attr, name, id);
            if let Some(tree) = self.geo.get_mut(name) {
                for env in envelopes(Some(instances)) {
                    tree.remove(&GeoEntry::new(env, id.clone()));
                }
            }
        }
    }

    fn value_index(&mut self, ty: &str, attr: &str) -> &mut ValueIndex {
        if !self.values.contains_key(ty) {
            self.values.insert(ty.to_string(), Default::default());
        }
        let by_attr = self.values.get_mut(ty).expect("inserted above");
        if !by_attr.contains_key(attr) {
            by_attr.insert(attr.to_string(), ValueIndex::default());
        }
        by_attr.get_mut(attr).expect("inserted above")
    }

    fn drop_if_empty(&mut self, ty: &str, attr: &str) {
        if let Some(by_attr) = self.values.get_mut(ty) {
            if by_attr.get(attr).is_some_and(ValueIndex::is_empty) {
                by_attr.remove(attr);
            }
            if by_attr.is_empty() {
                self.values.remove(ty);
            }
        }
    }

    /// Adds (or, with `add` false, removes) the value index entries of every named
    /// attribute of `e` under type `ty`.
    fn index_values<'a>(
        &mut self,
        ty: &str,
        id: &Id,
        e: &Entity,
        names: impl Iterator<Item = &'a String>,
        add: bool,
    ) {
        for name in names {
            let k = Keyed::of(e, name);
            if k == Keyed::default() {
                continue;
            }
            if add {
                self.value_index(ty, name).insert(id, &k);
            } else {
                self.value_index(ty, name).remove(id, &k);
                self.drop_if_empty(ty, name);
            }
        }
    }
}

/// A packed entity read back; one that does not read back is left out, and said so.
fn unpacked(id: &str, packed: &Packed, names: &Names) -> Option<Arc<Entity>> {
    match packed.unpack(id, names) {
        Ok(e) => Some(Arc::new(e)),
        Err(e) => {
            tracing::error!(error = %e, entity = %id, "an entity left out of an answer");
            None
        }
    }
}

/// The earliest `expiresAt` of the entity or any of its attribute instances.
fn earliest_expiry(e: &Entity) -> Option<Timestamp> {
    e.instances()
        .filter_map(|(_, a)| a.expires_at)
        .chain(e.expires_at)
        .min()
}

/// The envelopes of the GeoProperty instances among `instances`.
fn envelopes(instances: Option<&Vec<Attribute>>) -> Vec<Rectangle<[f64; 2]>> {
    instances
        .into_iter()
        .flatten()
        .filter_map(|a| match &a.value {
            AttrValue::GeoProperty(v) => envelope(v),
            _ => None,
        })
        .collect()
}

fn remove_from(index: &mut HashMap<String, BTreeSet<Id>>, key: &str, id: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// The bounding box of a GeoJSON geometry, from every position in its coordinates.
fn envelope(geometry: &serde_json::Value) -> Option<Rectangle<[f64; 2]>> {
    let mut min = [f64::INFINITY; 2];
    let mut max = [f64::NEG_INFINITY; 2];
    let mut visit = |p: [f64; 2]| {
        for i in 0..2 {
            min[i] = min[i].min(p[i]);
            max[i] = max[i].max(p[i]);
        }
    };
    match geometry.get("geometries") {
        Some(serde_json::Value::Array(parts)) => {
            for g in parts {
                if let Some(r) = envelope(g) {
                    visit(r.lower());
                    visit(r.upper());
                }
            }
        }
        _ => positions(geometry.get("coordinates")?, 0, &mut visit),
    }
    (min[0].is_finite() && max[0].is_finite()).then(|| Rectangle::from_corners(min, max))
}

fn positions(v: &serde_json::Value, depth: usize, visit: &mut impl FnMut([f64; 2])) {
    let serde_json::Value::Array(items) = v else {
        return;
    };
    if depth > 8 {
        return;
    }
    if let (Some(x), Some(y)) = (
        items.first().and_then(|x| x.as_f64()),
        items.get(1).and_then(|y| y.as_f64()),
    ) {
        visit([x, y]);
        return;
    }
    for item in items {
        positions(item, depth + 1, visit);
    }
}
