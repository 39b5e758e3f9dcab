//! Trace export on the real binary built with the `otlp` feature: a collector on loopback
//! takes `POST /v1/traces` and decodes each `ExportTraceServiceRequest`. Spans must arrive
//! with the service name, each request's span with its request id, route and status, the
//! commit and notification spans under their parents, a request that sent a `traceparent`
//! inside the caller's trace, and what is still queued at SIGTERM before the process exits.
//! Sampling keeps the caller's decision when there is one.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use support::{client, eventually, free_port, Broker, Mode, Receiver, TYPE};

/// The caller's trace in the `traceparent` the tests send.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One exported span with the `service.name` of its batch.
#[derive(Debug, Clone)]
struct Got {
    service: Option<String>,
    span: Span,
}

/// A collector that takes OTLP/HTTP protobuf on loopback and keeps every span it got.
struct Collector {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Collector {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the collector");
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let keep = got.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let keep = keep.clone();
                async move {
                    assert_eq!(
                        headers[header::CONTENT_TYPE],
                        "application/x-protobuf",
                        "OTLP over HTTP in protobuf"
                    );
                    let req = ExportTraceServiceRequest::decode(body)
                        .expect("an ExportTraceServiceRequest");
                    let mut keep = keep.lock().unwrap();
                    for rs in req.resource_spans {
                        let service = rs
                            .resource
                            .as_ref()
                            .and_then(|r| string(&r.attributes, "service.name"));
                        for ss in rs.scope_spans {
                            for span in ss.spans {
                                keep.push(Got {
                                    service: service.clone(),
                                    span,
                                });
                            }
                        }
                    }
                    // An empty ExportTraceServiceResponse: everything was taken.
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector { port, got, task }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The request span of the request with this `X-Request-Id`.
    fn request(&self, id: &str) -> Option<Got> {
        self.spans()
            .into_iter()
            .find(|g| string(&g.span.attributes, "request_id").as_deref() == Some(id))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn value<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string(attrs: &[KeyValue], key: &str) -> Option<String> {
    match value(attrs, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match value(attrs, key)? {
        AnyValue::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stops the broker with SIGTERM and waits for it to exit cleanly.
fn stop(broker: &mut Broker) {
    broker.terminate();
    match broker.wait_exit(Duration::from_secs(15)) {
        Some(status) if status.success() => {}
        Some(status) => broker.fail(&format!("the broker exited with {status} after SIGTERM")),
        None => broker.fail("the broker did not exit after SIGTERM"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_with_ids_routes_parents_and_the_callers_trace() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start().await;
    let notified = Receiver::new(Mode::Healthy).await;
    let endpoint = collector.endpoint();
    let mut broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-service-name",
            "infoharbor-otlp-test",
        ],
    )
    .await;
    let c = client();
    let base = broker.base.clone();

    let r = c
        .post(format!("{base}/ngsi-ld/v1/subscriptions"))
        .json(&json!({
            "id": "urn:ngsi-ld:Subscription:otlp",
            "type": "Subscription",
            "entities": [{"type": TYPE}],
            "notification": {"endpoint": {"uri": notified.uri(), "accept": "application/json"}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let id = format!("urn:ngsi-ld:{TYPE}:otlp-1");
    let r = c
        .post(format!("{base}/ngsi-ld/v1/entities"))
        .header("X-Request-Id", "otlp-create")
        .json(&json!({"id": id, "type": TYPE, "occupancy": {"type": "Property", "value": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = c
        .get(format!("{base}/ngsi-ld/v1/entities/{id}"))
        .header("X-Request-Id", "otlp-traced")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        eventually(Duration::from_secs(10), || !notified.received().is_empty()).await,
        "the subscription was notified"
    );

    // Spans leave in batches at least every 5 s.
    let all_there = || {
        let spans = collector.spans();
        let named = |n: &str| spans.iter().any(|g| g.span.name == n);
        collector.request("otlp-create").is_some()
            && collector.request("otlp-traced").is_some()
            && named("notification")
            && named("notify")
    };
    if !eventually(Duration::from_secs(20), all_there).await {
        let names: Vec<String> = collector
            .spans()
            .iter()
            .map(|g| g.span.name.clone())
            .collect();
        broker.fail(&format!("spans missing at the collector; it got {names:?}"));
    }
    let spans = collector.spans();
    for g in &spans {
        assert_eq!(
            g.service.as_deref(),
            Some("infoharbor-otlp-test"),
            "service.name of {}",
            g.span.name
        );
        // The broker's own spans only: none of its HTTP client's, the exporter's included.
        let name = g.span.name.as_str();
        assert!(
            ["commit", "notification", "notify"].contains(&name)
                || ["GET", "POST", "PATCH", "PUT", "DELETE"]
                    .iter()
                    .any(|m| name == *m || name.starts_with(&format!("{m} "))),
            "unexpected span {name:?}"
        );
    }

    // The request span: id, method, route template, status, kind, name.
    let create = collector.request("otlp-create").unwrap().span;
    assert_eq!(create.name, "POST /ngsi-ld/v1/entities");
    assert_eq!(create.kind, SpanKind::Server as i32);
    let attrs = &create.attributes;
    assert_eq!(
        string(attrs, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        string(attrs, "http.route").as_deref(),
        Some("/ngsi-ld/v1/entities")
    );
    assert_eq!(int(attrs, "http.response.status_code"), Some(201));
    assert!(create.parent_span_id.is_empty(), "a new trace starts here");
    // The commit it waited for, inside it.
    let commit = spans
        .iter()
        .map(|g| &g.span)
        .find(|s| s.name == "commit" && s.parent_span_id == create.span_id)
        .unwrap_or_else(|| panic!("no commit span under the create request in {spans:#?}"));
    assert_eq!(commit.trace_id, create.trace_id);
    assert_eq!(
        string(&commit.attributes, "kind").as_deref(),
        Some("entities")
    );

    // The traced request continues the caller's trace, under the caller's span.
    let traced = collector.request("otlp-traced").unwrap().span;
    assert_eq!(hex(&traced.trace_id), CALLER_TRACE);
    assert_eq!(hex(&traced.parent_span_id), CALLER_SPAN);
    assert_eq!(traced.name, "GET /ngsi-ld/v1/entities/{id}");
    assert_eq!(
        string(&traced.attributes, "http.route").as_deref(),
        Some("/ngsi-ld/v1/entities/{id}")
    );
    assert_eq!(
        string(&traced.attributes, "url.path").as_deref(),
        Some(format!("/ngsi-ld/v1/entities/{id}").as_str())
    );
    assert_eq!(
        int(&traced.attributes, "http.response.status_code"),
        Some(200)
    );

    // A notification attempt, with the transport's span under it.
    let attempt = spans
        .iter()
        .map(|g| &g.span)
        .find(|s| {
            s.name == "notification"
                && string(&s.attributes, "subscription").as_deref()
                    == Some("urn:ngsi-ld:Subscription:otlp")
        })
        .expect("a notification span of the subscription");
    assert_eq!(int(&attempt.attributes, "attempt"), Some(1));
    let send = spans
        .iter()
        .map(|g| &g.span)
        .find(|s| s.name == "notify" && s.parent_span_id == attempt.span_id)
        .expect("a notify span under the notification attempt");
    assert_eq!(send.trace_id, attempt.trace_id);

    // Counted in /metrics.
    let metrics = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported = metrics
        .lines()
        .find_map(|l| l.strip_prefix("infoharbor_trace_spans_total{outcome=\"exported\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exported count in\n{metrics}"));
    assert!(
        exported >= spans.len() as f64,
        "{exported} < {}",
        spans.len()
    );

    // What is still queued at SIGTERM is at the collector before the process has exited.
    let r = c
        .get(format!("{base}/ngsi-ld/v1/entities/{id}"))
        .header("X-Request-Id", "otlp-last")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop(&mut broker);
    assert!(
        collector.request("otlp-last").is_some(),
        "the last request's span was flushed at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_ratio_of_zero_keeps_only_traces_the_caller_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start().await;
    let endpoint = collector.endpoint();
    let mut broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--otlp-endpoint", &endpoint, "--otlp-sample-ratio", "0"],
    )
    .await;
    let c = client();
    let url = format!("{}/ngsi-ld/v1/entities/urn:x:missing", broker.base);
    for (id, traceparent) in [
        ("own-trace", None),
        ("caller-sampled", Some("01")),
        ("caller-not-sampled", Some("00")),
    ] {
        let mut req = c.get(&url).header("X-Request-Id", id);
        if let Some(flags) = traceparent {
            req = req.header(
                "traceparent",
                format!("00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}"),
            );
        }
        assert_eq!(req.send().await.unwrap().status(), 404, "{id}");
    }
    stop(&mut broker);
    let sampled = collector
        .request("caller-sampled")
        .expect("the request whose caller sampled its trace is exported");
    assert_eq!(
        sampled.service.as_deref(),
        Some("infoharbor"),
        "the default"
    );
    assert_eq!(hex(&sampled.span.trace_id), CALLER_TRACE);
    assert!(collector.request("own-trace").is_none(), "ratio 0");
    assert!(
        collector.request("caller-not-sampled").is_none(),
        "the caller's decision not to sample is kept"
    );
}
