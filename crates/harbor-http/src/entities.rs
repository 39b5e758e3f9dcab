//! Handlers of `/entities` and `/entityOperations/query` (6.4 – 6.7).

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_jsonld::expand::{
    is_uri, parse_attribute_fragment, parse_attribute_instances, parse_entity, AttrInput, Payload,
};
use harbor_model::{time, ErrorKind, NgsiError};
use serde_json::Value;

use crate::access::Seen;
use crate::body::{self, JsonBody};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, Media};
use crate::params::{allowed, Params};
use crate::query::{self, Page};
use crate::reply;
use crate::shed::CpuPool;
use crate::SharedState;

/// Reads a whole body, refusing more than the configured limit.
pub async fn bytes(state: &SharedState, body: Body) -> ApiResult<Bytes> {
    let max = state.limits.max_body;
    let deadline = state.limits.body_timeout;
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, max)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(ApiError(NgsiError::new(
            ErrorKind::PayloadTooLarge,
            format!("the body is larger than {max} bytes, the largest accepted"),
        ))),
        Err(_) => Err(ApiError(NgsiError::new(
            ErrorKind::RequestTimeout,
            format!(
                "the body did not arrive within {} s of the request head",
                deadline.as_secs_f64()
            ),
        ))),
    }
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

pub(crate) fn check_id(id: &str) -> ApiResult<()> {
    if is_uri(id) {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!(
            "\"{id}\" is not a valid entity id: it must be a URI"
        ))
        .into())
    }
}

pub(crate) fn check_attr_name(attr: &str) -> ApiResult<()> {
    if harbor_jsonld::expand::is_ngsi_name(attr) {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!("\"{attr}\" is not a valid attribute name")).into())
    }
}

/// The UpdateResult of 5.2.18. It is plain JSON, not JSON-LD, so attribute names are the
/// expanded ones: they mean the same whatever context the reader holds.
fn update_result_body(r: &harbor_engine::UpdateResult) -> Value {
    serde_json::json!({
        "updated": r.updated,
        "notUpdated": r.not_updated.iter().map(|n| serde_json::json!({
            "attributeName": n.attribute,
            "reason": n.reason,
        })).collect::<Vec<_>>(),
    })
}

fn update_reply(r: &harbor_engine::UpdateResult) -> Response {
    if r.not_updated.is_empty() {
        return reply::no_content();
    }
    reply::plain(StatusCode::MULTI_STATUS, update_result_body(r))
}

/// PUT or PATCH on `/entities/` with no id: the entity id is missing (5.6.17.4, 5.6.18.4).
pub async fn missing_id() -> ApiResult<Response> {
    Err(NgsiError::bad_request("the request names no entity id in its path").into())
}

/// POST /entities — 5.6.1.
pub async fn create(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_entity(&b.ld.ctx, &b.value, true, Payload::Full, time::now())?;
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
    seen: Seen,
    pool: CpuPool,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, true)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let p = Params::parse(raw.as_deref());
    let view = query::view(&p, &ld.ctx, media)?;
    let types = query::type_selection(&p, &ld.ctx)?;
    let local = p.flag("local")?;
    let e = match s.engine.retrieve_entity(&tenant, &id) {
        Ok(e) => e,
        // Not here: the context sources registered for it may have it (4.3.6), unless the
        // request is limited to the local scope (5.5.13).
        Err(err) if err.kind == harbor_model::ErrorKind::ResourceNotFound && !local => {
            let link = negotiate::link_context(&headers)?;
            let via = negotiate::via(&headers);
            let origin = harbor_engine::forward::Origin {
                link: link.as_deref(),
                via: via.as_deref(),
            };
            match s
                .engine
                .retrieve_remote(&tenant, &id, origin, &ld.ctx)
                .await?
            {
                Some(remote) => std::sync::Arc::new(remote),
                None => return Err(err.into()),
            }
        }
        Err(err) => return Err(err.into()),
    };
    let e = seen.entity(&e)?;
    if types.is_some_and(|t| !t.matches(&e.types)) {
        return Err(NgsiError::not_found(format!(
            "entity {id} exists but has none of the types asked for"
        ))
        .into());
    }
    if let Some(attrs) = &view.attrs {
        if !attrs.iter().any(|a| e.attrs.contains_key(a)) {
            return Err(NgsiError::not_found(format!(
                "entity {id} has none of the attributes asked for (attrs)"
            ))
            .into());
        }
    }
    let emptied = move || {
        ApiError(NgsiError::not_found(format!(
            "entity {id} has no member left after pick / omit"
        )))
    };
    let v: reply::Payload = match view.join {
        None => match reply::written(&e, &ld, media, &view)? {
            Some(written) => reply::Payload::Written(written),
            None => reply::entity(&e, &ld, media, &view)
                .ok_or_else(emptied)?
                .into(),
        },
        // A join may read and render many entities: off the async workers.
        Some(join) => {
            let ld = ld.clone();
            pool.offload(move || {
                joined_one(&s, &seen, &tenant, e, &ld, media, &view, join, emptied)
            })
            .await?
            .into()
        }
    };
    Ok(reply::json(StatusCode::OK, media, &ld, v, HeaderMap::new()))
}

