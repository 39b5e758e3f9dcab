//! Distributed operations (4.3.6, 5.7.1): what the local store does not hold is asked of the
//! context sources registered for it. Today: Retrieve Entity, when the entity is not local
//! and the request is not limited to the local scope (`local=true`, 5.5.13).
//!
//! The request to a source carries the registration's tenant (none when the registration has
//! none, 4.14), its `contextSourceInfo` as headers (never one the broker owns: the tenant,
//! `Via`, the framing), the requester's `@context` link, so that the source compacts its
//! answer with the terms the broker then expands, and `Via` with this broker appended.
//!
//! **Loops.** Brokers that register each other forward in circles unless each one stops a
//! request that already passed it. `Via` (RFC 9110 7.6.3) lists the hops: a request whose
//! `Via` names this broker's id is not forwarded again, and a registration whose endpoint
//! (or `contextSourceAlias`) is already in `Via` is not asked.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use harbor_jsonld::attribute::Payload;
use harbor_jsonld::expand::parse_entity;
use harbor_jsonld::Context;
use harbor_model::{time, Entity, NgsiResult, Registration, Tenant};
use harbor_query::EntityQuery;
use serde_json::Value;

use crate::Engine;

/// Most context sources one request is forwarded to.
pub const MAX_SOURCES: usize = 8;

/// How long a context source may take to answer.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// The id a broker gives itself in `Via` when it is given none.
pub const DEFAULT_BROKER_ID: &str = "infoharbor";

/// One request to a context source.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The source's NGSI-LD API root, ending in `/ngsi-ld/v1` (see [`api_root`]).
    pub api: String,
    /// Path below the API root, e.g. `/entities/urn:ngsi-ld:Vehicle:1` (already encoded).
    pub path: String,
    /// `NGSILD-Tenant` to send: the registration's tenant, never the requester's (4.14).
    pub tenant: Option<String>,
    /// Further headers: `Accept`, `Link` with the requester's `@context`, `Via`, the
    /// `contextSourceInfo`.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Forward {
    /// The URL the request goes to.
    pub fn url(&self) -> String {
        format!("{}{}", self.api, self.path)
    }
}

/// What a forwarded request takes from the request that caused it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The requester's `@context` URL (from its `Link` header).
    pub link: Option<&'a str>,
    /// The request's `Via` header as it arrived (every field line, joined with `, `).
    pub via: Option<&'a str>,
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
    "associationOps",
    "redirectionOps",
];

/// Operation names and groups (4.20) that include Query Entities, by GET or by POST.
const QUERY: &[&str] = &[
    "queryEntity",
    "queryBatch",
    "retrieveOps",
    "federationOps",
    "associationOps",
    "redirectionOps",
];

fn takes(r: &Registration, ops: &[&str]) -> bool {
    r.operations.iter().any(|o| ops.contains(&o.as_str()))
}

