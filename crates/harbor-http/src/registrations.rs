//! Handlers of `/csourceRegistrations` (6.8 – 6.9; 5.9, 5.10) and `/csourceSubscriptions`
//! (6.10 – 6.11 for registrations; 5.11): create, query, retrieve, update, delete. No
//! forwarding and no notifications yet: these keep the records those will read.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use harbor_auth::Identity;
use harbor_jsonld::expand::is_uri;
use harbor_jsonld::registration::{
    merge_registration, parse_registration, render_csource_subscription, render_registration,
};
use harbor_jsonld::subscription::{merge_subscription, parse_subscription};
use harbor_jsonld::Context;
use harbor_model::{time, NgsiError, Registration};
use harbor_query::{parse_coordinates_text, parse_geo_query, parse_q, parse_scope_q};

use crate::access::Seen;
use crate::entities::read_json;
use crate::error::ApiResult;
use crate::negotiate;
use crate::params::{allowed, Params};
use crate::query;
use crate::reply;
use crate::subscriptions::{check_id, check_jsonld_context, created, preferred_version};
use crate::SharedState;

const REGISTRATIONS: &str = "/ngsi-ld/v1/csourceRegistrations";
const SUBSCRIPTIONS: &str = "/ngsi-ld/v1/csourceSubscriptions";

/// POST /csourceRegistrations — 5.9.2.
pub async fn create(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    let b = read_json(&s, &headers, body, false).await?;
    let reg = parse_registration(&b.ld.ctx, &b.value, time::now())?;
    let id = reg.id.clone();
    s.engine.create_registration(&tenant, reg).await?;
    created(&format!("{REGISTRATIONS}/{id}"), &tenant)
}

/// Whether `options` asks for `sysAttrs` (the only option a registration read knows).
fn sys_attrs(p: &Params) -> ApiResult<bool> {
    Ok(p.list("options")?
        .is_some_and(|o| o.iter().any(|x| x == "sysAttrs")))
}

/// The filters of 5.10.2 this broker applies: `id`, `idPattern`, `type` (names joined with
/// `,` or `|`) and `attrs`, each checked against the registration's `information`.
/// The parameters of 5.10.2 that select registrations; a query names at least one.
const FILTERS: &[&str] = &[
    "id",
    "type",
    "idPattern",
    "attrs",
    "q",
    "csf",
    "scopeQ",
    "georel",
    "timerel",
];

struct Filter {
    ids: Option<Vec<String>>,
    id_pattern: Option<regex::Regex>,
    types: Option<Vec<String>>,
    attrs: Option<Vec<String>>,
    scope_q: Option<harbor_query::ScopeQ>,
}

impl Filter {
    fn parse(p: &Params, ctx: &Context) -> ApiResult<Filter> {
        check_expressions(p, ctx)?;
        if !FILTERS.iter().any(|k| p.get(k).is_some()) {
            return Err(NgsiError::bad_request(format!(
                "a query of registrations needs at least one of {} (5.10.2)",
                FILTERS.join(", ")
            ))
            .into());
        }
        let ids = p.list("id")?;
        if let Some(bad) = ids.iter().flatten().find(|i| !is_uri(i)) {
            return Err(NgsiError::bad_request(format!(
                "parameter \"id\": \"{bad}\" is not a URI"
            ))
            .into());
        }
        let id_pattern = p
            .get("idPattern")
            .map(|pat| {
                regex::Regex::new(pat).map_err(|e| {
                    NgsiError::bad_request(format!(
                        "parameter \"idPattern\" is not a regular expression: {e}"
                    ))
                })
            })
            .transpose()?;
        let types = p.get("type").map(|t| {
            t.split([',', '|', ';', '(', ')'])
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| ctx.expand_term(n))
                .collect()
        });
        let attrs = p
            .list("attrs")?
            .map(|a| a.iter().map(|n| ctx.expand_term(n)).collect());
        let scope_q = p
            .get("scopeQ")
            .map(parse_scope_q)
            .transpose()
            .map_err(|e| NgsiError::bad_request(format!("parameter \"scopeQ\": {}", e.detail)))?;
        Ok(Filter {
            scope_q,
            ids,
            id_pattern,
            types,
            attrs,
        })
    }

    fn matches(&self, r: &Registration) -> bool {
        if let Some(sq) = &self.scope_q {
            if !sq.matches(r.scope.as_deref().unwrap_or_default()) {
                return false;
            }
        }
        r.information.iter().any(|info| {
            let entity_ok = match &info.entities {
                // No `entities`: the source offers its attributes of every entity (5.2.10),
                // so only the attribute names decide (ETSI 037_05_02).
                None => true,
                Some(es) => es.iter().any(|e| {
                    let type_ok = self
                        .types
                        .as_ref()
                        .is_none_or(|t| t.contains(&e.entity_type));
                    let id_ok = self
                        .ids
                        .as_ref()
                        .is_none_or(|ids| match (&e.id, &e.id_pattern) {
                            (Some(id), _) => ids.contains(id),
                            (None, Some(pat)) => regex::Regex::new(pat)
                                .is_ok_and(|re| ids.iter().any(|i| re.is_match(i))),
                            (None, None) => true,
                        });
                    let pattern_ok = self.id_pattern.as_ref().is_none_or(|re| match &e.id {
                        Some(id) => re.is_match(id),
                        None => true,
                    });
                    type_ok && id_ok && pattern_ok
                }),
            };
            let attrs_ok = self.attrs.as_ref().is_none_or(|attrs| {
                if info.property_names.is_none() && info.relationship_names.is_none() {
                    return true;
                }
                let names = info
                    .property_names
                    .iter()
                    .chain(info.relationship_names.iter())
                    .flatten();
                names.into_iter().any(|n| attrs.contains(n))
            });
            entity_ok && attrs_ok
        })
    }
}

