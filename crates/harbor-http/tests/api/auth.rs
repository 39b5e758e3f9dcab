//! Identity at the edge with API keys: who may do what, answered as a client sees it — 401 with
//! `WWW-Authenticate` for no or a bad credential, 403 for a missing right, keys that stop
//! working the moment they are revoked.

use std::sync::Arc;

use harbor_http::router;
use serde_json::json;

use super::{call, parking, state_for, with_api_keys, JSON};

/// A broker with `auth = apikey`, and an operator key made outside the API (as `infoharbor
/// keys create --data-dir` does for the first key).
async fn secured(name: &str) -> (axum::Router, String) {
    let (mut state, store) = state_for(name, 1000);
    let [operator] = with_api_keys(&mut state, store, [("bootstrap", &["operator"][..])]).await;
    (router(Arc::new(state)), operator)
}

async fn make_key(app: &axum::Router, operator: &str, grants: &[&str]) -> String {
    let (status, body, _) = call(
        app,
        "POST",
        "/admin/v1/keys",
        JSON,
        json!({"name": "test key", "grants": grants})
            .to_string()
            .into_bytes(),
        &[("X-API-Key", operator)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn no_credential_or_a_bad_one_gets_401_with_a_challenge() {
    let (app, _) = secured("auth-401").await;
    for headers in [
        vec![],
        vec![("X-API-Key", "ihk_000000000000_nope")],
        vec![("Authorization", "Bearer ihk_000000000000_nope")],
        vec![("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")],
        vec![("Authorization", "Basic dXNlcjpwYXNz")],
    ] {
        let (status, body, h) = call(
            &app,
            "GET",
            "/ngsi-ld/v1/entities?type=T",
            None,
            vec![],
            &headers,
        )
        .await;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert!(
            h["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm="),
            "{h:?}"
        );
        assert_eq!(body["title"], "Unauthorized");
        assert!(body["detail"].as_str().unwrap().len() > 10, "{body}");
    }
    // Liveness needs nothing.
    let (status, _, _) = call(&app, "GET", "/health", None, vec![], &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_anonymous_purge_of_a_type_is_refused() {
    let (app, operator) = secured("auth-purge").await;
    let writer = make_key(&app, &operator, &["writer"]).await;
    let (status, _, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking("urn:ngsi-ld:OffStreetParking:1", 3)
            .to_string()
            .into_bytes(),
        &[("X-API-Key", &writer)],
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, _) = call(
        &app,
        "DELETE",
        "/ngsi-ld/v1/entities?type=OffStreetParking",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(status, 401);
    // A writer may not purge either: that is managing the tenant.
    let (status, body, _) = call(
        &app,
        "DELETE",
        "/ngsi-ld/v1/entities?type=OffStreetParking",
        None,
        vec![],
        &[("X-API-Key", &writer)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("may not manage"),
        "{body}"
    );
    let (status, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities/urn:ngsi-ld:OffStreetParking:1",
        None,
        vec![],
        &[("X-API-Key", &writer)],
    )
    .await;
    assert_eq!(status, 200, "the entity is still there");
}

#[tokio::test]
async fn roles_hold_in_their_own_tenant_only() {
    let (app, operator) = secured("auth-roles").await;
    let reader_a = make_key(&app, &operator, &["reader@city-a"]).await;
    let writer_a = make_key(&app, &operator, &["writer@city-a"]).await;
    let entity = parking("urn:ngsi-ld:OffStreetParking:A1", 5)
        .to_string()
        .into_bytes();
    let post = |key: &str, tenant: &str| {
        let app = app.clone();
        let entity = entity.clone();
        let (key, tenant) = (key.to_string(), tenant.to_string());
        async move {
            call(
                &app,
                "POST",
                "/ngsi-ld/v1/entities",
                JSON,
                entity,
                &[("X-API-Key", &key), ("NGSILD-Tenant", &tenant)],
            )
            .await
            .0
        }
    };
    assert_eq!(
        post(&reader_a, "city-a").await,
        403,
        "a reader does not write"
    );
    assert_eq!(
        post(&writer_a, "city-b").await,
        403,
        "not in another tenant"
    );
    assert_eq!(post(&writer_a, "city-a").await, 201);
    let get = |key: &str, tenant: &str| {
        let app = app.clone();
        let (key, tenant) = (key.to_string(), tenant.to_string());
        async move {
            call(
                &app,
                "GET",
                "/ngsi-ld/v1/entities/urn:ngsi-ld:OffStreetParking:A1",
                None,
                vec![],
                &[("X-API-Key", &key), ("NGSILD-Tenant", &tenant)],
            )
            .await
            .0
        }
    };
    assert_eq!(get(&reader_a, "city-a").await, 200);
    assert_eq!(get(&reader_a, "city-b").await, 403);
    // Subscriptions need the subscriber role.
    let (status, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/subscriptions",
        None,
        vec![],
        &[("X-API-Key", &reader_a), ("NGSILD-Tenant", "city-a")],
    )
    .await;
    assert_eq!(status, 403);
    // The operator's endpoints are the operator's.
    for key in [&reader_a, &writer_a] {
        let (status, _, _) = call(
            &app,
            "GET",
            "/admin/v1/keys",
            None,
            vec![],
            &[("X-API-Key", key)],
        )
        .await;
        assert_eq!(status, 403);
        let (status, _, _) = call(
            &app,
            "GET",
            "/admin/v1/deadLetters",
            None,
            vec![],
            &[("X-API-Key", key)],
        )
        .await;
        assert_eq!(
            status, 403,
            "every tenant's dead letters are the operator's"
        );
    }
    let admin_a = make_key(&app, &operator, &["tenant-admin@city-a"]).await;
    let dead = |tenant: &'static str| {
        let app = app.clone();
        let key = admin_a.clone();
        async move {
            call(
                &app,
                "GET",
                "/admin/v1/deadLetters",
                None,
                vec![],
                &[("X-API-Key", &key), ("NGSILD-Tenant", tenant)],
            )
            .await
            .0
        }
    };
    // Past the check, the test broker answers that it sends no notifications (422).
    assert_eq!(
        dead("city-a").await,
        422,
        "a tenant admin may ask of its own tenant"
    );
    assert_eq!(dead("city-b").await, 403);
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    let (app, operator) = secured("auth-keys").await;
    let key = make_key(&app, &operator, &["reader@*"]).await;
    let (status, listed, _) = call(
        &app,
        "GET",
        "/admin/v1/keys",
        None,
        vec![],
        &[("X-API-Key", &operator)],
    )
    .await;
    assert_eq!(status, 200);
    let text = listed.to_string();
    let secret = key.splitn(3, '_').nth(2).unwrap();
    assert!(
        !text.contains(secret) && !text.contains("secretSha256"),
        "{text}"
    );
    let id = key.split('_').nth(1).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert_eq!(entry["grants"], json!(["reader@*"]));
    let (status, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/types",
        None,
        vec![],
        &[("Authorization", &format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(status, 200, "a key also works as a bearer");
    let (status, body, _) = call(
        &app,
        "DELETE",
        &format!("/admin/v1/keys/{id}"),
        None,
        vec![],
        &[("X-API-Key", &operator)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["revokedAt"].is_string(), "{body}");
    let (status, body, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/types",
        None,
        vec![],
        &[("X-API-Key", &key)],
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (status, _, _) = call(
        &app,
        "DELETE",
        "/admin/v1/keys/000000000000",
        None,
        vec![],
        &[("X-API-Key", &operator)],
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_key_requests_name_the_field() {
    let (app, operator) = secured("auth-bad-keys").await;
    for (body, field) in [
        (json!({"grants": ["reader"]}), "name"),
        (json!({"name": "x"}), "grants"),
        (json!({"name": "x", "grants": []}), "grants"),
        (json!({"name": "x", "grants": ["king@x"]}), "unknown role"),
        (json!({"name": "x", "grants": ["operator@x"]}), "global"),
        (json!({"name": "x", "grants": [1]}), "grants"),
    ] {
        let (status, answer, _) = call(
            &app,
            "POST",
            "/admin/v1/keys",
            JSON,
            body.to_string().into_bytes(),
            &[("X-API-Key", &operator)],
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
}

#[tokio::test]
async fn an_identity_over_its_rate_gets_429_and_the_others_do_not() {
    let (mut state, store) = state_for("auth-rate", 1000);
    let [a, b] = with_api_keys(
        &mut state,
        store,
        [("a", &["operator"][..]), ("b", &["operator"][..])],
    )
    .await;
    state.limits.rate = harbor_http::rate::RateLimit {
        per_second: 0.5,
        burst: 3.0,
    };
    let app = router(Arc::new(state));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (s, body, h) = call(
            &app,
            "GET",
            "/ngsi-ld/v1/types",
            None,
            vec![],
            &[("X-API-Key", &a)],
        )
        .await;
        if s == 429 {
            assert_eq!(h.get("retry-after").unwrap(), "2", "{body}");
            assert!(body["detail"].as_str().unwrap().contains("rate"), "{body}");
        }
        statuses.push(s.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (s, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/types",
        None,
        vec![],
        &[("X-API-Key", &b)],
    )
    .await;
    assert_eq!(s, 200, "another identity keeps its own rate");
}
