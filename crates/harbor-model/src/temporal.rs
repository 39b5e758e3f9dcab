//! Temporal evolution of entities (4.5.7, 5.6.11 – 5.7.4): every recorded attribute instance
//! with its own `instanceId`, and the header of a temporal entity. The current state's changes
//! become instances through [`record_change`], a pure function every backend calls in the
//! commit that makes the change durable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{AttrValue, Attribute, EntityChange, Timestamp};

/// The literal that stands for an NGSI-LD Null; a deleted instance carries it as its payload.
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// Whether a payload is the NGSI-LD Null that records a deletion (5.2.1): the literal, or
/// for a LanguageProperty the languageMap `{"@none": "urn:ngsi-ld:null"}`.
pub fn is_null_payload(v: &AttrValue) -> bool {
    let p = v.payload();
    match v {
        AttrValue::LanguageProperty(_) => {
            p.as_str() == Some(NGSI_LD_NULL)
                || p.as_object().is_some_and(|m| {
                    m.len() == 1 && m.get("@none").and_then(|x| x.as_str()) == Some(NGSI_LD_NULL)
                })
        }
        _ => p.as_str() == Some(NGSI_LD_NULL),
    }
}

/// One recorded attribute instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemporalInstance {
    /// `urn:ngsi-ld:AttributeInstance:<uuid>`.
    pub instance_id: String,
    pub attr: Attribute,
    /// When the attribute instance was deleted; the payload is then an NGSI-LD Null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

/// What a temporal entity is besides its instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemporalHeader {
    pub id: String,
    /// Expanded type IRIs.
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// The current entity came into being with this temporal entity (5.6.11 for an unknown
    /// id, ADR 0007), so deleting the temporal entity deletes it too. A current entity
    /// created through the core API is never deleted by a Temporal API call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provided_current: bool,
}

/// A temporal entity as a query returns it: instances by expanded attribute name, oldest
/// first; or, for the aggregated representation, what was made of them (`A`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalEntity<A = Vec<TemporalInstance>> {
    pub header: TemporalHeader,
    pub attrs: BTreeMap<String, A>,
}

/// The time an instance is selected and ordered by (`timeproperty`, 6.3.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeProperty {
    #[default]
    ObservedAt,
    CreatedAt,
    ModifiedAt,
    DeletedAt,
}

impl TimeProperty {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "observedAt" => Self::ObservedAt,
            "createdAt" => Self::CreatedAt,
            "modifiedAt" => Self::ModifiedAt,
            "deletedAt" => Self::DeletedAt,
            _ => return None,
        })
    }
}

impl TemporalInstance {
    /// The instance's value of a time property, if it has one.
    pub fn time(&self, p: TimeProperty) -> Option<Timestamp> {
        match p {
            TimeProperty::ObservedAt => self.attr.observed_at,
            TimeProperty::CreatedAt => Some(self.attr.created_at),
            TimeProperty::ModifiedAt => Some(self.attr.modified_at),
            TimeProperty::DeletedAt => self.deleted_at,
        }
    }

    /// The time a store orders an attribute's instances by: `observedAt`, else `modifiedAt`.
    pub fn index_time(&self) -> Timestamp {
        self.attr.observed_at.unwrap_or(self.attr.modified_at)
    }

    /// A deleted instance of what `attr` was, at `at`: same kind, NGSI-LD Null payload.
    pub fn deleted(instance_id: String, attr: &Attribute, at: Timestamp) -> Self {
        let null = serde_json::Value::String(NGSI_LD_NULL.into());
        let value = match &attr.value {
            AttrValue::Relationship { .. } => AttrValue::Relationship {
                object: null,
                object_type: None,
            },
            AttrValue::ListRelationship { .. } => AttrValue::ListRelationship {
                object_list: null,
                object_type: None,
            },
            AttrValue::GeoProperty(_) => AttrValue::GeoProperty(null),
            // 5.2.1: a deleted LanguageProperty keeps a languageMap, {"@none": NGSI-LD Null}.
            AttrValue::LanguageProperty(_) => {
                AttrValue::LanguageProperty(serde_json::json!({ "@none": NGSI_LD_NULL }))
            }
            AttrValue::JsonProperty(_) => AttrValue::JsonProperty(null),
            AttrValue::VocabProperty(_) => AttrValue::VocabProperty(null),
            AttrValue::ListProperty(_) => AttrValue::ListProperty(null),
            AttrValue::Property(_) => AttrValue::Property(null),
        };
        let mut gone = Attribute::new(value, at);
        gone.dataset_id = attr.dataset_id.clone();
        gone.created_at = attr.created_at;
        TemporalInstance {
            instance_id,
            attr: gone,
            deleted_at: Some(at),
        }
    }
}

