//! Subscriptions compiled for matching (5.8.6): names expanded with the subscription's own
//! `@context`, expressions parsed once, and a per-tenant index by entity type so that a change
//! is only checked against the subscriptions that can match it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use harbor_jsonld::Context;
use harbor_model::subscription::SubscriptionStatus;
use harbor_model::{time, EntityChange, Subscription, Timestamp, Trigger};
use harbor_query::{
    parse_geo_query, parse_q, parse_scope_q, parse_type_expr, GeoQuery, ScopeQ, TypeExpr, Q,
};
use regex::Regex;

/// One element of `entities`.
pub struct Selector {
    id: Option<String>,
    pattern: Option<Regex>,
    types: TypeExpr,
}

impl Selector {
    fn matches(&self, e: &harbor_model::Entity) -> bool {
        self.id.as_ref().is_none_or(|id| id == &e.id)
            && self.pattern.as_ref().is_none_or(|p| p.is_match(&e.id))
            && self.types.matches(&e.types)
    }
}

/// A subscription ready to be matched against changes.
pub struct Compiled {
    pub sub: Arc<Subscription>,
    selectors: Vec<Selector>,
    q: Option<Q>,
    geo: Option<GeoQuery>,
    scope: Option<ScopeQ>,
    watched: Option<HashSet<String>>,
    triggers: Vec<Trigger>,
    /// The `@context` notifications are compacted with (`jsonldContext`, else the core one).
    pub render_ctx: Arc<Context>,
    /// The `@context` the subscription was written with (for `pick` / `omit`).
    pub ctx: Arc<Context>,
}

fn trigger(name: &str) -> Option<Trigger> {
    Some(match name {
        "entityCreated" => Trigger::EntityCreated,
        "entityUpdated" => Trigger::EntityUpdated,
        "entityDeleted" => Trigger::EntityDeleted,
        "attributeCreated" => Trigger::AttributeCreated,
        "attributeUpdated" => Trigger::AttributeUpdated,
        "attributeDeleted" => Trigger::AttributeDeleted,
        _ => return None,
    })
}

impl Compiled {
    /// Compiles a stored subscription; `ctx` expands the names of its expressions and
    /// `render_ctx` compacts its notifications.
    pub fn new(
        sub: Arc<Subscription>,
        ctx: Arc<Context>,
        render_ctx: Arc<Context>,
    ) -> Result<Self, String> {
        let expand = |s: &str| ctx.expand_term(s);
        let same = |s: &str| s.to_string();
        let mut selectors = Vec::new();
        for s in &sub.entities {
            let pattern = match &s.id_pattern {
                Some(p) => Some(Regex::new(p).map_err(|e| format!("idPattern: {e}"))?),
                None => None,
            };
            selectors.push(Selector {
                id: s.id.clone(),
                pattern,
                types: parse_type_expr(&s.type_expr, &same)
                    .map_err(|e| format!("type: {}", e.detail))?,
            });
        }
        // Clients often write `q` as they would in a URL (`name=="Eiffel%20Tower"`): it is
        // matched as the query parameter would be, percent-decoded.
        let q = match &sub.q {
            Some(text) => {
                let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
                Some(parse_q(&decoded, &expand).map_err(|e| format!("q: {}", e.detail))?)
            }
            None => None,
        };
        let scope = match &sub.scope_q {
            Some(text) => Some(parse_scope_q(text).map_err(|e| format!("scopeQ: {}", e.detail))?),
            None => None,
        };
        let geo = match &sub.geo_q {
            Some(g) => Some(
                parse_geo_query(
                    &g.georel,
                    &g.geometry,
                    &g.coordinates,
                    g.geoproperty.as_deref(),
                    &expand,
                )
                .map_err(|e| format!("geoQ: {}", e.detail))?,
            ),
            None => None,
        };
        let triggers = sub
            .notification_trigger
            .iter()
            .filter_map(|t| trigger(t))
            .collect();
        Ok(Compiled {
            watched: sub
                .watched_attributes
                .as_ref()
                .map(|w| w.iter().cloned().collect()),
            sub,
            selectors,
            q,
            geo,
            scope,
            triggers,
            render_ctx,
            ctx,
        })
    }

    /// Whether the subscription is notified of this change at `now` (5.8.6): it is active,
    /// selects the entity, one of its triggers fired (on a watched attribute when it watches
    /// some), and the entity matches its `q`, `geoQ` and `scopeQ`.
    pub fn matches(
        &self,
        change: &EntityChange,
        now: Timestamp,
        resolve: &harbor_query::LinkResolver<'_>,
    ) -> bool {
        if self.sub.status(now) != SubscriptionStatus::Active || self.sub.time_interval.is_some() {
            return false;
        }
        let Some(subject) = change.subject() else {
            return false;
        };
        if !self.selectors.is_empty() && !self.selectors.iter().any(|s| s.matches(subject)) {
            return false;
        }
        if !self.fired(change) {
            return false;
        }
        self.q
            .as_ref()
            .is_none_or(|q| q.matches_linked(subject, resolve))
            && self.geo.as_ref().is_none_or(|g| g.matches(subject))
            && self
                .scope
                .as_ref()
                .is_none_or(|s| s.matches(&subject.scopes))
    }