/// Checks `q`, `csf`, `scopeQ`, the geo-query and the temporal query of 5.10.2; they are
/// refused when malformed and not yet applied to registrations.
fn check_expressions(p: &Params, ctx: &Context) -> ApiResult<()> {
    let bad = |what: &str, detail: String| -> crate::ApiError {
        NgsiError::bad_request(format!("parameter \"{what}\": {detail}")).into()
    };
    let expand = |n: &str| ctx.expand_term(n);
    for k in ["q", "csf"] {
        if let Some(q) = p.get(k) {
            parse_q(q, &expand).map_err(|e| bad(k, e.detail))?;
        }
    }
    if let Some(sq) = p.get("scopeQ") {
        parse_scope_q(sq).map_err(|e| bad("scopeQ", e.detail))?;
    }
    let geo = ["georel", "geometry", "coordinates"];
    if geo.iter().any(|k| p.get(k).is_some()) {
        let (Some(georel), Some(geometry), Some(coords)) =
            (p.get("georel"), p.get("geometry"), p.get("coordinates"))
        else {
            return Err(NgsiError::bad_request(
                "a geo-query needs \"georel\", \"geometry\" and \"coordinates\" together (5.10.2)",
            )
            .into());
        };
        let coordinates =
            parse_coordinates_text(coords).map_err(|e| bad("coordinates", e.detail))?;
        parse_geo_query(
            georel,
            geometry,
            &coordinates,
            p.get("geoproperty"),
            &expand,
        )
        .map_err(|e| bad("georel", e.detail))?;
    }
    if let Some(rel) = p.get("timerel") {
        let needs_end = match rel {
            "before" | "after" => false,
            "between" => true,
            other => {
                return Err(bad(
                    "timerel",
                    format!("\"{other}\" is not before, after or between"),
                ))
            }
        };
        for (k, required) in [("timeAt", true), ("endTimeAt", needs_end)] {
            match p.get(k) {
                Some(t) if time::parse(t).is_none() => {
                    return Err(bad(k, format!("\"{t}\" is not a DateTime")))
                }
                None if required => return Err(bad(k, format!("is required with timerel={rel}"))),
                _ => {}
            }
        }
    }
    Ok(())
}

/// GET /csourceRegistrations — 5.10.2.
pub async fn query(
    State(s): State<SharedState>,
    seen: Seen,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    p.only(allowed::QUERY_REGISTRATIONS)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = crate::body::context_from_link(&s, &headers).await?;
    let limits = &s.engine.limits;
    let page = query::page(&p, limits.default_page, limits.max_page)?;
    let filter = Filter::parse(&p, &ld.ctx)?;
    let sys = sys_attrs(&p)?;
    // A partial reader's filters run on what it may see of each registration.
    let all: Vec<_> = s
        .engine
        .query_registrations(&tenant)?
        .iter()
        .filter_map(|r| seen.0.project_registration(r))
        .filter(|r| filter.matches(r))
        .collect();
    let items = all
        .iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|r| render_registration(r, &ld.ctx, sys))
        .collect();
    Ok(reply::page(
        REGISTRATIONS,
        &p,
        media,
        &ld,
        serde_json::Value::Array(items),
        all.len(),
        page,
    ))
}

/// GET /csourceRegistrations/{id} — 5.10.1.
pub async fn retrieve(
    State(s): State<SharedState>,
    seen: Seen,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    p.only(allowed::RETRIEVE_REGISTRATION)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = crate::body::context_from_link(&s, &headers).await?;
    let reg = seen.registration(&s.engine.retrieve_registration(&tenant, &id)?)?;
    let body = render_registration(&reg, &ld.ctx, sys_attrs(&p)?);
    Ok(reply::json(
        StatusCode::OK,
        media,
        &ld,
        body,
        HeaderMap::new(),
    ))
}

