//! Context source registrations as a subject that reads through access policies sees them.
//! A registration says which entities a context source offers; it is about a tenant's
//! entities just as they are, so a partial reader sees only the part of it that is about
//! entities its policies select, and only the attribute names they open.
//!
//! A registered entity (a type, with an id, an id pattern or neither) is covered by a
//! selector when every entity it can stand for is selected: the selector's types include its
//! type, its `idPattern` (if any) matches the registered `id` (a registered pattern or a bare
//! type can stand for any id, so only a selector without `idPattern` covers it), and its
//! `scopeQ` (if any) matches the registration's `scope`. A selector with an `area` covers no
//! registered entity: where an entity lies is a value a registration does not fix.

use std::collections::BTreeSet;
use std::sync::Arc;

use harbor_model::registration::{RegisteredEntity, RegistrationInfo};
use harbor_model::Registration;

use super::{Access, Policy, Selector};

impl Selector {
    fn covers(&self, e: &RegisteredEntity, scopes: &[String]) -> bool {
        self.area.is_none()
            && self
                .types
                .as_ref()
                .is_none_or(|ts| ts.contains(&e.entity_type))
            && self
                .id_pattern
                .as_ref()
                .is_none_or(|p| e.id.as_ref().is_some_and(|id| p.is_match(id)))
            && self
                .scope
                .as_ref()
                .is_none_or(|s| !scopes.is_empty() && s.matches(scopes))
    }
}

impl Policy {
    /// Whether every entity `e` can stand for is selected; `None` (an `information` entry
    /// without `entities`, which stands for any entity) only by a policy selecting all.
    fn covers(&self, e: Option<&RegisteredEntity>, scopes: &[String]) -> bool {
        match e {
            None => self.selectors.is_empty(),
            Some(e) => {
                self.selectors.is_empty() || self.selectors.iter().any(|s| s.covers(e, scopes))
            }
        }
    }
}

/// The policies that cover `e`.
fn covering<'a>(
    policies: &'a [Arc<Policy>],
    e: Option<&'a RegisteredEntity>,
    scopes: &'a [String],
) -> impl Iterator<Item = &'a Policy> + 'a {
    policies
        .iter()
        .filter(move |p| p.covers(e, scopes))
        .map(|p| &**p)
}

/// The attribute names opened by the policies that cover an entry: `None` for all.
fn union<'a>(policies: impl Iterator<Item = &'a Policy>) -> Option<BTreeSet<&'a str>> {
    let mut names = BTreeSet::new();
    for p in policies {
        names.extend(p.attrs.as_ref()?.iter().map(String::as_str));
    }
    Some(names)
}

/// One entry of `information` as the policies let it be seen; `None` when nothing is left.
fn project_info(
    policies: &[Arc<Policy>],
    info: &RegistrationInfo,
    scopes: &[String],
) -> Option<RegistrationInfo> {
    let covering = |e| covering(policies, e, scopes);
    let (entities, open) = match &info.entities {
        None => {
            covering(None).next()?;
            (None, union(covering(None)))
        }
        Some(list) => {
            let kept: Vec<&RegisteredEntity> = list
                .iter()
                .filter(|e| covering(Some(e)).next().is_some())
                .collect();
            if kept.is_empty() {
                return None;
            }
            let open = union(kept.iter().flat_map(|e| covering(Some(e))));
            (Some(kept.into_iter().cloned().collect()), open)
        }
    };
    let Some(open) = open else {
        return Some(RegistrationInfo {
            entities,
            ..info.clone()
        });
    };
    // Listed names are the only ones the entry offers; a list left empty is dropped, and an
    // entry whose lists are all emptied offers nothing the reader may see.
    let cut = |names: &Option<Vec<String>>| {
        names.as_ref().and_then(|ns| {
            let kept: Vec<String> = ns
                .iter()
                .filter(|n| open.contains(n.as_str()))
                .cloned()
                .collect();
            (!kept.is_empty()).then_some(kept)
        })
    };
    let listed = info.property_names.is_some() || info.relationship_names.is_some();
    let property_names = cut(&info.property_names);
    let relationship_names = cut(&info.relationship_names);
    if listed && property_names.is_none() && relationship_names.is_none() {
        return None;
    }
    Some(RegistrationInfo {
        entities,
        property_names,
        relationship_names,
    })
}

