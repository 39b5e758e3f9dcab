//! The Temporal API (5.6.11 – 5.7.4): provision and retrieval with timerel / lastN, the
//! current state's changes showing up in the history right after they are acknowledged,
//! history outliving the entity, and bad temporal input answered with a ProblemDetails.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, app_paging_instances_at, call, JSON};

const T: &str = "/ngsi-ld/v1/temporal/entities";
const ID: &str = "urn:ngsi-ld:Vehicle:T1";

fn vehicle() -> Value {
    json!({
        "id": ID,
        "type": "Vehicle",
        "speed": [
            {"type": "Property", "value": 120, "observedAt": "2020-08-01T12:03:00Z"},
            {"type": "Property", "value": 80, "observedAt": "2020-08-01T12:05:00Z"},
            {"type": "Property", "value": 100, "observedAt": "2020-08-01T12:07:00Z"},
        ],
    })
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (s, v, _) = call(app, "GET", uri, None, Vec::new(), &[]).await;
    (s, v)
}

fn values(v: &Value, attr: &str) -> Vec<Value> {
    v[attr]
        .as_array()
        .map(|l| l.iter().map(|i| i["value"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_then_retrieve_with_timerel_and_last_n() {
    let app = app("temporal-create");
    let body = vehicle().to_string().into_bytes();
    let (s, _, h) = call(&app, "POST", T, JSON, body.clone(), &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(h["location"], format!("{T}/{ID}").as_str());
    let (s, _, _) = call(&app, "POST", T, JSON, body, &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "a second create upserts");

    let cases = [
        ("", vec![json!(120), json!(80), json!(100)]),
        (
            "?timerel=after&timeAt=2020-08-01T12:05:00Z",
            vec![json!(80), json!(100)],
        ),
        (
            "?timerel=before&timeAt=2020-08-01T12:05:00Z",
            vec![json!(120)],
        ),
        (
            "?timerel=between&timeAt=2020-08-01T12:04:00Z&endTimeAt=2020-08-01T12:07:00Z",
            vec![json!(80)],
        ),
        ("?lastN=2", vec![json!(80), json!(100)]),
    ];
    for (query, want) in cases {
        let (s, v) = get(&app, &format!("{T}/{ID}{query}")).await;
        assert_eq!(s, StatusCode::OK, "{query}: {v}");
        assert_eq!(values(&v, "speed"), want, "{query}");
        let ids = v["speed"].as_array().unwrap();
        assert!(ids.iter().all(|i| i["instanceId"]
            .as_str()
            .is_some_and(|s| s.starts_with("urn:ngsi-ld:AttributeInstance:"))));
    }
    let (_, v) = get(&app, &format!("{T}/{ID}?options=temporalValues&lastN=1")).await;
    assert_eq!(
        v["speed"],
        json!({"type": "Property", "values": [[100, "2020-08-01T12:07:00Z"]]})
    );
    let (s, v) = get(
        &app,
        &format!("{T}?type=Vehicle&options=aggregatedValues&aggrMethods=max"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["speed"]["max"][0][0], json!(120.0));

    let (s, _, _) = call(&app, "DELETE", &format!("{T}/{ID}"), None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = get(&app, &format!("{T}/{ID}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn current_state_changes_show_up_in_the_history() {
    let app = app("temporal-record");
    let e = json!({"id": "urn:ngsi-ld:Car:1", "type": "Car",
                   "speed": {"type": "Property", "value": 1}});
    let (s, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        e.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let patch = json!({"speed": {"type": "Property", "value": 2}});
    let uri = "/ngsi-ld/v1/entities/urn:ngsi-ld:Car:1/attrs";
    let (s, _, _) = call(
        &app,
        "PATCH",
        uri,
        JSON,
        patch.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let history = format!("{T}/urn:ngsi-ld:Car:1");
    let (s, v) = get(&app, &history).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        values(&v, "speed"),
        [json!(1), json!(2)],
        "the update is in the history at once"
    );

    let (s, _, _) = call(
        &app,
        "DELETE",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Car:1",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = get(&app, &format!("{history}?timeproperty=deletedAt")).await;
    assert_eq!(s, StatusCode::OK, "history outlives the entity");
    assert_eq!(values(&v, "speed"), [json!("urn:ngsi-ld:null")]);
    assert!(v["speed"][0]["deletedAt"].is_string());
}

#[tokio::test]
async fn instances_are_modified_and_deleted_one_by_one() {
    let app = app("temporal-instances");
    call(
        &app,
        "POST",
        T,
        JSON,
        vehicle().to_string().into_bytes(),
        &[],
    )
    .await;
    let (_, v) = get(&app, &format!("{T}/{ID}")).await;
    let first = v["speed"][0]["instanceId"].as_str().unwrap().to_string();
    let uri = format!("{T}/{ID}/attrs/speed/{first}");
    let frag = json!({"type": "Property", "value": 121, "observedAt": "2020-08-01T12:03:00Z"});
    let (s, _, _) = call(
        &app,
        "PATCH",
        &uri,
        JSON,
        frag.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = get(&app, &format!("{T}/{ID}")).await;
    assert_eq!(values(&v, "speed"), [json!(121), json!(80), json!(100)]);
    assert_eq!(
        v["speed"][0]["instanceId"],
        first.as_str(),
        "the instance keeps its id"
    );
    let (s, _, _) = call(&app, "DELETE", &uri, None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = call(&app, "DELETE", &uri, None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let add =
        json!({"fuel": [{"type": "Property", "value": 9, "observedAt": "2020-08-01T12:00:00Z"}]});
    let attrs = format!("{T}/{ID}/attrs");
    let (s, _, _) = call(
        &app,
        "POST",
        &attrs,
        JSON,
        add.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = call(&app, "DELETE", &format!("{attrs}/speed"), None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = get(&app, &format!("{T}/{ID}")).await;
    assert!(v.get("speed").is_none() && v.get("fuel").is_some(), "{v}");
}

#[tokio::test]
async fn bad_temporal_input_is_a_problem_naming_it() {
    let app = app("temporal-bad");
    let no_time = json!({"id": ID, "type": "Vehicle", "speed": [{"type": "Property", "value": 1}]});
    let (s, v, _) = call(&app, "POST", T, JSON, no_time.to_string().into_bytes(), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("observedAt"), "{v}");
    call(
        &app,
        "POST",
        T,
        JSON,
        vehicle().to_string().into_bytes(),
        &[],
    )
    .await;
    let cases = [
        ("?timerel=between&timeAt=2020-08-01T12:00:00Z", "endTimeAt"),
        ("?timerel=after&timeAt=yesterday", "timeAt"),
        ("?timerel=during&timeAt=2020-08-01T12:00:00Z", "timerel"),
        ("?timeproperty=expiresAt", "timeproperty"),
        ("?lastN=0", "lastN"),
        ("?options=aggregatedValues", "aggrMethods"),
        ("?options=aggregatedValues&aggrMethods=bogus", "bogus"),
        ("?bogus=1", "bogus"),
    ];
    for (query, want) in cases {
        let (s, v) = get(&app, &format!("{T}/{ID}{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(want), "{query}: {v}");
    }
}

#[tokio::test]
async fn aggregation_reads_every_instance_not_one_page() {
    let app = app("temporal-aggregate-all");
    // 1,500 instances, one a minute: more than one page (1,000) of instances.
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let instances: Vec<Value> = (0..1500)
        .map(|i| {
            let at = base + chrono::Duration::minutes(i);
            json!({"type": "Property", "value": i % 7, "observedAt": at.format("%Y-%m-%dT%H:%M:%SZ").to_string()})
        })
        .collect();
    for (n, chunk) in instances.chunks(300).enumerate() {
        let (s, v, _) = if n == 0 {
            let body = json!({"id": ID, "type": "Vehicle", "speed": chunk});
            call(&app, "POST", T, JSON, body.to_string().into_bytes(), &[]).await
        } else {
            let body = json!({"speed": chunk}).to_string().into_bytes();
            call(&app, "POST", &format!("{T}/{ID}/attrs"), JSON, body, &[]).await
        };
        assert!(s.is_success(), "{v}");
    }
    let (s, v) = get(
        &app,
        &format!(
            "{T}/{ID}?options=aggregatedValues&aggrMethods=totalCount,sum&timerel=after&timeAt=2025-12-31T00:00:00Z"
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let total = &v["speed"]["totalCount"][0][0];
    let sum = &v["speed"]["sum"][0][0];
    let expected_sum: i64 = (0..1500).map(|i| i % 7).sum();
    assert_eq!(total.as_f64(), Some(1500.0), "{v}");
    assert_eq!(sum.as_f64(), Some(expected_sum as f64), "{v}");
}

/// Creates a temporal Vehicle whose `speed` has one instance a minute from `first`.
async fn vehicle_with_speeds(app: &axum::Router, id: &str, first: &str, n: i64) {
    let base = chrono::DateTime::parse_from_rfc3339(first).unwrap();
    let speeds: Vec<Value> = (0..n)
        .map(|i| {
            let at = base + chrono::Duration::minutes(i);
            json!({"type": "Property", "value": i, "observedAt": at.format("%Y-%m-%dT%H:%M:%SZ").to_string()})
        })
        .collect();
    let body = json!({"id": id, "type": "Vehicle", "speed": speeds});
    let (s, v, _) = call(app, "POST", T, JSON, body.to_string().into_bytes(), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn one_cut_pages_every_entity_of_a_temporal_query() {
    // At most 3 instances per attribute: A (5 instances in January) is cut, and B (in
    // September) lies wholly after the cut, so the page covers one range for both.
    let app = app_paging_instances_at("temporal-page-cut", 3);
    vehicle_with_speeds(&app, "urn:ngsi-ld:Vehicle:A", "2020-01-01T00:00:00Z", 5).await;
    vehicle_with_speeds(&app, "urn:ngsi-ld:Vehicle:B", "2020-09-01T00:00:00Z", 2).await;
    let cases = [
        (
            "?type=Vehicle",
            "date-time 2020-01-01T00:00:00.000Z-2020-01-01T00:02:00.000Z/*",
            vec![json!(0), json!(1), json!(2)],
            Vec::<Value>::new(),
        ),
        (
            // Backwards: B is newest and whole, A keeps its instances from the cut on.
            "?type=Vehicle&lastN=4",
            "date-time 2020-09-01T00:01:00.000Z-2020-01-01T00:02:00.000Z/4",
            vec![json!(2), json!(3), json!(4)],
            vec![json!(0), json!(1)],
        ),
    ];
    for (query, range, a, b) in cases {
        let (s, v, h) = call(&app, "GET", &format!("{T}{query}"), None, vec![], &[]).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT, "{query}: {v}");
        assert_eq!(h["content-range"], range, "{query}");
        assert_eq!(values(&v[0], "speed"), a, "{query}: {v}");
        assert_eq!(values(&v[1], "speed"), b, "{query}: {v}");
        assert!(
            v[1]["speed"].is_array(),
            "an attribute cut away stays, empty: {v}"
        );
    }
    let (_, v, _) = call(
        &app,
        "GET",
        &format!("{T}?type=Vehicle&options=temporalValues"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(
        v[1]["speed"],
        json!({"type": "Property", "values": []}),
        "{v}"
    );
    let (s, _, h) = call(
        &app,
        "GET",
        &format!("{T}?type=Vehicle&lastN=2"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "lastN within the limit is the whole answer"
    );
    assert!(h.get("content-range").is_none());
}

#[tokio::test]
async fn temporal_q_expands_values_and_refuses_linked_entities() {
    let app = app("temporal-q");
    let shop = json!({"id": "urn:ngsi-ld:Shop:1", "type": "Shop",
                      "category": {"type": "VocabProperty", "vocab": "commercial"}});
    let (s, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        shop.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let ids = |v: &Value| -> Vec<Value> {
        v.as_array()
            .map(|l| l.iter().map(|e| e["id"].clone()).collect())
            .unwrap_or_default()
    };
    let q = "?type=Shop&q=category%3D%3Dcommercial";
    let (s, v) = get(&app, &format!("{T}{q}&expandValues=category")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), [json!("urn:ngsi-ld:Shop:1")], "{v}");
    let (_, v) = get(&app, &format!("{T}{q}")).await;
    assert!(
        ids(&v).is_empty(),
        "without expandValues the term stays a literal: {v}"
    );

    let (s, v) = get(
        &app,
        &format!("{T}?type=Shop&q=owner%7Bname%7D%3D%3D%22x%22"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("Linked"), "{v}");
}

async fn send(app: &axum::Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let (s, v, _) = call(app, method, uri, JSON, body.to_string().into_bytes(), &[]).await;
    (s, v)
}

#[tokio::test]
async fn the_scope_is_recorded_as_a_temporal_property() {
    let app = app("temporal-scope-core");
    let id = "urn:ngsi-ld:Car:S";
    let e = json!({"id": id, "type": "Car", "scope": "/Old",
                   "speed": {"type": "Property", "value": 1}});
    let (s, v) = send(&app, "POST", "/ngsi-ld/v1/entities", e).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let patch = json!({"type": "Car", "scope": "/New"});
    let (s, v) = send(&app, "PATCH", &format!("/ngsi-ld/v1/entities/{id}"), patch).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    let (s, v) = get(&app, &format!("{T}/{id}?options=sysAttrs")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(values(&v, "scope"), [json!("/Old"), json!("/New")], "{v}");
    let new = &v["scope"][1];
    assert_eq!(new["type"], "Property");
    let instant = |k: &str| chrono::DateTime::parse_from_rfc3339(new[k].as_str().unwrap()).unwrap();
    assert_eq!(
        instant("observedAt"),
        instant("modifiedAt"),
        "4.5.6: observedAt copies modifiedAt: {new}"
    );

    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("/ngsi-ld/v1/entities/{id}/attrs/scope"),
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = get(&app, &format!("{T}/{id}?timeproperty=deletedAt")).await;
    assert_eq!(
        values(&v, "scope"),
        [json!([])],
        "a deleted scope is no scope: {v}"
    );
    assert!(v["scope"][0]["deletedAt"].is_string(), "{v}");
    assert!(
        v.get("speed").is_none(),
        "only deletions have a deletedAt: {v}"
    );
}

#[tokio::test]
async fn scope_q_looks_at_the_scope_held_within_the_window() {
    let app = app("temporal-scope-q");
    let inst = |v: &str, t: &str| json!({"type": "Property", "value": v, "observedAt": t});
    // /R holds from 10:00, /S from 12:30; one speed under each.
    let rep = json!({"id": "urn:ngsi-ld:Car:rep", "type": "Car",
        "scope": [inst("/R", "2026-03-01T10:00:00Z"), inst("/S", "2026-03-01T12:30:00Z")],
        "speed": [inst("old", "2026-03-01T12:15:00Z"), inst("new", "2026-03-01T12:45:00Z")]});
    // /Z is set only after the window.
    let late = json!({"id": "urn:ngsi-ld:Car:late", "type": "Car",
        "scope": [inst("/Z", "2026-03-01T14:00:00Z")],
        "speed": [inst("late", "2026-03-01T12:05:00Z")]});
    for e in [rep, late] {
        let (s, v) = send(&app, "POST", T, e).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let window = "timerel=between&timeAt=2026-03-01T12:00:00Z&endTimeAt=2026-03-01T13:00:00Z";
    let cases = [
        ("/R", vec![("urn:ngsi-ld:Car:rep", vec![json!("old")])]),
        ("/S", vec![("urn:ngsi-ld:Car:rep", vec![json!("new")])]),
        ("/Z", vec![]),
        (
            "/%23",
            vec![("urn:ngsi-ld:Car:rep", vec![json!("old"), json!("new")])],
        ),
    ];
    for (scope_q, want) in cases {
        let (s, v) = get(&app, &format!("{T}?type=Car&scopeQ={scope_q}&{window}")).await;
        assert_eq!(s, StatusCode::OK, "{scope_q}: {v}");
        let got: Vec<(&str, Vec<Value>)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_str().unwrap(), values(e, "speed")))
            .collect();
        assert_eq!(got, want, "{scope_q}: {v}");
    }
    // The scope that held when the window opened is part of the answer.
    let (_, v) = get(&app, &format!("{T}/urn:ngsi-ld:Car:rep?{window}")).await;
    assert_eq!(values(&v, "scope"), [json!("/R"), json!("/S")], "{v}");
}

#[tokio::test]
async fn a_new_temporal_entity_comes_with_its_current_state() {
    let app = app("temporal-current");
    let id = "urn:ngsi-ld:Car:C";
    let e = json!({"id": id, "type": "Car",
        "fuel": [
            {"type": "Property", "value": 67, "observedAt": "2020-08-01T12:03:00Z"},
            {"type": "Property", "value": 53, "observedAt": "2020-08-01T13:05:00Z"},
        ],
        "name": [{"type": "LanguageProperty", "languageMap": {"en": "My car"},
                  "observedAt": "2020-08-01T12:00:00Z"}]});
    let (s, v) = send(&app, "POST", T, e).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = get(&app, &format!("/ngsi-ld/v1/entities/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["fuel"]["value"], 53,
        "the current state is the latest instance: {v}"
    );
    let (_, v) = get(&app, &format!("{T}/{id}")).await;
    assert_eq!(
        values(&v, "fuel"),
        [json!(67), json!(53)],
        "each instance once: {v}"
    );

    for attr in ["fuel", "name"] {
        let uri = format!("/ngsi-ld/v1/entities/{id}/attrs/{attr}");
        let (s, _, _) = call(&app, "DELETE", &uri, None, vec![], &[]).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{attr}");
    }
    let (_, v) = get(&app, &format!("{T}/{id}?timeproperty=deletedAt")).await;
    assert_eq!(values(&v, "fuel"), [json!("urn:ngsi-ld:null")], "{v}");
    assert_eq!(
        v["name"][0]["languageMap"],
        json!({"@none": "urn:ngsi-ld:null"}),
        "5.2.1: a deleted LanguageProperty: {v}"
    );

    // Deleting the temporal representation deletes the Entity, current state included.
    let (s, _, _) = call(&app, "DELETE", &format!("{T}/{id}"), None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = get(&app, &format!("/ngsi-ld/v1/entities/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&app, &format!("{T}/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no history is left behind");
}

#[tokio::test]
async fn deleting_history_never_deletes_a_live_entity() {
    let app = app("temporal-live");
    let id = "urn:ngsi-ld:Car:Live";
    let e = json!({"id": id, "type": "Car", "fuel": {"type": "Property", "value": 40}});
    let (s, v) = send(&app, "POST", "/ngsi-ld/v1/entities", e).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = get(&app, &format!("{T}/{id}")).await;
    assert_eq!(s, StatusCode::OK, "the creation is recorded: {v}");
    let (s, _, _) = call(&app, "DELETE", &format!("{T}/{id}"), None, vec![], &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = get(&app, &format!("{T}/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the history is gone");
    let (s, v) = get(&app, &format!("/ngsi-ld/v1/entities/{id}")).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "an entity created through the core API stays: {v}"
    );
    assert_eq!(v["fuel"]["value"], 40, "{v}");
}

#[tokio::test]
async fn temporal_q_sees_the_latest_instance_of_every_dataset() {
    let app = app("temporal-q-datasets");
    let at = "2026-03-01T12:05:00Z";
    let e = json!({"id": "urn:ngsi-ld:Car:M", "type": "Car", "speed": [
        {"type": "Property", "value": 5, "observedAt": at},
        {"type": "Property", "value": 60, "observedAt": at, "datasetId": "urn:ngsi-ld:Dataset:a"},
    ]});
    let (s, v) = send(&app, "POST", T, e).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for q in ["speed%3E50", "speed%3C10"] {
        let (s, v) = get(&app, &format!("{T}?type=Car&q={q}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{q}: {v}");
    }
}

#[tokio::test]
async fn id_type_and_q_select_together() {
    let app = app("temporal-select");
    // Speeds 0..n-1: the latest is n-1.
    vehicle_with_speeds(&app, "urn:ngsi-ld:Vehicle:slow", "2020-08-01T12:00:00Z", 3).await;
    vehicle_with_speeds(&app, "urn:ngsi-ld:Vehicle:fast", "2020-08-01T12:00:00Z", 9).await;
    vehicle_with_speeds(
        &app,
        "urn:ngsi-ld:Vehicle:faster",
        "2020-08-01T12:00:00Z",
        12,
    )
    .await;
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, v) = get(&app, &format!("{T}?type=Vehicle&q=speed%3E5")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        ids(&v),
        ["urn:ngsi-ld:Vehicle:fast", "urn:ngsi-ld:Vehicle:faster"],
        "q on the latest state, within the type"
    );
    let (_, v) = get(
        &app,
        &format!("{T}?id=urn:ngsi-ld:Vehicle:faster,urn:ngsi-ld:Vehicle:slow,urn:ngsi-ld:Vehicle:none&q=speed%3E5"),
    )
    .await;
    assert_eq!(ids(&v), ["urn:ngsi-ld:Vehicle:faster"], "ids, then q: {v}");
    let (_, v) = get(&app, &format!("{T}?type=Car&q=speed%3E5")).await;
    assert_eq!(ids(&v), Vec::<String>::new(), "no entity of that type: {v}");
    let (_, v) = get(&app, &format!("{T}?idPattern=.*:fast.*&q=speed%3C10")).await;
    assert_eq!(
        ids(&v),
        ["urn:ngsi-ld:Vehicle:fast"],
        "idPattern, then q: {v}"
    );
}
