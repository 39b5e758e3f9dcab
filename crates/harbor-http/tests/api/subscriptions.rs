//! The Subscription API (5.8): round trips with name expansion and compaction, tenants,
//! paging, merge updates, and every refused input answered with a ProblemDetails naming it.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, call, JSON};

const LD: Option<&str> = Some("application/ld+json");
const SUBS: &str = "/ngsi-ld/v1/subscriptions";

/// A valid subscription with the member `extra` merged in at the top level.
fn sub(id: &str, extra: Value) -> Value {
    let mut s = json!({
        "id": id,
        "type": "Subscription",
        "entities": [{"type": "OffStreetParking"}],
        "notification": {"endpoint": {"uri": "http://localhost:9999/notify"}}
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut s, extra) {
        o.extend(e);
    }
    s
}

/// A valid subscription with `extra` merged into `notification`.
fn sub_notification(extra: Value) -> Value {
    let mut s = sub("urn:ngsi-ld:Subscription:n", json!({}));
    if let (Some(Value::Object(n)), Value::Object(e)) = (s.get_mut("notification"), extra) {
        n.extend(e);
    }
    s
}

async fn post(app: &axum::Router, body: &Value) -> (StatusCode, Value) {
    let (s, v, _) = call(app, "POST", SUBS, JSON, body.to_string().into_bytes(), &[]).await;
    (s, v)
}

#[tokio::test]
async fn invalid_subscriptions_are_refused_naming_the_member() {
    let app = app("subs-invalid");
    let endpoint = |e: Value| sub_notification(json!({"endpoint": e}));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("empty", json!({}), "type"),
        ("wrong type", sub("urn:s:1", json!({"type": "Sub"})), "type"),
        ("id not a URI", sub("notauri", json!({})), "id"),
        (
            "no entities nor watchedAttributes",
            json!({"type": "Subscription", "notification": {"endpoint": {"uri": "http://a/b"}}}),
            "entities",
        ),
        (
            "entity id",
            sub("urn:s:1", json!({"entities": [{"id": "x", "type": "T"}]})),
            "entities[].id",
        ),
        (
            "entity type expr",
            sub("urn:s:1", json!({"entities": [{"type": "A;;B"}]})),
            "entities[].type",
        ),
        (
            "idPattern",
            sub(
                "urn:s:1",
                json!({"entities": [{"idPattern": "(", "type": "T"}]}),
            ),
            "idPattern",
        ),
        ("q", sub("urn:s:1", json!({"q": "speed>"})), "\"q\""),
        (
            "scopeQ",
            sub("urn:s:1", json!({"scopeQ": "nope"})),
            "scopeQ",
        ),
        ("csf", sub("urn:s:1", json!({"csf": "(("})), "csf"),
        (
            "geoQ",
            sub(
                "urn:s:1",
                json!({"geoQ": {"geometry": "Point", "coordinates": [1, 2], "georel": "far"}}),
            ),
            "geoQ",
        ),
        (
            "geoQ without georel",
            sub(
                "urn:s:1",
                json!({"geoQ": {"geometry": "Point", "coordinates": [1, 2]}}),
            ),
            "georel",
        ),
        (
            "past expiresAt",
            sub("urn:s:1", json!({"expiresAt": "2000-01-01T00:00:00Z"})),
            "expiresAt",
        ),
        (
            "bad expiresAt",
            sub("urn:s:1", json!({"expiresAt": "tomorrow"})),
            "expiresAt",
        ),
        (
            "timeInterval and watchedAttributes",
            sub(
                "urn:s:1",
                json!({"timeInterval": 5, "watchedAttributes": ["speed"]}),
            ),
            "timeInterval",
        ),
        (
            "timeInterval and throttling",
            sub("urn:s:1", json!({"timeInterval": 5, "throttling": 2})),
            "throttling",
        ),
        (
            "negative throttling",
            sub("urn:s:1", json!({"throttling": -1})),
            "throttling",
        ),
        (
            "trigger",
            sub("urn:s:1", json!({"notificationTrigger": ["entityChanged"]})),
            "notificationTrigger",
        ),
        (
            "isActive",
            sub("urn:s:1", json!({"isActive": "yes"})),
            "isActive",
        ),
        (
            "jsonldContext",
            sub("urn:s:1", json!({"jsonldContext": "unknownContext"})),
            "jsonldContext",
        ),
        (
            "no notification",
            json!({"type": "Subscription", "entities": [{"type": "T"}]}),
            "notification",
        ),
        (
            "no endpoint",
            sub_notification(json!({"endpoint": null})),
            "endpoint",
        ),
        (
            "relative uri",
            endpoint(json!({"uri": "/notify"})),
            "endpoint.uri",
        ),
        (
            "ftp uri",
            endpoint(json!({"uri": "ftp://host/x"})),
            "endpoint.uri",
        ),
        (
            "accept",
            endpoint(json!({"uri": "http://a/b", "accept": "text/plain"})),
            "accept",
        ),
        (
            "receiverInfo value",
            endpoint(json!({"uri": "http://a/b", "receiverInfo": [{"key": "K", "value": 42}]})),
            "receiverInfo",
        ),
        (
            "notifierInfo no value",
            endpoint(json!({"uri": "http://a/b", "notifierInfo": [{"key": "K"}]})),
            "notifierInfo",
        ),
        (
            "format",
            sub_notification(json!({"format": "verbose"})),
            "format",
        ),
        (
            "showChanges with keyValues",
            sub_notification(json!({"format": "keyValues", "showChanges": true})),
            "showChanges",
        ),
        (
            "empty attributes",
            sub_notification(json!({"attributes": []})),
            "attributes",
        ),
        ("empty pick", sub_notification(json!({"pick": []})), "pick"),
        (
            "pick and omit same member",
            sub_notification(json!({"pick": ["id"], "omit": ["id"]})),
            "pick",
        ),
        (
            "pick and attributes",
            sub_notification(json!({"pick": ["id"], "attributes": ["speed"]})),
            "attributes",
        ),
    ];
    for (what, body, member) in cases {
        let (s, v) = post(&app, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(
            v["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            "{what}"
        );
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(member), "{what}: {detail:?} names {member}");
    }
    let (s, v, _) = call(&app, "POST", SUBS, JSON, b"{not json".to_vec(), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["type"],
        "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
    );
    let (s, v, _) = call(&app, "GET", &format!("{SUBS}?bogus=1"), None, vec![], &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown parameter: {v}");
    let (s, _) = post(&app, &sub("urn:s:never", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        call(&app, "GET", SUBS, None, vec![], &[])
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(1),
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn subscriptions_round_trip_with_names_compacted_per_reader() {
    let app = app("subs-roundtrip");
    let ctx = json!({"Parking": "https://example.org/Parking", "free": "https://example.org/free"});
    let body = json!({
        "id": "urn:ngsi-ld:Subscription:1",
        "type": "Subscription",
        "subscriptionName": "free spots",
        "entities": [{"type": "Parking|Garage", "idPattern": "^urn:p:.*"}],
        "watchedAttributes": ["free"],
        "q": "free<10",
        "geoQ": {"geometry": "Point", "coordinates": [103.8, 1.29], "georel": "near;maxDistance==500"},
        "isActive": false,
        "expiresAt": "2099-01-01T00:00:00Z",
        "throttling": 5,
        "notificationTrigger": ["entityCreated"],
        "notification": {
            "attributes": ["free"],
            "format": "concise",
            "endpoint": {"uri": "mqtt://broker:1883/city", "accept": "application/ld+json",
                         "receiverInfo": [{"key": "Authorization", "value": "Bearer x"}], "timeout": 500}
        },
        "status": "expired",
        "__internal": "dropped",
        "@context": [ctx, "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"]
    });
    let (s, _, h) = call(&app, "POST", SUBS, LD, body.to_string().into_bytes(), &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        h["location"],
        "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:1"
    );
    let (s, got, _) = call(
        &app,
        "GET",
        &format!("{SUBS}/urn:ngsi-ld:Subscription:1"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Read without the creator's @context: its names come back expanded, the core's short.
    assert_eq!(
        got["entities"][0]["type"],
        "https://example.org/Parking|Garage"
    );
    assert_eq!(
        got["watchedAttributes"],
        json!(["https://example.org/free"])
    );
    assert_eq!(
        got["notification"]["attributes"],
        json!(["https://example.org/free"])
    );
    assert_eq!(
        got["status"], "paused",
        "isActive false pauses; a given status is ignored"
    );
    assert_eq!(got["q"], "free<10");
    assert_eq!(got["throttling"], 5);
    assert_eq!(got["notification"]["endpoint"]["timeout"], 500);
    assert!(
        got.get("__internal").is_none(),
        "unknown members are not kept"
    );
    let implicit = got["jsonldContext"].as_str().unwrap().to_string();
    assert!(
        implicit.contains("/ngsi-ld/v1/jsonldContexts/"),
        "{implicit}"
    );
    let (_, listed, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/jsonldContexts?kind=ImplicitlyCreated",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(
        listed,
        json!([implicit]),
        "the inline @context became ImplicitlyCreated"
    );

    // PATCH replaces the members it names and keeps the others.
    let patch = json!({"isActive": true, "entities": [{"type": "Parking"}], "@context": [ctx]});
    let (s, v, _) = call(
        &app,
        "PATCH",
        &format!("{SUBS}/urn:ngsi-ld:Subscription:1"),
        LD,
        patch.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, got, _) = call(
        &app,
        "GET",
        &format!("{SUBS}/urn:ngsi-ld:Subscription:1"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(got["status"], "active");
    assert_eq!(
        got["entities"],
        json!([{"type": "https://example.org/Parking"}])
    );
    assert_eq!(got["subscriptionName"], "free spots");
    assert_eq!(
        got["jsonldContext"],
        implicit.as_str(),
        "kept across updates"
    );
    let bad_patches = [
        json!({"notification": {"format": "keyValues"}}),
        json!({"notification": null}),
        json!({"expiresAt": "2001-01-01T00:00:00Z"}),
        json!({"timeInterval": 5}),
    ];
    for p in bad_patches {
        let (s, _, _) = call(
            &app,
            "PATCH",
            &format!("{SUBS}/urn:ngsi-ld:Subscription:1"),
            JSON,
            p.to_string().into_bytes(),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    }
    let (_, after, _) = call(
        &app,
        "GET",
        &format!("{SUBS}/urn:ngsi-ld:Subscription:1"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(after, got, "a refused update changes nothing");
}

/// Query string, ids expected, NGSILD-Results-Count expected, Link rels expected.
type PageCase = (
    &'static str,
    Vec<&'static str>,
    Option<&'static str>,
    Vec<&'static str>,
);

#[tokio::test]
async fn ids_tenants_paging_and_deletion() {
    let app = app("subs-paging");
    for i in 0..3 {
        let (s, _) = post(&app, &sub(&format!("urn:s:{i}"), json!({}))).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, v) = post(&app, &sub("urn:s:1", json!({}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["type"],
        "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
    );
    let mut no_id = sub("x", json!({}));
    no_id.as_object_mut().unwrap().remove("id");
    let (s, _, h) = call(
        &app,
        "POST",
        SUBS,
        JSON,
        no_id.to_string().into_bytes(),
        &[("NGSILD-Tenant", "city-b")],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let loc = h["location"].to_str().unwrap();
    assert!(
        loc.starts_with("/ngsi-ld/v1/subscriptions/urn:"),
        "a generated URI: {loc}"
    );

    let cases: Vec<PageCase> = vec![
        ("", vec!["urn:s:0", "urn:s:1", "urn:s:2"], None, vec![]),
        (
            "?limit=1&offset=1&count=true",
            vec!["urn:s:1"],
            Some("3"),
            vec!["next", "prev"],
        ),
        ("?limit=2", vec!["urn:s:0", "urn:s:1"], None, vec!["next"]),
        ("?limit=1&offset=2", vec!["urn:s:2"], None, vec!["prev"]),
    ];
    for (q, want, count, rels) in cases {
        let (s, v, h) = call(&app, "GET", &format!("{SUBS}{q}"), None, vec![], &[]).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        let ids: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, want, "{q}: only the default tenant's, sorted by id");
        assert_eq!(
            h.get("NGSILD-Results-Count").map(|c| c.to_str().unwrap()),
            count,
            "{q}"
        );
        let links: Vec<String> = h
            .get_all("link")
            .iter()
            .map(|l| l.to_str().unwrap().to_string())
            .collect();
        for rel in rels {
            assert!(
                links.iter().any(|l| l.contains(&format!("rel=\"{rel}\""))),
                "{q}: {links:?}"
            );
        }
    }
    let (_, other, _) = call(
        &app,
        "GET",
        SUBS,
        None,
        vec![],
        &[("NGSILD-Tenant", "city-b")],
    )
    .await;
    assert_eq!(
        other.as_array().map(Vec::len),
        Some(1),
        "tenants are isolated"
    );
    for (method, uri) in [
        ("GET", SUBS.to_string()),
        ("GET", format!("{SUBS}/urn:s:0")),
    ] {
        let (s, v, _) = call(
            &app,
            method,
            &uri,
            None,
            vec![],
            &[("NGSILD-Tenant", "nosuch")],
        )
        .await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{method} {uri} on an unknown tenant"
        );
        assert_eq!(
            v["type"],
            "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
        );
    }

    let one = format!("{SUBS}/urn:s:1");
    let checks = [
        ("GET", "/ngsi-ld/v1/subscriptions/notauri", 400),
        ("DELETE", "/ngsi-ld/v1/subscriptions/notauri", 400),
        ("GET", "/ngsi-ld/v1/subscriptions/urn:s:none", 404),
        ("DELETE", "/ngsi-ld/v1/subscriptions/urn:s:none", 404),
        ("PATCH", "/ngsi-ld/v1/subscriptions/", 405),
        ("DELETE", one.as_str(), 204),
        ("GET", one.as_str(), 404),
        ("DELETE", one.as_str(), 404),
    ];
    for (method, uri, want) in checks {
        let (s, _, _) = call(
            &app,
            method,
            uri,
            JSON.filter(|_| method == "PATCH"),
            b"{}"
                .to_vec()
                .into_iter()
                .filter(|_| method == "PATCH")
                .collect(),
            &[],
        )
        .await;
        assert_eq!(s.as_u16(), want, "{method} {uri}");
    }
}
