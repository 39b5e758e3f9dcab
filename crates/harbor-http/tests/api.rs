//! The NGSI-LD API in-process (`Router::oneshot`): round trips a city operator relies on, and
//! hostile or malformed input answered with 4xx ProblemDetails, never a panic or a hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use harbor_engine::history::Historian;
use harbor_engine::{Engine, Limits};
use harbor_http::{router, AppState, HttpLimits};
use harbor_jsonld::registry::ContextRegistry;
use harbor_jsonld::resolve::{ContextFetcher, ContextResolver};
use harbor_store_embedded::EmbeddedStore;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "api/audit.rs"]
mod audit;
#[path = "api/auth.rs"]
mod auth;
#[path = "api/clients.rs"]
mod clients;
#[path = "api/common_behaviours.rs"]
mod common_behaviours;
#[path = "api/console.rs"]
mod console;
#[path = "api/federation.rs"]
mod federation;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/policies.rs"]
mod policies;
#[path = "api/policy_history.rs"]
mod policy_history;
#[path = "api/policy_sources.rs"]
mod policy_sources;
#[path = "api/registrations.rs"]
mod registrations;
#[path = "api/subscriptions.rs"]
mod subscriptions;
#[path = "api/telemetry.rs"]
mod telemetry;
#[path = "api/temporal.rs"]
mod temporal;
#[path = "api/temporal_aggregate.rs"]
mod temporal_aggregate;

/// No network in tests: every remote @context is unavailable.
struct Offline;

#[async_trait]
impl ContextFetcher for Offline {
    async fn fetch(&self, url: &str) -> Result<Value, String> {
        Err(format!("{url}: offline"))
    }
}

fn app(name: &str) -> axum::Router {
    app_paging_instances_at(name, 1000)
}

/// A broker whose temporal answers carry at most `max_temporal_instances` per attribute.
fn app_paging_instances_at(name: &str, max_temporal_instances: usize) -> axum::Router {
    router(Arc::new(state_for(name, max_temporal_instances).0))
}

/// The state of a test broker on a fresh store, with authentication off, and its store.
fn state_for(name: &str, max_temporal_instances: usize) -> (AppState, Arc<EmbeddedStore>) {
    state_limited(
        name,
        max_temporal_instances,
        Limited {
            quotas: Default::default(),
            stored: Default::default(),
            fetcher: Arc::new(Offline),
        },
    )
}

/// What a test broker may be held to beyond the defaults of `state_for`.
struct Limited {
    quotas: harbor_engine::Quotas,
    stored: harbor_jsonld::registry::StoredLimits,
    fetcher: Arc<dyn ContextFetcher>,
}

