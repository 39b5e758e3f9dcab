//! Distributed operations in-process (4.3.6, 5.7.1): what a request forwarded to a context
//! source carries, and when nothing is forwarded at all. The source is a fake that records
//! every request and holds one vehicle.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use harbor_engine::forward::{ContextSourceClient, Forward};
use serde_json::{json, Value};

use super::{call, state_for};

const REGS: &str = "/ngsi-ld/v1/csourceRegistrations";
const BUS: &str = "urn:ngsi-ld:Vehicle:SG-SBS-1234";

/// A context source holding `BUS`; every request it gets lands in `seen`.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Forward>>,
}

#[async_trait]
impl ContextSourceClient for Recorder {
    async fn get(&self, f: &Forward) -> Result<Option<Value>, String> {
        self.seen.lock().unwrap().push(f.clone());
        if f.path != format!("/entities/{BUS}") {
            return Ok(None);
        }
        Ok(Some(json!({
            "id": BUS, "type": "Vehicle",
            "speed": {"type": "Property", "value": 56},
        })))
    }
}

impl Recorder {
    fn requests(&self) -> Vec<Forward> {
        self.seen.lock().unwrap().clone()
    }
}

/// A broker whose context sources are `source`.
fn broker(name: &str, source: Arc<Recorder>) -> axum::Router {
    let (state, _) = state_for(name, 1000);
    let engine = Arc::try_unwrap(state.engine)
        .ok()
        .expect("the engine is not shared yet");
    harbor_http::router(Arc::new(harbor_http::AppState {
        engine: Arc::new(engine.with_context_sources(source)),
        ..state
    }))
}

