//! The query AST a backend receives: every filter of Query Entities (5.7.2), already parsed.

use crate::{GeoQuery, LinkResolver, ScopeQ, TypeExpr, Q};
use harbor_model::Entity;
use regex::Regex;

/// Filters of one entity query. Every present member must hold (logical AND).
#[derive(Default)]
pub struct EntityQuery {
    /// Entity ids to match (any of).
    pub ids: Option<Vec<String>>,
    /// `idPattern`, compiled.
    pub id_pattern: Option<Regex>,
    /// Type expression over expanded type IRIs.
    pub types: Option<TypeExpr>,
    /// The entity must have at least one of these expanded attribute names.
    pub attrs: Option<Vec<String>>,
    pub q: Option<Q>,
    pub geo: Option<GeoQuery>,
    pub scope: Option<ScopeQ>,
}

impl EntityQuery {
    /// The reference evaluator: whether one entity satisfies every filter. Terms of `q` on
    /// Linked Entities never match here; see [`matches_linked`](Self::matches_linked).
    pub fn matches(&self, e: &Entity) -> bool {
        self.matches_linked(e, &|_| None)
    }

    /// Whether one entity satisfies every filter, resolving the terms of `q` on Linked
    /// Entities (`rel{attr}`) through `resolve`.
    pub fn matches_linked(&self, e: &Entity, resolve: &LinkResolver<'_>) -> bool {
        if !self.matches_identity(&e.id, &e.types) {
            return false;
        }
        if let Some(attrs) = &self.attrs {
            if !attrs.iter().any(|a| e.attrs.contains_key(a)) {
                return false;
            }
        }
        if let Some(q) = &self.q {
            if !q.matches_linked(e, resolve) {
                return false;
            }
        }
        if let Some(g) = &self.geo {
            if !g.matches(e) {
                return false;
            }
        }
        if let Some(s) = &self.scope {
            if !s.matches(&e.scopes) {
                return false;
            }
        }
        true
    }

    /// The expanded attribute names the filters read: evaluating the query on an entity
    /// with only these attributes (and its id, types, scopes and times) gives the same
    /// answer as on the whole entity.
    pub fn attributes_read(&self) -> Vec<String> {
        let mut out: Vec<String> = self.q.as_ref().map(Q::attributes).unwrap_or_default();
        out.extend(self.attrs.iter().flatten().cloned());
        out.extend(self.geo.as_ref().map(|g| g.geoproperty.clone()));
        out.sort();
        out.dedup();
        out
    }

    /// Whether an entity with this id and these (expanded) types passes the filters that
    /// depend on nothing else: `id`, `idPattern` and `type`.
    pub fn matches_identity(&self, id: &str, types: &[String]) -> bool {
        self.ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|i| i == id))
            && self.id_pattern.as_ref().is_none_or(|p| p.is_match(id))
            && self.types.as_ref().is_none_or(|t| t.matches(types))
    }
}
