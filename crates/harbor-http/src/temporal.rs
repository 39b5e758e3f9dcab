//! Handlers of the Temporal API: `/temporal/entities` and
//! `/temporal/entityOperations/query` (6.18 – 6.24; 5.6.11 – 5.6.16, 5.7.3, 5.7.4).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_engine::{AggregatedEntity, InstanceSelection, TemporalPage, TemporalRange};
use harbor_jsonld::expand::{is_uri, parse_attribute_fragment};
use harbor_jsonld::temporal::{
    parse_temporal_entity, render_aggregated_temporal_entity, render_temporal_entity, Aggregation,
    TemporalRenderOptions,
};
use harbor_model::{time, NgsiError, NgsiResult, TemporalEntity};
use harbor_query::{
    parse_aggr_methods, parse_aggr_period_duration, parse_temporal_query, TemporalParams, TimeRange,
};
use serde_json::Value;

use crate::access::Seen;
use crate::body::Ld;
use crate::entities::{check_attr_name, check_id, read_json};
use crate::error::ApiResult;
use crate::negotiate::{self, Media};
use crate::params::{allowed, Params};
use crate::query::{self, Page, View};
use crate::shed::CpuPool;
use crate::{body, reply, SharedState};

/// The representation asked for (6.3.7, 6.3.12).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Representation {
    #[default]
    Normalized,
    TemporalValues,
    AggregatedValues,
}

/// The representation flags of a temporal request (`options`, `format`).
#[derive(Debug, Default, Clone, Copy)]
struct TemporalOptions {
    representation: Representation,
    sys_attrs: bool,
}

fn representation(word: &str) -> Option<Representation> {
    Some(match word {
        "temporalValues" | "simplified" | "keyValues" => Representation::TemporalValues,
        "aggregatedValues" => Representation::AggregatedValues,
        "normalized" | "concise" => Representation::Normalized,
        _ => return None,
    })
}

/// `options` and `format`; `format` takes precedence. Without either, `aggrMethods` alone
/// asks for the aggregated representation (as a JSON query's `aggrParams` does).
/// `options=count`: the count request of 6.3.13 as Orion-LD's clients write it.
fn options_ask_count(p: &Params) -> bool {
    p.get("options")
        .is_some_and(|v| v.split(',').any(|w| w.trim() == "count"))
}

fn temporal_options(p: &Params) -> NgsiResult<TemporalOptions> {
    let mut o = TemporalOptions::default();
    let mut from_options = None;
    if let Some(v) = p.get("options") {
        for w in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match (w, representation(w)) {
                ("sysAttrs", _) => o.sys_attrs = true,
                // The count request as ngsildclient and Orion-LD write it (docs/conformance.md).
                ("count", _) => {}
                (_, Some(r)) => from_options = Some(r),
                (other, None) => {
                    return Err(NgsiError::invalid(format!(
                        "options: unknown value \"{other}\""
                    )))
                }
            }
        }
    }
    let from_format = match p.get("format").map(str::trim) {
        None => None,
        Some(f) => Some(
            representation(f)
                .ok_or_else(|| NgsiError::invalid(format!("format: unknown value \"{f}\"")))?,
        ),
    };
    o.representation = match (from_format, from_options) {
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) if p.get("aggrMethods").is_some() => Representation::AggregatedValues,
        (None, None) => Representation::Normalized,
    };
    Ok(o)
}

/// `aggrMethods` and `aggrPeriodDuration`, checked whenever given.
fn aggregation(
    p: &Params,
    q: &harbor_query::TemporalQuery,
    wanted: bool,
) -> NgsiResult<Option<Aggregation>> {
    let methods = p
        .get("aggrMethods")
        .map(parse_aggr_methods)
        .transpose()
        .map_err(|e| NgsiError::bad_request(e.detail))?;
    let period = p
        .get("aggrPeriodDuration")
        .map(parse_aggr_period_duration)
        .transpose()
        .map_err(|e| NgsiError::bad_request(e.detail))?
        .unwrap_or_default();
    if !wanted {
        return Ok(None);
    }
    let Some(methods) = methods else {
        return Err(NgsiError::bad_request(
            "the aggregated representation (aggregatedValues) needs aggrMethods",
        ));
    };
    let (start, end) = q.bounds();
    Ok(Some(Aggregation {
        methods,
        period,
        range: TimeRange { start, end },
    }))
}