/// The retrieved entity with the entities it links to (`join`).
#[allow(clippy::too_many_arguments)]
fn joined_one(
    s: &SharedState,
    seen: &Seen,
    tenant: &harbor_model::Tenant,
    e: std::sync::Arc<harbor_model::Entity>,
    ld: &body::Ld,
    media: Media,
    view: &query::View,
    join: query::Join,
    emptied: impl Fn() -> ApiError,
) -> ApiResult<Value> {
    let roots = seen.join(s, tenant, &[e], &join_spec(view, join))?;
    let mut items = reply::joined(&roots, ld, media, view, join.kind);
    // Flat: the Entity and the Entities it links to in one array; the Entity alone when it
    // links to none.
    match items.len() {
        0 => Err(emptied()),
        1 => Ok(items.swap_remove(0)),
        _ => Ok(Value::Array(items)),
    }
}

fn join_spec(view: &query::View, join: query::Join) -> harbor_engine::JoinSpec {
    harbor_engine::JoinSpec {
        level: join.level,
        pick: view.pick.clone(),
        omit: view.omit.clone(),
        attrs: view.attrs.clone(),
        contained_by: view.contained_by.clone(),
    }
}

/// GET /entities — 5.7.2.
pub async fn query_get(
    State(s): State<SharedState>,
    seen: Seen,
    pool: CpuPool,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    p.only(allowed::QUERY_ENTITIES)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, true)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let q = query::from_params(&p, &ld.ctx, false)?;
    let path = "/ngsi-ld/v1/entities";
    if answered_from_indexes(&q, &p) {
        return run_query(&s, &seen, &tenant, media, &ld, &p, q, path).await;
    }
    let rt = tokio::runtime::Handle::current();
    pool.offload(move || rt.block_on(run_query(&s, &seen, &tenant, media, &ld, &p, q, path)))
        .await
}

/// Whether a query is answered from the store's indexes alone (by ids or types, with no
/// filter on values, no sort and no join): its work is a lookup and one page of rendering,
/// cheaper than handing it to a query thread. Everything else runs on the query threads.
fn answered_from_indexes(q: &harbor_store::EntityQuery, p: &Params) -> bool {
    (q.types.is_some() || q.ids.is_some())
        && q.q.is_none()
        && q.geo.is_none()
        && q.scope.is_none()
        && q.id_pattern.is_none()
        && p.get("orderBy").is_none()
        && p.get("join").is_none()
}

