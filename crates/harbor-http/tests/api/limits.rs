//! Limits against abuse as a client meets them: quotas answered `403` with the project's
//! `QuotaExceeded` type, a hosted context too large `413`, a remote one too large
//! `LdContextNotAvailable`, each naming the limit.

use std::sync::Arc;

use async_trait::async_trait;
use harbor_engine::Quotas;
use harbor_http::router;
use harbor_jsonld::registry::StoredLimits;
use harbor_jsonld::resolve::ContextFetcher;
use serde_json::{json, Value};

use super::{call, parking, state_limited, with_api_keys, Limited, Offline, JSON};

const QUOTA: &str = "urn:infoharbor:errors:QuotaExceeded";

fn app_with(name: &str, quotas: Quotas, stored: StoredLimits) -> axum::Router {
    let limited = Limited {
        quotas,
        stored,
        fetcher: Arc::new(Offline),
    };
    router(Arc::new(state_limited(name, 1000, limited).0))
}

async fn post(
    app: &axum::Router,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let (s, v, _) = call(
        app,
        "POST",
        path,
        JSON,
        body.to_string().into_bytes(),
        headers,
    )
    .await;
    (s.as_u16(), v)
}

fn subscription(i: usize) -> Value {
    json!({
        "id": format!("urn:ngsi-ld:Subscription:q{i}"),
        "type": "Subscription",
        "entities": [{"type": "OffStreetParking"}],
        "notification": {"endpoint": {"uri": "http://localhost:9999/notify"}}
    })
}

#[tokio::test]
async fn quotas_answer_403_naming_the_quota() {
    let quotas = Quotas {
        entities: 2,
        subscriptions: 2,
        ..Quotas::default()
    };
    let app = app_with("limits-quotas", quotas, StoredLimits::default());
    for i in 0..2 {
        let (s, v) = post(&app, "/ngsi-ld/v1/subscriptions", subscription(i), &[]).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = post(&app, "/ngsi-ld/v1/subscriptions", subscription(2), &[]).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["type"], QUOTA);
    assert_eq!(v["status"], 403);
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("quota_subscriptions") && detail.contains('2'),
        "{detail}"
    );

    for i in 0..2 {
        let (s, v) = post(
            &app,
            "/ngsi-ld/v1/entities",
            parking(&format!("urn:p:{i}"), 1),
            &[],
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = post(&app, "/ngsi-ld/v1/entities", parking("urn:p:2", 1), &[]).await;
    assert_eq!((s, v["type"].as_str()), (403, Some(QUOTA)), "{v}");
    // another tenant has its own places
    let (s, v) = post(
        &app,
        "/ngsi-ld/v1/entities",
        parking("urn:p:2", 1),
        &[("NGSILD-Tenant", "other")],
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // a batch creates what fits and reports the rest per entity
    let batch = json!([parking("urn:p:3", 1), parking("urn:p:4", 1)]);
    let (s, v) = post(
        &app,
        "/ngsi-ld/v1/entityOperations/create",
        batch,
        &[("NGSILD-Tenant", "other")],
    )
    .await;
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["success"], json!(["urn:p:3"]));
    assert_eq!(v["errors"][0]["entityId"], "urn:p:4");
    assert_eq!(v["errors"][0]["error"]["type"], QUOTA);
}

#[tokio::test]
async fn hosted_contexts_are_bounded_in_size_and_count() {
    let stored = StoredLimits {
        max_document_bytes: 2000,
        max_hosted_per_tenant: 2,
        max_total_bytes: 0,
    };
    let app = app_with("limits-hosted", Quotas::default(), stored);
    let terms = |n: usize, tag: &str| {
        let m: serde_json::Map<String, Value> = (0..n)
            .map(|i| {
                (
                    format!("{tag}{i}"),
                    json!(format!("https://example.org/{i}")),
                )
            })
            .collect();
        json!({ "@context": m })
    };
    let path = "/ngsi-ld/v1/jsonldContexts";
    let (s, v) = post(&app, path, terms(200, "t"), &[]).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("2000 bytes"), "{v}");
    for tag in ["a", "b"] {
        let (s, v) = post(&app, path, terms(3, tag), &[]).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = post(&app, path, terms(3, "c"), &[]).await;
    assert_eq!((s, v["type"].as_str()), (403, Some(QUOTA)), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("hosted_contexts_max"),
        "{v}"
    );
}

/// Serves one remote `@context` larger than the broker accepts.
struct Huge;

#[async_trait]
impl ContextFetcher for Huge {
    async fn fetch(&self, _url: &str) -> Result<Value, String> {
        let m: serde_json::Map<String, Value> = (0..30_000)
            .map(|i| {
                (
                    format!("term{i}"),
                    json!(format!("https://example.org/ns/term{i}")),
                )
            })
            .collect();
        Ok(json!({ "@context": m }))
    }
}

#[tokio::test]
async fn a_remote_context_over_the_size_limit_is_not_available_and_named() {
    let limited = Limited {
        quotas: Quotas::default(),
        stored: StoredLimits::default(),
        fetcher: Arc::new(Huge),
    };
    let app = router(Arc::new(state_limited("limits-remote", 1000, limited).0));
    let url = "https://contexts.example.org/huge.jsonld";
    let link = format!(
        "<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
    );
    let (s, v, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=OffStreetParking",
        None,
        vec![],
        &[("Link", link.as_str())],
    )
    .await;
    assert_eq!(
        v["type"], "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable",
        "{v}"
    );
    assert_eq!(s.as_u16(), v["status"]);
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(url) && detail.contains("1048576 bytes"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_identity_may_create_only_so_many_tenants() {
    let quotas = Quotas {
        tenants_per_identity: 2,
        ..Quotas::default()
    };
    let limited = Limited {
        quotas,
        stored: StoredLimits::default(),
        fetcher: Arc::new(Offline),
    };
    let (mut state, store) = state_limited("limits-tenants", 1000, limited);
    let [writer, operator] = with_api_keys(
        &mut state,
        store,
        [("fleet", &["writer@*"][..]), ("ops", &["operator"][..])],
    )
    .await;
    let app = router(Arc::new(state));
    let create = |tenant: String, key: String, id: &'static str| {
        let app = app.clone();
        async move {
            post(
                &app,
                "/ngsi-ld/v1/entities",
                parking(id, 1),
                &[("NGSILD-Tenant", &tenant), ("X-API-Key", &key)],
            )
            .await
        }
    };
    for t in ["t1", "t2"] {
        let (s, v) = create(t.into(), writer.clone(), "urn:p:1").await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = create("t1".into(), writer.clone(), "urn:p:2").await;
    assert_eq!(s, 201, "writing into a tenant it created is fine: {v}");
    let (s, v) = create("t3".into(), writer.clone(), "urn:p:1").await;
    assert_eq!((s, v["type"].as_str()), (403, Some(QUOTA)), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("tenants_per_identity"),
        "{v}"
    );
    let (s, v) = create("t3".into(), operator.clone(), "urn:p:1").await;
    assert_eq!(s, 201, "operators are bounded by the total only: {v}");
    let (s, v) = create("t3".into(), writer.clone(), "urn:p:9").await;
    assert_eq!(s, 201, "an existing tenant costs nothing: {v}");
}