impl Access {
    /// `r` as this access lets it be seen: its `information` cut to the entries about
    /// selected entities (see the module doc) and to opened attribute names, without
    /// `contextSourceInfo` (the headers the broker sends the source, which may carry its
    /// credentials); `None` when no entry is left.
    pub fn project_registration(&self, r: &Arc<Registration>) -> Option<Arc<Registration>> {
        let policies = match self {
            Access::Full => return Some(r.clone()),
            Access::Denied => return None,
            Access::Partial(ps) => ps,
        };
        let scopes = r.scope.as_deref().unwrap_or_default();
        let information: Vec<RegistrationInfo> = r
            .information
            .iter()
            .filter_map(|info| project_info(policies, info, scopes))
            .collect();
        if information.is_empty() {
            return None;
        }
        Some(Arc::new(Registration {
            information,
            context_source_info: None,
            ..(**r).clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyDoc;
    use serde_json::json;

    fn access(policies: serde_json::Value) -> Access {
        let docs: Vec<PolicyDoc> = serde_json::from_value(policies).unwrap();
        Access::Partial(
            docs.into_iter()
                .map(|d| Arc::new(Policy::compile(d).unwrap()))
                .collect(),
        )
    }

    fn registration(information: serde_json::Value, scope: Option<&str>) -> Arc<Registration> {
        let now = harbor_model::time::now();
        Arc::new(Registration {
            id: "urn:r".into(),
            name: None,
            description: None,
            information: serde_json::from_value(information).unwrap(),
            tenant: None,
            observation_interval: None,
            management_interval: None,
            location: None,
            observation_space: None,
            operation_space: None,
            expires_at: None,
            endpoint: "http://source.example".into(),
            context_source_info: Some(vec![harbor_model::subscription::KeyValue {
                key: "Authorization".into(),
                value: "Bearer secret".into(),
            }]),
            scope: scope.map(|s| vec![s.to_string()]),
            mode: "inclusive".into(),
            operations: vec!["federationOps".into()],
            refresh_rate: None,
            management: None,
            extra: Default::default(),
            status: Default::default(),
            created_at: now,
            modified_at: now,
        })
    }

    fn policy(entities: serde_json::Value, attrs: Option<&[&str]>) -> serde_json::Value {
        let mut p = json!({"id": "p", "subjects": ["client:x"], "actions": ["read"]});
        if !entities.is_null() {
            p["entities"] = entities;
        }
        if let Some(a) = attrs {
            p["attrs"] = json!(a);
        }
        p
    }

    /// (policies, information, scope) → the information seen, `Null` when hidden.
    #[test]
    fn a_partial_reader_sees_the_entries_about_what_it_may_read() {
        let parking = json!([{"entities": [{"entity_type": "Parking", "id": "urn:p:1"}]}]);
        let cases = [
            // A type selector covers a registered id and a bare type of that type.
            (
                policy(json!([{"type": ["Parking"]}]), None),
                json!([
                    {"entities": [{"entity_type": "Parking", "id": "urn:p:1"},
                                  {"entity_type": "Camera"}]},
                    {"entities": [{"entity_type": "Camera", "id_pattern": ".*"}]}
                ]),
                None,
                json!([{"entities": [{"entity_type": "Parking", "id": "urn:p:1"}]}]),
            ),
            (
                policy(json!([{"type": ["Camera"]}]), None),
                parking.clone(),
                None,
                json!(null),
            ),
            // An idPattern covers a registered id it matches, never a registered pattern.
            (
                policy(json!([{"idPattern": "urn:p:.*"}]), None),
                json!([{"entities": [{"entity_type": "Parking", "id_pattern": "urn:p:.*"}]}]),
                None,
                json!(null),
            ),
            (
                policy(json!([{"idPattern": "urn:p:.*"}]), None),
                parking.clone(),
                None,
                parking.clone(),
            ),
            // A scopeQ looks at the registration's scope.
            (
                policy(json!([{"scopeQ": "/north/#"}]), None),
                parking.clone(),
                Some("/north/a"),
                parking.clone(),
            ),
            (
                policy(json!([{"scopeQ": "/north/#"}]), None),
                parking.clone(),
                None,
                json!(null),
            ),
            // An area covers nothing registered.
            (
                policy(
                    json!([{"area": {"type": "Polygon",
                        "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}]),
                    None,
                ),
                parking.clone(),
                None,
                json!(null),
            ),
            // An entry about any entity only for a policy that selects every entity.
            (
                policy(json!(null), None),
                json!([{"property_names": ["free"]}]),
                None,
                json!([{"property_names": ["free"]}]),
            ),
            (
                policy(json!([{"type": ["Parking"]}]), None),
                json!([{"property_names": ["free"]}]),
                None,
                json!(null),
            ),
            // Attribute names are cut to the opened ones; an entry left with none goes.
            (
                policy(json!([{"type": ["Parking"]}]), Some(&["free"])),
                json!([{"entities": [{"entity_type": "Parking"}],
                        "property_names": ["free", "owner"], "relationship_names": ["refOwner"]}]),
                None,
                json!([{"entities": [{"entity_type": "Parking"}], "property_names": ["free"]}]),
            ),
            (
                policy(json!([{"type": ["Parking"]}]), Some(&["free"])),
                json!([{"entities": [{"entity_type": "Parking"}], "property_names": ["owner"]}]),
                None,
                json!(null),
            ),
        ];
        for (i, (p, info, scope, want)) in cases.into_iter().enumerate() {
            let a = access(json!([p]));
            let r = registration(info, scope);
            let got = a.project_registration(&r).map(|seen| {
                assert!(seen.context_source_info.is_none(), "case {i}");
                serde_json::to_value(&seen.information).unwrap()
            });
            assert_eq!(got.unwrap_or(json!(null)), want, "case {i}");
        }
        let full = registration(parking, None);
        assert!(Arc::ptr_eq(
            &Access::Full.project_registration(&full).unwrap(),
            &full
        ));
    }
}