/// As `state_for`, with quotas, limits on stored contexts and a fetcher of remote contexts.
fn state_limited(
    name: &str,
    max_temporal_instances: usize,
    limited: Limited,
) -> (AppState, Arc<EmbeddedStore>) {
    let dir = std::env::temp_dir().join(format!("harbor-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(EmbeddedStore::open(&dir).unwrap());
    let historian = Historian::new(store.clone(), store.clone(), Default::default());
    historian.start();
    let engine = Arc::new(
        Engine::new(
            store.clone(),
            Limits {
                max_batch: 100,
                max_page: 100,
                default_page: 20,
                max_temporal_instances,
            },
        )
        .with_subscriptions(store.clone())
        .with_temporal(store.clone())
        .with_history(historian)
        .with_registrations(store.clone())
        .with_quotas(limited.quotas),
    );
    let registry =
        Arc::new(ContextRegistry::new("http://127.0.0.1:1026").with_stored_limits(limited.stored));
    let resolver = Arc::new(ContextResolver::new(limited.fetcher, registry.clone()));
    let state = AppState {
        engine,
        resolver,
        registry,
        limits: HttpLimits {
            max_body: 64 * 1024,
            ..HttpLimits::default()
        },
        identity: harbor_http::SourceIdentity::new("urn:ngsi-ld:ContextSource:test".into()),
        auth: None,
        keys: None,
        policies: None,
        audit: None,
        telemetry: Default::default(),
    };
    (state, store)
}

/// Turns `auth = apikey` on for `state`, with keys made outside the API (as `infoharbor keys
/// create --data-dir` makes the first one): the text of each key, in order.
async fn with_api_keys<const N: usize>(
    state: &mut AppState,
    store: Arc<EmbeddedStore>,
    keys: [(&str, &[&str]); N],
) -> [String; N] {
    let ring = Arc::new(harbor_auth::KeyRing::load(store).await.unwrap());
    let mut texts = Vec::with_capacity(N);
    for (name, grants) in keys {
        let grants = harbor_auth::Grants::parse(grants).unwrap();
        let (_, text) = ring.create(name, grants, None, None).await.unwrap();
        texts.push(text);
    }
    state.auth = Some(Arc::new(harbor_auth::Authenticator::new(
        harbor_auth::AuthMode::ApiKey,
        Some(ring.clone()),
        None,
    )));
    state.keys = Some(ring);
    texts.try_into().expect("one key per name")
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    ct: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // Like every HTTP client, say how long the body is (6.3.4 requires it).
    if matches!(method, "POST" | "PATCH" | "PUT") {
        req = req.header("content-length", body.len());
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v, headers)
}

fn parking(id: &str, free: i64) -> Value {
    json!({
        "id": id,
        "type": "OffStreetParking",
        "name": {"type": "Property", "value": "Marina Square"},
        "availableSpotNumber": {"type": "Property", "value": free, "observedAt": "2026-11-28T08:00:00Z"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [103.857, 1.291]}},
        "refOperator": {"type": "Relationship", "object": "urn:ngsi-ld:Organization:sg-ura"}
    })
}

const JSON: Option<&str> = Some("application/json");

/// method, path, Content-Type, body, expected status, expected error type suffix.
type BadCase = (
    &'static str,
    String,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn create_retrieve_query_update_delete() {
    let app = app("roundtrip");
    let id = "urn:ngsi-ld:OffStreetParking:sg-marina";
    let (s, _, h) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking(id, 120).to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(h["location"], format!("/ngsi-ld/v1/entities/{id}").as_str());
    let (s, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking(id, 120).to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (s, body, h) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{id}"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["type"], "OffStreetParking");
    assert_eq!(body["availableSpotNumber"]["value"], 120);
    assert_eq!(
        body["refOperator"]["object"],
        "urn:ngsi-ld:Organization:sg-ura"
    );
    assert!(h["link"].to_str().unwrap().contains("ngsi-ld-core-context"));

    let (_, kv, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{id}?options=keyValues"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(kv["availableSpotNumber"], 120);

    let (s, list, h) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=OffStreetParking&q=availableSpotNumber%3E100&count=true",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(h["ngsild-results-count"], "1");

    let (s, list, _) = call(&app, "GET", "/ngsi-ld/v1/entities?type=OffStreetParking&georel=near%3BmaxDistance%3D%3D500&geometry=Point&coordinates=%5B103.858%2C1.291%5D", None, vec![], &[]).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);

    let patch = json!({"type": "Property", "value": 7});
    let (s, _, _) = call(
        &app,
        "PATCH",
        &format!("/ngsi-ld/v1/entities/{id}/attrs/availableSpotNumber"),
        JSON,
        patch.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, body, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{id}?options=sysAttrs"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(body["availableSpotNumber"]["value"], 7);
    assert_eq!(
        body["availableSpotNumber"]["observedAt"], "2026-11-28T08:00:00Z",
        "partial update keeps observedAt"
    );
    assert!(body["createdAt"].is_string() && body["modifiedAt"].is_string());

    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("/ngsi-ld/v1/entities/{id}"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{id}"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        body["type"],
        "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
    );
}

#[tokio::test]
async fn tenants_are_isolated() {
    let app = app("tenants");
    let id = "urn:ngsi-ld:OffStreetParking:sg-t1";
    let (s, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=OffStreetParking",
        None,
        vec![],
        &[("NGSILD-Tenant", "jakarta")],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "an unknown tenant is NonexistentTenant"
    );
    let (s, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking(id, 1).to_string().into_bytes(),
        &[("NGSILD-Tenant", "jakarta")],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{id}"),
        None,
        vec![],
        &[("NGSILD-Tenant", "jakarta")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{id}"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the default tenant does not see jakarta's entity"
    );
}

#[tokio::test]
async fn bad_input_gets_problem_details() {
    let app = app("bad-input");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let big = format!(
        "{{\"id\":\"urn:a:b\",\"type\":\"T\",\"p\":\"{}\"}}",
        "x".repeat(200_000)
    );
    let hostile_q = format!("/ngsi-ld/v1/entities?type=T&q={}", "(".repeat(20_000));
    let cases: Vec<BadCase> = vec![
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            b"{not json".to_vec(),
            400,
            "InvalidRequest",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            b"".to_vec(),
            400,
            "InvalidRequest",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            deep.into_bytes(),
            400,
            "InvalidRequest",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            big.into_bytes(),
            413,
            "PayloadTooLarge",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            Some("text/plain"),
            b"{}".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            br#"{"id":"not a uri","type":"T"}"#.to_vec(),
            400,
            "BadRequestData",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            br#"{"id":"urn:a:b","type":5}"#.to_vec(),
            400,
            "BadRequestData",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            br#"{"id":"urn:a:b","type":"T","p":{"type":"Property"}}"#.to_vec(),
            400,
            "BadRequestData",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            JSON,
            br#"{"id":"urn:a:b","type":"T","@context":{}}"#.to_vec(),
            400,
            "BadRequestData",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entities".into(),
            Some("application/ld+json"),
            br#"{"id":"urn:a:b","type":"T"}"#.to_vec(),
            400,
            "BadRequestData",
        ),
        (
            "GET",
            "/ngsi-ld/v1/entities/not-a-uri".into(),
            None,
            vec![],
            400,
            "BadRequestData",
        ),
        (
            "GET",
            "/ngsi-ld/v1/entities?type=T&idPattern=(a%2B)%2B%24%5B".into(),
            None,
            vec![],
            400,
            "BadRequestData",
        ),
        ("GET", hostile_q, None, vec![], 400, "BadRequestData"),
        (
            "GET",
            "/ngsi-ld/v1/entities?type=T&q=a%3D%3D".into(),
            None,
            vec![],
            400,
            "BadRequestData",
        ),
        (
            "GET",
            "/ngsi-ld/v1/entities?type=T&limit=5000".into(),
            None,
            vec![],
            403,
            "TooManyResults",
        ),
        (
            "GET",
            "/ngsi-ld/v1/entities?type=T&georel=near&geometry=Point&coordinates=%5B1%5D".into(),
            None,
            vec![],
            400,
            "BadRequestData",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entityOperations/create".into(),
            JSON,
            br#"{"id":"urn:a:b"}"#.to_vec(),
            400,
            "BadRequestData",
        ),
        (
            "POST",
            "/ngsi-ld/v1/entityOperations/create".into(),
            JSON,
            serde_json::to_vec(
                &(0..101)
                    .map(|i| parking(&format!("urn:a:{i}"), i))
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            400,
            "BadRequestData",
        ),
    ];
    for (method, uri, ct, body, want, kind) in cases {
        let started = Instant::now();
        let (s, v, h) = call(&app, method, &uri, ct, body, &[]).await;
        let short: String = uri.chars().take(80).collect();
        assert_eq!(s.as_u16(), want, "{method} {short}: {v}");
        assert_eq!(h["content-type"], "application/json", "{method} {short}");
        assert!(
            v["type"].as_str().unwrap_or("").ends_with(kind),
            "{method} {short}: {v}"
        );
        assert!(
            !v["detail"].as_str().unwrap_or("").is_empty(),
            "{method} {short}: detail must say what is wrong"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{method} {short} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn hostile_id_pattern_over_many_entities_is_fast() {
    let app = app("redos");
    let batch: Vec<Value> = (0..100)
        .map(|i| {
            parking(
                &format!(
                    "urn:ngsi-ld:OffStreetParking:{}",
                    "a".repeat(40) + &i.to_string()
                ),
                i,
            )
        })
        .collect();
    let (s, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entityOperations/create",
        JSON,
        serde_json::to_vec(&batch).unwrap(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let started = Instant::now();
    let (s, v, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=OffStreetParking&idPattern=(a%2B)%2B%24&limit=100",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "catastrophic backtracking: {:?}",
        started.elapsed()
    );
}

async fn create_all(app: &axum::Router, entities: &[Value]) {
    let (s, v, _) = call(
        app,
        "POST",
        "/ngsi-ld/v1/entityOperations/create",
        JSON,
        serde_json::to_vec(entities).unwrap(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn linked_entities_inline_and_flat() {
    let app = app("join");
    let parking_id = "urn:ngsi-ld:OffStreetParking:sg-marina";
    create_all(
        &app,
        &[
            parking(parking_id, 7),
            json!({"id": "urn:ngsi-ld:Organization:sg-ura", "type": "Organization",
                "name": {"type": "Property", "value": "URA"},
                "country": {"type": "Relationship", "object": "urn:ngsi-ld:Country:sg"}}),
            json!({"id": "urn:ngsi-ld:Country:sg", "type": "Country",
                "name": {"type": "Property", "value": "Singapore"}}),
        ],
    )
    .await;
    let org_id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let path = format!("/ngsi-ld/v1/entities/{parking_id}");
    // (query, expected body)
    let cases = [
        (
            "join=inline&pick=id,refOperator{name}",
            json!({"id": parking_id, "refOperator": {"type": "Relationship",
                "object": "urn:ngsi-ld:Organization:sg-ura",
                "entity": {"name": {"type": "Property", "value": "URA"}}}}),
        ),
        (
            "join=inline&joinLevel=2&pick=refOperator{country{name}}&options=keyValues",
            json!({"refOperator": {"country": {"name": "Singapore"}}}),
        ),
        (
            "join=flat&joinLevel=2&pick=id,refOperator{id,country{id}}",
            json!([
                {"id": parking_id, "refOperator": {"type": "Relationship",
                    "object": "urn:ngsi-ld:Organization:sg-ura"}},
                {"id": "urn:ngsi-ld:Organization:sg-ura", "country": {"type": "Relationship",
                    "object": "urn:ngsi-ld:Country:sg"}},
                {"id": "urn:ngsi-ld:Country:sg"},
            ]),
        ),
        (
            "join=flat&omit=name,availableSpotNumber,location,type&options=keyValues",
            json!([
                {"id": parking_id, "refOperator": "urn:ngsi-ld:Organization:sg-ura"},
                {"id": "urn:ngsi-ld:Organization:sg-ura", "type": "Organization",
                    "name": "URA", "country": "urn:ngsi-ld:Country:sg"},
            ]),
        ),
    ];
    for (query, want) in cases {
        let (s, v, _) = call(&app, "GET", &format!("{path}?{query}"), None, vec![], &[]).await;
        assert_eq!(s, StatusCode::OK, "{query}: {v}");
        assert_eq!(v, want, "{query}");
    }
    let (s, v, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=OffStreetParking&join=flat&pick=id",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v.as_array()
            .map(|a| a.iter().map(org_id).collect::<Vec<_>>()),
        Some(vec![parking_id.to_string()])
    );
}

#[tokio::test]
async fn query_parameters_are_checked() {
    let app = app("query-checks");
    create_all(&app, &[parking("urn:ngsi-ld:OffStreetParking:1", 3)]).await;
    let id = "urn:ngsi-ld:OffStreetParking:1";
    // (path and query, status, error type suffix)
    let cases = [
        (
            format!("/ngsi-ld/v1/entities?id={id}"),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?attrs=createdAt".into(),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?type=*&local=false".into(),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?type=OffStreetParking&q=refOperator%7Bname%7D==%22x%22".into(),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?type=OffStreetParking&pick=a%7Bb%7Bc%7D%7D&join=inline".into(),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?type=OffStreetParking&join=inline&joinLevel=0".into(),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?type=OffStreetParking&orderBy=location;dist-asc".into(),
            400,
            "BadRequestData",
        ),
        (
            "/ngsi-ld/v1/entities?type=OffStreetParking&idPattern=a**".into(),
            400,
            "BadRequestData",
        ),
        (
            format!("/ngsi-ld/v1/entities/{id}?geometryProperty=location"),
            400,
            "BadRequestData",
        ),
        (
            format!("/ngsi-ld/v1/entities/{id}?pick=name&attrs=name"),
            400,
            "BadRequestData",
        ),
        (
            format!("/ngsi-ld/v1/entities/{id}?options=bogus"),
            400,
            "InvalidRequest",
        ),
        (
            format!("/ngsi-ld/v1/entities/{id}?pick=unknown"),
            404,
            "ResourceNotFound",
        ),
        (
            format!("/ngsi-ld/v1/entities/{id}?type=Vehicle"),
            404,
            "ResourceNotFound",
        ),
        (
            format!("/ngsi-ld/v1/entities/{id}?attrs=unknown"),
            404,
            "ResourceNotFound",
        ),
        ("/ngsi-ld/v1/entities?type=*".into(), 200, ""),
        (format!("/ngsi-ld/v1/entities?id={id}&local=true"), 200, ""),
    ];
    for (uri, status, kind) in cases {
        let (s, v, _) = call(&app, "GET", &uri, None, vec![], &[]).await;
        assert_eq!(s.as_u16(), status, "{uri}: {v}");
        if !kind.is_empty() {
            let ty = v["type"].as_str().unwrap_or_default();
            assert!(ty.ends_with(kind), "{uri}: {v}");
            assert!(
                v["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{uri}: {v}"
            );
        }
    }
}

#[tokio::test]
async fn query_results_are_ordered() {
    let app = app("order");
    create_all(
        &app,
        &[
            parking("urn:ngsi-ld:OffStreetParking:a", 30),
            parking("urn:ngsi-ld:OffStreetParking:b", 10),
            parking("urn:ngsi-ld:OffStreetParking:c", 20),
        ],
    )
    .await;
    let cases = [
        ("availableSpotNumber", ["b", "c", "a"]),
        ("availableSpotNumber;desc", ["a", "c", "b"]),
        ("name,id;desc", ["c", "b", "a"]),
    ];
    for (order, want) in cases {
        let uri = format!("/ngsi-ld/v1/entities?type=OffStreetParking&orderBy={order}");
        let (s, v, _) = call(&app, "GET", &uri, None, vec![], &[]).await;
        assert_eq!(s, StatusCode::OK, "{order}: {v}");
        let got: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["id"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(got, want, "{order}");
    }
}

/// The write operations of clause 5.6, step by step on one entity: each step is a request,
/// its expected status, and one attribute of the entity afterwards (`None`: absent).
#[tokio::test]
async fn writes_follow_clause_5_6() {
    let app = app("writes");
    let id = "urn:ngsi-ld:Building:w1";
    let path = format!("/ngsi-ld/v1/entities/{id}");
    let entity = json!({
        "id": id, "type": "Building", "scope": "/Singapore",
        "name": {"type": "Property", "value": "Marina", "unitCode": "X"},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Org:1",
                  "since": {"type": "Property", "value": 2020}},
        "address": {"type": "Property", "value": {"street": "Bayfront", "city": "SG"}}
    });
    let (st, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        entity.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    type Step = (
        &'static str,
        String,
        Value,
        u16,
        &'static str,
        Option<Value>,
    );
    let attrs = format!("{path}/attrs");
    let steps: Vec<Step> = vec![
        // 5.6.2: a missing attribute is appended, an existing one replaced whole.
        (
            "PATCH",
            attrs.clone(),
            json!({"name": {"type": "Property", "value": "Bay"}, "floors": 3}),
            204,
            "name",
            Some(json!({"type": "Property", "value": "Bay"})),
        ),
        (
            "PATCH",
            attrs.clone(),
            json!({"floors": {"type": "Property", "value": "urn:ngsi-ld:null"}}),
            204,
            "floors",
            None,
        ),
        // 5.6.4: a fragment of sub-attributes only; the type cannot change.
        (
            "PATCH",
            format!("{attrs}/owner"),
            json!({"since": {"type": "Property", "value": 2021}}),
            204,
            "owner",
            Some(
                json!({"type": "Relationship", "object": "urn:ngsi-ld:Org:1",
                              "since": {"type": "Property", "value": 2021}}),
            ),
        ),
        (
            "PATCH",
            format!("{attrs}/owner"),
            json!({"type": "Property", "value": 1}),
            400,
            "name",
            Some(json!({"type": "Property", "value": "Bay"})),
        ),
        (
            "PATCH",
            format!("{attrs}/scope"),
            json!({"value": "/x"}),
            400,
            "scope",
            Some(json!("/Singapore")),
        ),
        // 4.17: a type selection that misses the entity finds nothing.
        (
            "PATCH",
            format!("{attrs}/name?type=Vehicle"),
            json!({"value": "x"}),
            404,
            "name",
            Some(json!({"type": "Property", "value": "Bay"})),
        ),
        // 5.6.3: noOverwrite extends the scope, keeps existing attributes (207).
        (
            "POST",
            format!("{attrs}?options=noOverwrite"),
            json!({"scope": "/Marina", "name": "other"}),
            207,
            "scope",
            Some(json!(["/Singapore", "/Marina"])),
        ),
        // 5.6.17: nulls inside a value remove keys; a concise value keeps a Relationship one.
        (
            "PATCH",
            path.clone(),
            json!({"address": {"value": {"city": "urn:ngsi-ld:null"}}}),
            204,
            "address",
            Some(json!({"type": "Property", "value": {"street": "Bayfront"}})),
        ),
        (
            "PATCH",
            path.clone(),
            json!({"owner": "urn:ngsi-ld:Org:2"}),
            204,
            "owner",
            Some(
                json!({"type": "Relationship", "object": "urn:ngsi-ld:Org:2",
                              "since": {"type": "Property", "value": 2021}}),
            ),
        ),
        // 5.6.5.4: scope is deletable as an attribute.
        (
            "DELETE",
            format!("{attrs}/scope"),
            Value::Null,
            204,
            "scope",
            None,
        ),
    ];
    for (method, uri, body, status, attr, want) in steps {
        let bytes = if body.is_null() {
            vec![]
        } else {
            body.to_string().into_bytes()
        };
        let ct = if body.is_null() { None } else { JSON };
        let (st, v, _) = call(&app, method, &uri, ct, bytes, &[]).await;
        assert_eq!(st.as_u16(), status, "{method} {uri} {body}: {v}");
        let (_, e, _) = call(&app, "GET", &path, None, vec![], &[]).await;
        assert_eq!(
            e.get(attr),
            want.as_ref(),
            "after {method} {uri} {body}: {e}"
        );
    }
    // 5.6.7.4: a null item fails the whole batch.
    let batch = json!([entity, null]).to_string().into_bytes();
    let (st, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entityOperations/upsert",
        JSON,
        batch,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // 5.6.9: noOverwrite leaves an existing attribute alone and says so, appends the rest.
    let upd = json!([{"id": id, "type": "Building", "name": "x", "height": 10}])
        .to_string()
        .into_bytes();
    let (st, v, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entityOperations/update?options=noOverwrite",
        JSON,
        upd,
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::MULTI_STATUS, "{v}");
    let (_, e, _) = call(&app, "GET", &path, None, vec![], &[]).await;
    assert_eq!(e["height"]["value"], json!(10));
    assert_eq!(e["name"]["value"], json!("Bay"));
}

#[tokio::test]
async fn a_null_expires_at_in_a_merge_makes_the_entity_lasting() {
    let app = app("expiry-null");
    let id = "urn:ngsi-ld:Vehicle:SG-5611";
    let body = json!({
        "id": id, "type": "Vehicle", "expiresAt": "2099-01-01T00:00:00Z",
        "speed": {"type": "Property", "value": 1}
    });
    let (status, v, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        body.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let uri = format!("/ngsi-ld/v1/entities/{id}");
    let fragment = json!({"expiresAt": "urn:ngsi-ld:null"})
        .to_string()
        .into_bytes();
    let (status, v, _) = call(&app, "PATCH", &uri, JSON, fragment, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let (status, e, _) = call(
        &app,
        "GET",
        &format!("{uri}?options=sysAttrs"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(e.get("expiresAt").is_none(), "{e}");
    assert!(!e.to_string().contains("urn:ngsi-ld:null"), "{e}");
    // On creation the same marker is not a value.
    let bad = json!({"id": "urn:ngsi-ld:Vehicle:SG-x", "type": "Vehicle", "expiresAt": "urn:ngsi-ld:null"});
    let (status, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        bad.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
