//! The query AST a backend receives: every filter of Query Entities (5.7.2), already parsed.

use harbor_model::Entity;
use harbor_query::{GeoQuery, ScopeQ, TypeExpr, Q};
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
    /// The reference evaluator: whether one entity satisfies every filter.
    pub fn matches(&self, e: &Entity) -> bool {
        if let Some(ids) = &self.ids {
            if !ids.iter().any(|id| id == &e.id) {
                return false;
            }
        }
        if let Some(p) = &self.id_pattern {
            if !p.is_match(&e.id) {
                return false;
            }
        }
        if let Some(t) = &self.types {
            if !t.matches(&e.types) {
                return false;
            }
        }
        if let Some(attrs) = &self.attrs {
            if !attrs.iter().any(|a| e.attrs.contains_key(a)) {
                return false;
            }
        }
        if let Some(q) = &self.q {
            if !q.matches(e) {
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
}
