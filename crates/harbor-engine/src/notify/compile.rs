//! Subscriptions compiled for matching (5.8.6): names expanded with the subscription's own
//! `@context`, expressions parsed once, and a per-tenant index by entity type so that a change
//! is only checked against the subscriptions that can match it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use harbor_jsonld::Context;
use harbor_model::subscription::SubscriptionStatus;
use harbor_model::{EntityChange, Subscription, Timestamp, Trigger};
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
    /// Whether a registered entity (type, id or idPattern) falls under this selector.
    fn selects_registered(&self, e: &harbor_model::registration::RegisteredEntity) -> bool {
        if !self.types.matches(std::slice::from_ref(&e.entity_type)) {
            return false;
        }
        match (&self.id, &e.id, &e.id_pattern) {
            (Some(mine), Some(theirs), _) => mine == theirs,
            (Some(mine), None, Some(p)) => Regex::new(p).is_ok_and(|re| re.is_match(mine)),
            _ => match (&self.pattern, &e.id) {
                (Some(p), Some(theirs)) => p.is_match(theirs),
                _ => true,
            },
        }
    }

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

    /// For a subscription to registrations (5.11.7): the elements of the registration's
    /// `information` the subscription selects (by `entities` and `watchedAttributes`), when
    /// the registration matches it at all (its `location` within the `geoQ`, too).
    pub fn selected_info(
        &self,
        reg: &harbor_model::Registration,
    ) -> Option<Vec<harbor_model::registration::RegistrationInfo>> {
        if let Some(g) = &self.geo {
            let inside = reg
                .location
                .as_ref()
                .and_then(|l| harbor_query::geojson_to_geometry(l).ok())
                .is_some_and(|geom| g.matches_geometry(&geom));
            if !inside {
                return None;
            }
        }
        let picked: Vec<_> = reg
            .information
            .iter()
            .filter(|info| {
                let entities_ok = self.selectors.is_empty()
                    || match &info.entities {
                        None => true,
                        Some(list) => list
                            .iter()
                            .any(|e| self.selectors.iter().any(|s| s.selects_registered(e))),
                    };
                let names: Vec<&String> = info
                    .property_names
                    .iter()
                    .chain(info.relationship_names.iter())
                    .flatten()
                    .collect();
                let attrs_ok = match &self.watched {
                    None => true,
                    Some(w) => names.is_empty() || names.iter().any(|n| w.contains(*n)),
                };
                entities_ok && attrs_ok
            })
            .cloned()
            .collect();
        (!picked.is_empty()).then_some(picked)
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

    /// Where the index files this subscription: under the entity types it selects when its
    /// selection is a plain union of types; else under its watched attributes when only
    /// attribute-level triggers (or `entityUpdated`) can fire it; else under the entity ids
    /// it names exactly; else nowhere in particular (checked against every change).
    fn index_keys(&self) -> Vec<Key> {
        if !self.selectors.is_empty() {
            let types: Option<Vec<String>> = self
                .selectors
                .iter()
                .map(|s| s.types.simple_types())
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat());
            if let Some(types) = types {
                return types.into_iter().map(Key::Type).collect();
            }
        }
        let attribute_level = self.triggers.iter().all(|t| {
            matches!(
                t,
                Trigger::AttributeCreated
                    | Trigger::AttributeUpdated
                    | Trigger::AttributeDeleted
                    | Trigger::EntityUpdated
            )
        });
        if let (Some(watched), true) = (&self.watched, attribute_level) {
            return watched.iter().cloned().map(Key::Attr).collect();
        }
        if !self.selectors.is_empty()
            && self
                .selectors
                .iter()
                .all(|s| s.id.is_some() && s.pattern.is_none())
        {
            return self
                .selectors
                .iter()
                .filter_map(|s| s.id.clone())
                .map(Key::Id)
                .collect();
        }
        vec![Key::Everywhere]
    }
}

/// An index key of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Type(String),
    Attr(String),
    Id(String),
    Everywhere,
}

/// A tenant's compiled subscriptions, indexed so that a change meets only the subscriptions
/// that can match it: by the entity types they select, else by the attributes they watch,
/// else by the entity ids they name.
#[derive(Default)]
pub struct TenantIndex {
    by_id: HashMap<String, Arc<Compiled>>,
    by_key: HashMap<Key, Vec<Arc<Compiled>>>,
}

impl TenantIndex {
    pub fn insert(&mut self, c: Arc<Compiled>) {
        self.remove(&c.sub.id);
        let mut keys = c.index_keys();
        keys.sort();
        keys.dedup();
        for k in keys {
            self.by_key.entry(k).or_default().push(c.clone());
        }
        self.by_id.insert(c.sub.id.clone(), c);
    }

