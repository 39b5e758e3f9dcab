//! Requests written the way the client libraries cities use write them (`filip`,
//! `ngsildclient`, `ngsijs`): paths with a trailing slash, merge-patch bodies on every PATCH and on appends,
//! `idPattern=.*` listings and `options=count` on Query Subscriptions; and the tenant a batch
//! brings into existence only when it writes something.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, call, parking, JSON};

const API: &str = "/ngsi-ld/v1";
const BASE: &str = "urn:ngsi-ld:OffStreetParking:slash";
const SUB: &str = "urn:ngsi-ld:Subscription:slash";
const MERGE_PATCH: Option<&str> = Some("application/merge-patch+json");

/// One request of every route with a resource behind it, and what it answers. `tag` keeps
/// the ids that the writes create apart, so the same list can run twice on one broker.
fn every_route(tag: &str) -> Vec<(&'static str, String, Option<Value>, u16)> {
    let made = format!("urn:ngsi-ld:OffStreetParking:made-{tag}");
    let upserted = format!("urn:ngsi-ld:OffStreetParking:upserted-{tag}");
    let free = |n: i64| json!({"availableSpotNumber": {"type": "Property", "value": n}});
    let query = json!({"type": "Query", "entities": [{"type": "OffStreetParking"}]});
    vec![
        (
            "POST",
            "/entityOperations/create".into(),
            Some(json!([parking(&made, 1)])),
            201,
        ),
        (
            "POST",
            "/entityOperations/upsert".into(),
            Some(json!([parking(&upserted, 2)])),
            201,
        ),
        (
            "POST",
            "/entityOperations/update".into(),
            Some(
                json!([{"id": made, "type": "OffStreetParking", "name": {"type": "Property", "value": "n"}}]),
            ),
            204,
        ),
        (
            "POST",
            "/entityOperations/merge".into(),
            Some(
                json!([{"id": made, "type": "OffStreetParking", "name": {"type": "Property", "value": "m"}}]),
            ),
            204,
        ),
        (
            "POST",
            "/entityOperations/query".into(),
            Some(query.clone()),
            200,
        ),
        (
            "POST",
            "/temporal/entityOperations/query".into(),
            Some(query),
            200,
        ),
        (
            "POST",
            "/entityOperations/delete".into(),
            Some(json!([upserted])),
            204,
        ),
        ("GET", "/entities".into(), None, 400),
        ("GET", format!("/entities/{BASE}"), None, 200),
        (
            "POST",
            format!("/entities/{BASE}/attrs"),
            Some(free(3)),
            204,
        ),
        (
            "PATCH",
            format!("/entities/{BASE}/attrs"),
            Some(free(4)),
            204,
        ),
        (
            "PATCH",
            format!("/entities/{BASE}/attrs/availableSpotNumber"),
            Some(json!({"type": "Property", "value": 5})),
            204,
        ),
        ("GET", "/types".into(), None, 200),
        ("GET", "/types/OffStreetParking".into(), None, 200),
        ("GET", "/attributes".into(), None, 200),
        ("GET", "/attributes/availableSpotNumber".into(), None, 200),
        ("GET", "/subscriptions".into(), None, 200),
        ("GET", format!("/subscriptions/{SUB}"), None, 200),
        // Reaches its handler, which wants a filter.
        ("GET", "/csourceRegistrations".into(), None, 400),
        ("GET", "/csourceSubscriptions".into(), None, 200),
        ("GET", "/info/sourceIdentity".into(), None, 200),
        ("GET", format!("/temporal/entities/{BASE}"), None, 200),
        ("GET", "/jsonldContexts".into(), None, 200),
        ("DELETE", format!("/entities/{made}"), None, 204),
    ]
}