/// The reserved attribute name the history of an entity's `scope` is recorded under (4.5.6,
/// 4.18): the core term's IRI, which no attribute of a payload can take, since `scope` is an
/// entity member.
pub const SCOPE_ATTR: &str = "https://uri.etsi.org/ngsi-ld/scope";

/// One instance of the scope's history: a Property whose value is the scopes (one string,
/// or an array of several). Set from the current state, its `observedAt` is a copy of its
/// `modifiedAt` (4.5.6), kept to the millisecond responses show.
pub fn scope_attribute(scopes: &[String], at: Timestamp) -> Attribute {
    let value = match scopes {
        [one] => serde_json::Value::String(one.clone()),
        many => many
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    };
    let mut a = Attribute::new(AttrValue::Property(value), at);
    a.observed_at = Some(crate::time::truncate_to_millis(at));
    a
}

/// The scopes a scope instance holds; none for a deleted one.
pub fn scopes_of(a: &Attribute) -> Vec<String> {
    match a.value.payload() {
        serde_json::Value::String(s) if s != NGSI_LD_NULL => vec![s.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// One stretch of an entity's scope history: the scopes that held from `from` until `to`
/// (the next scope instance; `None`: still holding).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeSpan {
    pub scopes: Vec<String>,
    pub from: Timestamp,
    pub to: Option<Timestamp>,
}

impl ScopeSpan {
    /// Whether the span and the half-open interval `[from, to)` share an instant.
    pub fn overlaps(&self, from: Option<Timestamp>, to: Option<Timestamp>) -> bool {
        to.is_none_or(|t| self.from < t) && self.to.zip(from).is_none_or(|(end, f)| end > f)
    }

    /// Whether `t` falls in the span.
    pub fn holds_at(&self, t: Timestamp) -> bool {
        self.from <= t && self.to.is_none_or(|end| t < end)
    }
}

/// The spans of a scope history given oldest first: each instance holds until the next.
pub fn scope_spans(history: &[TemporalInstance]) -> Vec<ScopeSpan> {
    let mut spans: Vec<ScopeSpan> = Vec::with_capacity(history.len());
    for i in history {
        let from = i.index_time();
        if let Some(last) = spans.last_mut() {
            last.to = Some(from);
        }
        let scopes = if i.deleted_at.is_some() {
            Vec::new()
        } else {
            scopes_of(&i.attr)
        };
        spans.push(ScopeSpan {
            scopes,
            from,
            to: None,
        });
    }
    spans
}

/// A fresh instance id from a UUID's text.
pub fn instance_id(uuid: &str) -> String {
    format!("urn:ngsi-ld:AttributeInstance:{uuid}")
}

/// What one committed change adds to the temporal store.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The header to write (created, or refreshed with the new types, scopes and time).
    pub header: TemporalHeader,
    /// New instances by expanded attribute name.
    pub instances: Vec<(String, TemporalInstance)>,
}

/// The temporal rows of one change of the current state: each instance of `after` that is new
/// or differs from `before` becomes an instance; each instance of `before` gone from `after`
/// becomes a deleted instance (also when the whole entity is deleted), unless it expired
/// (4.22): then it vanished, and nothing is recorded. The header keeps its
/// creation time across changes; history outlives the entity. `new_id` makes instance ids.
pub fn record_change(
    change: &EntityChange,
    header: Option<&TemporalHeader>,
    new_id: &mut dyn FnMut() -> String,
) -> Option<Recorded> {
    let subject = change.subject()?;
    let entity_expired = change.after.is_none()
        && change
            .before
            .as_ref()
            .is_some_and(|b| b.expires_at.is_some_and(|t| t <= change.at));
    let mut instances = Vec::new();
    let empty = Vec::new();
    let names: Vec<&String> = match (&change.before, &change.after) {
        (Some(b), None) => b.attrs.keys().collect(),
        _ => change.changed.iter().collect(),
    };
    for name in names {
        let was = change
            .before
            .as_ref()
            .and_then(|b| b.attrs.get(name))
            .unwrap_or(&empty);
        let is = change
            .after
            .as_ref()
            .and_then(|a| a.attrs.get(name))
            .unwrap_or(&empty);
        for a in is {
            if !was.contains(a) {
                instances.push((
                    name.clone(),
                    TemporalInstance {
                        instance_id: new_id(),
                        attr: a.clone(),
                        deleted_at: None,
                    },
                ));
            }
        }
        for b in was {
            // What expired (4.22) vanished rather than was deleted: no deletion is recorded.
            let expired = b.expires_at.is_some_and(|t| t <= change.at) || entity_expired;
            if !expired && !is.iter().any(|a| a.dataset_id == b.dataset_id) {
                let gone = TemporalInstance::deleted(new_id(), b, change.at);
                instances.push((name.clone(), gone));
            }
        }
    }
    // The scope is recorded as a temporal Property of its own (4.5.6): a new value when it
    // changed, a deletion when it was removed or the entity deleted.
    let scopes_before = change.before.as_ref().map_or(&[][..], |b| &b.scopes[..]);
    let scopes_after = change.after.as_ref().map_or(&[][..], |a| &a.scopes[..]);
    if scopes_before != scopes_after {
        if !scopes_after.is_empty() {
            let instance = TemporalInstance {
                instance_id: new_id(),
                attr: scope_attribute(scopes_after, change.at),
                deleted_at: None,
            };
            instances.push((SCOPE_ATTR.to_string(), instance));
        } else if !entity_expired {
            // A deleted scope is no scope: its value is the empty list of scopes.
            let mut none = Attribute::new(AttrValue::Property(serde_json::json!([])), change.at);
            none.created_at = change.before.as_ref().map_or(change.at, |b| b.created_at);
            let gone = TemporalInstance {
                instance_id: new_id(),
                attr: none,
                deleted_at: Some(change.at),
            };
            instances.push((SCOPE_ATTR.to_string(), gone));
        }
    }
    let created_at = header.map_or(subject.created_at, |h| h.created_at);
    let header = TemporalHeader {
        id: subject.id.clone(),
        types: subject.types.clone(),
        scopes: subject.scopes.clone(),
        created_at,
        modified_at: change.at,
        provided_current: header.is_some_and(|h| h.provided_current),
    };
    Some(Recorded { header, instances })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{Entity, Tenant};

    fn at(s: &str) -> Timestamp {
        crate::time::parse(s).unwrap()
    }

    fn entity(attrs: &[(&str, Option<&str>, i64)]) -> Entity {
        let t = at("2024-01-01T00:00:00Z");
        let mut e = Entity {
            id: "urn:ngsi-ld:V:1".into(),
            types: vec!["https://e.org/V".into()],
            scopes: vec![],
            attrs: BTreeMap::new(),
            created_at: t,
            modified_at: t,
            expires_at: None,
        };
        for (name, ds, v) in attrs {
            let mut a = Attribute::new(AttrValue::Property(json!(v)), t);
            a.dataset_id = ds.map(str::to_string);
            e.attrs.entry(name.to_string()).or_default().push(a);
        }
        e
    }

    fn change(before: Option<Entity>, after: Option<Entity>, changed: &[&str]) -> EntityChange {
        EntityChange {
            seq: 1,
            tenant: Tenant::default_tenant(),
            id: "urn:ngsi-ld:V:1".into(),
            at: at("2024-02-01T00:00:00Z"),
            after: after.map(Arc::new),
            before,
            changed: changed.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// (attribute, datasetId, payload, deleted) of each recorded instance.
    fn rows(r: &Recorded) -> Vec<(String, Option<String>, serde_json::Value, bool)> {
        r.instances
            .iter()
            .map(|(n, i)| {
                (
                    n.clone(),
                    i.attr.dataset_id.clone(),
                    i.attr.value.payload().clone(),
                    i.deleted_at.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn changes_become_instances() {
        let null = json!(NGSI_LD_NULL);
        let row = |n: &str, ds: Option<&str>, v: serde_json::Value, del: bool| {
            (n.to_string(), ds.map(str::to_string), v, del)
        };
        let cases = [
            (
                "create records every instance",
                change(
                    None,
                    Some(entity(&[("speed", None, 1), ("speed", Some("urn:d"), 2)])),
                    &["speed"],
                ),
                vec![
                    row("speed", None, json!(1), false),
                    row("speed", Some("urn:d"), json!(2), false),
                ],
            ),
            (
                "update records what changed only",
                change(
                    Some(entity(&[("speed", None, 1), ("speed", Some("urn:d"), 2)])),
                    Some(entity(&[
                        ("speed", None, 5),
                        ("speed", Some("urn:d"), 2),
                        ("fuel", None, 9),
                    ])),
                    &["speed"],
                ),
                vec![row("speed", None, json!(5), false)],
            ),
            (
                "a removed instance is recorded deleted",
                change(
                    Some(entity(&[("speed", None, 1), ("speed", Some("urn:d"), 2)])),
                    Some(entity(&[("speed", None, 1)])),
                    &["speed"],
                ),
                vec![row("speed", Some("urn:d"), null.clone(), true)],
            ),
            (
                "deleting the entity deletes every instance",
                change(Some(entity(&[("speed", None, 1)])), None, &[]),
                vec![row("speed", None, null, true)],
            ),
            (
                "a scope set, changed and removed is recorded as the scope Property",
                change(
                    Some(Entity {
                        scopes: vec!["/A".into()],
                        ..entity(&[])
                    }),
                    Some(Entity {
                        scopes: vec!["/B".into(), "/C".into()],
                        ..entity(&[])
                    }),
                    &[],
                ),
                vec![row(SCOPE_ATTR, None, json!(["/B", "/C"]), false)],
            ),
            (
                "deleting a scoped entity deletes its scope",
                change(
                    Some(Entity {
                        scopes: vec!["/A".into()],
                        ..entity(&[])
                    }),
                    None,
                    &[],
                ),
                vec![row(SCOPE_ATTR, None, json!([]), true)],
            ),
            (
                "an unchanged scope records nothing",
                change(
                    Some(Entity {
                        scopes: vec!["/A".into()],
                        ..entity(&[("speed", None, 1)])
                    }),
                    Some(Entity {
                        scopes: vec!["/A".into()],
                        ..entity(&[("speed", None, 2)])
                    }),
                    &["speed"],
                ),
                vec![row("speed", None, json!(2), false)],
            ),
            (
                "an expired entity records no deletion",
                change(
                    Some(Entity {
                        expires_at: Some(at("2024-01-15T00:00:00Z")),
                        ..entity(&[("speed", None, 1)])
                    }),
                    None,
                    &[],
                ),
                vec![],
            ),
        ];
        for (what, c, want) in cases {
            let mut n = 0;
            let r = record_change(&c, None, &mut || {
                n += 1;
                instance_id(&n.to_string())
            })
            .unwrap();
            assert_eq!(rows(&r), want, "{what}");
            assert_eq!(r.header.modified_at, c.at, "{what}");
        }
    }

    #[test]
    fn the_header_keeps_its_creation_time() {
        let old = TemporalHeader {
            id: "urn:ngsi-ld:V:1".into(),
            types: vec![],
            scopes: vec![],
            created_at: at("2000-01-01T00:00:00Z"),
            modified_at: at("2000-01-01T00:00:00Z"),
            provided_current: true,
        };
        let c = change(None, Some(entity(&[])), &[]);
        let r = record_change(&c, Some(&old), &mut || "x".into()).unwrap();
        assert!(
            r.header.provided_current,
            "whether the temporal entity provided the current one stays"
        );
        assert_eq!(r.header.created_at, old.created_at);
        assert_eq!(r.header.types, ["https://e.org/V"]);
        assert!(record_change(&change(None, None, &[]), None, &mut || "x".into()).is_none());
    }

    #[test]
    fn scope_history_becomes_spans() {
        let inst = |v: serde_json::Value, t: &str| TemporalInstance {
            instance_id: "x".into(),
            attr: {
                let mut a = Attribute::new(AttrValue::Property(v), at(t));
                a.observed_at = Some(at(t));
                a
            },
            deleted_at: None,
        };
        let mut gone = inst(json!(NGSI_LD_NULL), "2024-03-01T00:00:00Z");
        gone.deleted_at = Some(at("2024-03-01T00:00:00Z"));
        let spans = scope_spans(&[
            inst(json!("/R"), "2024-01-01T00:00:00Z"),
            inst(json!(["/S", "/T"]), "2024-02-01T00:00:00Z"),
            gone,
        ]);
        let got: Vec<(Vec<String>, Option<Timestamp>)> =
            spans.iter().map(|s| (s.scopes.clone(), s.to)).collect();
        assert_eq!(
            got,
            [
                (vec!["/R".to_string()], Some(at("2024-02-01T00:00:00Z"))),
                (
                    vec!["/S".to_string(), "/T".to_string()],
                    Some(at("2024-03-01T00:00:00Z"))
                ),
                (vec![], None),
            ]
        );
        let window = (
            Some(at("2024-01-15T00:00:00Z")),
            Some(at("2024-02-01T00:00:00Z")),
        );
        let overlapping: Vec<bool> = spans
            .iter()
            .map(|s| s.overlaps(window.0, window.1))
            .collect();
        assert_eq!(
            overlapping,
            [true, false, false],
            "the window end is excluded"
        );
        assert!(spans[1].holds_at(at("2024-02-10T00:00:00Z")));
        assert!(!spans[1].holds_at(at("2024-03-01T00:00:00Z")));
    }
}
