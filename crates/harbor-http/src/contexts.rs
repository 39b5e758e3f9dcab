//! Handlers of `/jsonldContexts` (6.29 – 6.30, 5.13): add, list, serve and delete @contexts.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_jsonld::registry::ContextKind;
use harbor_model::NgsiError;
use serde_json::Value;

use crate::entities::bytes;
use crate::error::ApiResult;
use crate::negotiate;
use crate::params::Params;
use crate::reply;
use crate::SharedState;

/// POST /jsonldContexts — 5.13.2.
pub async fn add(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    negotiate::content_type(&headers, false)?;
    let b = bytes(&s, body).await?;
    let value: Value = serde_json::from_slice(&b)
        .map_err(|e| NgsiError::invalid(format!("the body is not valid JSON: {e}")))?;
    if value.get("@context").is_none() {
        return Err(NgsiError::invalid(
            "the body must be a JSON object with an \"@context\" member holding the @context to host",
        )
        .into());
    }
    let entry = s.registry.add_hosted(&tenant, &value)?;
    let loc = format!("/ngsi-ld/v1/jsonldContexts/{}", entry.local_id);
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&loc) {
        h.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, h).into_response())
}

/// GET /jsonldContexts — 5.13.3.
pub async fn list(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    let details = p.flag("details")?;
    let kind = p.get("kind").map(ContextKind::parse).transpose()?;
    let entries = s.registry.list(&tenant, kind);
    let body: Vec<Value> = entries
        .iter()
        .map(|e| {
            if details {
                e.details()
            } else {
                Value::String(e.url.clone())
            }
        })
        .collect();
    Ok(reply::plain(StatusCode::OK, Value::Array(body)))
}

/// GET /jsonldContexts/{id} — 5.13.4.
pub async fn serve(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let details = Params::parse(raw.as_deref()).flag("details")?;
    let body = s.registry.serve(&tenant, &id, details)?;
    Ok(reply::plain(StatusCode::OK, body))
}

/// DELETE /jsonldContexts/{id} — 5.13.5 (`reload=true` re-fetches a Cached context).
pub async fn delete(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    if Params::parse(raw.as_deref()).flag("reload")? {
        s.resolver.reload(&tenant, &id).await?;
    } else {
        s.registry.delete(&tenant, &id)?;
    }
    Ok(reply::no_content())
}
