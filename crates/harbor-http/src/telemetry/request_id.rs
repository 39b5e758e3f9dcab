//! The request id: taken from the client's `X-Request-Id` when it is usable (visible ASCII, at
//! most 128 characters), made up otherwise, echoed on every response and carried by the
//! request's tracing span, so that every log line of the request names it. One log line per
//! request at debug level, and one at warn for a server error. When the binary exports traces,
//! the span is also handed to its [`RequestSpans`] at the start and the end of the request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::{RequestSpans, TracedRequest};
use crate::SharedState;

/// The header that carries the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
const MAX_LEN: usize = 128;

/// The request id of a request, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// Whether a client's request id can be used as it is: 1 to 128 visible ASCII characters,
/// so that it cannot break a log line or a header.
pub(crate) fn usable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

/// A new id: a random prefix chosen once per process, then a counter. Unique within a run
/// and, by the prefix, across restarts; costs no system call.
fn generate() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].into());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix}-{n:x}")).expect("hex digits are a valid header")
}

/// Middleware: gives the request its id and span, logs it, echoes the id.
pub async fn request_id(State(s): State<SharedState>, mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(&REQUEST_ID) {
        Some(v) if usable(v) => v.clone(),
        Some(_) => {
            let id = generate();
            tracing::debug!(replaced_by = ?id, "unusable X-Request-Id replaced");
            id
        }
        None => generate(),
    };
    req.headers_mut().insert(REQUEST_ID, id.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    // `otel.name` and `otel.kind` stay empty, and out of the log lines, unless traces are
    // exported: only a tracer reads them.
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    let method = req.method().clone();
    let uri = req.uri().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let traces: Option<&dyn RequestSpans> = s.telemetry.request_spans.as_deref();
    let traced = traces.map(|t| {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let traced = TracedRequest {
            method: method.as_str(),
            route: route.as_ref().map(|r| r.as_str()),
            path: uri.path(),
            traceparent: header("traceparent"),
            tracestate: header("tracestate"),
        };
        t.started(&span, &traced);
        (t, span.clone())
    });
    let started = Instant::now();
    async move {
        let mut resp = next.run(req).await;
        let status = resp.status();
        if let Some((t, span)) = traced {
            t.finished(&span, status.as_u16());
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let route = route.as_ref().map_or("", |r| r.as_str());
        // A 503 is the broker protecting itself (shedding, not ready): counted in the
        // metrics, and not logged one line each, so an overload does not flood the log too.
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(%method, path = uri.path(), route, status = status.as_u16(), ms, "request failed");
        } else {
            tracing::debug!(%method, path = uri.path(), route, status = status.as_u16(), ms, "request");
        }
        resp.headers_mut().insert(REQUEST_ID, id);
        resp
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_client_ids_are_kept() {
        let long = "a".repeat(MAX_LEN);
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&[u8], bool)] = &[
            (b"abc-123", true),
            (b"0f8fad5b-d9cb-469f-a165-70867728950e", true),
            (long.as_bytes(), true),
            (too_long.as_bytes(), false),
            (b"", false),
            (b"two words", false),
            (b"tab\there", false),
            (b"caf\xc3\xa9", false),
        ];
        for (raw, want) in cases {
            let v = HeaderValue::from_bytes(raw).expect("header value");
            assert_eq!(usable(&v), *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn generated_ids_differ_and_are_usable() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(usable(&a) && usable(&b), "{a:?} {b:?}");
    }
}
