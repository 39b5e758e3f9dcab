//! Context Source Registrations (5.9, 5.10) and subscriptions to them (5.11): round trips
//! with name expansion and compaction, tenants, paging, merge updates, conflicts, and every
//! refused input answered with a ProblemDetails naming the member.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, call, parking, JSON};

const REGS: &str = "/ngsi-ld/v1/csourceRegistrations";
const CSUBS: &str = "/ngsi-ld/v1/csourceSubscriptions";

/// A valid registration with the member `extra` merged in at the top level.
fn reg(id: &str, extra: Value) -> Value {
    let mut r = json!({
        "id": id,
        "type": "ContextSourceRegistration",
        "information": [{
            "entities": [{"type": "OffStreetParking"}],
            "propertyNames": ["availableSpotNumber"]
        }],
        "endpoint": "http://cs.example.org:1026"
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut r, extra) {
        o.extend(e);
    }
    r
}

async fn send(app: &axum::Router, method: &str, uri: &str, body: &Value) -> (StatusCode, Value) {
    let (s, v, _) = call(app, method, uri, JSON, body.to_string().into_bytes(), &[]).await;
    (s, v)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value, axum::http::HeaderMap) {
    call(app, "GET", uri, None, Vec::new(), &[]).await
}

#[tokio::test]
async fn invalid_registrations_are_refused_naming_the_member() {
    let app = app("regs-invalid");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong type",
            reg("urn:r:1", json!({"type": "Building"})),
            "type",
        ),
        ("id not a URI", reg("nope", json!({})), "id"),
        (
            "no information",
            json!({"type": "ContextSourceRegistration", "endpoint": "http://a.b"}),
            "information",
        ),
        (
            "empty information",
            reg("urn:r:1", json!({"information": []})),
            "information",
        ),
        (
            "entity without type",
            reg(
                "urn:r:1",
                json!({"information": [{"entities": [{"id": "urn:x:1"}]}]}),
            ),
            "information[].entities[].type",
        ),
        (
            "endpoint",
            reg("urn:r:1", json!({"endpoint": "not a uri"})),
            "endpoint",
        ),
        (
            "expiresAt past",
            reg("urn:r:1", json!({"expiresAt": "2001-01-01T00:00:00Z"})),
            "expiresAt",
        ),
        (
            "expiresAt malformed",
            reg("urn:r:1", json!({"expiresAt": "soon"})),
            "expiresAt",
        ),
        ("mode", reg("urn:r:1", json!({"mode": "sometimes"})), "mode"),
        (
            "operations",
            reg("urn:r:1", json!({"operations": ["fly"]})),
            "operations",
        ),
        (
            "location",
            reg(
                "urn:r:1",
                json!({"location": {"type": "Point", "coordinates": [1]}}),
            ),
            "location",
        ),
        (
            "observationInterval",
            reg("urn:r:1", json!({"observationInterval": {"startAt": "x"}})),
            "observationInterval.startAt",
        ),
        (
            "management",
            reg("urn:r:1", json!({"management": {"cooldown": 0}})),
            "management.cooldown",
        ),
        (
            "auxiliary writes",
            reg(
                "urn:r:1",
                json!({"mode": "auxiliary", "operations": ["updateOps"]}),
            ),
            "operations",
        ),
        (
            "exclusive by type",
            reg("urn:r:1", json!({"mode": "exclusive"})),
            "information[].entities[].id",
        ),
    ];
    for (what, body, member) in cases {
        let (s, v) = send(&app, "POST", REGS, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(
            v["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            "{what}"
        );
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(member), "{what}: {detail:?} names {member}");
    }
    let (s, v, _) = get(&app, REGS).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a query names a filter: {v}");
    let (s, v, _) = get(&app, &format!("{REGS}?type=T&georel=within")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "half a geo-query: {v}");
}

