//! Linked Entity retrieval (4.5.23): the `join` / `joinLevel` / `containedBy` parameters of
//! Retrieve Entity (5.7.1) and Query Entities (5.7.2).
//!
//! Starting from the Entities a request selected, every Relationship or ListRelationship
//! that the request's projection keeps is followed to the Entity it targets, up to
//! `joinLevel` hops. An Entity already on the path (or named in `containedBy`) is not
//! followed again, so cycles end. A target that does not exist locally is left out. The
//! result is a tree; rendering it inline or flat is the HTTP layer's business.

use std::sync::Arc;

use harbor_model::{AttrValue, Entity, NgsiResult, Tenant};
use harbor_query::Projection;
use serde_json::Value;

use crate::Engine;

/// Most Entities one request may pull in through Relationships.
pub const MAX_JOINED: usize = 10_000;

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct JoinSpec {
    /// Hops to follow (`joinLevel`, at least 1).
    pub level: usize,
    /// The projections of the root Entities; `{...}` terms project the linked ones.
    pub pick: Option<Projection>,
    pub omit: Option<Projection>,
    /// Expanded names of the attributes shown on the roots (`attrs`), `None`: all.
    pub attrs: Option<Vec<String>>,
    /// Entity ids already seen by the requester (`containedBy`): never followed.
    pub contained_by: Vec<String>,
}

/// An Entity with the Entities its Relationships lead to.
#[derive(Debug, Clone)]
pub struct Joined {
    pub entity: Arc<Entity>,
    /// The projections that apply to this Entity.
    pub pick: Option<Projection>,
    pub omit: Option<Projection>,
    pub links: Vec<Link>,
}

/// One followed Relationship.
#[derive(Debug, Clone)]
pub struct Link {
    /// Expanded name of the Relationship.
    pub attr: String,
    /// The id it targets (also `target.entity.id`).
    pub object: String,
    pub target: Joined,
}

impl Joined {
    /// This Entity and every linked one, each id once, in breadth-first order.
    pub fn flatten<'a>(roots: impl IntoIterator<Item = &'a Joined>) -> Vec<&'a Joined> {
        let mut out: Vec<&Joined> = Vec::new();
        let mut queue: std::collections::VecDeque<&Joined> = roots.into_iter().collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(j) = queue.pop_front() {
            if seen.insert(j.entity.id.as_str()) {
                out.push(j);
            }
            queue.extend(j.links.iter().map(|l| &l.target));
        }
        out
    }
}

impl Engine {
    /// Follows the Relationships of `roots` as `spec` asks (4.5.23).
    pub fn join(
        &self,
        tenant: &Tenant,
        roots: &[Arc<Entity>],
        spec: &JoinSpec,
    ) -> NgsiResult<Vec<Joined>> {
        join_with(roots, spec, &|id| self.current(tenant, id))
    }

    /// [`Engine::join`] for a reader that sees each Entity through `view`: a linked Entity it
    /// may not see is not joined, as one that does not exist, and one it may see is joined as
    /// it sees it. The roots are already as the reader sees them.
    pub fn join_seen(
        &self,
        tenant: &Tenant,
        roots: &[Arc<Entity>],
        spec: &JoinSpec,
        view: &dyn Fn(&Arc<Entity>) -> Option<Arc<Entity>>,
    ) -> NgsiResult<Vec<Joined>> {
        join_with(roots, spec, &|id| {
            Ok(self.current(tenant, id)?.and_then(|e| view(&e)))
        })
    }
}

/// Looks an Entity up by id (as the reader may see it now).
pub type Lookup<'a> = dyn Fn(&str) -> NgsiResult<Option<Arc<Entity>>> + 'a;

/// Follows the Relationships of `roots` as `spec` asks (4.5.23), finding targets with `lookup`.
pub fn join_with(
    roots: &[Arc<Entity>],
    spec: &JoinSpec,
    lookup: &Lookup<'_>,
) -> NgsiResult<Vec<Joined>> {
    let mut budget = MAX_JOINED;
    roots
        .iter()
        .map(|e| {
            let mut path = spec.contained_by.clone();
            path.push(e.id.clone());
            let level = Level {
                left: spec.level,
                pick: spec.pick.clone(),
                omit: spec.omit.clone(),
                attrs: spec.attrs.as_deref(),
            };
            follow(lookup, e.clone(), level, &mut path, &mut budget)
        })
        .collect()
}