/// POST /entityOperations/query — 5.7.2 with a Query body.
pub async fn query_post(
    State(s): State<SharedState>,
    seen: Seen,
    pool: CpuPool,
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
    let rt = tokio::runtime::Handle::current();
    pool.offload(move || {
        rt.block_on(run_query(
            &s,
            &seen,
            &tenant,
            media,
            &b.ld,
            &p,
            q,
            "/ngsi-ld/v1/entityOperations/query",
        ))
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn run_query(
    s: &SharedState,
    seen: &Seen,
    tenant: &harbor_model::Tenant,
    media: Media,
    ld: &body::Ld,
    p: &Params,
    mut q: harbor_store::EntityQuery,
    path: &str,
) -> ApiResult<Response> {
    let view = query::view(p, &ld.ctx, media)?;
    if let Some(expr) = &mut q.q {
        view.check_link_depth("parameter \"q\"", expr.link_depth())?;
        if let Some(attrs) = p.list("expandValues")? {
            let expand = |n: &str| ld.ctx.expand_term(n);
            let names: Vec<String> = attrs.iter().map(|a| expand(a)).collect();
            expr.expand_values(&names, &expand);
        }
    }
    let local = p.flag("local")?;
    query::check_not_too_wide(&q, p.list("attrs")?.as_deref(), local)?;
    // 5.7.2.4: "If the ordering parameter is present and the execution of the operation is
    // not limited to the local scope (see clause 5.5.13) then an error of type
    // BadRequestData shall be raised." A query that no registration matches runs locally
    // and may be ordered (ETSI 019_19 orders without local=true).
    if p.get("orderBy").is_some() && !local && s.engine.distributes_query(tenant, &q) {
        return Err(NgsiError::bad_request(
            "parameter \"orderBy\": registered context sources offer entities this query selects, \
             and a distributed query is never ordered (4.23.1, 5.7.2.4); add local=true to order \
             the entities of this broker",
        )
        .into());
    }
    let order = query::order(p, &ld.ctx)?;
    let limits = &s.engine.limits;
    let Page {
        limit,
        offset,
        count,
    } = query::page(p, limits.default_page, limits.max_page)?;
    // A partial reader's filters on attribute values run on what it may see.
    let post = seen.split(&mut q)?;
    let lookup = |id: &str| s.engine.current(tenant, id).ok().flatten();
    let filter = post
        .as_ref()
        .map(|post| move |found| seen.filter(found, post, &lookup));
    let paging = harbor_engine::Paging {
        offset,
        limit,
        count,
        order,
    };
    let found = s
        .engine
        .query_page(
            tenant,
            q,
            paging,
            filter.as_ref().map(|f| f as &harbor_engine::PostFilter<'_>),
        )
        .await?;
    crate::shed::within_budget()?;
    // A listing: an array, or a GeoJSON FeatureCollection.
    let collection = |items: Vec<Value>| {
        reply::Payload::Tree(if media == Media::GeoJson {
            serde_json::json!({"type": "FeatureCollection", "features": items})
        } else {
            Value::Array(items)
        })
    };
    let body = match view.join {
        None => match reply::listing(&found.entities, ld, media, &view)? {
            Some(written) => reply::Payload::Written(written),
            // `pick` / `omit` edit each rendered entity.
            None => {
                let mut items = Vec::with_capacity(found.entities.len());
                for (i, e) in found.entities.iter().enumerate() {
                    if i % 64 == 63 {
                        crate::shed::within_budget()?;
                    }
                    items.extend(reply::entity(e, ld, media, &view));
                }
                collection(items)
            }
        },
        Some(join) => {
            let roots = seen.join(s, tenant, &found.entities, &join_spec(&view, join))?;
            crate::shed::within_budget()?;
            collection(reply::joined(&roots, ld, media, &view, join.kind))
        }
    };
    Ok(reply::paged(
        path,
        p,
        media,
        ld,
        body,
        found.total,
        found.more,
        Page {
            limit,
            offset,
            count,
        },
    ))
}

/// DELETE /entities/{id} — 5.6.6.
pub async fn delete(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    let sel = match p.get("type") {
        Some(_) => query::type_selection(&p, &body::context_from_link(&s, &headers).await?.ctx)?,
        None => None,
    };
    s.engine.delete_entity(&tenant, &id, sel.as_ref()).await?;
    Ok(reply::no_content())
}

/// POST /entities/{id}/attrs — 5.6.3; also as application/merge-patch+json, which `ngsijs`
/// sends for appends (docs/conformance.md, "Clients in use").
pub async fn append(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    let options = p.options()?;
    let b = read_json(&s, &headers, body, true).await?;
    let sel = query::type_selection(&p, &b.ld.ctx)?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, Payload::Full, time::now())?;
    let r = s
        .engine
        .append_attrs(&tenant, &id, sel.as_ref(), input, options.no_overwrite)
        .await?;
    Ok(update_reply(&r))
}

/// PATCH /entities/{id}/attrs — 5.6.2 (also as application/merge-patch+json, like every PATCH).
pub async fn update(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    let b = read_json(&s, &headers, body, true).await?;
    let sel = query::type_selection(&p, &b.ld.ctx)?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, Payload::Update, time::now())?;
    if input.attrs.is_empty() && input.types.is_empty() && input.scopes.is_none() {
        return Err(NgsiError::bad_request("the payload has nothing to update").into());
    }
    let r = s
        .engine
        .update_attrs(&tenant, &id, sel.as_ref(), input)
        .await?;
    Ok(update_reply(&r))
}

/// Refuses `scope` where only attributes can be addressed (5.6.4.4, 5.6.19.4).
fn check_not_scope(attr: &str) -> ApiResult<()> {
    if attr == "scope" {
        return Err(NgsiError::bad_request(
            "scope is not an attribute that this operation can change; use the entity operations",
        )
        .into());
    }
    Ok(())
}

/// Reads the body of an attribute operation, without its `@context`.
async fn attr_body(
    s: &SharedState,
    headers: &HeaderMap,
    body: Body,
    attr: &str,
    merge_patch: bool,
) -> ApiResult<(JsonBody, String)> {
    check_attr_name(attr)?;
    check_not_scope(attr)?;
    let mut b = read_json(s, headers, body, merge_patch).await?;
    if let Value::Object(o) = &mut b.value {
        o.remove("@context");
    }
    let expanded = b.ld.ctx.expand_term(attr);
    Ok((b, expanded))
}

/// PATCH /entities/{id}/attrs/{attr} — 5.6.4.
pub async fn partial_attr(
    State(s): State<SharedState>,
    Path((id, attr)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let (b, name) = attr_body(&s, &headers, body, &attr, true).await?;
    let sel = query::type_selection(&Params::parse(raw.as_deref()), &b.ld.ctx)?;
    let frag = parse_attribute_fragment(&b.ld.ctx, &attr, &b.value, time::now())?;
    s.engine
        .partial_attr_update(&tenant, &id, sel.as_ref(), &name, frag)
        .await?;
    Ok(reply::no_content())
}

/// PUT /entities/{id}/attrs/{attr} — 5.6.19.
pub async fn replace_attr(
    State(s): State<SharedState>,
    Path((id, attr)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let (b, name) = attr_body(&s, &headers, body, &attr, false).await?;
    let sel = query::type_selection(&Params::parse(raw.as_deref()), &b.ld.ctx)?;
    let instances =
        parse_attribute_instances(&b.ld.ctx, &attr, &b.value, Payload::Full, time::now())?
            .into_iter()
            .filter_map(|a| match a {
                AttrInput::Put(p) => Some(p.attr),
                AttrInput::Delete { .. } => None,
            })
            .collect();
    s.engine
        .replace_attr(&tenant, &id, sel.as_ref(), &name, instances)
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
    let sel = query::type_selection(&p, &ld.ctx)?;
    if attr == "scope" {
        s.engine.delete_scope(&tenant, &id, sel.as_ref()).await?;
        return Ok(reply::no_content());
    }
    let name = ld.ctx.expand_term(&attr);
    s.engine
        .delete_attr(
            &tenant,
            &id,
            sel.as_ref(),
            &name,
            dataset.as_deref(),
            delete_all,
        )
        .await?;
    Ok(reply::no_content())
}

/// PUT /entities/{id} — 5.6.18.
pub async fn replace(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let sel = query::type_selection(&Params::parse(raw.as_deref()), &b.ld.ctx)?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, Payload::Full, time::now())?;
    s.engine
        .replace_entity(&tenant, &id, sel.as_ref(), input)
        .await?;
    Ok(reply::no_content())
}

/// PATCH /entities/{id} — 5.6.17 (also as application/merge-patch+json).
pub async fn merge(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, true).await?;
    let sel = query::type_selection(&Params::parse(raw.as_deref()), &b.ld.ctx)?;
    let input = parse_entity(&b.ld.ctx, &b.value, false, Payload::Merge, time::now())?;
    s.engine
        .merge_entity(&tenant, &id, sel.as_ref(), input)
        .await?;
    Ok(reply::no_content())
}