#[tokio::test]
async fn registrations_round_trip_page_update_and_delete() {
    let app = app("regs-crud");
    let (s, _, h) = call(
        &app,
        "POST",
        REGS,
        JSON,
        reg(
            "urn:r:a",
            json!({"expiresAt": "2099-01-01T00:00:00Z", "brand": "acme"}),
        )
        .to_string()
        .into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(h["location"], format!("{REGS}/urn:r:a"));
    let (s, _) = send(&app, "POST", REGS, &reg("urn:r:a", json!({}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "the id is taken");
    let mut no_id = reg("x", json!({}));
    no_id.as_object_mut().unwrap().remove("id");
    let (s, _, h) = call(
        &app,
        "POST",
        REGS,
        JSON,
        no_id.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let loc = h["location"].to_str().unwrap();
    assert!(
        loc.starts_with(&format!("{REGS}/urn:ngsi-ld:ContextSourceRegistration:")),
        "{loc}"
    );

    let (s, got, _) = get(&app, &format!("{REGS}/urn:r:a")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        got["information"],
        reg("urn:r:a", json!({}))["information"],
        "names compact back"
    );
    assert_eq!(got["expiresAt"], "2099-01-01T00:00:00Z");
    assert_eq!(got["mode"], "inclusive");
    assert_eq!(got["operations"], json!(["federationOps"]));
    assert_eq!(got["brand"], "acme");

    let (s, v, h) = get(
        &app,
        &format!("{REGS}?type=OffStreetParking&limit=1&count=true"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(h["NGSILD-Results-Count"], "2");
    assert!(
        h.get_all("link")
            .iter()
            .any(|l| l.to_str().unwrap().contains("rel=\"next\"")),
        "{h:?}"
    );
    let (_, v, _) = get(&app, &format!("{REGS}?type=Building")).await;
    assert_eq!(v, json!([]), "type filter");
    let (_, v, _) = get(&app, &format!("{REGS}?attrs=availableSpotNumber")).await;
    assert_eq!(v.as_array().unwrap().len(), 2, "attrs filter");
    let (s, v) = send(
        &app,
        "POST",
        REGS,
        &reg("urn:r:m", json!({"scope": "/Madrid/Centro"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v, _) = get(
        &app,
        &format!("{REGS}?type=OffStreetParking&scopeQ=/Madrid/%23"),
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "scopeQ filter: {v}");
    assert_eq!(v[0]["id"], "urn:r:m");
    let (s, _) = send(&app, "DELETE", &format!("{REGS}/urn:r:m"), &json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, v) = send(
        &app,
        "PATCH",
        &format!("{REGS}/urn:r:a"),
        &json!({"expiresAt": null, "endpoint": "http://new.example.org"}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, got, _) = get(&app, &format!("{REGS}/urn:r:a")).await;
    assert_eq!(got["endpoint"], "http://new.example.org");
    assert!(got.get("expiresAt").is_none(), "null removes");
    let (s, v) = send(
        &app,
        "PATCH",
        &format!("{REGS}/urn:r:a"),
        &json!({"mode": "never"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = send(
        &app,
        "PATCH",
        &format!("{REGS}/urn:r:none"),
        &json!({"endpoint": "http://x.y"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, _, _) = call(
        &app,
        "GET",
        &format!("{REGS}/urn:r:a"),
        None,
        Vec::new(),
        &[("NGSILD-Tenant", "city-b")],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "tenants are isolated");

    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("{REGS}/urn:r:a"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("{REGS}/urn:r:a"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn redirect_and_exclusive_registrations_conflict() {
    let app = app("regs-conflict");
    let (s, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking("urn:ngsi-ld:OffStreetParking:1", 3)
            .to_string()
            .into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let over = |mode: &str, id: &str, attr: &str| {
        reg(
            "urn:r:x",
            json!({
                "mode": mode,
                "information": [{"entities": [{"id": id, "type": "OffStreetParking"}], "propertyNames": [attr]}]
            }),
        )
    };
    let cases = [
        (
            "exclusive over a held attribute",
            over(
                "exclusive",
                "urn:ngsi-ld:OffStreetParking:1",
                "availableSpotNumber",
            ),
            StatusCode::CONFLICT,
        ),
        (
            "exclusive over another attribute",
            over("exclusive", "urn:ngsi-ld:OffStreetParking:1", "other"),
            StatusCode::CREATED,
        ),
        (
            "redirect overlapping an exclusive",
            over("redirect", "urn:ngsi-ld:OffStreetParking:1", "other"),
            StatusCode::CONFLICT,
        ),
        (
            "inclusive may overlap",
            over("inclusive", "urn:ngsi-ld:OffStreetParking:1", "other"),
            StatusCode::CREATED,
        ),
    ];
    for (i, (what, mut body, want)) in cases.into_iter().enumerate() {
        body["id"] = json!(format!("urn:r:{i}"));
        let (s, v) = send(&app, "POST", REGS, &body).await;
        assert_eq!(s, want, "{what}: {v}");
        if want == StatusCode::CONFLICT {
            assert_eq!(
                v["type"], "https://uri.etsi.org/ngsi-ld/errors/Conflict",
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn registration_subscriptions_live_apart_from_entity_subscriptions() {
    let app = app("csubs");
    let sub = json!({
        "id": "urn:ngsi-ld:Subscription:c1",
        "type": "Subscription",
        "entities": [{"type": "OffStreetParking"}],
        "expiresAt": "2099-01-01T00:00:00Z",
        "notification": {"endpoint": {"uri": "http://localhost:9999/notify"}}
    });
    let (s, v) = send(&app, "POST", CSUBS, &sub).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = send(
        &app,
        "POST",
        CSUBS,
        &json!({"type": "Subscription", "notification": {}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, _) = get(
        &app,
        "/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:c1",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not an entity subscription");
    let (s, got, _) = get(&app, &format!("{CSUBS}/urn:ngsi-ld:Subscription:c1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["entities"], sub["entities"]);
    assert_eq!(got["expiresAt"], "2099-01-01T00:00:00Z");
    assert!(got.get("notificationTrigger").is_none());
    let (s, _) = send(
        &app,
        "PATCH",
        &format!("{CSUBS}/urn:ngsi-ld:Subscription:c1"),
        &json!({"isActive": false}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v, _) = get(&app, CSUBS).await;
    assert_eq!(v[0]["status"], "paused");
    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("{CSUBS}/urn:ngsi-ld:Subscription:c1"),
        None,
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v, _) = get(&app, CSUBS).await;
    assert_eq!(v, json!([]));
}

#[tokio::test]
async fn a_registration_without_entities_matches_by_its_attributes() {
    let app = app("csr-no-entities");
    let only_attrs = json!({
        "id": "urn:ngsi-ld:ContextSourceRegistration:attrs-only",
        "type": "ContextSourceRegistration",
        "information": [{"propertyNames": ["name", "subCategory"]}],
        "endpoint": "http://cs.example.org:1026"
    });
    let (s, v) = send(&app, "POST", REGS, &only_attrs).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("a list: {v}"))
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    // It offers those attributes of any entity: every type and id selects it (037_05_02).
    for q in [
        "type=OffStreetParking&idPattern=.*downtown$",
        "type=Building",
        "id=urn:ngsi-ld:Building:1",
        "attrs=name",
    ] {
        let (s, v, _) = get(&app, &format!("{REGS}?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(
            ids(&v),
            ["urn:ngsi-ld:ContextSourceRegistration:attrs-only"],
            "{q}"
        );
    }
    // An attribute it does not list does not.
    let (_, v, _) = get(&app, &format!("{REGS}?attrs=speed")).await;
    assert!(ids(&v).is_empty(), "{v}");
}

#[tokio::test]
async fn every_operation_and_group_of_4_20_is_accepted_and_others_are_named() {
    let app = app("csr-operations");
    // Tables 4.20-1 and 4.20-2 of V1.9.1.
    let names = [
        "createEntity",
        "updateEntity",
        "appendAttrs",
        "updateAttrs",
        "deleteAttrs",
        "deleteEntity",
        "createBatch",
        "upsertBatch",
        "updateBatch",
        "deleteBatch",
        "upsertTemporal",
        "appendAttrsTemporal",
        "deleteAttrsTemporal",
        "updateAttrInstanceTemporal",
        "deleteAttrInstanceTemporal",
        "deleteTemporal",
        "mergeEntity",
        "replaceEntity",
        "replaceAttrs",
        "mergeBatch",
        "purgeEntity",
        "retrieveEntity",
        "queryEntity",
        "queryBatch",
        "retrieveTemporal",
        "queryTemporal",
        "retrieveEntityTypes",
        "retrieveEntityTypeDetails",
        "retrieveEntityTypeInfo",
        "retrieveAttrTypes",
        "retrieveAttrTypeDetails",
        "retrieveAttrTypeInfo",
        "createSubscription",
        "updateSubscription",
        "retrieveSubscription",
        "querySubscription",
        "deleteSubscription",
        "retrieveEntityMap",
        "updateEntityMap",
        "deleteEntityMap",
        "createEntityMapQueryEntity",
        "createEntityMapQueryTemporal",
        "retrieveContextSourceIdentity",
        "federationOps",
        "associationOps",
        "updateOps",
        "retrieveOps",
        "redirectionOps",
    ];
    for (i, op) in names.iter().enumerate() {
        let id = format!("urn:ngsi-ld:ContextSourceRegistration:op-{i}");
        let (s, v) = send(&app, "POST", REGS, &reg(&id, json!({"operations": [op]}))).await;
        assert_eq!(s, StatusCode::CREATED, "{op}: {v}");
    }
    for op in [
        "fly",
        "updateAttrsTemporal",
        "purgeEntities",
        "FederationOps",
    ] {
        let r = reg(
            "urn:ngsi-ld:ContextSourceRegistration:bad",
            json!({"operations": [op]}),
        );
        let (s, v) = send(&app, "POST", REGS, &r).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{op}: {v}");
        assert_eq!(
            v["type"],
            "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
        );
        assert!(
            v["detail"].as_str().unwrap().contains(&format!("\"{op}\"")),
            "{v}"
        );
    }
}