/// What to return and how: the instance selection, the view, the flags.
struct Request {
    sel: InstanceSelection,
    view: View,
    options: TemporalOptions,
    aggregation: Option<Aggregation>,
}

/// Most instances of one attribute an aggregation reads; beyond it the answer is a page
/// (206 with `Content-Range`) like any other.
const MAX_AGGREGATED_INSTANCES: usize = 1_000_000;

fn request(s: &SharedState, p: &Params, ld: &Ld) -> NgsiResult<Request> {
    let options = temporal_options(p)?;
    let view = query::view(&p.without(&["options", "format"]), &ld.ctx, Media::Json)?;
    let tq = parse_temporal_query(TemporalParams {
        timerel: p.get("timerel"),
        time_at: p.get("timeAt"),
        end_time_at: p.get("endTimeAt"),
        time_property: p.get("timeproperty"),
        last_n: p.get("lastN"),
    })
    .map_err(|e| NgsiError::bad_request(format!("temporal query: {}", e.detail)))?;
    let aggregation = aggregation(
        p,
        &tq,
        options.representation == Representation::AggregatedValues,
    )?;
    Ok(Request {
        sel: InstanceSelection {
            query: tq,
            attrs: view.attrs.clone(),
            datasets: view.datasets.clone(),
            // An aggregation answers with its periods, not the instances: it reads every
            // instance of the range (up to a bound of its own), not one page of them.
            max_instances: if aggregation.is_some() {
                MAX_AGGREGATED_INSTANCES
            } else {
                s.engine.limits.max_temporal_instances
            },
        },
        view,
        options,
        aggregation,
    })
}

fn render_options(r: &Request) -> TemporalRenderOptions<'_> {
    TemporalRenderOptions {
        aggregation: r.aggregation.as_ref(),
        temporal_values: r.options.representation == Representation::TemporalValues,
        sys_attrs: r.options.sys_attrs,
        lang: r.view.lang.as_deref(),
        time_property: r.sel.query.time_property,
    }
}

fn render(e: &TemporalEntity, ld: &Ld, r: &Request) -> Option<Value> {
    picked(render_temporal_entity(e, &ld.ctx, &render_options(r)), r)
}

fn render_aggregated(e: &AggregatedEntity, ld: &Ld, r: &Request) -> Option<Value> {
    picked(
        render_aggregated_temporal_entity(e, &ld.ctx, &render_options(r)),
        r,
    )
}

/// A rendered entity with `pick` / `omit` applied; `None` when no member is left.
fn picked(mut v: Value, r: &Request) -> Option<Value> {
    if let Value::Object(o) = &mut v {
        for p in [r.view.pick.as_ref(), r.view.omit.as_ref()]
            .into_iter()
            .flatten()
        {
            o.retain(|k, _| p.keeps(k));
        }
        if o.is_empty() {
            return None;
        }
    }
    Some(v)
}

/// POST /temporal/entities — 5.6.11: 201 when created, 204 when instances were added.
pub async fn create(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_temporal_entity(&b.ld.ctx, &b.value, true, time::now())?;
    let id = input.id.clone().unwrap_or_default();
    if !s.engine.upsert_temporal_entity(&tenant, input).await? {
        return Ok(reply::no_content());
    }
    let mut h = HeaderMap::new();
    let loc = format!("/ngsi-ld/v1/temporal/entities/{id}");
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&loc)
            .map_err(|_| NgsiError::bad_request("id cannot be used in a URL"))?,
    );
    Ok((StatusCode::CREATED, h).into_response())
}

/// POST /temporal/entities/{id}/attrs — 5.6.12.
pub async fn add_attrs(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    Params::parse(raw.as_deref()).only(allowed::NONE)?;
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let input = parse_temporal_entity(&b.ld.ctx, &b.value, false, time::now())?;
    if input.attrs.is_empty() {
        return Err(NgsiError::invalid("the payload has no attribute instance to add").into());
    }
    s.engine.add_temporal_attrs(&tenant, &id, input).await?;
    Ok(reply::no_content())
}