    pub fn remove(&mut self, id: &str) {
        if self.by_id.remove(id).is_none() {
            return;
        }
        self.by_key.retain(|_, list| {
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

    /// The subscriptions the index offers for this change: a superset of those it matches.
    pub fn candidates(&self, change: &EntityChange) -> Vec<&Arc<Compiled>> {
        let mut keys: Vec<Key> = vec![Key::Everywhere, Key::Id(change.id.clone())];
        for e in [change.after.as_deref(), change.before.as_ref()]
            .into_iter()
            .flatten()
        {
            keys.extend(e.types.iter().cloned().map(Key::Type));
        }
        keys.extend(change.changed.iter().cloned().map(Key::Attr));
        if change.after.is_none() {
            if let Some(b) = &change.before {
                keys.extend(b.attrs.keys().cloned().map(Key::Attr));
            }
        }
        keys.sort();
        keys.dedup();
        let mut seen = HashSet::new();
        keys.iter()
            .filter_map(|k| self.by_key.get(k))
            .flatten()
            .filter(|c| seen.insert(Arc::as_ptr(c)))
            .collect()
    }

    /// The subscriptions notified of this change, each once.
    #[cfg(test)]
    pub fn matching(
        &self,
        change: &EntityChange,
        resolve: &harbor_query::LinkResolver<'_>,
    ) -> Vec<Arc<Compiled>> {
        let now = harbor_model::time::now();
        self.candidates(change)
            .into_iter()
            .filter(|c| c.matches(change, now, resolve))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbor_model::{AttrValue, Attribute, Entity};
    use harbor_store::conformance::{parking, subscription};
    use serde_json::json;

    const NS: &str = "https://smartdatamodels.org/";

    fn compiled(sub: Subscription) -> Arc<Compiled> {
        Arc::new(Compiled::new(Arc::new(sub), Context::core(), Context::core()).unwrap())
    }

    /// A subscription to entities of `ty` (no q, default triggers, watching nothing).
    fn of_type(id: &str, ty: &str) -> Subscription {
        let mut s = subscription(id);
        s.entities[0].type_expr = format!("{NS}{ty}");
        s.q = None;
        s.watched_attributes = None;
        s
    }

    /// The parking entity's spots changed from 10 to `free`.
    fn spots_changed(free: i64) -> EntityChange {
        let before = parking(1, 10, 103.85, 1.29);
        let mut after = before.clone();
        let now = harbor_model::time::now();
        after.attrs.insert(
            format!("{NS}availableSpotNumber"),
            vec![Attribute::new(AttrValue::Property(json!(free)), now)],
        );
        EntityChange {
            seq: 1,
            tenant: harbor_model::Tenant::default_tenant(),
            id: before.id.clone(),
            at: now,
            after: Some(Arc::new(after)),
            before: Some(Entity {
                attrs: before
                    .attrs
                    .iter()
                    .filter(|(k, _)| k.ends_with("availableSpotNumber"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..before.clone()
            }),
            changed: vec![format!("{NS}availableSpotNumber")],
        }
    }

    #[test]
    fn a_change_meets_only_subscriptions_that_can_match_it() {
        let mut index = TenantIndex::default();
        for i in 0..1000 {
            index.insert(compiled(of_type(&format!("urn:s:bus-{i}"), "Bus")));
        }
        index.insert(compiled(of_type("urn:s:parking", "OffStreetParking")));
        index.insert(compiled(watching("urn:s:temp", "temperature")));
        let mut watching_spots = watching("urn:s:spots", "availableSpotNumber");
        watching_spots.notification_trigger = vec!["attributeUpdated".into()];
        index.insert(compiled(watching_spots));

        let change = spots_changed(3);
        let ids: Vec<&str> = index
            .candidates(&change)
            .iter()
            .map(|c| c.sub.id.as_str())
            .collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.contains(&"urn:s:parking") && ids.contains(&"urn:s:spots"));
        let resolve = |_: &str| None;
        let matched: Vec<String> = index
            .matching(&change, &resolve)
            .iter()
            .map(|c| c.sub.id.clone())
            .collect();
        assert_eq!(matched.len(), 2, "{matched:?}");
    }

    /// A subscription without entity selection, watching one attribute.
    fn watching(id: &str, attr: &str) -> Subscription {
        let mut s = of_type(id, "X");
        s.entities.clear();
        s.watched_attributes = Some(vec![format!("{NS}{attr}")]);
        s
    }

    #[test]
    fn subscriptions_without_a_key_see_every_change_and_removal_forgets() {
        let mut index = TenantIndex::default();
        let mut everything = of_type("urn:s:all", "X");
        everything.entities.clear();
        // entityCreated fires without touching a watched attribute: no attribute key.
        everything.watched_attributes = Some(vec![format!("{NS}temperature")]);
        everything.notification_trigger = vec!["entityCreated".into()];
        index.insert(compiled(everything));
        assert_eq!(index.candidates(&spots_changed(1)).len(), 1);
        index.remove("urn:s:all");
        assert!(index.candidates(&spots_changed(1)).is_empty());
        assert!(index.get("urn:s:all").is_none());
    }

    #[test]
    fn q_and_triggers_decide_among_candidates() {
        let mut index = TenantIndex::default();
        let mut low = of_type("urn:s:low", "OffStreetParking");
        low.q = Some("availableSpotNumber<5".into());
        low.context = json!({"availableSpotNumber": format!("{NS}availableSpotNumber")});
        let low = Compiled::new(
            Arc::new(low),
            Context::compile(&[json!({"availableSpotNumber": format!("{NS}availableSpotNumber")})])
                .map(Arc::new)
                .unwrap(),
            Context::core(),
        )
        .unwrap();
        index.insert(Arc::new(low));
        let mut deleted_only = of_type("urn:s:deleted", "OffStreetParking");
        deleted_only.notification_trigger = vec!["attributeDeleted".into()];
        index.insert(compiled(deleted_only));
        let resolve = |_: &str| None;
        let ids = |c: EntityChange| -> Vec<String> {
            index
                .matching(&c, &resolve)
                .iter()
                .map(|m| m.sub.id.clone())
                .collect()
        };
        assert_eq!(ids(spots_changed(3)), vec!["urn:s:low".to_string()]);
        assert!(ids(spots_changed(7)).is_empty(), "q excludes 7 spots");
    }
}
