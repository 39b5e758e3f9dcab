//! `GET /console/events`: the change feed pushed to a browser as Server-Sent Events, one
//! `change` event per committed change of an entity in the request's tenant, rendered as a
//! query would render it (`options`, `attrs`, the `@context` of the Link header) and seen
//! through the request's access policies exactly as a read is (`Seen`): an entity the
//! identity may not read never appears, a hidden attribute is never shown.
//!
//! A stream starts at the newest change, so it carries only what happens after it opened.
//! When the feed was trimmed past a stream's cursor (a stream slower than the notification
//! pipeline) it sends `reset` and goes on from the newest change: the browser reloads what it
//! shows. A stream ends after [`LIFETIME`] and the browser reconnects, so that a revoked key
//! or a changed policy takes effect within that time; every stream ends when the server
//! begins to shut down ([`end_streams`]). At most [`MAX_STREAMS`] are open at once; past
//! that, `503`.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use harbor_model::{EntityChange, NgsiError};
use harbor_query::TypeExpr;
use harbor_store::FeedStore;
use serde_json::json;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::access::Seen;
use crate::body::{self, Ld};
use crate::error::ApiResult;
use crate::negotiate::{self, Media};
use crate::params::Params;
use crate::query::{self, View};
use crate::{reply, SharedState};

/// Streams open at once, across tenants.
pub const MAX_STREAMS: usize = 64;

/// How long one stream lives before the browser must reconnect (and be checked again).
pub const LIFETIME: Duration = Duration::from_secs(300);

/// Feed records read per step.
const BATCH: usize = 256;

static OPEN: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_STREAMS)));

/// Bumped when the server shuts down: a stream never ends by itself, and a graceful
/// shutdown waits for every response to end, so streams open then end at once.
static ENDING: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Ends every stream open now (the server calls it when it begins to shut down).
pub fn end_streams() {
    ENDING.send_modify(|n| *n += 1);
}

/// What one stream sends and to whom.
struct Stream {
    tenant: harbor_model::Tenant,
    types: Option<TypeExpr>,
    seen: Seen,
    ld: Ld,
    view: View,
    feed: Arc<dyn FeedStore>,
}

pub async fn stream(
    State(s): State<SharedState>,
    seen: Seen,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let p = Params::parse(raw.as_deref());
    p.only(&["type", "options", "attrs"])?;
    let view = query::view(&p, &ld.ctx, Media::Json)?;
    let types = query::type_selection(&p, &ld.ctx)?;
    let Some(notifier) = s.engine.notifier() else {
        return Err(NgsiError::not_supported("this broker keeps no change feed").into());
    };
    let Ok(permit) = OPEN.clone().try_acquire_owned() else {
        return Ok(busy());
    };
    let stream = Stream {
        tenant,
        types,
        seen,
        ld,
        view,
        feed: notifier.feed().clone(),
    };
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(run(stream, tx, permit));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The `503` when every stream is taken.
fn busy() -> Response {
    let mut resp = reply::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({
            "type": "urn:infoharbor:errors:ServiceUnavailable",
            "title": "ServiceUnavailable",
            "status": 503,
            "detail": format!(
                "{MAX_STREAMS} event streams are open, the most this broker serves; \
                 try again in 5 s"
            ),
        }),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(5u32));
    resp
}

/// Follows the feed until the browser goes away or the stream's lifetime ends.
async fn run(s: Stream, tx: mpsc::Sender<Event>, _permit: OwnedSemaphorePermit) {
    let mut ending = ENDING.subscribe();
    let mut cursor = s.feed.last_seq();
    let ends = tokio::time::Instant::now() + LIFETIME;
    if tx
        .send(Event::default().event("ready").data(cursor.to_string()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let changes = s.feed.changes_after(cursor, BATCH);
        let Some(last) = changes.last().map(|c| c.seq) else {
            tokio::select! {
                _ = s.feed.wait_for_changes(cursor) => continue,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(ends) => return,
                _ = ending.changed() => return,
            }
        };
        if changes.first().is_some_and(|c| c.seq > cursor + 1) {
            cursor = s.feed.last_seq();
            if tx
                .send(Event::default().event("reset").data(cursor.to_string()))
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        for c in &changes {
            let Some(data) = s.render(c) else { continue };
            let event = Event::default()
                .event("change")
                .id(c.seq.to_string())
                .data(data.to_string());
            if tx.send(event).await.is_err() {
                return;
            }
        }
        cursor = last;
        if tokio::time::Instant::now() >= ends {
            return;
        }
    }
}

impl Stream {
    /// The event for one change, or `None` when the stream's identity may not see it or it
    /// is not of the types asked for.
    fn render(&self, c: &EntityChange) -> Option<serde_json::Value> {
        if c.tenant != self.tenant {
            return None;
        }
        let subject = c.after.clone().or_else(|| c.before.clone().map(Arc::new))?;
        let seen = self.seen.0.project(&subject)?;
        if self.types.as_ref().is_some_and(|t| !t.matches(&seen.types)) {
            return None;
        }
        let deleted = c.after.is_none();
        let entity = if deleted {
            json!({ "id": seen.id })
        } else {
            reply::entity(&seen, &self.ld, Media::Json, &self.view)?
        };
        Some(json!({
            "id": seen.id,
            "deleted": deleted,
            "at": harbor_model::time::format(&c.at),
            "entity": entity,
        }))
    }
}
