//! Access policies at the API: the [`Access`] of a request (settled by the auth guard) as an
//! extractor, the write rule that carries it into the engine's commits, and the filtering of
//! what a partial subject reads: entities projected onto their opened attributes, and filters,
//! counts and pages computed over that projection only; the same for histories (through the
//! engine's `HistoryView`) and for registrations.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use harbor_auth::{Access, Identity};
use harbor_model::{Entity, ErrorKind, NgsiError, NgsiResult, Registration};
use harbor_store::EntityQuery;

use crate::SharedState;

/// What the request's identity may see and do, for the action of its operation. Without
/// authentication that is everything.
#[derive(Clone)]
pub struct Seen(pub Access);

impl FromRequestParts<SharedState> for Seen {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Seen(match parts.extensions.get::<Access>() {
            Some(a) => a.clone(),
            None if s.auth.is_none() => Access::Full,
            // The guard settles an access for every tenant operation; one without it sees
            // nothing rather than everything.
            None => Access::Denied,
        }))
    }
}

impl Seen {
    /// The entity as the identity may see it, or the same not-found answer as for an entity
    /// that does not exist.
    pub fn entity(&self, e: &Arc<Entity>) -> NgsiResult<Arc<Entity>> {
        self.0
            .project(e)
            .ok_or_else(|| NgsiError::not_found(format!("entity {} does not exist", e.id)))
    }

    /// Splits a query for a partial subject: the returned filters depend on attribute values
    /// and must be evaluated on the projection, not on the stored entity, or a filter would
    /// reveal values the subject may not read.
    pub fn split(&self, q: &mut EntityQuery) -> NgsiResult<Option<EntityQuery>> {
        if self.0.is_full() {
            return Ok(None);
        }
        Ok(Some(EntityQuery {
            attrs: q.attrs.take(),
            q: q.q.take(),
            geo: q.geo.take(),
            ..EntityQuery::default()
        }))
    }

    /// Runs a discovery with the entities the identity may see.
    pub fn discovery<T>(&self, f: impl FnOnce(Option<harbor_engine::DiscoveryView<'_>>) -> T) -> T {
        if self.0.is_full() {
            return f(None);
        }
        let project = |e: &Arc<Entity>| self.0.project(e);
        f(Some(&project))
    }

    /// Runs a temporal read with what the identity may see of each entity's history.
    pub fn history<T>(&self, f: impl FnOnce(Option<harbor_engine::HistoryView<'_>>) -> T) -> T {
        if self.0.is_full() {
            return f(None);
        }
        let view = |e: &Entity| {
            self.0.opened(e).map(|names| match names {
                None => harbor_engine::Opened::All,
                Some(names) => {
                    harbor_engine::Opened::Only(names.into_iter().map(str::to_string).collect())
                }
            })
        };
        f(Some(&view))
    }

    /// The registration as the identity may see it, or the same not-found answer as for
    /// one that does not exist.
    pub fn registration(&self, r: &Arc<Registration>) -> NgsiResult<Arc<Registration>> {
        self.0
            .project_registration(r)
            .ok_or_else(|| NgsiError::not_found(format!("registration {} does not exist", r.id)))
    }

    /// The projections of `found` that pass `post` (from [`Seen::split`]). A `q` over Linked
    /// Entities (`rel{attr}`) reads each target through `lookup` as the identity sees it: a
    /// target it may not see is as a missing one, a hidden attribute of a target as an absent
    /// one.
    pub fn filter(
        &self,
        found: Vec<Arc<Entity>>,
        post: &EntityQuery,
        lookup: &dyn Fn(&str) -> Option<Arc<Entity>>,
    ) -> Vec<Arc<Entity>> {
        let resolve = |id: &str| {
            lookup(id)
                .and_then(|e| self.0.project(&e))
                .map(|e| (*e).clone())
        };
        found
            .iter()
            .filter_map(|e| self.0.project(e))
            .filter(|e| post.matches_linked(e, &resolve))
            .collect()
    }

    /// Linked Entities joined (`join`) as the identity sees them.
    pub fn join(
        &self,
        s: &SharedState,
        tenant: &harbor_model::Tenant,
        roots: &[Arc<Entity>],
        spec: &harbor_engine::JoinSpec,
    ) -> NgsiResult<Vec<harbor_engine::Joined>> {
        if self.0.is_full() {
            return s.engine.join(tenant, roots, spec);
        }
        s.engine
            .join_seen(tenant, roots, spec, &|e| self.0.project(e))
    }
}

/// The write rule of an identity that writes through access policies.
pub struct PolicyWrite {
    pub access: Access,
    pub who: Identity,
}

impl harbor_engine::access::WriteRule for PolicyWrite {
    fn check(
        &self,
        before: Option<&Entity>,
        after: Option<&Entity>,
        touched: &[&str],
    ) -> NgsiResult<()> {
        if let Some(b) = before {
            if !self.access.selects(b) {
                return Err(NgsiError::not_found(format!(
                    "entity {} does not exist",
                    b.id
                )));
            }
        }
        for e in before.iter().chain(after.iter()) {
            if let Some(name) = touched
                .iter()
                .find(|n| !self.access.may_write(e, std::iter::once(**n)))
            {
                return Err(NgsiError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "{} may not write attribute {name} of entity {}: no access policy opens it",
                        self.who.name(),
                        e.id
                    ),
                ));
            }
            if !self.access.selects(e) {
                return Err(NgsiError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "{} may not write entity {} as it would be: no access policy selects it",
                        self.who.name(),
                        e.id
                    ),
                ));
            }
        }
        Ok(())
    }
}
