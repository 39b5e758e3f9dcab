//! Handlers of `/entities` and `/entityOperations/query` (6.4 – 6.7).

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_jsonld::expand::{is_uri, parse_attribute_instances, parse_entity};
use harbor_model::{time, ErrorKind, NgsiError};
use serde_json::Value;

use crate::body::{self, JsonBody};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, Media};
use crate::params::{allowed, Params};
use crate::query::{self, Page};
use crate::reply;
use crate::SharedState;

/// Reads a whole body, refusing more than the configured limit.
pub async fn bytes(state: &SharedState, body: Body) -> ApiResult<Bytes> {
    let max = state.limits.max_body;
    axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError(NgsiError::new(
            ErrorKind::PayloadTooLarge,
            format!("the body is larger than {max} bytes, the largest accepted"),
        ))
    })
}

/// Reads and parses a body with its context.
pub async fn read_json(
    state: &SharedState,
    headers: &HeaderMap,
    body: Body,
    merge_patch: bool,
) -> ApiResult<JsonBody> {
    let b = bytes(state, body).await?;
    body::read(state, headers, &b, merge_patch).await
}

fn check_id(id: &str) -> ApiResult<()> {
    if is_uri(id) {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!(
            "\"{id}\" is not a valid entity id: it must be a URI"
        ))
        .into())
    }
}

fn check_attr_name(attr: &str) -> ApiResult<()> {
    if harbor_jsonld::expand::is_valid_name(attr) {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!("\"{attr}\" is not a valid attribute name")).into())
    }
}

fn update_result_body(r: &harbor_engine::UpdateResult, ctx: &harbor_jsonld::Context) -> Value {
    serde_json::json!({
        "updated": r.updated.iter().map(|n| ctx.compact_iri(n)).collect::<Vec<_>>(),
        "notUpdated": r.not_updated.iter().map(|n| serde_json::json!({
            "attributeName": ctx.compact_iri(&n.attribute),
            "reason": n.reason,
        })).collect::<Vec<_>>(),
    })
}

/// POST /entities — 5.6.1.
pub async fn create(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_entity(&b.ld.ctx, &b.value, true, false, time::now())?;
    let id = s.engine.create_entity(&tenant, input).await?;
    let mut h = HeaderMap::new();
    let loc = format!("/ngsi-ld/v1/entities/{id}");
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&loc)
            .map_err(|_| NgsiError::bad_request("id cannot be used in a URL"))?,
    );
    if !tenant.is_default() {
        if let Ok(v) = HeaderValue::from_str(tenant.as_str()) {
            h.insert("NGSILD-Tenant", v);
        }
    }
    Ok((StatusCode::CREATED, h).into_response())
}

/// GET /entities/{id} — 5.7.1.
pub async fn retrieve(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, true)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let p = Params::parse(raw.as_deref());
    let view = query::view(&p, &ld.ctx)?;
    let e = s.engine.retrieve_entity(&tenant, &id)?;
    let v = reply::entity(&e, &ld, media, &view);
    Ok(reply::json(StatusCode::OK, media, &ld, v, HeaderMap::new()))
}

/// GET /entities — 5.7.2.
pub async fn query_get(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    p.only(allowed::QUERY_ENTITIES)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, true)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let q = query::from_params(&p, &ld.ctx, false)?;
    run_query(&s, &tenant, media, &ld, &p, q, "/ngsi-ld/v1/entities")
}

/// POST /entityOperations/query — 5.7.2 with a Query body.
pub async fn query_post(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, true)?;
    let b = read_json(&s, &headers, body, false).await?;
    let url_params = Params::parse(raw.as_deref());
    let (q, body_params) = query::from_body(&b.value, &b.ld.ctx)?;
    let p = body_params.merged(&url_params);
    run_query(
        &s,
        &tenant,
        media,
        &b.ld,
        &p,
        q,
        "/ngsi-ld/v1/entityOperations/query",
    )
}

fn run_query(
    s: &SharedState,
    tenant: &harbor_model::Tenant,
    media: Media,
    ld: &body::Ld,
    p: &Params,
    q: harbor_store::EntityQuery,
    path: &str,
) -> ApiResult<Response> {
    let view = query::view(p, &ld.ctx)?;
    let limits = &s.engine.limits;
    let Page {
        limit,
        offset,
        count,
    } = query::page(p, limits.default_page, limits.max_page)?;
    let all = s.engine.query_entities(tenant, &q)?;
    let total = all.len();
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| reply::entity(e, ld, media, &view))
        .collect();
    let mut h = HeaderMap::new();
    if count {
        h.insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    let mut links = Vec::new();
    if limit > 0 && offset + limit < total {
        links.push(format!(
            "<{path}?{}>; rel=\"next\"; type=\"{}\"",
            p.with_page(offset + limit, limit),
            media.as_str()
        ));
    }
    if offset > 0 && limit > 0 {
        let prev = offset.saturating_sub(limit);
        links.push(format!(
            "<{path}?{}>; rel=\"prev\"; type=\"{}\"",
            p.with_page(prev, limit),
            media.as_str()
        ));
    }
    let body = if media == Media::GeoJson {
        serde_json::json!({"type": "FeatureCollection", "features": items})
    } else {
        Value::Array(items)
    };
    let mut resp = reply::json(StatusCode::OK, media, ld, body, h);
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            resp.headers_mut().append(header::LINK, v);
        }
    }
    Ok(resp)
}

