//! The in-memory state: entities per tenant with indexes by type, attribute and geometry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use harbor_model::{AttrValue, Attribute, Entity, Tenant, Timestamp};
use harbor_store::{Change, EntityQuery};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

type GeoEntry = GeomWithData<Rectangle<[f64; 2]>, String>;

#[derive(Default)]
struct TenantState {
    entities: BTreeMap<String, Arc<Entity>>,
    by_type: HashMap<String, BTreeSet<String>>,
    by_attr: HashMap<String, BTreeSet<String>>,
    /// One R-tree per GeoProperty name, holding the envelope of every instance.
    geo: HashMap<String, RTree<GeoEntry>>,
    /// Entities with something transient, by the earliest `expiresAt` they hold.
    expiry: BTreeSet<(Timestamp, String)>,
}

/// Every tenant's current state.
#[derive(Default)]
pub struct Memory {
    tenants: HashMap<Tenant, TenantState>,
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
        self.tenants.get(t)?.entities.get(id).cloned()
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
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub fn count(&self, t: &Tenant) -> usize {
        self.tenants.get(t).map_or(0, |s| s.entities.len())
    }

    pub fn apply(&mut self, t: &Tenant, changes: Vec<Change>) {
        let puts = changes.into_iter().map(|c| match c {
            Change::Put(e) => (e.id.clone(), Some(Arc::new(e))),
            Change::Delete(id) => (id, None),
        });
        self.apply_shared(t, puts);
    }

    /// Applies changes already shared with the change feed: `(id, new state or deleted)`.
    pub fn apply_shared(
        &mut self,
        t: &Tenant,
        changes: impl IntoIterator<Item = (String, Option<Arc<Entity>>)>,
    ) {
        let state = self.tenants.entry(t.clone()).or_default();
        for (id, next) in changes {
            match (state.entities.remove(&id), next) {
                (Some(old), Some(e)) => {
                    state.reindex(&old, &e);
                    state.entities.insert(id, e);
                }
                (Some(old), None) => state.unindex(&old),
                (None, Some(e)) => {
                    state.index(&e);
                    state.entities.insert(id, e);
                }
                (None, None) => {}
            }
        }
    }

    pub fn query(&self, t: &Tenant, q: &EntityQuery) -> Vec<Arc<Entity>> {
        let Some(state) = self.tenants.get(t) else {
            return Vec::new();
        };
        let check = |e: &Arc<Entity>| q.matches(e);
        if let Some(ids) = &q.ids {
            let mut ids: Vec<&String> = ids.iter().collect();
            ids.sort();
            ids.dedup();
            return ids
                .into_iter()
                .filter_map(|id| state.entities.get(id))
                .filter(|e| check(e))
                .cloned()
                .collect();
        }
        if let Some(geo) = &q.geo {
            let Some(tree) = state.geo.get(&geo.geoproperty) else {
                return Vec::new();
            };
            let ids: BTreeSet<&String> = match geo.bounding_rect() {
                Some(r) => tree
                    .locate_in_envelope_intersecting(&AABB::from_corners(
                        [r.min().x, r.min().y],
                        [r.max().x, r.max().y],
                    ))
                    .map(|g| &g.data)
                    .collect(),
                None => tree.iter().map(|g| &g.data).collect(),
            };
            return collect(state, ids.into_iter(), check);
        }
        if let Some(types) = q.types.as_ref().and_then(|t| t.simple_types()) {
            let ids: BTreeSet<&String> = types
                .iter()
                .filter_map(|t| state.by_type.get(t))
                .flatten()
                .collect();
            return collect(state, ids.into_iter(), check);
        }
        if let Some(attrs) = &q.attrs {
            let ids: BTreeSet<&String> = attrs
                .iter()
                .filter_map(|a| state.by_attr.get(a))
                .flatten()
                .collect();
            return collect(state, ids.into_iter(), check);
        }
        state
            .entities
            .values()
            .filter(|e| check(e))
            .cloned()
            .collect()
    }
}

fn collect<'a>(
    state: &TenantState,
    ids: impl Iterator<Item = &'a String>,
    check: impl Fn(&Arc<Entity>) -> bool,
) -> Vec<Arc<Entity>> {
    ids.filter_map(|id| state.entities.get(id))
        .filter(|e| check(e))
        .cloned()
        .collect()
}

impl TenantState {
    fn index(&mut self, e: &Entity) {
        if let Some(t) = earliest_expiry(e) {
            self.expiry.insert((t, e.id.clone()));
        }
        for t in &e.types {
            self.by_type
                .entry(t.clone())
                .or_default()
                .insert(e.id.clone());
        }
        for (name, instances) in &e.attrs {
            self.by_attr
                .entry(name.clone())
                .or_default()
                .insert(e.id.clone());
            for a in instances {
                if let AttrValue::GeoProperty(v) = &a.value {
                    if let Some(env) = envelope(v) {
                        self.geo
                            .entry(name.clone())
                            .or_default()
                            .insert(GeoEntry::new(env, e.id.clone()));
                    }
                }
            }
        }
    }

    /// Moves the index entries of an entity from its `old` state to its `new` one, touching
    /// only what differs: a changed value of an existing attribute changes no index.
    fn reindex(&mut self, old: &Entity, new: &Entity) {
        let id = &new.id;
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
        }
        for t in new.types.iter().filter(|t| !old.types.contains(t)) {
            self.by_type
                .entry(t.clone())
                .or_default()
                .insert(id.clone());
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
        let names = old
            .attrs
            .keys()
            .chain(new.attrs.keys().filter(|k| !old.attrs.contains_key(*k)));
        for name in names {
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

    fn unindex(&mut self, e: &Entity) {
        if let Some(t) = earliest_expiry(e) {
            self.expiry.remove(&(t, e.id.clone()));
        }
        for t in &e.types {
            remove_from(&mut self.by_type, t, &e.id);
        }
        for (name, instances) in &e.attrs {
            remove_from(&mut self.by_attr, name, &e.id);
            for a in instances {
                if let AttrValue::GeoProperty(v) = &a.value {
                    if let (Some(env), Some(tree)) = (envelope(v), self.geo.get_mut(name)) {
                        tree.remove(&GeoEntry::new(env, e.id.clone()));
                    }
                }
            }
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

fn remove_from(index: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
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