#[tokio::test]
async fn every_route_answers_the_same_with_a_trailing_slash() {
    let app = app("slash");
    let body = parking(BASE, 1).to_string().into_bytes();
    let (s, _, _) = call(&app, "POST", &format!("{API}/entities"), JSON, body, &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    let sub = json!({
        "id": SUB, "type": "Subscription", "entities": [{"type": "OffStreetParking"}],
        "notification": {"endpoint": {"uri": "http://localhost:9999/notify"}}
    });
    let sub = sub.to_string().into_bytes();
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("{API}/subscriptions"),
        JSON,
        sub,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    for (tag, slash) in [("plain", ""), ("slash", "/")] {
        for (method, path, body, status) in every_route(tag) {
            let uri = format!("{API}{path}{slash}");
            let (ct, bytes) = match body {
                Some(b) => (JSON, b.to_string().into_bytes()),
                None => (None, Vec::new()),
            };
            let (s, v, _) = call(&app, method, &uri, ct, bytes, &[]).await;
            assert_eq!(s.as_u16(), status, "{method} {uri}: {v}");
        }
    }
    // The operators' API too; this broker has no notifier, which its handler says.
    for uri in ["/admin/v1/notifications", "/admin/v1/notifications/"] {
        let (s, v, _) = call(&app, "GET", uri, None, Vec::new(), &[]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {v}");
    }
    // A path that names nothing stays "no resource", with or without the slash.
    for uri in [
        "/ngsi-ld/v1/entityOperations/nothing",
        "/ngsi-ld/v1/nothing/",
    ] {
        let (s, v, _) = call(&app, "POST", uri, JSON, b"[]".to_vec(), &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {v}");
    }
}

#[tokio::test]
async fn every_patch_and_append_accept_merge_patch_json() {
    let app = app("merge-patch");
    let id = "urn:ngsi-ld:OffStreetParking:mp";
    let body = parking(id, 1).to_string().into_bytes();
    let (s, _, _) = call(&app, "POST", &format!("{API}/entities"), JSON, body, &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    let attrs = format!("{API}/entities/{id}/attrs");
    let update = json!({"availableSpotNumber": {"type": "Property", "value": 42}});
    let (s, v, _) = call(
        &app,
        "PATCH",
        &attrs,
        MERGE_PATCH,
        update.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v, _) = call(
        &app,
        "GET",
        &format!("{API}/entities/{id}?options=keyValues"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(v["availableSpotNumber"], 42, "{v}");

    // The Temporal API's one PATCH, on an attribute instance, as well.
    let (_, history, _) = call(
        &app,
        "GET",
        &format!("{API}/temporal/entities/{id}"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    let instance = history["availableSpotNumber"][0]["instanceId"]
        .as_str()
        .unwrap_or_else(|| panic!("no instanceId in {history}"))
        .to_string();
    let frag = json!({"type": "Property", "value": 41, "observedAt": "2026-11-28T08:00:00Z"});
    let (s, v, _) = call(
        &app,
        "PATCH",
        &format!("{API}/temporal/entities/{id}/attrs/availableSpotNumber/{instance}"),
        MERGE_PATCH,
        frag.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // Append Attributes too: ngsijs appends with a merge-patch body.
    let append = json!({"totalSpotNumber": {"type": "Property", "value": 860}});
    let (s, v, _) = call(
        &app,
        "POST",
        &attrs,
        MERGE_PATCH,
        append.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v, _) = call(
        &app,
        "GET",
        &format!("{API}/entities/{id}?options=keyValues"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(v["totalSpotNumber"], 860, "{v}");

    // Other POSTs still take only JSON and JSON-LD.
    let other = parking("urn:ngsi-ld:OffStreetParking:mp2", 1);
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{API}/entities"),
        MERGE_PATCH,
        other.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
}

#[tokio::test]
async fn a_batch_that_writes_nothing_creates_no_tenant() {
    let app = app("batch-tenant");
    let tenant = [("NGSILD-Tenant", "ghost-town")];
    let bad = json!([{"id": "not a uri", "type": "OffStreetParking"}, {"type": "NoId"}]);
    for op in ["create", "upsert"] {
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{API}/entityOperations/{op}"),
            JSON,
            bad.to_string().into_bytes(),
            &tenant,
        )
        .await;
        assert_eq!(s, StatusCode::MULTI_STATUS, "{op}: {v}");
        assert_eq!(v["success"], json!([]), "{op}: {v}");
        assert_eq!(v["errors"].as_array().map(Vec::len), Some(2), "{op}: {v}");
        let (s, v, _) = call(
            &app,
            "GET",
            &format!("{API}/entities?type=OffStreetParking"),
            None,
            Vec::new(),
            &tenant,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "after {op}: {v}");
        assert_eq!(
            v["type"], "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant",
            "after {op}: {v}"
        );
    }
    // One good item among bad ones writes, and so creates the tenant.
    let mixed = json!([{"type": "NoId"}, parking("urn:ngsi-ld:OffStreetParking:g", 3)]);
    let (s, v, _) = call(
        &app,
        "POST",
        &format!("{API}/entityOperations/upsert"),
        JSON,
        mixed.to_string().into_bytes(),
        &tenant,
    )
    .await;
    assert_eq!(s, StatusCode::MULTI_STATUS, "{v}");
    let (s, v, _) = call(
        &app,
        "GET",
        &format!("{API}/entities?type=OffStreetParking"),
        None,
        Vec::new(),
        &tenant,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
}

#[tokio::test]
async fn an_id_or_id_pattern_alone_is_a_query_and_nothing_at_all_is_not() {
    let app = app("wide");
    for n in 0..3 {
        let id = format!("urn:ngsi-ld:OffStreetParking:w{n}");
        let body = parking(&id, n).to_string().into_bytes();
        let (s, _, _) = call(&app, "POST", &format!("{API}/entities"), JSON, body, &[]).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // As filip lists entities: idPattern=.* with a count and its own page size.
    let cases = [
        ("/entities/?idPattern=.*&count=true&limit=100", 200, 3),
        ("/entities?idPattern=.*&limit=2&count=true", 200, 2),
        ("/entities?idPattern=.*w1$", 200, 1),
    ];
    for (path, status, n) in cases {
        let (s, v, h) = call(&app, "GET", &format!("{API}{path}"), None, Vec::new(), &[]).await;
        assert_eq!(s.as_u16(), status, "{path}: {v}");
        assert_eq!(v.as_array().map(Vec::len), Some(n), "{path}: {v}");
        if path.contains("count=true") {
            assert_eq!(h["ngsild-results-count"], "3", "{path}");
        }
    }
    // Still too wide: no selector at all, an id list alone, or only system attributes.
    for path in [
        "/entities",
        "/entities?id=urn:ngsi-ld:OffStreetParking:w1",
        "/entities?attrs=createdAt",
        "/entities?q=modifiedAt%3E%222020-01-01T00:00:00Z%22",
    ] {
        let (s, v, _) = call(&app, "GET", &format!("{API}{path}"), None, Vec::new(), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(
            v["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            "{path}"
        );
    }
}

#[tokio::test]
async fn query_subscriptions_counts_with_options_count() {
    let app = app("sub-count");
    for n in 0..3 {
        let sub = json!({
            "id": format!("urn:ngsi-ld:Subscription:c{n}"), "type": "Subscription",
            "entities": [{"type": "OffStreetParking"}],
            "notification": {"endpoint": {"uri": "http://localhost:9999/notify"}}
        });
        let (s, v, _) = call(
            &app,
            "POST",
            &format!("{API}/subscriptions"),
            JSON,
            sub.to_string().into_bytes(),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // As filip lists subscriptions.
    for path in [
        "/subscriptions/?options=count&limit=100&count=true",
        "/subscriptions?options=count&limit=2",
    ] {
        let (s, v, h) = call(&app, "GET", &format!("{API}{path}"), None, Vec::new(), &[]).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(h["ngsild-results-count"], "3", "{path}");
        assert!(v.as_array().is_some_and(|a| !a.is_empty()), "{path}: {v}");
    }
    let (_, _, h) = call(
        &app,
        "GET",
        &format!("{API}/subscriptions"),
        None,
        vec![],
        &[],
    )
    .await;
    assert!(h.get("ngsild-results-count").is_none(), "counted unasked");
    let (s, v, _) = call(
        &app,
        "GET",
        &format!("{API}/subscriptions?options=keyValues"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["type"],
        "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
    );
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("options") && detail.contains("keyValues"),
        "{v}"
    );
}

/// ngsildclient queries history with `options=count,temporalValues`; Orion-LD's count form
/// is taken as `count=true` on the temporal queries (docs/conformance.md), not on a retrieve.
#[tokio::test]
async fn a_temporal_query_takes_options_count_as_a_count() {
    let app = app("clients-temporal-count");
    let id = "urn:ngsi-ld:OffStreetParking:sg-count";
    let (s, v, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking(id, 7).to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, h) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/temporal/entities?type=OffStreetParking&options=count,temporalValues",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h.get("NGSILD-Results-Count").unwrap(), "1");
    assert!(v[0]["availableSpotNumber"]["values"].is_array(), "{v}");
    let (s, v, _) = call(
        &app,
        "GET",
        &format!("/ngsi-ld/v1/temporal/entities/{id}?options=count"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/temporal/entities?type=OffStreetParking&options=tally",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "other values are still refused");
}