fn follow(
    lookup: &Lookup<'_>,
    entity: Arc<Entity>,
    level: Level<'_>,
    path: &mut Vec<String>,
    budget: &mut usize,
) -> NgsiResult<Joined> {
    let mut links = Vec::new();
    if level.left > 0 {
        for (name, instances) in &entity.attrs {
            if !level.keeps(name) {
                continue;
            }
            for object in instances.iter().flat_map(|a| targets(&a.value)) {
                if path.contains(&object) || *budget == 0 {
                    continue;
                }
                let Some(target) = lookup(&object)? else {
                    continue;
                };
                *budget -= 1;
                let next = Level {
                    left: level.left - 1,
                    pick: level.pick.as_ref().and_then(|p| p.linked(name)),
                    omit: level.omit.as_ref().and_then(|o| o.linked(name)),
                    attrs: None,
                };
                path.push(object.clone());
                let target = follow(lookup, target, next, path, budget)?;
                path.pop();
                links.push(Link {
                    attr: name.clone(),
                    object,
                    target,
                });
            }
        }
    }
    Ok(Joined {
        entity,
        pick: level.pick,
        omit: level.omit,
        links,
    })
}

struct Level<'a> {
    left: usize,
    pick: Option<Projection>,
    omit: Option<Projection>,
    attrs: Option<&'a [String]>,
}

impl Level<'_> {
    /// Whether the attribute is shown at this level, and so followed.
    fn keeps(&self, name: &str) -> bool {
        self.attrs.is_none_or(|a| a.iter().any(|x| x == name))
            && self.pick.as_ref().is_none_or(|p| p.keeps_attr(name))
            && self.omit.as_ref().is_none_or(|o| o.keeps_attr(name))
    }
}

/// The ids a Relationship or ListRelationship instance targets.
pub fn targets(v: &AttrValue) -> Vec<String> {
    let objects = match v {
        AttrValue::Relationship { object, .. } => object,
        AttrValue::ListRelationship { object_list, .. } => object_list,
        _ => return vec![],
    };
    let one = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m
            .get("object")
            .or_else(|| m.get("@id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    match objects {
        Value::Array(xs) => xs.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbor_query::{parse_projection, ProjectionKind};

    fn rel(object: &str) -> AttrValue {
        AttrValue::Relationship {
            object: Value::String(object.into()),
            object_type: None,
        }
    }

    #[test]
    fn targets_of_each_kind() {
        let cases: Vec<(AttrValue, Vec<&str>)> = vec![
            (rel("urn:a"), vec!["urn:a"]),
            (
                AttrValue::ListRelationship {
                    object_list: serde_json::json!(["urn:a", {"object": "urn:b"}]),
                    object_type: None,
                },
                vec!["urn:a", "urn:b"],
            ),
            (AttrValue::Property(Value::String("urn:a".into())), vec![]),
        ];
        for (v, want) in cases {
            assert_eq!(targets(&v), want, "{v:?}");
        }
    }

    #[test]
    fn levels_keep_what_the_projection_keeps() {
        let expand = |s: &str| format!("ex:{s}");
        let pick = parse_projection("id,locatedAt{name}", ProjectionKind::Pick, &expand).ok();
        let omit = parse_projection("type,owner", ProjectionKind::Omit, &expand).ok();
        let cases = [
            (pick.clone(), None, "ex:locatedAt", true),
            (pick.clone(), None, "ex:owner", false),
            (None, omit.clone(), "ex:owner", false),
            (None, omit.clone(), "ex:locatedAt", true),
        ];
        for (pick, omit, name, want) in cases {
            let level = Level {
                left: 1,
                pick,
                omit,
                attrs: None,
            };
            assert_eq!(level.keeps(name), want, "{name}");
        }
    }
}
