//! The operator's endpoints under `/admin/v1` (not part of NGSI-LD): the state of the
//! notification pipeline and its dead letters — list, replay, drop. A tenant given with
//! `NGSILD-Tenant` narrows every operation to that tenant; without it they cover every tenant.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use harbor_model::{time, NgsiError, Tenant};
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::params::Params;
use crate::reply;
use crate::SharedState;

fn tenant(headers: &HeaderMap) -> ApiResult<Option<Tenant>> {
    if headers.contains_key("NGSILD-Tenant") {
        Ok(Some(crate::negotiate::tenant(headers)?))
    } else {
        Ok(None)
    }
}

fn notifier(s: &SharedState) -> ApiResult<&std::sync::Arc<harbor_engine::notify::Notifier>> {
    s.engine
        .notifier()
        .ok_or_else(|| NgsiError::not_supported("this broker sends no notifications").into())
}

/// `?id=1,2,3`: the dead letters an operation is about (all when absent).
fn ids(raw: Option<&str>) -> ApiResult<Option<Vec<u64>>> {
    let p = Params::parse(raw);
    p.only(&["id"])?;
    let Some(list) = p.list("id")? else {
        return Ok(None);
    };
    list.iter()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                NgsiError::bad_request(format!(
                    "parameter \"id\": \"{s}\" is not a dead letter id (a positive integer)"
                ))
                .into()
            })
        })
        .collect::<ApiResult<Vec<u64>>>()
        .map(Some)
}

/// GET /admin/v1/notifications — change-feed records retained, changes not yet matched,
/// deliveries pending and dead-lettered.
pub async fn overview(State(s): State<SharedState>, headers: HeaderMap) -> ApiResult<Response> {
    let n = notifier(&s)?;
    let t = tenant(&headers)?;
    Ok(reply::plain(
        StatusCode::OK,
        json!({
            "retainedChanges": n.retained(),
            "unmatched": n.unmatched(),
            "pending": n.pending(),
            "deadLetters": n.dead_letters(t.as_ref()).len(),
        }),
    ))
}

/// GET /admin/v1/deadLetters — every dead-lettered delivery, oldest first.
pub async fn list(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let n = notifier(&s)?;
    let t = tenant(&headers)?;
    let p = Params::parse(raw.as_deref());
    p.only(&["subscriptionId"])?;
    let sub = p.get("subscriptionId");
    let items: Vec<Value> = n
        .dead_letters(t.as_ref())
        .iter()
        .filter(|d| sub.is_none_or(|s| s == d.subscription))
        .map(|d| {
            json!({
                "id": d.id,
                "tenant": d.tenant.as_str(),
                "subscriptionId": d.subscription,
                "changes": d.changes.len(),
                "attempts": d.attempts,
                "lastError": d.last_error,
                "createdAt": time::format(&d.created_at),
            })
        })
        .collect();
    Ok(reply::plain(StatusCode::OK, Value::Array(items)))
}

/// What an operator does with dead letters.
#[derive(Clone, Copy)]
enum Act {
    Replay,
    Drop,
}

/// POST /admin/v1/deadLetters/replay[?id=...] — sends dead letters again, from a fresh
/// attempt count.
pub async fn replay(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    act(&s, raw.as_deref(), &headers, Act::Replay).await
}

/// DELETE /admin/v1/deadLetters[?id=...] — drops dead letters for good.
pub async fn drop(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    act(&s, raw.as_deref(), &headers, Act::Drop).await
}

async fn act(
    s: &SharedState,
    raw: Option<&str>,
    headers: &HeaderMap,
    act: Act,
) -> ApiResult<Response> {
    let n = notifier(s)?;
    let t = tenant(headers)?;
    let ids = ids(raw)?;
    let (done, key) = match act {
        Act::Replay => (n.replay(t.as_ref(), ids.as_deref()).await, "replayed"),
        Act::Drop => (n.drop_dead(t.as_ref(), ids.as_deref()).await, "dropped"),
    };
    let count = done.map_err(NgsiError::internal)?;
    Ok(reply::plain(StatusCode::OK, json!({ key: count })))
}