/// DELETE /entities/{id} — 5.6.6.
pub async fn delete(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    s.engine.delete_entity(&tenant, &id).await?;
    Ok(reply::no_content())
}

/// POST /entities/{id}/attrs — 5.6.3.
pub async fn append(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let options = Params::parse(raw.as_deref()).options()?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, false, time::now())?;
    let r = s
        .engine
        .append_attrs(&tenant, &id, input, options.no_overwrite)
        .await?;
    if r.not_updated.is_empty() {
        return Ok(reply::no_content());
    }
    Ok(reply::plain(
        StatusCode::MULTI_STATUS,
        update_result_body(&r, &b.ld.ctx),
    ))
}

/// PATCH /entities/{id}/attrs — 5.6.2.
pub async fn update(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, false, time::now())?;
    if input.attrs.is_empty() {
        return Err(NgsiError::bad_request("the payload has no attribute to update").into());
    }
    let r = s.engine.update_attrs(&tenant, &id, input).await?;
    if r.not_updated.is_empty() {
        return Ok(reply::no_content());
    }
    Ok(reply::plain(
        StatusCode::MULTI_STATUS,
        update_result_body(&r, &b.ld.ctx),
    ))
}

/// Reads the body of an attribute operation: the instances of the addressed attribute.
async fn attr_body(
    s: &SharedState,
    headers: &HeaderMap,
    body: Body,
    attr: &str,
    merge_patch: bool,
) -> ApiResult<(String, Vec<harbor_model::Attribute>)> {
    check_attr_name(attr)?;
    let b = read_json(s, headers, body, merge_patch).await?;
    let mut value = b.value;
    if let Value::Object(o) = &mut value {
        o.remove("@context");
    }
    let expanded = b.ld.ctx.expand_term(attr);
    let instances = parse_attribute_instances(&b.ld.ctx, attr, &value, false, time::now())?
        .into_iter()
        .flatten()
        .collect();
    Ok((expanded, instances))
}

/// PATCH /entities/{id}/attrs/{attr} — 5.6.4.
pub async fn partial_attr(
    State(s): State<SharedState>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let (name, instances) = attr_body(&s, &headers, body, &attr, true).await?;
    s.engine
        .partial_attr_update(&tenant, &id, &name, instances)
        .await?;
    Ok(reply::no_content())
}

/// PUT /entities/{id}/attrs/{attr} — 5.6.19.
pub async fn replace_attr(
    State(s): State<SharedState>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let (name, instances) = attr_body(&s, &headers, body, &attr, false).await?;
    s.engine
        .replace_attr(&tenant, &id, &name, instances)
        .await?;
    Ok(reply::no_content())
}

/// DELETE /entities/{id}/attrs/{attr} — 5.6.5.
pub async fn delete_attr(
    State(s): State<SharedState>,
    Path((id, attr)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    check_attr_name(&attr)?;
    let tenant = negotiate::tenant(&headers)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let p = Params::parse(raw.as_deref());
    let dataset = p.get("datasetId").map(str::to_string);
    if let Some(ds) = &dataset {
        if !is_uri(ds) {
            return Err(NgsiError::bad_request(format!("datasetId \"{ds}\" is not a URI")).into());
        }
    }
    let delete_all = p.flag("deleteAll")?;
    let name = ld.ctx.expand_term(&attr);
    s.engine
        .delete_attr(&tenant, &id, &name, dataset.as_deref(), delete_all)
        .await?;
    Ok(reply::no_content())
}

/// PUT /entities/{id} — 5.6.18.
pub async fn replace(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, false, time::now())?;
    s.engine.replace_entity(&tenant, &id, input).await?;
    Ok(reply::no_content())
}

/// PATCH /entities/{id} — 5.6.17 (also as application/merge-patch+json).
pub async fn merge(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, true).await?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, true, time::now())?;
    s.engine.merge_entity(&tenant, &id, input).await?;
    Ok(reply::no_content())
}
