//! Distributed operations (4.3.6, 5.7.1): what the local store does not hold is asked of the
//! context sources registered for it. Today: Retrieve Entity, when the entity is not local.
//! The request to a source carries the registration's tenant (none when the registration has
//! none, 4.14), its `contextSourceInfo` as headers, and the requester's `@context` link, so
//! that the source compacts its answer with the terms the broker then expands.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use harbor_jsonld::attribute::Payload;
use harbor_jsonld::expand::parse_entity;
use harbor_jsonld::Context;
use harbor_model::{time, Entity, NgsiResult, Registration, Tenant};
use serde_json::Value;

use crate::Engine;

/// Most context sources one request is forwarded to.
pub const MAX_SOURCES: usize = 8;

/// How long a context source may take to answer.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// One request to a context source.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The registration's endpoint (base URL of the source's NGSI-LD API).
    pub endpoint: String,
    /// Path below `/ngsi-ld/v1`, e.g. `/entities/urn:ngsi-ld:Vehicle:1` (already encoded).
    pub path: String,
    /// `NGSILD-Tenant` to send: the registration's tenant, never the requester's (4.14).
    pub tenant: Option<String>,
    /// Further headers: `Link` with the requester's `@context`, the `contextSourceInfo`.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Talks to context sources (implemented by `harbor-outbound`).
#[async_trait]
pub trait ContextSourceClient: Send + Sync {
    /// GETs `path` from the source: the JSON body of a 200, `None` for a 404.
    async fn get(&self, f: &Forward) -> Result<Option<Value>, String>;
}

/// Operation names and groups (4.20) that include Retrieve Entity.
const RETRIEVE: &[&str] = &[
    "retrieveEntity",
    "retrieveOps",
    "federationOps",
    "redirectionOps",
];

/// Whether the registration offers the entity with this id for retrieval.
fn offers(r: &Registration, id: &str) -> bool {
    if !r.operations.iter().any(|o| RETRIEVE.contains(&o.as_str())) {
        return false;
    }
    r.information.iter().any(|info| match &info.entities {
        None => true,
        Some(list) => list.iter().any(|e| match (&e.id, &e.id_pattern) {
            (Some(x), _) => x == id,
            (None, Some(p)) => regex::Regex::new(p).is_ok_and(|re| re.is_match(id)),
            (None, None) => true,
        }),
    })
}

/// Characters that cannot stand in one path segment (RFC 3986 3.3) and are escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `id` made safe as one path segment.
fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

impl Engine {
    /// The engine with a client for registered context sources; without one, nothing is
    /// forwarded.
    pub fn with_context_sources(mut self, client: Arc<dyn ContextSourceClient>) -> Self {
        self.sources = Some(client);
        self
    }

    /// Retrieve Entity (5.7.1) from the context sources registered for `id`, for an entity
    /// the local store does not hold. The first source that has it answers; a source that
    /// fails or times out is skipped. `link` is the requester's `@context` URL, `ctx` its
    /// compiled form.
    pub async fn retrieve_remote(
        &self,
        tenant: &Tenant,
        id: &str,
        link: Option<&str>,
        ctx: &Context,
    ) -> NgsiResult<Option<Entity>> {
        let (Some(client), Some(store)) = (&self.sources, &self.registrations) else {
            return Ok(None);
        };
        let now = time::now();
        let regs: Vec<Arc<Registration>> = store
            .registrations(tenant)
            .into_iter()
            .filter(|r| r.expires_at.is_none_or(|t| t > now) && offers(r, id))
            .take(MAX_SOURCES)
            .collect();
        for r in regs {
            let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
            if let Some(url) = link {
                headers.push(("Link".to_string(), crate::context_link(url)));
            }
            for kv in r.context_source_info.iter().flatten() {
                if kv.key != "jsonldContext" {
                    headers.push((kv.key.clone(), kv.value.clone()));
                }
            }
            let f = Forward {
                endpoint: r.endpoint.trim_end_matches('/').to_string(),
                path: format!("/entities/{}", segment(id)),
                tenant: r.tenant.clone(),
                headers,
                timeout: SOURCE_TIMEOUT,
            };
            match client.get(&f).await {
                Ok(Some(body)) => {
                    let input = match parse_entity(ctx, &body, true, Payload::Full, now) {
                        Ok(i) => i,
                        Err(e) => {
                            tracing::warn!(registration = %r.id, error = %e.detail, "a context source answered an entity that cannot be read");
                            continue;
                        }
                    };
                    let e = crate::merge::new_entity(input, now)?;
                    if e.id == id {
                        return Ok(Some(e));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(registration = %r.id, error = %e, "context source unavailable");
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_readable_in_paths_and_cannot_escape_their_segment() {
        assert_eq!(
            segment("urn:ngsi-ld:Vehicle:SG-1"),
            "urn:ngsi-ld:Vehicle:SG-1"
        );
        assert_eq!(segment("urn:x:a/b?c#d e"), "urn:x:a%2Fb%3Fc%23d%20e");
    }
}
