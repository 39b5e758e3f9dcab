//! Handlers of `/subscriptions` (6.10 – 6.11, 5.8): create, query, retrieve, update, delete.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use harbor_auth::Identity;
use harbor_jsonld::expand::is_uri;
use harbor_jsonld::subscription::{merge_subscription, parse_subscription, render_subscription};
use harbor_model::subscription::Owner;
use harbor_model::{time, NgsiError, Subscription, Tenant};
use serde_json::Value;

use crate::access::Seen;
use crate::body::{JsonBody, Ld};
use crate::entities::read_json;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, BodyKind};
use crate::params::{allowed, Params};
use crate::query::{self, Page};
use crate::reply;
use crate::SharedState;

const PATH: &str = "/ngsi-ld/v1/subscriptions";

pub(crate) fn check_id(id: &str) -> ApiResult<()> {
    if is_uri(id) {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!(
            "\"{id}\" is not a valid subscription id: it must be a URI"
        ))
        .into())
    }
}

/// Checks that a given `jsonldContext` can be retrieved (5.8.1.4: LdContextNotAvailable).
pub(crate) async fn check_jsonld_context(s: &SharedState, body: &Value) -> ApiResult<()> {
    if let Some(Value::String(url)) = body.get("jsonldContext") {
        if is_uri(url) {
            s.resolver
                .resolve(Some(&Value::String(url.clone())))
                .await?;
        }
    }
    Ok(())
}

/// The `jsonldContext` a subscription gets when it names none: the ImplicitlyCreated entry
/// of an inline or array `@context` (5.13.2), the URL of a single remote one.
fn implicit_context(s: &SharedState, tenant: &Tenant, b: &JsonBody) -> ApiResult<Option<String>> {
    if b.kind != BodyKind::JsonLd {
        return Ok(None);
    }
    match b.value.get("@context") {
        Some(Value::String(url)) => Ok(Some(url.clone())),
        // `["url"]` is the same `@context` as `"url"`: notifications name the URL itself.
        Some(Value::Array(list)) if list.len() == 1 && list[0].is_string() => {
            Ok(list[0].as_str().map(str::to_string))
        }
        Some(c @ (Value::Array(_) | Value::Object(_))) => {
            Ok(Some(s.registry.add_implicit(tenant, c)?.url.clone()))
        }
        _ => Ok(None),
    }
}

/// POST /subscriptions — 5.8.1.
pub async fn create(
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
    if s.engine.retrieve_subscription(&tenant, &sub.id).is_ok() {
        return Err(
            NgsiError::already_exists(format!("subscription {} already exists", sub.id)).into(),
        );
    }
    if sub.jsonld_context.is_none() {
        sub.jsonld_context = implicit_context(&s, &tenant, &b)?;
    }
    // The subscription acts for its creator: its notifications carry what that identity may
    // see (access policies), decided at each delivery.
    sub.owner = who.map(|Extension(i)| owner_of(&i));
    let id = sub.id.clone();
    s.engine.create_subscription(&tenant, sub).await?;
    created(&format!("{PATH}/{id}"), &tenant)
}

pub(crate) fn owner_of(i: &Identity) -> Owner {
    Owner {
        name: i.name(),
        subject: i.subject.clone(),
        client: i.client.clone(),
        grants: i.grants.iter().map(|g| g.to_string()).collect(),
        partner: i.partner.clone(),
    }
}

/// Whether `sub` is visible to a subject that subscribes through access policies: only its
/// own subscriptions are.
pub(crate) fn own(seen: &Seen, who: &Option<Extension<Identity>>, sub: &Subscription) -> bool {
    if seen.0.is_full() {
        return true;
    }
    let me = who.as_ref().map(|Extension(i)| i.name());
    sub.owner.as_ref().map(|o| &o.name) == me.as_ref()
}

fn not_found(id: &str) -> ApiError {
    ApiError(NgsiError::not_found(format!(
        "subscription {id} does not exist"
    )))
}

/// `201 Created` with the `Location` of the new resource and the tenant echoed.
pub(crate) fn created(loc: &str, tenant: &Tenant) -> ApiResult<Response> {
    let mut h = HeaderMap::new();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(loc)
            .map_err(|_| NgsiError::bad_request("the id cannot be used in a URL"))?,
    );
    if !tenant.is_default() {
        if let Ok(v) = HeaderValue::from_str(tenant.as_str()) {
            h.insert("NGSILD-Tenant", v);
        }
    }
    Ok((StatusCode::CREATED, h).into_response())
}

fn render(sub: &Subscription, ld: &Ld) -> Value {
    render_subscription(sub, &ld.ctx, false, time::now())
}

/// GET /subscriptions — 5.8.4.
pub async fn query(
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
    let Page {
        limit,
        offset,
        count,
    } = query::page(&p, limits.default_page, limits.max_page)?;
    let count = count || options_count(&p)?;
    let mut all = s.engine.query_subscriptions(&tenant)?;
    all.retain(|sub| own(&seen, &who, sub));
    let total = all.len();
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|sub| render(sub, &ld))
        .collect();
    Ok(reply::page(
        PATH,
        &p,
        media,
        &ld,
        Value::Array(items),
        total,
        Page {
            limit,
            offset,
            count,
        },
    ))
}

/// `options=count` on Query Subscriptions: the request for a count (6.3.13) as `filip` and
/// Orion-LD write it, the same as `count=true`; any other `options` value is refused
/// (docs/conformance.md, "Clients in use").
fn options_count(p: &Params) -> ApiResult<bool> {
    let Some(v) = p.get("options") else {
        return Ok(false);
    };
    for word in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word != "count" {
            return Err(NgsiError::invalid(format!(
                "options: unknown value \"{word}\"; Query Subscriptions knows only \"count\""
            ))
            .into());
        }
    }
    Ok(true)
}

/// The NGSI-LD version a `Prefer` header asks for (`ngsi-ld=1.0`), if any (6.3.19).
pub(crate) fn preferred_version(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all("Prefer") {
        let Ok(text) = v.to_str() else { continue };
        for pref in text.split(',') {
            let token = pref.split(';').next().unwrap_or("").trim();
            let Some((name, value)) = token.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("ngsi-ld") {
                return Some(value.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

/// GET /subscriptions/{id} — 5.8.3.
pub async fn retrieve(
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
    let sub = s.engine.retrieve_subscription(&tenant, &id)?;
    if !own(&seen, &who, &sub) {
        return Err(not_found(&id));
    }
    let mut h = HeaderMap::new();
    if let Some(v) = preferred_version(&headers) {
        if let Ok(v) = HeaderValue::from_str(&format!("ngsi-ld={v}")) {
            h.insert("Preference-Applied", v);
        }
    }
    Ok(reply::json(
        StatusCode::OK,
        media,
        &ld,
        render(&sub, &ld),
        h,
    ))
}

/// PATCH /subscriptions/{id} — 5.8.2.
pub async fn update(
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
        .update_subscription(&tenant, &id, |current| {
            if !own(&seen, &who, current) {
                return Err(not_found(&id).0);
            }
            merge_subscription(current, &b.ld.ctx, &b.value, b.ld.echo.clone(), now)
        })
        .await?;
    Ok(reply::no_content())
}

/// DELETE /subscriptions/{id} — 5.8.5.
pub async fn delete(
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
    if !seen.0.is_full() && !own(&seen, &who, &*s.engine.retrieve_subscription(&tenant, &id)?) {
        return Err(not_found(&id));
    }
    s.engine.delete_subscription(&tenant, &id).await?;
    Ok(reply::no_content())
}
