//! The Temporal API under access policies, as a partner city sees it: only the histories of
//! entities its policies select, only the attributes they open; filters, counts, pages and
//! cuts computed over that alone; writes of attributes not opened refused whole, with nothing
//! written. The operator's view of the same data shows each check could fail.

use std::collections::BTreeSet;
use std::sync::Arc;

use harbor_auth::PolicyBook;
use harbor_http::router;
use serde_json::{json, Value};

use super::policies::key;
use super::{call, state_for, with_api_keys, JSON};

const T: &str = "/ngsi-ld/v1/temporal/entities";
const TENANT: &str = "sg";

/// A broker with API keys and policies, and its operator's key.
pub(super) async fn broker(name: &str, max_instances: usize) -> (axum::Router, String) {
    broker_with(name, max_instances, |s| s).await
}

/// As `broker`, with the state made over by `adjust` first.
pub(super) async fn broker_with(
    name: &str,
    max_instances: usize,
    adjust: impl FnOnce(harbor_http::AppState) -> harbor_http::AppState,
) -> (axum::Router, String) {
    let (mut state, store) = state_for(name, max_instances);
    let [operator] = with_api_keys(
        &mut state,
        store.clone(),
        [("bootstrap", &["operator"][..])],
    )
    .await;
    state.policies = Some(Arc::new(PolicyBook::load(store).await.unwrap()));
    (router(Arc::new(adjust(state))), operator)
}

/// A policy for a test's partner: id, actions, entity selectors, attrs.
pub(super) type PolicyFor<'a> = (&'a str, &'a [&'a str], Value, Option<&'a [&'a str]>);

