//! Start-up: a tenant's state built from all of its entities at once. Each index is
//! gathered as a list and built from it in one go (a B-tree from a sorted run, the R-tree by
//! bulk loading), which costs a fraction of inserting a million entities one by one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use harbor_model::{Entity, Tenant, Timestamp};
use rstar::RTree;

use super::packed::{Names, Packed};
use super::values::{Id, Keyed, Slot, ValueIndex};
use super::{earliest_expiry, envelopes, GeoEntry, Memory, TenantState};
use harbor_query::ScalarKey;

/// The indexes of one tenant as they are gathered.
#[derive(Default)]
pub struct TenantLoad {
    entities: Vec<(Id, Packed)>,
    by_type: HashMap<String, Vec<Id>>,
    by_attr: HashMap<String, Vec<Id>>,
    geo: HashMap<String, Vec<GeoEntry>>,
    expiry: Vec<(Timestamp, Id)>,
    values: HashMap<String, HashMap<String, ValuesLoad>>,
}

#[derive(Default)]
struct ValuesLoad {
    keys: Vec<(ScalarKey, Slot)>,
    long: Vec<Id>,
    others: usize,
}

/// What a loading thread prepares of one entity, apart from packing it (which needs the
/// store's one name table).
pub struct Prepared {
    entity: Entity,
    /// The value index entries of each attribute.
    keyed: Vec<(String, Keyed)>,
}

impl Prepared {
    pub fn of(entity: Entity) -> Prepared {
        let keyed = entity
            .attrs
            .keys()
            .map(|name| (name.clone(), Keyed::of(&entity, name)))
            .filter(|(_, k)| *k != Keyed::default())
            .collect();
        Prepared { entity, keyed }
    }
}

impl TenantLoad {
    pub fn push(&mut self, p: Prepared, names: &mut Names) {
        let Prepared { entity: e, keyed } = p;
        let id: Id = Arc::from(e.id.as_str());
        if let Some(t) = earliest_expiry(&e) {
            self.expiry.push((t, id.clone()));
        }
        for t in &e.types {
            self.by_type.entry(t.clone()).or_default().push(id.clone());
            let of_type = self.values.entry(t.clone()).or_default();
            for (name, k) in &keyed {
                let index = of_type.entry(name.clone()).or_default();
                index
                    .keys
                    .extend(k.keys.iter().map(|key| (key.clone(), Slot::Id(id.clone()))));
                if k.unkeyed.long {
                    index.long.push(id.clone());
                }
                index.others += usize::from(k.unkeyed.other);
            }
        }
        for (name, instances) in &e.attrs {
            self.by_attr
                .entry(name.clone())
                .or_default()
                .push(id.clone());
            for env in envelopes(Some(instances)) {
                self.geo
                    .entry(name.clone())
                    .or_default()
                    .push(GeoEntry::new(env, id.clone()));
            }
        }
        self.entities.push((id, Packed::pack(&e, names)));
    }

    fn build(self) -> TenantState {
        let sets = |m: HashMap<String, Vec<Id>>| -> HashMap<String, BTreeSet<Id>> {
            m.into_iter()
                .map(|(k, ids)| (k, ids.into_iter().collect()))
                .collect()
        };
        TenantState {
            entities: self.entities.into_iter().collect::<BTreeMap<_, _>>(),
            by_type: sets(self.by_type),
            by_attr: sets(self.by_attr),
            geo: self
                .geo
                .into_iter()
                .map(|(k, entries)| (k, RTree::bulk_load(entries)))
                .collect(),
            expiry: self.expiry.into_iter().collect(),
            values: self
                .values
                .into_iter()
                .map(|(ty, attrs)| {
                    let attrs = attrs
                        .into_iter()
                        .map(|(attr, v)| {
                            let index = ValueIndex {
                                keys: v.keys.into_iter().collect(),
                                long: v.long.into_iter().collect(),
                                others: v.others,
                            };
                            (attr, index)
                        })
                        .filter(|(_, index)| !index.is_empty())
                        .collect::<HashMap<_, _>>();
                    (ty, attrs)
                })
                .filter(|(_, attrs)| !attrs.is_empty())
                .collect(),
        }
    }
}

impl Memory {
    /// The names shared by every packed entity, for a loader to pack with.
    pub fn names_mut(&mut self) -> &mut Names {
        &mut self.names
    }

    /// Installs a tenant loaded at start-up, replacing whatever state it had.
    pub fn install(&mut self, t: &Tenant, load: TenantLoad) {
        self.tenants.insert(t.clone(), load.build());
    }
}
