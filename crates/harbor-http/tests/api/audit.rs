//! The audit log as an operator reads it: who wrote, deleted or was refused, in which tenant,
//! with what answer; keys and policies changes included; a tenant admin sees its own tenant.

use std::sync::Arc;
use std::time::Duration;

use harbor_auth::{AuditLog, PolicyBook};
use harbor_http::router;
use serde_json::{json, Value};

use super::{call, parking, state_for, with_api_keys, JSON};

#[tokio::test]
async fn writes_refusals_and_key_changes_are_recorded_and_read_back() {
    let (mut state, store) = state_for("audit", 1000);
    let [operator] = with_api_keys(
        &mut state,
        store.clone(),
        [("bootstrap", &["operator"][..])],
    )
    .await;
    state.policies = Some(Arc::new(PolicyBook::load(store.clone()).await.unwrap()));
    state.audit = Some(AuditLog::start(store.clone()));
    let app = router(Arc::new(state));
    let key = |grants: Value| {
        let (app, operator) = (app.clone(), operator.clone());
        async move {
            let (s, v, _) = call(
                &app,
                "POST",
                "/admin/v1/keys",
                JSON,
                json!({"name": "k", "grants": grants})
                    .to_string()
                    .into_bytes(),
                &[("X-API-Key", &operator)],
            )
            .await;
            assert_eq!(s, 201, "{v}");
            (
                v["key"].as_str().unwrap().to_string(),
                v["id"].as_str().unwrap().to_string(),
            )
        }
    };
    let (writer, writer_id) = key(json!(["writer@sg"])).await;
    let (reader, reader_id) = key(json!(["reader@sg"])).await;
    let (admin_kl, _) = key(json!(["tenant-admin@kl"])).await;
    let id = "urn:ngsi-ld:OffStreetParking:audited";
    let (s, v, _) = call(
        &app,
        "POST",
        "/ngsi-ld/v1/entities",
        JSON,
        parking(id, 3).to_string().into_bytes(),
        &[("X-API-Key", &writer), ("NGSILD-Tenant", "sg")],
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("/ngsi-ld/v1/entities/{id}"),
        None,
        vec![],
        &[("X-API-Key", &reader), ("NGSILD-Tenant", "sg")],
    )
    .await;
    assert_eq!(s, 403);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, v, _) = call(
        &app,
        "GET",
        "/admin/v1/audit?tenant=sg",
        None,
        vec![],
        &[("X-API-Key", &operator)],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let entries = v.as_array().unwrap();
    let find = |who: &str, action: &str| {
        entries
            .iter()
            .find(|e| e["who"] == who && e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no entry of {who} {action} in {v}"))
    };
    let created = find(&format!("key:{writer_id}"), "POST /ngsi-ld/v1/entities");
    assert_eq!(
        (created["status"].clone(), created["tenant"].clone()),
        (json!(201), json!("sg"))
    );
    let refused = find(
        &format!("key:{reader_id}"),
        &format!("DELETE /ngsi-ld/v1/entities/{id}"),
    );
    assert_eq!(refused["status"], 403);
    // Key changes are in the log (without a tenant).
    let (_, all, _) = call(
        &app,
        "GET",
        "/admin/v1/audit",
        None,
        vec![],
        &[("X-API-Key", &operator)],
    )
    .await;
    let key_changes = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /admin/v1/keys" && e["status"] == 201)
        .count();
    assert_eq!(key_changes, 3, "{all}");
    // Paging: one entry at a time, with a Link to the next.
    let (_, one, h) = call(
        &app,
        "GET",
        "/admin/v1/audit?limit=1",
        None,
        vec![],
        &[("X-API-Key", &operator)],
    )
    .await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let next = h
        .get("link")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    assert!(next.contains("after="), "{next}");
    // A tenant admin reads its own tenant only.
    let (s, mine, _) = call(
        &app,
        "GET",
        "/admin/v1/audit",
        None,
        vec![],
        &[("X-API-Key", &admin_kl), ("NGSILD-Tenant", "kl")],
    )
    .await;
    assert_eq!(s, 200, "{mine}");
    assert!(
        mine.as_array().unwrap().iter().all(|e| e["tenant"] == "kl"),
        "{mine}"
    );
    // Durable: a new log over the same store reads the same entries.
    let reread = AuditLog::start(store).page(None, 1000).await.unwrap();
    assert!(reread
        .iter()
        .any(|e| e.action == "POST /ngsi-ld/v1/entities" && e.status == 201));
}
