//! Handlers of `/entityOperations/{create,upsert,update,delete,merge}` (6.14 – 6.18, 6.31).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use harbor_engine::{BatchError, BatchItem, BatchMode, BatchResult};
use harbor_jsonld::expand::{parse_entity, Payload};
use harbor_model::{time, NgsiError};
use serde_json::Value;

use crate::body::{self, JsonBody};
use crate::entities::read_json;
use crate::error::{problem_json, ApiResult};
use crate::negotiate;
use crate::params::Params;
use crate::reply;
use crate::SharedState;

fn items(b: &JsonBody) -> ApiResult<&Vec<Value>> {
    match &b.value {
        // 5.6.7.4 – 5.6.10.4, 5.6.20.4: a null item fails the whole batch.
        Value::Array(items) if items.iter().any(Value::is_null) => {
            Err(NgsiError::bad_request("the batch contains a null item").into())
        }
        Value::Array(items) if !items.is_empty() => Ok(items),
        Value::Array(_) => Err(NgsiError::bad_request("the batch is empty").into()),
        _ => Err(NgsiError::bad_request("a batch body must be a JSON array of entities").into()),
    }
}

async fn parse_items(
    s: &SharedState,
    b: &JsonBody,
    require_id_type: bool,
    payload: Payload,
) -> ApiResult<Vec<BatchItem>> {
    let list = items(b)?;
    if list.len() > s.engine.limits.max_batch {
        return Err(NgsiError::bad_request(format!(
            "the batch has {} entities; at most {} are accepted per request",
            list.len(),
            s.engine.limits.max_batch
        ))
        .into());
    }
    let now = time::now();
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let parsed = match body::item_context(s, b, item).await {
            Ok(ctx) => parse_entity(&ctx, item, require_id_type, payload, now),
            Err(e) => Err(e),
        };
        out.push(parsed.map_err(|error| BatchError {
            entity_id: id,
            error,
        }));
    }
    Ok(out)
}

fn result_body(r: &BatchResult) -> Value {
    serde_json::json!({
        "success": r.success,
        "errors": r.errors.iter().map(|e| serde_json::json!({
            "entityId": e.entity_id,
            "error": problem_json(&e.error),
        })).collect::<Vec<_>>(),
    })
}

/// 201 with the created ids / 204 / 207 as 6.14 – 6.18 prescribe.
fn respond(r: BatchResult, created_status: bool) -> Response {
    if !r.errors.is_empty() {
        return reply::plain(StatusCode::MULTI_STATUS, result_body(&r));
    }
    if created_status && !r.created.is_empty() {
        return reply::plain(StatusCode::CREATED, Value::from(r.created));
    }
    reply::no_content()
}

/// Reads a batch body and runs it in `mode`: the shared path of create, upsert, update, merge.
async fn run_batch(
    s: &SharedState,
    headers: &HeaderMap,
    body: Body,
    mode: BatchMode,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(headers)?;
    let b = read_json(s, headers, body, false).await?;
    // Creating modes need id and type and answer 201 with what they created.
    let (creating, payload) = match mode {
        BatchMode::Create | BatchMode::Upsert { .. } => (true, Payload::Full),
        BatchMode::Update { .. } => (false, Payload::Full),
        BatchMode::Merge => (false, Payload::Merge),
    };
    let items = parse_items(s, &b, creating, payload).await?;
    let r = s.engine.batch_write(&tenant, mode, items).await?;
    Ok(respond(r, creating))
}

pub async fn create(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    run_batch(&s, &headers, body, BatchMode::Create).await
}

pub async fn upsert(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let o = Params::parse(raw.as_deref()).options()?;
    if o.replace && o.update {
        return Err(
            NgsiError::bad_request("options replace and update cannot be used together").into(),
        );
    }
    run_batch(&s, &headers, body, BatchMode::Upsert { replace: !o.update }).await
}

pub async fn update(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let o = Params::parse(raw.as_deref()).options()?;
    let mode = BatchMode::Update {
        no_overwrite: o.no_overwrite,
    };
    run_batch(&s, &headers, body, mode).await
}

pub async fn merge(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    run_batch(&s, &headers, body, BatchMode::Merge).await
}

pub async fn delete(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let b = read_json(&s, &headers, body, false).await?;
    let list = items(&b)?;
    let mut ids = Vec::with_capacity(list.len());
    for v in list {
        match v.as_str() {
            Some(id) if harbor_jsonld::expand::is_uri(id) => ids.push(id.to_string()),
            _ => {
                return Err(NgsiError::bad_request(format!(
                    "batch delete takes an array of entity ids (URIs); got {v}"
                ))
                .into())
            }
        }
    }
    let r = s.engine.batch_delete(&tenant, ids).await?;
    Ok(respond(r, false))
}