/// DELETE /temporal/entities/{id} — 5.6.16.
pub async fn delete(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let tenant = negotiate::tenant(&headers)?;
    s.engine.delete_temporal_entity(&tenant, &id).await?;
    Ok(reply::no_content())
}

/// DELETE /temporal/entities/{id}/attrs/{attr} — 5.6.13.
pub async fn delete_attr(
    State(s): State<SharedState>,
    Path((id, attr)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    check_attr_name(&attr)?;
    let p = Params::parse(raw.as_deref());
    p.only(allowed::DELETE_TEMPORAL_ATTR)?;
    let tenant = negotiate::tenant(&headers)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let dataset = match p.get("datasetId") {
        None | Some("@none") => None,
        Some(ds) if is_uri(ds) => Some(ds.to_string()),
        Some(ds) => {
            return Err(NgsiError::bad_request(format!("datasetId \"{ds}\" is not a URI")).into())
        }
    };
    let delete_all = p.flag("deleteAll")?;
    let name = ld.ctx.expand_term(&attr);
    s.engine
        .delete_temporal_attr(&tenant, &id, &name, dataset.as_deref(), delete_all)
        .await?;
    Ok(reply::no_content())
}

/// `/attrs//{instanceId}` names no attribute resource, so it has no method to offer.
fn no_attribute() -> crate::error::ApiError {
    NgsiError::new(
        harbor_model::ErrorKind::MethodNotAllowed,
        "the path names no attribute: /temporal/entities/{id}/attrs/{attrId}/{instanceId}",
    )
    .into()
}

fn check_instance_id(instance: &str) -> ApiResult<()> {
    if is_uri(instance) {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!("instanceId \"{instance}\" is not a URI")).into())
    }
}