async fn register(app: &axum::Router, body: Value) {
    let (status, v, _) = call(
        app,
        "POST",
        REGS,
        Some("application/json"),
        body.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

fn registration(extra: Value) -> Value {
    let mut r = json!({
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Vehicle"}]}],
        "endpoint": "http://source.example.org",
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut r, extra) {
        o.extend(e);
    }
    r
}

fn header<'a>(f: &'a Forward, name: &str) -> Vec<&'a str> {
    f.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn context_source_info_cannot_redirect_the_tenant_or_forge_the_hops() {
    let source = Arc::new(Recorder::default());
    let app = broker("fed-csi", source.clone());
    register(
        &app,
        registration(json!({
            "contextSourceInfo": [
                {"key": "NGSILD-Tenant", "value": "hacker"},
                {"key": "Via", "value": "1.1 evil"},
                {"key": "Host", "value": "evil.example.org"},
                {"key": "Content-Length", "value": "0"},
                {"key": "Connection", "value": "close"},
                {"key": "Authorization", "value": "Bearer for-the-source"},
                {"key": "X-Custom-Info", "value": "fixed"},
            ]
        })),
    )
    .await;
    let (status, v, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{BUS}"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = source.requests();
    assert_eq!(got.len(), 1);
    let f = &got[0];
    assert_eq!(f.tenant, None, "a tenant-less registration sends no tenant");
    for name in ["NGSILD-Tenant", "Host", "Content-Length", "Connection"] {
        assert!(header(f, name).is_empty(), "{name} reached the wire: {f:?}");
    }
    assert!(
        header(f, "Via").iter().all(|v| !v.contains("evil")),
        "{f:?}"
    );
    // What 4.3.6.5 is for: the registrant's own headers for its source.
    assert_eq!(header(f, "Authorization"), ["Bearer for-the-source"]);
    assert_eq!(header(f, "X-Custom-Info"), ["fixed"]);
}

#[tokio::test]
async fn an_endpoint_that_names_the_api_root_is_not_extended_again() {
    let source = Arc::new(Recorder::default());
    let app = broker("fed-root", source.clone());
    for endpoint in [
        "http://sg.example.org:1026",
        "http://sg.example.org:1026/ngsi-ld/v1",
        "http://sg.example.org:1026/ngsi-ld/v1/",
    ] {
        register(&app, registration(json!({"endpoint": endpoint}))).await;
    }
    let (status, v, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{BUS}"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // The first source answers; ask for a missing entity to reach all three.
    let (status, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:none",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let urls: Vec<String> = source.requests().iter().skip(1).map(Forward::url).collect();
    assert_eq!(
        urls,
        ["http://sg.example.org:1026/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:none"; 3]
    );
}

#[tokio::test]
async fn local_true_is_answered_here_and_never_forwarded() {
    let source = Arc::new(Recorder::default());
    let app = broker("fed-local", source.clone());
    register(&app, registration(json!({}))).await;
    let uri = format!("/ngsi-ld/v1/entities/{BUS}?local=true");
    let (status, v, _) = call(&app, "GET", &uri, None, vec![], &[]).await;
    assert_eq!(status, 404, "{v}");
    assert!(source.requests().is_empty(), "{:?}", source.requests());
    let (status, v, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/entities/{BUS}?local=yes"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn via_names_every_hop_and_a_request_that_passed_here_stops() {
    let source = Arc::new(Recorder::default());
    let app = broker("fed-via", source.clone());
    register(&app, registration(json!({}))).await;
    let uri = format!("/ngsi-ld/v1/entities/{BUS}");

    // From a client: this broker is the first hop.
    let (status, _, _) = call(&app, "GET", &uri, None, vec![], &[]).await;
    assert_eq!(status, 200);
    // From another broker: its hops come first, in their order.
    let (status, _, _) = call(&app, "GET", &uri, None, vec![], &[("Via", "1.1 nanning")]).await;
    assert_eq!(status, 200);
    let got = source.requests();
    assert_eq!(header(&got[0], "Via"), ["1.1 infoharbor"]);
    assert_eq!(header(&got[1], "Via"), ["1.1 nanning, 1.1 infoharbor"]);

    // Back here after going round: answered from what is here, not forwarded again.
    let (status, _, _) = call(
        &app,
        "GET",
        &uri,
        None,
        vec![],
        &[("Via", "1.1 nanning, 1.1 Infoharbor")],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(source.requests().len(), 2);
}

#[tokio::test]
async fn a_source_the_request_already_passed_is_not_asked() {
    let source = Arc::new(Recorder::default());
    let app = broker("fed-via-source", source.clone());
    register(
        &app,
        registration(json!({"endpoint": "http://sg.example.org:1026/ngsi-ld/v1"})),
    )
    .await;
    register(
        &app,
        registration(json!({
            "endpoint": "http://kl.example.org",
            "contextSourceAlias": "kuala-lumpur",
        })),
    )
    .await;
    let uri = "/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:none";
    let (status, _, _) = call(
        &app,
        "GET",
        uri,
        None,
        vec![],
        &[("Via", "1.1 SG.example.org:1026")],
    )
    .await;
    assert_eq!(status, 404);
    let asked: Vec<String> = source.requests().iter().map(|f| f.api.clone()).collect();
    assert_eq!(asked, ["http://kl.example.org/ngsi-ld/v1"]);
    let (_, _, _) = call(
        &app,
        "GET",
        uri,
        None,
        vec![],
        &[("Via", "1.1 sg.example.org:1026, 1.1 kuala-lumpur")],
    )
    .await;
    assert_eq!(source.requests().len(), 1, "{:?}", source.requests());
}

#[tokio::test]
async fn a_query_that_would_be_distributed_cannot_be_ordered() {
    let source = Arc::new(Recorder::default());
    let app = broker("fed-order", source.clone());
    let ordered = |q: &str| format!("/ngsi-ld/v1/entities?{q}&orderBy=speed");
    // No registration: the query runs here and is ordered.
    let (status, v, _) = call(&app, "GET", &ordered("type=Vehicle"), None, vec![], &[]).await;
    assert_eq!(status, 200, "{v}");

    register(&app, registration(json!({}))).await;
    let (status, v, _) = call(&app, "GET", &ordered("type=Vehicle"), None, vec![], &[]).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["type"],
        "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    );
    assert!(v["detail"].as_str().unwrap().contains("orderBy"), "{v}");
    let body = json!({"type": "Query", "entities": [{"type": "Vehicle"}], "orderBy": "speed"});
    let (status, v, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entityOperations/query",
        Some("application/json"),
        body.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // Limited to the local scope, or selecting what no source offers: ordered.
    for q in ["type=Vehicle&local=true", "type=OffStreetParking"] {
        let (status, v, _) = call(&app, "GET", &ordered(q), None, vec![], &[]).await;
        assert_eq!(status, 200, "{q}: {v}");
    }
}
