//! The broker's view of its own health at the HTTP edge: `GET /metrics` (Prometheus text),
//! `GET /ready` (readiness, from the beacons of the parts that must run), and the layers
//! every request passes for it: its request id, its log lines, its metrics and, when the
//! binary exports traces, its span's place in a distributed trace ([`RequestSpans`]).
//!
//! Label policy: a request is counted under the route template it matched (axum's
//! `MatchedPath`, e.g. `/ngsi-ld/v1/entities/{id}`), its method and its status class, never
//! under its raw path, so the number of series is bounded by the router, not by the data.

mod http;
mod request_id;

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use harbor_metrics::{
    Beacon, BeaconState, Collector, ConstGauge, DescriptorEncoder, EncodeMetric, MetricType,
    Registry,
};
use serde_json::{json, Map, Value};

pub use request_id::{RequestId, REQUEST_ID};

use crate::server::ConnectionStats;
use crate::SharedState;

/// What the HTTP edge needs for metrics and readiness; one per broker, in
/// [`AppState`](crate::AppState).
pub struct Telemetry {
    /// `None` when metrics are off (`metrics = false`).
    metrics: Option<Metrics>,
    /// The parts that must run for the broker to be ready, with how to name them; shared
    /// with the collector of `infoharbor_part_up`.
    readiness: Parts,
    connections: Arc<ConnectionStats>,
    /// `None` unless traces are exported.
    request_spans: Option<Arc<dyn RequestSpans>>,
}

/// What the exporter of traces does with the span of each request (its `request` span, with
/// the fields `request_id`, `otel.name` and `otel.kind`), so that the edge knows nothing of
/// tracing systems: the binary implements it when it is built with trace export.
pub trait RequestSpans: Send + Sync {
    /// Before the request runs, while the span has not been entered yet: the span may still
    /// take a parent (the caller's trace).
    fn started(&self, span: &tracing::Span, req: &TracedRequest<'_>);
    /// Once the answer is there, with its status code.
    fn finished(&self, span: &tracing::Span, status: u16);
}

/// A request as a tracer sees it.
#[derive(Debug, Clone, Copy)]
pub struct TracedRequest<'a> {
    pub method: &'a str,
    /// The matched route template (`/ngsi-ld/v1/entities/{id}`); `None` when none matched.
    pub route: Option<&'a str>,
    pub path: &'a str,
    /// The W3C Trace Context headers the caller sent, as sent (`traceparent`, `tracestate`).
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
}

struct Metrics {
    registry: Registry,
    http: Arc<http::HttpMetrics>,
}

struct Part {
    name: &'static str,
    what: &'static str,
    beacon: Beacon,
}

/// The parts, filled while the broker is wired and read by `/ready` and by scrapes.
#[derive(Clone, Default)]
struct Parts(Arc<RwLock<Vec<Part>>>);

impl Parts {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Part>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parts")
    }
}

impl Collector for Parts {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let mut m = enc.encode_descriptor(
            "infoharbor_part_up",
            "1 while a part the broker needs runs (what /ready checks), 0 when starting or stopped.",
            None,
            MetricType::Gauge,
        )?;
        for p in self.read().iter() {
            let up = i64::from(p.beacon.state() == BeaconState::Up);
            ConstGauge::new(up).encode(m.encode_family(&[("part", p.name)])?)?;
        }
        Ok(())
    }
}

impl Telemetry {
    /// Metrics on: `registry` holds what the other crates count; the edge adds its own.
    pub fn new(mut registry: Registry) -> Self {
        let connections = Arc::new(ConnectionStats::default());
        let http = Arc::new(http::HttpMetrics::new(connections.clone()));
        registry.register_collector(Box::new(http.clone()));
        let readiness = Parts::default();
        registry.register_collector(Box::new(readiness.clone()));
        Telemetry {
            metrics: Some(Metrics { registry, http }),
            readiness,
            connections,
            request_spans: None,
        }
    }

    /// Metrics off: `/metrics` answers 404 and requests pass no metrics layer.
    pub fn off() -> Self {
        Telemetry {
            metrics: None,
            readiness: Parts::default(),
            connections: Arc::default(),
            request_spans: None,
        }
    }

    /// Hands every request's span to `spans` (trace export).
    pub fn with_request_spans(mut self, spans: Arc<dyn RequestSpans>) -> Self {
        self.request_spans = Some(spans);
        self
    }

    /// `/ready` answers 200 only while `beacon` is up; `what` names the part for people
    /// ("the history recorder").
    pub fn ready_when(self, name: &'static str, what: &'static str, beacon: Beacon) -> Self {
        self.readiness
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Part { name, what, beacon });
        self
    }

    /// Where the server loop counts connections (`ServerConfig::connections`).
    pub fn connections(&self) -> Arc<ConnectionStats> {
        self.connections.clone()
    }

    fn http(&self) -> Option<&http::HttpMetrics> {
        self.metrics.as_ref().map(|m| m.http.as_ref())
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new(Registry::default())
    }
}

/// Adds the telemetry layers around `app` (which already holds the routes and the other
/// layers): request ids and log lines outermost, so that even a shed request gets its id,
/// then metrics, unless they are off.
pub fn layers(app: Router<SharedState>, state: &SharedState) -> Router<SharedState> {
    let app = if state.telemetry.metrics.is_some() {
        app.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::observe,
        ))
    } else {
        app
    };
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        request_id::request_id,
    ))
}

/// GET /metrics — every metric in the Prometheus text format.
pub async fn metrics(State(s): State<SharedState>) -> Response {
    let Some(m) = &s.telemetry.metrics else {
        return crate::reply::plain(
            StatusCode::NOT_FOUND,
            json!({
                "type": "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
                "title": "ResourceNotFound",
                "status": 404,
                "detail": "metrics are turned off on this broker (metrics = false)",
            }),
        );
    };
    let body = harbor_metrics::encode(&m.registry);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(harbor_metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

/// GET /ready — 200 when every part that must run is up; 503 with a ProblemDetails naming
/// what is not, otherwise.
pub async fn ready(State(s): State<SharedState>) -> Response {
    let mut checks = Map::new();
    let mut waiting = Vec::new();
    for p in s.telemetry.readiness.read().iter() {
        let state = p.beacon.state();
        checks.insert(p.name.into(), Value::from(state.as_str()));
        match state {
            BeaconState::Up => {}
            BeaconState::Starting => waiting.push(format!("{} is starting", p.what)),
            BeaconState::Down => waiting.push(format!(
                "{} has stopped and does not restart on its own; restart the broker",
                p.what
            )),
        }
    }
    if waiting.is_empty() {
        return crate::reply::plain(StatusCode::OK, json!({"status": "ready", "checks": checks}));
    }
    let mut resp = crate::reply::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({
            "type": "urn:infoharbor:errors:ServiceUnavailable",
            "title": "ServiceUnavailable",
            "status": 503,
            "detail": format!("not ready: {}", waiting.join("; ")),
            "checks": checks,
        }),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}