    /// Whether the entity is selected by `entities`, `q`, `geoQ` and `scopeQ` (periodic
    /// notifications).
    pub fn selects(&self, e: &harbor_model::Entity) -> bool {
        (self.selectors.is_empty() || self.selectors.iter().any(|s| s.matches(e)))
            && self.q.as_ref().is_none_or(|q| q.matches(e))
            && self.geo.as_ref().is_none_or(|g| g.matches(e))
            && self.scope.as_ref().is_none_or(|s| s.matches(&e.scopes))
    }

    /// Whether the subscription is notified when attributes are deleted.
    pub fn notified_of_attribute_deletion(&self) -> bool {
        self.triggers.contains(&Trigger::AttributeDeleted)
    }

    /// The attributes of this change the subscription is told about: the watched ones, or
    /// all.
    pub fn watches(&self, attr: &str) -> bool {
        self.watched.as_ref().is_none_or(|w| w.contains(attr))
    }

    fn fired(&self, change: &EntityChange) -> bool {
        let entity_event = change.entity_event();
        if let Some(t) = entity_event {
            if self.triggers.contains(&t) {
                let relevant = match t {
                    Trigger::EntityUpdated => {
                        self.watched.is_none() || change.changed.iter().any(|a| self.watches(a))
                    }
                    _ => true,
                };
                if relevant {
                    return true;
                }
            }
        }
        if entity_event == Some(Trigger::EntityDeleted) {
            // Deleting an entity deletes every attribute it had (attributeDeleted).
            return self.triggers.contains(&Trigger::AttributeDeleted)
                && change
                    .before
                    .as_ref()
                    .is_some_and(|b| b.attrs.keys().any(|a| self.watches(a)));
        }
        change
            .attribute_events()
            .into_iter()
            .any(|(t, a)| self.triggers.contains(&t) && self.watches(a))
    }

    /// The types this subscription selects, when its selection is a plain union of types
    /// (the index key); `None` when it must be checked against every change.
    fn index_types(&self) -> Option<Vec<String>> {
        if self.selectors.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for s in &self.selectors {
            out.extend(s.types.simple_types()?);
        }
        Some(out)
    }
}

/// A tenant's compiled subscriptions, indexed by the entity types they select.
#[derive(Default)]
pub struct TenantIndex {
    by_id: HashMap<String, Arc<Compiled>>,
    by_type: HashMap<String, Vec<Arc<Compiled>>>,
    /// Subscriptions without a plain type selection: checked against every change.
    everywhere: Vec<Arc<Compiled>>,
}

impl TenantIndex {
    pub fn insert(&mut self, c: Arc<Compiled>) {
        self.remove(&c.sub.id);
        match c.index_types() {
            Some(types) => {
                let mut seen = HashSet::new();
                for t in types {
                    if seen.insert(t.clone()) {
                        self.by_type.entry(t).or_default().push(c.clone());
                    }
                }
            }
            None => self.everywhere.push(c.clone()),
        }
        self.by_id.insert(c.sub.id.clone(), c);
    }

    pub fn remove(&mut self, id: &str) {
        if self.by_id.remove(id).is_none() {
            return;
        }
        self.everywhere.retain(|c| c.sub.id != id);
        self.by_type.retain(|_, list| {
            list.retain(|c| c.sub.id != id);
            !list.is_empty()
        });
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Compiled>> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Compiled>> {
        self.by_id.values()
    }

    /// The subscriptions notified of this change, each once.
    pub fn matching(
        &self,
        change: &EntityChange,
        resolve: &harbor_query::LinkResolver<'_>,
    ) -> Vec<Arc<Compiled>> {
        let now = time::now();
        let mut out: Vec<Arc<Compiled>> = Vec::new();
        let mut types: Vec<&String> = Vec::new();
        for e in [change.after.as_deref(), change.before.as_ref()]
            .into_iter()
            .flatten()
        {
            for t in &e.types {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
        let candidates = types
            .into_iter()
            .filter_map(|t| self.by_type.get(t))
            .flatten()
            .chain(self.everywhere.iter());
        for c in candidates {
            if !out.iter().any(|o| Arc::ptr_eq(o, c)) && c.matches(change, now, resolve) {
                out.push(c.clone());
            }
        }
        out
    }
}