/// Whether the registration offers the entity with this id for retrieval. An element of
/// `information` without `entities` offers its attributes of every entity (5.2.10).
fn offers(r: &Registration, id: &str) -> bool {
    if !takes(r, RETRIEVE) {
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

/// Whether the registration offers entities this query may select: its types, ids and
/// attributes overlap the query's. Filters on values, geometry and scopes are the source's
/// to apply, so they do not narrow the match.
fn offers_query(r: &Registration, q: &EntityQuery) -> bool {
    if !takes(r, QUERY) {
        return false;
    }
    r.information.iter().any(|info| {
        let entities_ok = match &info.entities {
            None => true,
            Some(list) => list.iter().any(|e| {
                let types = [e.entity_type.clone()];
                let type_ok = q.types.as_ref().is_none_or(|t| t.matches(&types));
                let id_ok = match (&e.id, &q.ids) {
                    (Some(id), Some(ids)) => ids.contains(id),
                    _ => true,
                };
                type_ok && id_ok
            }),
        };
        let attrs_ok = match &q.attrs {
            None => true,
            Some(attrs) => {
                let mut names = info
                    .property_names
                    .iter()
                    .chain(info.relationship_names.iter())
                    .flatten()
                    .peekable();
                names.peek().is_none() || names.any(|n| attrs.contains(n))
            }
        };
        entities_ok && attrs_ok
    })
}

/// The NGSI-LD API root of a registration's endpoint. `endpoint` is the source's base URL
/// (5.2.9), to which the API path is added; many deployments, and the older ETSI cases,
/// register the API root itself, with or without a trailing slash. Both name the same source.
pub fn api_root(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/ngsi-ld/v1") {
        base.to_string()
    } else {
        format!("{base}/ngsi-ld/v1")
    }
}

/// The hops a `Via` header lists (RFC 9110 7.6.3): the `received-by` of each entry (a
/// pseudonym or `host[:port]`), lower-cased, comments dropped.
pub fn via_hops(via: &str) -> Vec<String> {
    via.split(',')
        .filter_map(|entry| {
            let entry = entry.split('(').next().unwrap_or_default();
            let mut words = entry.split_whitespace();
            let first = words.next()?;
            Some(words.next().unwrap_or(first).to_ascii_lowercase())
        })
        .collect()
}

/// `host[:port]` of an endpoint URL, lower-cased.
fn authority(endpoint: &str) -> Option<String> {
    let rest = endpoint.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    (!auth.is_empty()).then(|| auth.to_ascii_lowercase())
}

/// The expanded name of the registration member `contextSourceAlias` (Table 5.2.9-1), which
/// the broker keeps among the extra members.
const ALIAS: &str = "https://uri.etsi.org/ngsi-ld/contextSourceAlias";

/// Whether the request already passed the source of this registration: its endpoint's
/// authority, or its `contextSourceAlias`, is one of the hops.
fn already_passed(r: &Registration, hops: &[String]) -> bool {
    let by_endpoint = authority(&r.endpoint).is_some_and(|a| hops.contains(&a));
    let by_alias = r
        .extra
        .get(ALIAS)
        .and_then(Value::as_str)
        .is_some_and(|a| hops.contains(&a.to_ascii_lowercase()));
    by_endpoint || by_alias
}

/// Header names a registration's `contextSourceInfo` never sets on a forwarded request
/// (4.3.6.5: tenant information "shall not be part of contextSourceInfo", and what belongs to
/// the binding itself "shall be ignored"). The broker alone decides the tenant, the hops
/// (`Via`), the target and the framing; hop-by-hop headers (RFC 9110 7.6.1) are not for the
/// next hop to choose; `jsonldContext` is the `@context` key of 4.3.6.5, not a header.
const BROKER_OWNED: &[&str] = &[
    "ngsild-tenant",
    "via",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "accept",
    "link",
    "expect",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "jsonldcontext",
];

/// Whether a `contextSourceInfo` pair with this key becomes a header of a forwarded request.
fn conveyed(key: &str) -> bool {
    !BROKER_OWNED.contains(&key.to_ascii_lowercase().as_str())
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

    /// The name this broker gives itself in `Via` on the requests it forwards, and looks
    /// for in the `Via` of the requests it gets (a pseudonym or `host:port`).
    pub fn with_broker_id(mut self, id: impl Into<String>) -> Self {
        self.broker_id = id.into();
        self
    }

    pub fn broker_id(&self) -> &str {
        &self.broker_id
    }

    /// The live registrations of `tenant` that `wanted` accepts, none of which the request
    /// (by its `Via`) already passed; none at all when it already passed this broker.
    fn sources_for(
        &self,
        tenant: &Tenant,
        via: Option<&str>,
        wanted: impl Fn(&Registration) -> bool,
    ) -> Vec<Arc<Registration>> {
        let Some(store) = &self.registrations else {
            return Vec::new();
        };
        let hops = via.map(via_hops).unwrap_or_default();
        if hops.contains(&self.broker_id.to_ascii_lowercase()) {
            tracing::debug!(
                via = via.unwrap_or_default(),
                "the request already passed this broker: not forwarded again"
            );
            return Vec::new();
        }
        let now = time::now();
        store
            .registrations(tenant)
            .into_iter()
            .filter(|r| r.expires_at.is_none_or(|t| t > now))
            .filter(|r| wanted(r) && !already_passed(r, &hops))
            .collect()
    }

    /// Whether Query Entities `q` in `tenant` would be distributed: a live registration
    /// offers what it selects. Such a query cannot be ordered (4.23.1: "Sort ordering is
    /// never applied to distributed operations"; 5.7.2.4).
    pub fn distributes_query(&self, tenant: &Tenant, q: &EntityQuery) -> bool {
        self.sources.is_some()
            && !self
                .sources_for(tenant, None, |r| offers_query(r, q))
                .is_empty()
    }

    /// The `Via` a forwarded request carries: the hops it arrived with, then this broker.
    fn via(&self, incoming: Option<&str>) -> String {
        match incoming.map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => format!("{v}, 1.1 {}", self.broker_id),
            None => format!("1.1 {}", self.broker_id),
        }
    }

    /// Retrieve Entity (5.7.1) from the context sources registered for `id`, for an entity
    /// the local store does not hold. The first source that has it answers; a source that
    /// fails or times out is skipped. `origin` is what the requester sent that the
    /// forwarded request takes on, `ctx` its compiled `@context`.
    pub async fn retrieve_remote(
        &self,
        tenant: &Tenant,
        id: &str,
        origin: Origin<'_>,
        ctx: &Context,
    ) -> NgsiResult<Option<Entity>> {
        let Some(client) = &self.sources else {
            return Ok(None);
        };
        let now = time::now();
        let regs = self.sources_for(tenant, origin.via, |r| offers(r, id));
        for r in regs.into_iter().take(MAX_SOURCES) {
            let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
            if let Some(url) = origin.link {
                headers.push(("Link".to_string(), crate::context_link(url)));
            }
            headers.push(("Via".to_string(), self.via(origin.via)));
            for kv in r.context_source_info.iter().flatten() {
                if conveyed(&kv.key) {
                    headers.push((kv.key.clone(), kv.value.clone()));
                }
            }
            let f = Forward {
                api: api_root(&r.endpoint),
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
    fn context_source_info_cannot_set_what_the_broker_owns() {
        for key in [
            "NGSILD-Tenant",
            "ngsild-tenant",
            "Via",
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Upgrade",
            "Proxy-Authorization",
            "jsonldContext",
        ] {
            assert!(!conveyed(key), "{key} must not reach the wire");
        }
        for key in ["Authorization", "X-Custom-Info", "user", "Fiware-Service"] {
            assert!(conveyed(key), "{key} is the registrant's to set (4.3.6.5)");
        }
    }

    #[test]
    fn endpoints_with_or_without_the_api_path_name_the_same_root() {
        for endpoint in [
            "http://sg.example.org:1026",
            "http://sg.example.org:1026/",
            "http://sg.example.org:1026/ngsi-ld/v1",
            "http://sg.example.org:1026/ngsi-ld/v1/",
        ] {
            assert_eq!(
                api_root(endpoint),
                "http://sg.example.org:1026/ngsi-ld/v1",
                "{endpoint}"
            );
        }
        assert_eq!(
            api_root("https://gw.example.org/city/sg"),
            "https://gw.example.org/city/sg/ngsi-ld/v1"
        );
    }

    #[test]
    fn via_lists_the_received_by_of_every_hop() {
        assert_eq!(
            via_hops("1.1 nanning, HTTP/1.1 SG.example.org:1026 (Infoharbor),1.0 kl"),
            ["nanning", "sg.example.org:1026", "kl"]
        );
        assert_eq!(via_hops("lonely"), ["lonely"]);
        assert!(via_hops("").is_empty());
        assert_eq!(
            authority("http://user@SG.example.org:1026/ngsi-ld/v1"),
            Some("sg.example.org:1026".into())
        );
        assert_eq!(
            authority("http://kl.example.org"),
            Some("kl.example.org".into())
        );
        assert_eq!(authority("not a url"), None);
    }

    #[test]
    fn ids_stay_readable_in_paths_and_cannot_escape_their_segment() {
        assert_eq!(
            segment("urn:ngsi-ld:Vehicle:SG-1"),
            "urn:ngsi-ld:Vehicle:SG-1"
        );
        assert_eq!(segment("urn:x:a/b?c#d e"), "urn:x:a%2Fb%3Fc%23d%20e");
    }
}