/// A key of a partner city (a role only in its own tenant) and the policies given for it in
/// `TENANT`.
pub(super) async fn partner(
    app: &axum::Router,
    operator: &str,
    policies: &[PolicyFor<'_>],
) -> String {
    let (text, id) = key(app, operator, &["reader@kl"]).await;
    for (pid, actions, entities, attrs) in policies {
        let mut p = json!({
            "id": pid, "tenant": TENANT, "subjects": [format!("subject:key:{id}")],
            "actions": actions, "entities": entities,
        });
        if let Some(a) = attrs {
            p["attrs"] = json!(a);
        }
        let (s, v, _) = call(
            app,
            "POST",
            "/admin/v1/policies",
            JSON,
            p.to_string().into_bytes(),
            &[("X-API-Key", operator)],
        )
        .await;
        assert_eq!(s, 201, "policy {pid}: {v}");
    }
    text
}

pub(super) async fn send(
    app: &axum::Router,
    key: &str,
    method: &str,
    uri: &str,
    body: Value,
) -> (u16, Value, axum::http::HeaderMap) {
    let body = match body {
        Value::Null => vec![],
        b => b.to_string().into_bytes(),
    };
    let (s, v, h) = call(
        app,
        method,
        uri,
        JSON,
        body,
        &[("X-API-Key", key), ("NGSILD-Tenant", TENANT)],
    )
    .await;
    (s.as_u16(), v, h)
}

pub(super) async fn get(
    app: &axum::Router,
    key: &str,
    uri: &str,
) -> (u16, Value, axum::http::HeaderMap) {
    send(app, key, "GET", uri, Value::Null).await
}

fn instances(values: &[(i64, &str)]) -> Value {
    values
        .iter()
        .map(|(v, at)| json!({"type": "Property", "value": v, "observedAt": format!("2020-01-01T{at}:00Z")}))
        .collect()
}

/// Three car parks and a camera, each with a public `free` and a hidden `secret`; the third
/// car park is deleted (its history stays).
async fn seed(app: &axum::Router, operator: &str) {
    let entities = [
        (
            "urn:p:1",
            "OffStreetParking",
            instances(&[(10, "10:00"), (20, "11:00"), (30, "12:00")]),
            instances(&[(1, "09:00"), (2, "09:10"), (9, "09:20")]),
        ),
        (
            "urn:p:2",
            "OffStreetParking",
            instances(&[(5, "10:00")]),
            instances(&[(9, "10:00")]),
        ),
        (
            "urn:p:3",
            "OffStreetParking",
            instances(&[(1, "10:00")]),
            instances(&[(9, "10:00")]),
        ),
        (
            "urn:c:1",
            "Camera",
            instances(&[(50, "10:00")]),
            instances(&[(9, "10:00")]),
        ),
    ];
    for (id, ty, free, secret) in entities {
        let body = json!({"id": id, "type": ty, "free": free, "secret": secret});
        let (s, v, _) = send(app, operator, "POST", T, body).await;
        assert_eq!(s, 201, "{id}: {v}");
    }
    let (s, v, _) = send(
        app,
        operator,
        "DELETE",
        "/ngsi-ld/v1/entities/urn:p:3",
        Value::Null,
    )
    .await;
    assert_eq!(s, 204, "{v}");
}

/// The members of a temporal entity besides `id` and `type`.
fn members(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap()
        .keys()
        .filter(|k| !matches!(k.as_str(), "id" | "type"))
        .cloned()
        .collect()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn values(v: &Value, attr: &str) -> Vec<Value> {
    v[attr]
        .as_array()
        .map(|l| l.iter().map(|i| i["value"].clone()).collect())
        .unwrap_or_default()
}

fn count(h: &axum::http::HeaderMap) -> Option<&str> {
    h.get("NGSILD-Results-Count").and_then(|c| c.to_str().ok())
}

/// The answer for a missing id, as it reads with `id` in its place.
async fn missing_as(app: &axum::Router, key: &str, uri: &str, id: &str) -> (u16, Value) {
    let (s, v, _) = get(app, key, &uri.replace(id, "urn:nope:1")).await;
    let text = v.to_string().replace("urn:nope:1", id);
    (s, serde_json::from_str(&text).unwrap())
}

/// The car parks' history, `free` only.
async fn parking_reader(app: &axum::Router, operator: &str) -> String {
    partner(
        app,
        operator,
        &[(
            "parking-history",
            &["history"],
            json!([{"type": ["OffStreetParking"]}]),
            Some(&["free"]),
        )],
    )
    .await
}

#[tokio::test]
async fn a_partner_sees_the_history_of_selected_entities_and_opened_attributes_only() {
    let (app, operator) = broker("policy-history-read", 1000).await;
    seed(&app, &operator).await;
    let partner = parking_reader(&app, &operator).await;

    // Retrieve: the opened attribute, nothing else.
    let (s, v, _) = get(&app, &operator, &format!("{T}/urn:p:1")).await;
    assert_eq!(
        (s, members(&v)),
        (200, ["free".into(), "secret".into()].into()),
        "{v}"
    );
    let (s, v, _) = get(&app, &partner, &format!("{T}/urn:p:1")).await;
    assert_eq!((s, members(&v)), (200, ["free".into()].into()), "{v}");
    assert_eq!(values(&v, "free"), [json!(10), json!(20), json!(30)]);
    // A deleted entity's history is selected as the entity was last stored.
    let (s, v, _) = get(&app, &partner, &format!("{T}/urn:p:3")).await;
    assert_eq!((s, members(&v)), (200, ["free".into()].into()), "{v}");
    // An unselected entity, and an attribute not opened, answer as missing ones do.
    let (s, v, _) = get(&app, &operator, &format!("{T}/urn:c:1")).await;
    assert_eq!(s, 200, "{v}");
    for uri in [
        format!("{T}/urn:c:1"),
        format!("{T}/urn:c:1?options=aggregatedValues&aggrMethods=max"),
    ] {
        let (s, v, _) = get(&app, &partner, &uri).await;
        assert_eq!(
            (s, v),
            missing_as(&app, &partner, &uri, "urn:c:1").await,
            "{uri}"
        );
    }
    let (s, _, _) = get(&app, &operator, &format!("{T}/urn:p:1?attrs=secret")).await;
    assert_eq!(s, 200);
    let (s, v, _) = get(&app, &partner, &format!("{T}/urn:p:1?attrs=secret")).await;
    assert_eq!(s, 404, "{v}");
    // lastN and the aggregations see the opened attribute only.
    let (_, v, _) = get(&app, &partner, &format!("{T}/urn:p:1?lastN=1")).await;
    assert_eq!(
        (members(&v), values(&v, "free")),
        (["free".into()].into(), vec![json!(30)])
    );
    let (s, v, _) = get(
        &app,
        &partner,
        &format!("{T}/urn:p:1?options=aggregatedValues&aggrMethods=max"),
    )
    .await;
    assert_eq!((s, members(&v)), (200, ["free".into()].into()), "{v}");
    assert_eq!(v["free"]["max"][0][0], json!(30.0), "{v}");

    // Queries: (query, what the operator gets, what the partner gets). A filter on a hidden
    // attribute matches nothing, and the count is that of what is seen.
    let cases: [(&str, &[&str], &[&str]); 6] = [
        (
            "type=OffStreetParking",
            &["urn:p:1", "urn:p:2", "urn:p:3"],
            &["urn:p:1", "urn:p:2", "urn:p:3"],
        ),
        (
            "type=OffStreetParking,Camera",
            &["urn:c:1", "urn:p:1", "urn:p:2", "urn:p:3"],
            &["urn:p:1", "urn:p:2", "urn:p:3"],
        ),
        (
            "type=OffStreetParking&q=secret==9",
            &["urn:p:1", "urn:p:2"],
            &[],
        ),
        (
            "type=OffStreetParking&q=free%3E4",
            &["urn:p:1", "urn:p:2"],
            &["urn:p:1", "urn:p:2"],
        ),
        (
            "type=OffStreetParking&attrs=secret",
            &["urn:p:1", "urn:p:2", "urn:p:3"],
            &[],
        ),
        (
            "type=OffStreetParking,Camera&options=aggregatedValues&aggrMethods=max",
            &["urn:c:1", "urn:p:1", "urn:p:2", "urn:p:3"],
            &["urn:p:1", "urn:p:2", "urn:p:3"],
        ),
    ];
    for (query, for_operator, for_partner) in cases {
        let uri = format!("{T}?{query}&count=true");
        let (s, v, h) = get(&app, &operator, &uri).await;
        assert_eq!(
            (s, ids(&v)),
            (200, for_operator.iter().map(|i| i.to_string()).collect()),
            "{query}"
        );
        assert_eq!(
            count(&h),
            Some(for_operator.len().to_string().as_str()),
            "{query}"
        );
        let (s, v, h) = get(&app, &partner, &uri).await;
        assert_eq!(
            (s, ids(&v)),
            (200, for_partner.iter().map(|i| i.to_string()).collect()),
            "{query}: {v}"
        );
        assert_eq!(
            count(&h),
            Some(for_partner.len().to_string().as_str()),
            "{query}"
        );
        for e in v.as_array().unwrap() {
            assert!(e.get("secret").is_none(), "{query}: {e}");
        }
    }
    // The same through POST, with the filter in the body.
    let body =
        json!({"type": "Query", "entities": [{"type": "OffStreetParking"}], "q": "secret==9"});
    let uri = "/ngsi-ld/v1/temporal/entityOperations/query?count=true";
    let (_, v, _) = send(&app, &operator, "POST", uri, body.clone()).await;
    assert_eq!(ids(&v), ["urn:p:1", "urn:p:2"], "{v}");
    let (s, v, h) = send(&app, &partner, "POST", uri, body).await;
    assert_eq!((s, ids(&v), count(&h)), (200, vec![], Some("0")), "{v}");

    // Pages and their links agree with what is seen.
    let (_, v, h) = get(
        &app,
        &partner,
        &format!("{T}?type=OffStreetParking,Camera&limit=1&count=true"),
    )
    .await;
    assert_eq!(
        (ids(&v), count(&h)),
        (vec!["urn:p:1".to_string()], Some("3"))
    );
    let next = h
        .get_all("link")
        .iter()
        .map(|l| l.to_str().unwrap())
        .find(|l| l.contains("rel=\"next\""));
    assert!(next.is_some_and(|l| l.contains("offset=1")), "{next:?}");
    let (_, v, h) = get(
        &app,
        &partner,
        &format!("{T}?type=OffStreetParking,Camera&limit=1&offset=2"),
    )
    .await;
    assert_eq!(ids(&v), ["urn:p:3"]);
    let links: Vec<&str> = h
        .get_all("link")
        .iter()
        .map(|l| l.to_str().unwrap())
        .collect();
    assert!(
        links.iter().all(|l| !l.contains("rel=\"next\""))
            && links.iter().any(|l| l.contains("rel=\"prev\"")),
        "the last page: {links:?}"
    );
}

#[tokio::test]
async fn a_page_is_cut_where_the_visible_instances_run_out() {
    // Two instances per attribute at most: the operator's page is cut by `secret` (09:10),
    // the partner's by `free` (11:00), which is all it sees.
    let (app, operator) = broker("policy-history-cut", 2).await;
    seed(&app, &operator).await;
    let partner = parking_reader(&app, &operator).await;
    for (key, range, free) in [
        (
            &operator,
            "date-time 2020-01-01T09:00:00.000Z-2020-01-01T09:10:00.000Z/*",
            vec![],
        ),
        (
            &partner,
            "date-time 2020-01-01T10:00:00.000Z-2020-01-01T11:00:00.000Z/*",
            vec![json!(10), json!(20)],
        ),
    ] {
        for uri in [
            format!("{T}/urn:p:1"),
            format!("{T}?id=urn:p:1&type=OffStreetParking"),
        ] {
            let (s, v, h) = get(&app, key, &uri).await;
            assert_eq!(s, 206, "{uri}: {v}");
            assert_eq!(h["content-range"], range, "{uri}");
            let e = if v.is_array() { &v[0] } else { &v };
            assert_eq!(values(e, "free"), free, "{uri}: {v}");
        }
    }
}

#[tokio::test]
async fn a_history_is_visible_while_the_entity_is_selected_as_it_is_now() {
    let (app, operator) = broker("policy-history-now", 1000).await;
    let partner = partner(
        &app,
        &operator,
        &[("north", &["history"], json!([{"scopeQ": "/north/#"}]), None)],
    )
    .await;
    for (id, scope) in [("urn:s:1", "/north/a"), ("urn:s:2", "/north/b")] {
        let e = json!({"id": id, "type": "Sensor", "scope": scope, "level": {"type": "Property", "value": 1}});
        let (s, v, _) = send(&app, &operator, "POST", "/ngsi-ld/v1/entities", e).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v, _) = get(&app, &partner, &format!("{T}/urn:s:1")).await;
    assert_eq!(
        (s, members(&v)),
        (200, ["level".into(), "scope".into()].into()),
        "{v}"
    );
    // s1 moves south: its past in the north no longer opens its history. s2 is deleted in
    // the north: its history stays open, as the entity last was.
    let patch = json!({"scope": "/south/c"});
    let (s, v, _) = send(
        &app,
        &operator,
        "PATCH",
        "/ngsi-ld/v1/entities/urn:s:1/attrs",
        patch,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v, _) = send(
        &app,
        &operator,
        "DELETE",
        "/ngsi-ld/v1/entities/urn:s:2",
        Value::Null,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let uri = format!("{T}/urn:s:1");
    let (s, v, _) = get(&app, &partner, &uri).await;
    assert_eq!((s, v), missing_as(&app, &partner, &uri, "urn:s:1").await);
    let (s, v, _) = get(&app, &partner, &format!("{T}/urn:s:2")).await;
    assert_eq!(s, 200, "{v}");
    let uri = format!("{T}?type=Sensor&count=true");
    let (_, v, _) = get(&app, &operator, &uri).await;
    assert_eq!(ids(&v), ["urn:s:1", "urn:s:2"]);
    let (_, v, h) = get(&app, &partner, &uri).await;
    assert_eq!(
        (ids(&v), count(&h)),
        (vec!["urn:s:2".to_string()], Some("1"))
    );
    // Its deletion leaves s1 as it last was, in the south.
    let (s, _, _) = send(
        &app,
        &operator,
        "DELETE",
        "/ngsi-ld/v1/entities/urn:s:1",
        Value::Null,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _, _) = get(&app, &partner, &format!("{T}/urn:s:1")).await;
    assert_eq!(s, 404);
}

/// The instance ids of `attr` in the operator's view of `id`, oldest first, and its values.
async fn history_of(
    app: &axum::Router,
    operator: &str,
    id: &str,
    attr: &str,
) -> Vec<(String, Value)> {
    let (s, v, _) = get(app, operator, &format!("{T}/{id}")).await;
    if s == 404 {
        return vec![];
    }
    assert_eq!(s, 200, "{v}");
    v[attr]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|i| {
                    (
                        i["instanceId"].as_str().unwrap().to_string(),
                        i["value"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn temporal_writes_of_what_is_not_opened_are_refused_whole() {
    let (app, operator) = broker("policy-history-write", 1000).await;
    seed(&app, &operator).await;
    let partner = partner(
        &app,
        &operator,
        &[(
            "parking-free",
            &["write"],
            json!([{"type": ["OffStreetParking"]}]),
            Some(&["free"]),
        )],
    )
    .await;
    let everything = |app: axum::Router, operator: String| async move {
        let mut out = Vec::new();
        for id in ["urn:p:1", "urn:p:9", "urn:c:1", "urn:c:9"] {
            for attr in ["free", "secret"] {
                out.push(history_of(&app, &operator, id, attr).await);
            }
            out.push(vec![(
                id.to_string(),
                json!(
                    get(&app, &operator, &format!("/ngsi-ld/v1/entities/{id}"))
                        .await
                        .0
                ),
            )]);
        }
        out
    };
    let p1 = format!("{T}/urn:p:1");
    let secret_instance = history_of(&app, &operator, "urn:p:1", "secret").await[0]
        .0
        .clone();
    let free_instance = history_of(&app, &operator, "urn:p:1", "free").await[0]
        .0
        .clone();
    let one = |v: i64| instances(&[(v, "13:00")]);
    // (what, method, uri, body, status): each refused write is checked to change nothing.
    let refused: Vec<(&str, &str, String, Value, u16)> = vec![
        (
            "add a hidden attribute",
            "POST",
            format!("{p1}/attrs"),
            json!({"secret": one(1)}),
            403,
        ),
        (
            "add an opened and a hidden one",
            "POST",
            format!("{p1}/attrs"),
            json!({"free": one(1), "secret": one(1)}),
            403,
        ),
        (
            "add to an unselected entity",
            "POST",
            format!("{T}/urn:c:1/attrs"),
            json!({"free": one(1)}),
            404,
        ),
        (
            "create an unselected entity",
            "POST",
            T.to_string(),
            json!({"id": "urn:c:9", "type": "Camera", "free": one(1)}),
            403,
        ),
        (
            "create with a hidden attribute",
            "POST",
            T.to_string(),
            json!({"id": "urn:p:9", "type": "OffStreetParking", "secret": one(1)}),
            403,
        ),
        (
            "upsert a hidden attribute",
            "POST",
            T.to_string(),
            json!({"id": "urn:p:1", "type": "OffStreetParking", "secret": one(1)}),
            403,
        ),
        (
            "modify a hidden instance",
            "PATCH",
            format!("{p1}/attrs/secret/{secret_instance}"),
            json!({"value": 0}),
            403,
        ),
        (
            "delete a hidden instance",
            "DELETE",
            format!("{p1}/attrs/secret/{secret_instance}"),
            Value::Null,
            403,
        ),
        (
            "delete a hidden attribute",
            "DELETE",
            format!("{p1}/attrs/secret"),
            Value::Null,
            403,
        ),
        (
            "delete a history with hidden attributes",
            "DELETE",
            p1.clone(),
            Value::Null,
            403,
        ),
        (
            "delete an unselected history",
            "DELETE",
            format!("{T}/urn:c:1"),
            Value::Null,
            404,
        ),
    ];
    for (what, method, uri, body, status) in refused {
        let before = everything(app.clone(), operator.clone()).await;
        let (s, v, _) = send(&app, &partner, method, &uri, body).await;
        assert_eq!(s, status, "{what}: {v}");
        assert_eq!(
            everything(app.clone(), operator.clone()).await,
            before,
            "{what} wrote nothing"
        );
        if status == 404 {
            let (missing, _, _) = send(
                &app,
                &partner,
                method,
                &uri.replace("urn:c:1", "urn:nope:1"),
                json!({"free": one(1)}),
            )
            .await;
            assert_eq!(missing, 404, "{what}: as for a missing one");
            assert_eq!(
                v["detail"].as_str().unwrap(),
                "temporal entity urn:c:1 does not exist",
                "{what}: the words of a missing one"
            );
        }
    }
    // What is opened goes through.
    let (s, v, _) = send(
        &app,
        &partner,
        "POST",
        &format!("{p1}/attrs"),
        json!({"free": one(40)}),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v, _) = send(
        &app,
        &partner,
        "PATCH",
        &format!("{p1}/attrs/free/{free_instance}"),
        json!({"value": 11}),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let free: Vec<Value> = history_of(&app, &operator, "urn:p:1", "free")
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(free, [json!(11), json!(20), json!(30), json!(40)]);
    let new = json!({"id": "urn:p:9", "type": "OffStreetParking", "free": one(3)});
    let (s, v, _) = send(&app, &partner, "POST", T, new).await;
    assert_eq!(s, 201, "{v}");
    let (s, _, _) = get(&app, &operator, "/ngsi-ld/v1/entities/urn:p:9").await;
    assert_eq!(s, 200, "the new temporal entity has its current state");
    let (s, v, _) = send(
        &app,
        &partner,
        "DELETE",
        &format!("{T}/urn:p:9"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, _, _) = get(&app, &operator, "/ngsi-ld/v1/entities/urn:p:9").await;
    assert_eq!(s, 404, "and it goes with it");
    // Writing does not open reading: the partner has no history policy.
    let (s, _, _) = get(&app, &partner, &p1).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn a_written_scope_history_must_keep_the_entity_selected() {
    let (app, operator) = broker("policy-history-scope", 1000).await;
    let partner = partner(
        &app,
        &operator,
        &[("north", &["write"], json!([{"scopeQ": "/north/#"}]), None)],
    )
    .await;
    let e = json!({"id": "urn:s:1", "type": "Sensor", "scope": "/north/a",
                   "level": {"type": "Property", "value": 1}});
    let (s, v, _) = send(&app, &operator, "POST", "/ngsi-ld/v1/entities", e).await;
    assert_eq!(s, 201, "{v}");
    let scopes = || async {
        let (s, v, _) = get(&app, &operator, &format!("{T}/urn:s:1")).await;
        assert_eq!(s, 200, "{v}");
        v["scope"].clone()
    };
    let was = scopes().await;
    let uri = format!("{T}/urn:s:1/attrs");
    let at = |scope: &str, minute: u32| {
        json!({"scope": [{"type": "Property", "value": scope,
                          "observedAt": format!("2020-01-01T10:{minute:02}:00Z")}]})
    };
    let (s, v, _) = send(&app, &partner, "POST", &uri, at("/south/c", 0)).await;
    assert_eq!(s, 403, "a past in the south is outside the policy: {v}");
    assert_eq!(scopes().await, was, "nothing written");
    let (s, v, _) = send(&app, &partner, "POST", &uri, at("/north/b", 1)).await;
    assert_eq!(s, 204, "{v}");
    assert_ne!(scopes().await, was);
}
