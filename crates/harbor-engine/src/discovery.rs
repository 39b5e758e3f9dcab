//! Discovery of the types and attributes present (5.7.5 – 5.7.10), computed from the current
//! state of the tenant.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use harbor_model::{Entity, NgsiResult, Tenant};
use harbor_store::EntityQuery;

use crate::Engine;

/// What is known of one entity type (expanded names).
#[derive(Debug, Default, Clone)]
pub struct TypeInfo {
    pub entity_count: usize,
    /// Attribute name → the attribute kinds seen (`Property`, `Relationship`, ...).
    pub attributes: BTreeMap<String, BTreeSet<&'static str>>,
}

/// What is known of one attribute (expanded names).
#[derive(Debug, Default, Clone)]
pub struct AttributeInfo {
    /// Number of attribute instances.
    pub count: usize,
    pub kinds: BTreeSet<&'static str>,
    /// Entity types having the attribute.
    pub types: BTreeSet<String>,
}

/// What of each entity the asker may see (`None`: nothing of it); discovery counts only that.
pub type View<'a> = &'a dyn Fn(&Arc<Entity>) -> Option<Arc<Entity>>;

impl Engine {
    fn seen(&self, tenant: &Tenant, view: Option<View<'_>>) -> NgsiResult<Vec<Arc<Entity>>> {
        let all = self.query_entities(tenant, &EntityQuery::default())?;
        Ok(match view {
            None => all,
            Some(v) => all.iter().filter_map(v).collect(),
        })
    }

    /// Every entity type with its statistics.
    pub fn types(
        &self,
        tenant: &Tenant,
        view: Option<View<'_>>,
    ) -> NgsiResult<BTreeMap<String, TypeInfo>> {
        let mut out: BTreeMap<String, TypeInfo> = BTreeMap::new();
        for e in self.seen(tenant, view)? {
            for t in &e.types {
                let info = out.entry(t.clone()).or_default();
                info.entity_count += 1;
                for (name, a) in e.instances() {
                    info.attributes
                        .entry(name.to_string())
                        .or_default()
                        .insert(a.value.type_name());
                }
            }
        }
        Ok(out)
    }

    /// Every attribute with its statistics.
    pub fn attributes(
        &self,
        tenant: &Tenant,
        view: Option<View<'_>>,
    ) -> NgsiResult<BTreeMap<String, AttributeInfo>> {
        let mut out: BTreeMap<String, AttributeInfo> = BTreeMap::new();
        for e in self.seen(tenant, view)? {
            for (name, a) in e.instances() {
                let info = out.entry(name.to_string()).or_default();
                info.count += 1;
                info.kinds.insert(a.value.type_name());
                info.types.extend(e.types.iter().cloned());
            }
        }
        Ok(out)
    }
}
