//! The broker's own health at the edge: request ids (echoed, made up, refused when unusable),
//! `/ready` from the beacons of the parts that must run, and `/metrics` after real requests,
//! counted under route templates and never under raw ids.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use harbor_http::shed::ShedLimits;
use harbor_http::telemetry::Telemetry;
use harbor_http::{router, HttpLimits};
use harbor_metrics::Beacon;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use super::{call, parking, state_for, JSON};

const ID: &str = "urn:ngsi-ld:OffStreetParking:telemetry-1";

/// The text of `/metrics`.
async fn scrape(app: &axum::Router) -> String {
    let resp = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The value of the series that is exactly `series` (name and labels), if it is there.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_request_id_is_echoed_made_up_or_replaced() {
    let app = super::app("telemetry-ids");
    let id_of = |h: &axum::http::HeaderMap| h["x-request-id"].to_str().unwrap().to_string();
    let (_, _, h) = call(
        &app,
        "GET",
        "/health",
        None,
        vec![],
        &[("X-Request-Id", "abc-123")],
    )
    .await;
    assert_eq!(id_of(&h), "abc-123", "a usable id is echoed");
    let (_, _, a) = call(&app, "GET", "/health", None, vec![], &[]).await;
    let (_, _, b) = call(&app, "GET", "/health", None, vec![], &[]).await;
    assert!(!id_of(&a).is_empty());
    assert_ne!(id_of(&a), id_of(&b), "each request gets its own id");
    let long = "x".repeat(129);
    for bad in ["has space", long.as_str()] {
        let (_, _, h) = call(
            &app,
            "GET",
            "/health",
            None,
            vec![],
            &[("X-Request-Id", bad)],
        )
        .await;
        assert_ne!(id_of(&h), bad, "an unusable id is replaced");
        assert!(id_of(&h).len() <= 128);
    }
    // Every answer carries one: an error, a 404, a bare 411.
    let (s, _, h) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities/urn:x:none",
        None,
        vec![],
        &[("X-Request-Id", "r-404")],
    )
    .await;
    assert_eq!((s, id_of(&h).as_str()), (StatusCode::NOT_FOUND, "r-404"));
    let (s, _, h) = call(
        &app,
        "GET",
        "/nowhere",
        None,
        vec![],
        &[("X-Request-Id", "r-route")],
    )
    .await;
    assert_eq!((s, id_of(&h).as_str()), (StatusCode::NOT_FOUND, "r-route"));
    let resp = app
        .clone()
        .oneshot(
            Request::post("/ngsi-ld/v1/entities")
                .header("x-request-id", "r-411")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::LENGTH_REQUIRED);
    assert_eq!(resp.headers()["x-request-id"], "r-411");
}