/// PATCH /csourceRegistrations/{id} — 5.9.3.
pub async fn update(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    let b = read_json(&s, &headers, body, true).await?;
    let now = time::now();
    s.engine
        .update_registration(&tenant, &id, |current| {
            merge_registration(current, &b.ld.ctx, &b.value, now)
        })
        .await?;
    Ok(reply::no_content())
}

/// DELETE /csourceRegistrations/{id} — 5.9.4.
pub async fn delete(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    s.engine.delete_registration(&tenant, &id).await?;
    Ok(reply::no_content())
}

/// POST /csourceSubscriptions — 5.11.2.
pub async fn create_subscription(
    State(s): State<SharedState>,
    who: Option<Extension<Identity>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    let b = read_json(&s, &headers, body, false).await?;
    let mut sub = parse_subscription(&b.ld.ctx, &b.value, b.ld.echo.clone(), time::now())?;
    check_jsonld_context(&s, &b.value).await?;
    // As for subscriptions to entities: notifications carry what the creator may see.
    sub.owner = who.map(|Extension(i)| crate::subscriptions::owner_of(&i));
    let id = sub.id.clone();
    s.engine.create_csource_subscription(&tenant, sub).await?;
    created(&format!("{SUBSCRIPTIONS}/{id}"), &tenant)
}

/// GET /csourceSubscriptions — 5.11.5.
pub async fn query_subscriptions(
    State(s): State<SharedState>,
    seen: Seen,
    who: Option<Extension<Identity>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    p.only(allowed::QUERY_SUBSCRIPTIONS)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = crate::body::context_from_link(&s, &headers).await?;
    let limits = &s.engine.limits;
    let page = query::page(&p, limits.default_page, limits.max_page)?;
    let mut all = s.engine.query_csource_subscriptions(&tenant)?;
    all.retain(|sub| crate::subscriptions::own(&seen, &who, sub));
    let now = time::now();
    let items = all
        .iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|sub| render_csource_subscription(sub, &ld.ctx, false, now))
        .collect();
    Ok(reply::page(
        SUBSCRIPTIONS,
        &p,
        media,
        &ld,
        serde_json::Value::Array(items),
        all.len(),
        page,
    ))
}

/// GET /csourceSubscriptions/{id} — 5.11.4.
pub async fn retrieve_subscription(
    State(s): State<SharedState>,
    seen: Seen,
    who: Option<Extension<Identity>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = crate::body::context_from_link(&s, &headers).await?;
    let sub = s.engine.retrieve_csource_subscription(&tenant, &id)?;
    if !crate::subscriptions::own(&seen, &who, &sub) {
        return Err(not_found_subscription(&id));
    }
    let mut h = HeaderMap::new();
    if let Some(v) = preferred_version(&headers) {
        if let Ok(v) = HeaderValue::from_str(&format!("ngsi-ld={v}")) {
            h.insert("Preference-Applied", v);
        }
    }
    let body = render_csource_subscription(&sub, &ld.ctx, false, time::now());
    Ok(reply::json(StatusCode::OK, media, &ld, body, h))
}

/// PATCH /csourceSubscriptions/{id} — 5.11.3.
pub async fn update_subscription(
    State(s): State<SharedState>,
    seen: Seen,
    who: Option<Extension<Identity>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    let b = read_json(&s, &headers, body, true).await?;
    check_jsonld_context(&s, &b.value).await?;
    let now = time::now();
    s.engine
        .update_csource_subscription(&tenant, &id, |current| {
            if !crate::subscriptions::own(&seen, &who, current) {
                return Err(not_found_subscription(&id).0);
            }
            merge_subscription(current, &b.ld.ctx, &b.value, b.ld.echo.clone(), now)
        })
        .await?;
    Ok(reply::no_content())
}

/// DELETE /csourceSubscriptions/{id} — 5.11.6.
pub async fn delete_subscription(
    State(s): State<SharedState>,
    seen: Seen,
    who: Option<Extension<Identity>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    if !seen.0.is_full()
        && !crate::subscriptions::own(
            &seen,
            &who,
            &*s.engine.retrieve_csource_subscription(&tenant, &id)?,
        )
    {
        return Err(not_found_subscription(&id));
    }
    s.engine.delete_csource_subscription(&tenant, &id).await?;
    Ok(reply::no_content())
}

/// The answer for a subscription to registrations that does not exist for the caller.
fn not_found_subscription(id: &str) -> crate::error::ApiError {
    crate::error::ApiError(NgsiError::not_found(format!(
        "subscription {id} does not exist"
    )))
}
