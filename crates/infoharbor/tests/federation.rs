//! Distributed Retrieve Entity on the real binary (4.3.6, 4.14): an entity the broker does not
//! hold is fetched from the context source registered for it — a real HTTP server here — with
//! the registration's tenant (none when the registration has none), never the requester's, at
//! the source's API root however the endpoint names it, with this broker in `Via`; and brokers
//! registered with each other in a cycle stop a request that comes back round.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::Broker;

/// A context source holding one entity; records the headers of every request it gets.
async fn source(entity: Value) -> (String, Arc<Mutex<Vec<axum::http::HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let id = entity["id"].as_str().unwrap().to_string();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, uri: axum::http::Uri| {
            let log = log.clone();
            let entity = entity.clone();
            let id = id.clone();
            async move {
                log.lock().unwrap().push(headers);
                if uri.path() == format!("/ngsi-ld/v1/entities/{id}") {
                    (axum::http::StatusCode::OK, axum::Json(entity)).into_response()
                } else {
                    axum::http::StatusCode::NOT_FOUND.into_response()
                }
            }
        },
    );
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

async fn register(c: &reqwest::Client, base: &str, tenant: &str, body: Value) {
    let r = c
        .post(format!("{base}/ngsi-ld/v1/csourceRegistrations"))
        .header("NGSILD-Tenant", tenant)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_reaches_the_registered_source_with_its_tenant() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(&work.path().join("data"), work.path(), 0).await;
    let base = broker.base.clone();
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let bus = "urn:ngsi-ld:Vehicle:SG-SBS-1234";
    let (endpoint, seen) = source(json!({
        "id": bus, "type": "Vehicle",
        "speed": {"type": "Property", "value": 56}
    }))
    .await;
    // A tenant-less registration in tenant "sg-lta".
    register(
        &c,
        &base,
        "sg-lta",
        json!({
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"id": bus, "type": "Vehicle"}]}],
            "operations": ["retrieveOps"],
            "endpoint": endpoint
        }),
    )
    .await;

    let r = c
        .get(format!("{base}/ngsi-ld/v1/entities/{bus}"))
        .header("NGSILD-Tenant", "sg-lta")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["id"], bus);
    assert_eq!(e["speed"]["value"], 56, "{e}");
    {
        let got = seen.lock().unwrap();
        assert_eq!(got.len(), 1, "one request to the source");
        assert!(
            got[0].get("NGSILD-Tenant").is_none(),
            "the requester's tenant must not flow through a tenant-less registration"
        );
    }

    // Another tenant without a registration: not found, nothing forwarded.
    let r = c
        .get(format!("{base}/ngsi-ld/v1/entities/{bus}"))
        .header("NGSILD-Tenant", "other-city")
        .send()
        .await
        .unwrap();
    assert!(r.status() == 404, "{}", r.status());
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A registration that names the source's tenant: that tenant is sent.
    register(
        &c,
        &base,
        "my-city",
        json!({
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "Vehicle"}]}],
            "tenant": "partner-city",
            "endpoint": endpoint
        }),
    )
    .await;
    let r = c
        .get(format!("{base}/ngsi-ld/v1/entities/{bus}"))
        .header("NGSILD-Tenant", "my-city")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = seen.lock().unwrap();
    assert_eq!(
        got.last()
            .unwrap()
            .get("NGSILD-Tenant")
            .map(|v| v.to_str().unwrap()),
        Some("partner-city")
    );
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_request_reaches_the_api_root_with_only_what_the_broker_allows() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(&work.path().join("data"), work.path(), 0).await;
    let base = broker.base.clone();
    let c = client();
    let bus = "urn:ngsi-ld:Vehicle:KL-RPD-77";
    let (endpoint, seen) = source(json!({
        "id": bus, "type": "Vehicle",
        "speed": {"type": "Property", "value": 42}
    }))
    .await;
    // The endpoint names the API root itself, as many deployments register it.
    register(
        &c,
        &base,
        "kl",
        json!({
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"id": bus, "type": "Vehicle"}]}],
            "endpoint": format!("{endpoint}/ngsi-ld/v1/"),
            "contextSourceInfo": [
                {"key": "NGSILD-Tenant", "value": "hacker"},
                {"key": "Via", "value": "1.1 evil"},
                {"key": "X-City", "value": "kuala-lumpur"}
            ]
        }),
    )
    .await;
    let r = c
        .get(format!("{base}/ngsi-ld/v1/entities/{bus}"))
        .header("NGSILD-Tenant", "kl")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let got = seen.lock().unwrap();
    assert_eq!(got.len(), 1);
    let h = &got[0];
    assert!(h.get("NGSILD-Tenant").is_none(), "{h:?}");
    let broker_id = base.trim_start_matches("http://");
    let via: Vec<_> = h
        .get_all("Via")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(via, [format!("1.1 {broker_id}")], "{h:?}");
    assert_eq!(h.get("X-City").unwrap(), "kuala-lumpur");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_registered_in_a_cycle_end_the_request() {
    let work = tempfile::tempdir().unwrap();
    let nanning = Broker::start(&work.path().join("nn"), work.path(), 0).await;
    let singapore = Broker::start(&work.path().join("sg"), work.path(), 1).await;
    let c = client();
    let ghost = "urn:ngsi-ld:Vehicle:nowhere";
    for (at, other) in [(&nanning, &singapore), (&singapore, &nanning)] {
        register(
            &c,
            &at.base,
            "city",
            json!({
                "type": "ContextSourceRegistration",
                "information": [{"entities": [{"type": "Vehicle"}]}],
                "tenant": "city",
                "endpoint": other.base
            }),
        )
        .await;
    }
    // Neither holds it: Nanning asks Singapore, which sees Nanning in Via and does not ask
    // it back. Without that, each hop would wait on the next until the timeouts.
    let started = std::time::Instant::now();
    let r = c
        .get(format!("{}/ngsi-ld/v1/entities/{ghost}", nanning.base))
        .header("NGSILD-Tenant", "city")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap_or_default());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    // A request that already passed Singapore is not forwarded by it again.
    let r = c
        .get(format!("{}/ngsi-ld/v1/entities/{ghost}", singapore.base))
        .header("NGSILD-Tenant", "city")
        .header(
            "Via",
            format!("1.1 {}", singapore.base.trim_start_matches("http://")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