/// PATCH /temporal/entities/{id}/attrs/{attr}/{instanceId} — 5.6.14.
pub async fn modify_instance(
    State(s): State<SharedState>,
    Path((id, attr, instance)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_id(&id)?;
    if attr.is_empty() {
        return Err(no_attribute());
    }
    check_attr_name(&attr)?;
    check_instance_id(&instance)?;
    let tenant = negotiate::tenant(&headers)?;
    let mut b = read_json(&s, &headers, body, true).await?;
    if let Value::Object(o) = &mut b.value {
        o.remove("@context");
    }
    // The body is the attribute itself, or an object with the attribute as its only member.
    let short = b.ld.ctx.compact_iri(&b.ld.ctx.expand_term(&attr));
    let fragment = match b.value.get(&attr).or_else(|| b.value.get(&short)) {
        Some(inner) if b.value.as_object().is_some_and(|o| o.len() == 1) => inner.clone(),
        _ => b.value.clone(),
    };
    let frag = parse_attribute_fragment(&b.ld.ctx, &attr, &fragment, time::now())?;
    let name = b.ld.ctx.expand_term(&attr);
    s.engine
        .modify_temporal_instance(&tenant, &id, &name, &instance, frag)
        .await?;
    Ok(reply::no_content())
}

/// DELETE /temporal/entities/{id}/attrs/{attr}/{instanceId} — 5.6.15.
pub async fn delete_instance(
    State(s): State<SharedState>,
    Path((id, attr, instance)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    check_attr_name(&attr)?;
    check_instance_id(&instance)?;
    let tenant = negotiate::tenant(&headers)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let name = ld.ctx.expand_term(&attr);
    s.engine
        .delete_temporal_instance(&tenant, &id, &name, &instance)
        .await?;
    Ok(reply::no_content())
}

/// GET /temporal/entities/{id} — 5.7.3.
pub async fn retrieve(
    State(s): State<SharedState>,
    seen: Seen,
    pool: CpuPool,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_id(&id)?;
    let p = Params::parse(raw.as_deref());
    p.only(allowed::RETRIEVE_TEMPORAL)?;
    if options_ask_count(&p) {
        // One entity has no count to give: only the queries take Orion-LD's form.
        return Err(NgsiError::invalid("options: unknown value \"count\"").into());
    }
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let r = request(&s, &p, &ld)?;
    s.engine.history_caught_up().await;
    pool.offload(move || retrieved(&s, &seen, &tenant, &id, &p, &ld, media, &r))
        .await
}

/// The temporal entity `id`, read and rendered as far as the identity may see it.
#[allow(clippy::too_many_arguments)]
fn retrieved(
    s: &SharedState,
    seen: &Seen,
    tenant: &harbor_model::Tenant,
    id: &str,
    p: &Params,
    ld: &Ld,
    media: Media,
    r: &Request,
) -> ApiResult<Response> {
    // An aggregation is computed as the instances are read, never holding them.
    let (v, range) = match &r.aggregation {
        Some(aggr) => {
            let (e, range) = seen.history(|view| {
                s.engine
                    .retrieve_aggregated_temporal_entity(tenant, id, &r.sel, aggr, &ld.ctx, view)
            })?;
            check_retrieved(id, &e, r, p, ld)?;
            (render_aggregated(&e, ld, r), range)
        }
        None => {
            let (e, range) =
                seen.history(|view| s.engine.retrieve_temporal_entity(tenant, id, &r.sel, view))?;
            check_retrieved(id, &e, r, p, ld)?;
            (render(&e, ld, r), range)
        }
    };
    let v = v.ok_or_else(|| {
        NgsiError::not_found(format!(
            "temporal entity {id} has no member left after pick / omit"
        ))
    })?;
    let (status, h) = partial(range);
    Ok(reply::json(status, media, ld, v, h))
}

/// A retrieved temporal entity must have one of the attributes asked for (unless a time
/// interval was) and one of the types.
fn check_retrieved<A>(
    id: &str,
    e: &TemporalEntity<A>,
    r: &Request,
    p: &Params,
    ld: &Ld,
) -> ApiResult<()> {
    if let Some(attrs) = &r.sel.attrs {
        if !attrs.iter().any(|a| e.attrs.contains_key(a)) && r.sel.query.timerel.is_none() {
            return Err(NgsiError::not_found(format!(
                "temporal entity {id} has none of the attributes asked for (attrs)"
            ))
            .into());
        }
    }
    if let Some(sel) = query::type_selection(p, &ld.ctx)? {
        if !sel.matches(&e.header.types) {
            return Err(NgsiError::not_found(format!(
                "temporal entity {id} exists but has none of the types asked for"
            ))
            .into());
        }
    }
    Ok(())
}

/// 206 with a `Content-Range` in time when the instances were cut short (6.3.10).
fn partial(range: Option<TemporalRange>) -> (StatusCode, HeaderMap) {
    let mut h = HeaderMap::new();
    let Some(r) = range else {
        return (StatusCode::OK, h);
    };
    let size = r.size.map_or("*".to_string(), |n| n.to_string());
    let value = format!(
        "date-time {}-{}/{size}",
        time::format(&r.start),
        time::format(&r.end)
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(header::CONTENT_RANGE, v);
    }
    (StatusCode::PARTIAL_CONTENT, h)
}

/// GET /temporal/entities — 5.7.4.
pub async fn query_get(
    State(s): State<SharedState>,
    seen: Seen,
    pool: CpuPool,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    p.only(allowed::QUERY_TEMPORAL)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let q = query::from_params(&p, &ld.ctx, false)?;
    s.engine.history_caught_up().await;
    pool.offload(move || {
        run_query(
            &s,
            &seen,
            &tenant,
            media,
            &ld,
            &p,
            q,
            "/ngsi-ld/v1/temporal/entities",
        )
    })
    .await
}

/// The members of a `temporalQ` (5.2.21) as parameters.
fn temporal_q_pairs(tq: &Value, pairs: &mut Vec<(String, String)>) -> NgsiResult<()> {
    let Value::Object(o) = tq else {
        return Err(NgsiError::bad_request(
            "query \"temporalQ\" must be an object",
        ));
    };
    for (k, v) in o {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => {
                return Err(NgsiError::bad_request(format!(
                    "temporalQ \"{k}\" has the wrong type"
                )))
            }
        };
        pairs.push((k.clone(), text));
    }
    Ok(())
}

/// POST /temporal/entityOperations/query — 5.7.4 with a Query body.
pub async fn query_post(
    State(s): State<SharedState>,
    seen: Seen,
    pool: CpuPool,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let mut b = read_json(&s, &headers, body, false).await?;
    let url_params = Params::parse(raw.as_deref());
    let mut pairs = Vec::new();
    if let Value::Object(o) = &mut b.value {
        if let Some(tq) = o.remove("temporalQ") {
            temporal_q_pairs(&tq, &mut pairs)?;
        }
        if let Some(ap) = o.remove("aggrParams") {
            temporal_q_pairs(&ap, &mut pairs)?;
        }
    }
    let (q, body_params) = query::from_body(&b.value, &b.ld.ctx)?;
    let p = Params::from_pairs(pairs)
        .merged(&body_params)
        .merged(&url_params);
    s.engine.history_caught_up().await;
    pool.offload(move || {
        run_query(
            &s,
            &seen,
            &tenant,
            media,
            &b.ld,
            &p,
            q,
            "/ngsi-ld/v1/temporal/entityOperations/query",
        )
    })
    .await
}

#[allow(clippy::too_many_arguments)]
fn run_query(
    s: &SharedState,
    seen: &Seen,
    tenant: &harbor_model::Tenant,
    media: Media,
    ld: &Ld,
    p: &Params,
    mut q: harbor_store::EntityQuery,
    path: &str,
) -> ApiResult<Response> {
    let r = request(s, p, ld)?;
    if let Some(expr) = &mut q.q {
        // 5.7.4: the temporal query has no join, so `q` cannot reach into Linked Entities.
        if expr.link_depth() > 0 {
            return Err(NgsiError::bad_request(
                "parameter \"q\": a temporal query cannot filter on attributes of Linked \
                 Entities (rel{attr}); it has no join",
            )
            .into());
        }
        if let Some(attrs) = p.list("expandValues")? {
            let expand = |n: &str| ld.ctx.expand_term(n);
            let names: Vec<String> = attrs.iter().map(|a| expand(a)).collect();
            expr.expand_values(&names, &expand);
        }
    }
    query::check_not_too_wide(&q, p.list("attrs")?.as_deref(), p.flag("local")?)?;
    let descending = match p.get("orderBy") {
        None | Some("") | Some("id") => false,
        Some("id;desc") | Some("id;Desc") => true,
        Some(other) => {
            return Err(NgsiError::bad_request(format!(
                "a temporal query can only be ordered by id, got orderBy=\"{other}\""
            ))
            .into())
        }
    };
    let limits = &s.engine.limits;
    let Page {
        limit,
        offset,
        count,
    } = query::page(p, limits.default_page, limits.max_page)?;
    let count = count || options_ask_count(p);
    let page = TemporalPage {
        offset,
        limit,
        descending,
    };
    let (items, total, range) = match &r.aggregation {
        Some(aggr) => {
            let (found, total, range) = seen.history(|view| {
                s.engine.query_aggregated_temporal_entities(
                    tenant, &q, &r.sel, aggr, &ld.ctx, page, view,
                )
            })?;
            let items: Vec<Value> = found
                .iter()
                .filter_map(|e| render_aggregated(e, ld, &r))
                .collect();
            (items, total, range)
        }
        None => {
            let (found, total, range) = seen.history(|view| {
                s.engine
                    .query_temporal_entities(tenant, &q, &r.sel, page, view)
            })?;
            let items: Vec<Value> = found.iter().filter_map(|e| render(e, ld, &r)).collect();
            (items, total, range)
        }
    };
    let mut resp = reply::page(
        path,
        p,
        media,
        ld,
        Value::Array(items),
        total,
        Page {
            limit,
            offset,
            count,
        },
    );
    let (status, h) = partial(range);
    *resp.status_mut() = status;
    resp.headers_mut().extend(h);
    Ok(resp)
}