#[tokio::test]
async fn ready_follows_the_beacons_and_health_does_not() {
    let (mut state, _store) = state_for("telemetry-ready", 1000);
    let store = Beacon::new();
    let historian = Beacon::new();
    state.telemetry = Telemetry::default()
        .ready_when("store", "the store", store.clone())
        .ready_when("historian", "the history recorder", historian.clone());
    let app = router(Arc::new(state));

    let (s, body, h) = call(&app, "GET", "/ready", None, vec![], &[]).await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing runs yet: {body}"
    );
    assert_eq!(body["status"], 503);
    assert_eq!(body["title"], "ServiceUnavailable");
    assert_eq!(
        body["detail"],
        "not ready: the store is starting; the history recorder is starting"
    );
    assert_eq!(h["retry-after"], "1");
    let (s, _, _) = call(&app, "GET", "/health", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::OK, "liveness does not wait for readiness");

    let _store_up = store.hold();
    let recording = historian.hold();
    let (s, body, _) = call(&app, "GET", "/ready", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"store": "up", "historian": "up"}})
    );

    drop(recording);
    let (s, body, _) = call(&app, "GET", "/ready", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("the history recorder has stopped"),
        "{detail}"
    );
    assert_eq!(body["checks"]["historian"], "down");
    assert_eq!(body["checks"]["store"], "up");
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, "infoharbor_part_up{part=\"historian\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "infoharbor_part_up{part=\"store\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_count_route_templates_never_raw_ids() {
    let (mut state, store) = state_for("telemetry-metrics", 1000);
    let mut registry = harbor_metrics::Registry::default();
    store.metrics().register(&mut registry);
    state.telemetry = Telemetry::new(registry);
    let app = router(Arc::new(state));
    let body = serde_json::to_vec(&parking(ID, 3)).unwrap();
    let (s, _, _) = call(&app, "POST", "/ngsi-ld/v1/entities", JSON, body, &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    for _ in 0..3 {
        let (s, _, _) = call(
            &app,
            "GET",
            &format!("/ngsi-ld/v1/entities/{ID}"),
            None,
            vec![],
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    // The trailing-slash form counts under the same template.
    let (s, _, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{ID}/"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities/urn:x:secret-id",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&app, "GET", "/no/such/urn:x:secret-path", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let text = scrape(&app).await;
    let series = |r: &str, m: &str, c: &str| {
        format!(
            "infoharbor_http_requests_total{{route=\"{r}\",method=\"{m}\",status_class=\"{c}\"}}"
        )
    };
    let one = "/ngsi-ld/v1/entities/{id}";
    assert_eq!(
        value(&text, &series(one, "GET", "2xx")),
        Some(4.0),
        "{text}"
    );
    assert_eq!(value(&text, &series(one, "GET", "4xx")), Some(1.0));
    assert_eq!(
        value(&text, &series("/ngsi-ld/v1/entities", "POST", "2xx")),
        Some(1.0)
    );
    assert_eq!(value(&text, &series("unmatched", "GET", "4xx")), Some(1.0));
    assert_eq!(
        value(
            &text,
            &format!(
                "infoharbor_http_request_duration_seconds_count{{route=\"{one}\",method=\"GET\"}}"
            )
        ),
        Some(5.0)
    );
    assert!(
        !text.contains("urn:") && !text.contains("secret"),
        "no raw id or path in a label:\n{text}"
    );
    // The scrape itself is in flight while it is encoded.
    assert_eq!(
        value(&text, "infoharbor_http_requests_in_flight"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "infoharbor_store_commit_group_size_sum").map(|v| v >= 1.0),
        Some(true)
    );
    for shed in ["control", "read", "write", "query"] {
        let s = format!("infoharbor_http_shed_total{{class=\"{shed}\"}}");
        assert_eq!(value(&text, &s), Some(0.0), "{s}");
    }
}

#[tokio::test]
async fn a_shed_request_is_counted_by_its_class() {
    let (mut state, _store) = state_for("telemetry-shed", 1000);
    state.limits = HttpLimits {
        shed: ShedLimits {
            writes: 1,
            ..ShedLimits::default()
        },
        ..state.limits.clone()
    };
    let app = router(Arc::new(state));
    // A write whose body never arrives holds the only write slot.
    let (sender, body) = http_body_util::channel::Channel::<axum::body::Bytes>::new(1);
    let held = Request::post("/ngsi-ld/v1/entities")
        .header("content-type", "application/json")
        .header("content-length", "100")
        .body(Body::new(body))
        .unwrap();
    let holder = tokio::spawn(app.clone().oneshot(held));
    // The holder is in (waiting for its body) once a scrape sees two requests in flight.
    let mut waited = 0;
    while value(&scrape(&app).await, "infoharbor_http_requests_in_flight") != Some(2.0) {
        assert!(
            !holder.is_finished() && waited < 500,
            "the holder did not get in"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let body = serde_json::to_vec(&parking(ID, 1)).unwrap();
    let (s, _, h) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        body,
        &[("X-Request-Id", "shed-1")],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "a write beyond the limit of one is shed"
    );
    assert_eq!(
        h["x-request-id"], "shed-1",
        "a shed request still gets its id"
    );
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, "infoharbor_http_shed_total{class=\"write\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "infoharbor_http_requests_total{route=\"/ngsi-ld/v1/entities\",method=\"POST\",status_class=\"5xx\"}"
        ),
        Some(1.0)
    );
    drop(sender);
    let _ = holder.await;
}

#[tokio::test]
async fn metrics_off_serve_no_metrics() {
    let (mut state, _store) = state_for("telemetry-off", 1000);
    state.telemetry = Telemetry::off();
    let app = router(Arc::new(state));
    let (s, _, _) = call(&app, "GET", "/health", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body, h) = call(&app, "GET", "/metrics", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        body["detail"].as_str().unwrap().contains("metrics = false"),
        "{body}"
    );
    assert!(
        h.contains_key("x-request-id"),
        "request ids do not depend on metrics"
    );
}
