//! A partner city subscribes through an access policy, on the real binary with API keys: its
//! notifications carry only the entities and attributes the policy opens, a filter on a hidden
//! attribute never fires, and it sees and manages only its own subscriptions.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{client, eventually, Broker, Mode, Receiver};

const TENANT: &str = "sg";

fn keys_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infoharbor"))
        .arg("keys")
        .args(args)
        .output()
        .expect("run infoharbor keys");
    assert!(
        out.status.success(),
        "infoharbor keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A broker with API-key auth, an operator's key and the keys `others` (the arguments of
/// `infoharbor keys create` after `--data-dir`), all made offline before it starts.
async fn broker_with_keys(
    dir: &std::path::Path,
    others: &[&[&str]],
) -> (Broker, String, Vec<String>) {
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let make = |args: &[&str]| {
        let mut all = vec!["create", "--data-dir", data_arg];
        all.extend_from_slice(args);
        keys_cli(&all)
    };
    let operator = make(&["--grant", "operator", "--name", "ops"]);
    let made = others.iter().map(|a| make(a)).collect();
    let broker = Broker::start_with(&data, dir, 0, &["--auth", "apikey"]).await;
    (broker, operator, made)
}

async fn send(
    c: &reqwest::Client,
    key: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = c
        .request(method, url)
        .header("X-API-Key", key)
        .header("NGSILD-Tenant", TENANT);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

fn car_park(id: &str, free: i64, secret: i64) -> Value {
    json!({
        "id": id, "type": "OffStreetParking",
        "availableSpotNumber": {"type": "Property", "value": free},
        "secret": {"type": "Property", "value": secret},
        "name": {"type": "Property", "value": "car park"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_is_notified_of_what_its_policy_opens_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, operator, _) = broker_with_keys(dir.path(), &[]).await;
    let (base, api) = (broker.base.clone(), format!("{}/ngsi-ld/v1", broker.base));
    let c = client();
    let (s, partner) = send(
        &c,
        &operator,
        reqwest::Method::POST,
        format!("{base}/admin/v1/keys"),
        Some(json!({"name": "kl-city", "grants": ["reader@kl"]})),
    )
    .await;
    assert_eq!(s, 201, "{partner}");
    let (partner_key, partner_id) = (
        partner["key"].as_str().unwrap().to_string(),
        partner["id"].as_str().unwrap().to_string(),
    );
    let policy = json!({
        "id": "open-car-parks-to-kl", "tenant": TENANT,
        "subjects": [format!("subject:key:{partner_id}")],
        "actions": ["subscribe"],
        "entities": [{"type": ["OffStreetParking"], "idPattern": "urn:ngsi-ld:OffStreetParking:open-.*"}],
        "attrs": ["availableSpotNumber"]
    });
    let (s, v) = send(
        &c,
        &operator,
        reqwest::Method::POST,
        format!("{base}/admin/v1/policies"),
        Some(policy.clone()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // The operator's own subscription, which the partner must not see.
    let everything = Receiver::new(Mode::Healthy).await;
    let subscription = |id: &str, uri: String, q: Option<&str>| {
        let mut v = json!({
            "id": id, "type": "Subscription",
            "entities": [{"type": "OffStreetParking"}],
            "notification": {"endpoint": {"uri": uri, "accept": "application/json"}}
        });
        if let Some(q) = q {
            v["q"] = json!(q);
        }
        v
    };
    let (s, v) = send(
        &c,
        &operator,
        reqwest::Method::POST,
        format!("{api}/subscriptions"),
        Some(subscription("urn:sub:ops", everything.uri(), None)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let partner_rx = Receiver::new(Mode::Healthy).await;
    let (s, v) = send(
        &c,
        &partner_key,
        reqwest::Method::POST,
        format!("{api}/subscriptions"),
        Some(subscription("urn:sub:kl", partner_rx.uri(), None)),
    )
    .await;
    assert_eq!(
        s, 201,
        "a policy that opens subscribe lets the partner subscribe: {v}"
    );
    let probe_rx = Receiver::new(Mode::Healthy).await;
    let (s, v) = send(
        &c,
        &partner_key,
        reqwest::Method::POST,
        format!("{api}/subscriptions"),
        Some(subscription(
            "urn:sub:kl-probe",
            probe_rx.uri(),
            Some("secret==42"),
        )),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    for (id, secret) in [
        ("urn:ngsi-ld:OffStreetParking:open-1", 42),
        ("urn:ngsi-ld:OffStreetParking:closed-1", 42),
    ] {
        let (s, v) = send(
            &c,
            &operator,
            reqwest::Method::POST,
            format!("{api}/entities"),
            Some(car_park(id, 5, secret)),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = send(
            &c,
            &operator,
            reqwest::Method::PATCH,
            format!("{api}/entities/{id}/attrs"),
            Some(json!({"availableSpotNumber": {"type": "Property", "value": 4}, "secret": {"type": "Property", "value": 43}})),
        )
        .await;
        assert_eq!(s, 204, "{v}");
    }
    // The operator hears about both car parks: the changes were made and notified.
    assert!(
        eventually(Duration::from_secs(10), || {
            let ids: Vec<String> = everything
                .received()
                .iter()
                .flat_map(|r| ids(&r.body))
                .collect();
            ids.iter().any(|i| i.contains("closed-1")) && ids.iter().any(|i| i.contains("open-1"))
        })
        .await,
        "the operator's subscription got both car parks: {:?}",
        everything.received().len()
    );
    assert!(
        eventually(Duration::from_secs(10), || partner_rx.received().len() >= 2).await,
        "the partner is notified of the open car park's creation and update"
    );
    // Let any late, wrong delivery arrive before judging.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for r in partner_rx.received() {
        for e in r.body["data"].as_array().unwrap() {
            assert!(
                e["id"].as_str().unwrap().contains("open-"),
                "only the open car park: {}",
                r.body
            );
            let names: Vec<&String> = e
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !matches!(k.as_str(), "id" | "type"))
                .collect();
            assert_eq!(
                names,
                ["availableSpotNumber"],
                "only the opened attribute: {}",
                r.body
            );
        }
        assert!(!r.body.to_string().contains("secret"), "{}", r.body);
    }
    assert!(
        probe_rx.received().is_empty(),
        "a q on a hidden attribute never fires: {:?}",
        probe_rx
            .received()
            .iter()
            .map(|r| r.body.to_string())
            .collect::<Vec<_>>()
    );
    // The partner sees and manages only its own subscriptions.
    let (s, v) = send(
        &c,
        &partner_key,
        reqwest::Method::GET,
        format!("{api}/subscriptions"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut mine: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    mine.sort();
    assert_eq!(mine, ["urn:sub:kl", "urn:sub:kl-probe"]);
    let (s, _) = send(
        &c,
        &partner_key,
        reqwest::Method::DELETE,
        format!("{api}/subscriptions/urn:sub:ops"),
        None,
    )
    .await;
    assert_eq!(
        s, 404,
        "the operator's subscription does not exist for the partner"
    );
    let (s, _) = send(
        &c,
        &partner_key,
        reqwest::Method::PATCH,
        format!("{api}/subscriptions/urn:sub:ops"),
        Some(json!({"description": "mine now"})),
    )
    .await;
    assert_eq!(s, 404);
    // Without the policy, the partner cannot subscribe at all.
    let (s, _) = send(
        &c,
        &operator,
        reqwest::Method::DELETE,
        format!("{base}/admin/v1/policies/open-car-parks-to-kl"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = send(
        &c,
        &partner_key,
        reqwest::Method::POST,
        format!("{api}/subscriptions"),
        Some(subscription("urn:sub:kl-2", partner_rx.uri(), None)),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // With the policy back, a revoked key's subscription stops notifying.
    let (s, v) = send(
        &c,
        &operator,
        reqwest::Method::POST,
        format!("{base}/admin/v1/policies"),
        Some(policy),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let before = partner_rx.received().len();
    let (s, _) = send(
        &c,
        &operator,
        reqwest::Method::DELETE,
        format!("{base}/admin/v1/keys/{partner_id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let heard = everything.received().len();
    let (s, v) = send(
        &c,
        &operator,
        reqwest::Method::PATCH,
        format!("{api}/entities/urn:ngsi-ld:OffStreetParking:open-1/attrs"),
        Some(json!({"availableSpotNumber": {"type": "Property", "value": 2}})),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    assert!(
        eventually(Duration::from_secs(10), || everything.received().len()
            > heard)
        .await,
        "the change is notified to the operator"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        partner_rx.received().len(),
        before,
        "a revoked key is notified of nothing"
    );
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_subscribed_to_registrations_hears_only_of_what_its_policy_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, operator, made) =
        broker_with_keys(dir.path(), &[&["--partner", "kl-city", "--name", "kl"]]).await;
    let partner = made[0].clone();
    let (base, api) = (broker.base.clone(), format!("{}/ngsi-ld/v1", broker.base));
    let c = client();
    use reqwest::Method as M;
    let (s, v) = send(
        &c,
        &operator,
        M::POST,
        format!("{base}/admin/v1/policies"),
        Some(json!({
            "id": "car-park-sources-to-kl", "tenant": TENANT,
            "subjects": ["partner:kl-city"], "actions": ["subscribe"],
            "entities": [{"type": ["OffStreetParking"]}],
            "attrs": ["availableSpotNumber"]
        })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rx = Receiver::new(Mode::Healthy).await;
    let (s, v) = send(
        &c,
        &partner,
        M::POST,
        format!("{api}/csourceSubscriptions"),
        Some(json!({
            "id": "urn:csub:kl", "type": "Subscription",
            "entities": [{"type": "OffStreetParking"}, {"type": "Camera"}],
            "notification": {"endpoint": {"uri": rx.uri(), "accept": "application/json"}}
        })),
    )
    .await;
    assert_eq!(
        s, 201,
        "a policy that opens subscribe opens subscriptions to registrations: {v}"
    );
    let registration = |id: &str, ty: &str| {
        json!({
            "id": id, "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": ty}],
                             "propertyNames": ["availableSpotNumber", "secret"]}],
            "endpoint": "http://127.0.0.1:9/source"
        })
    };
    for (id, ty) in [
        ("urn:reg:cam", "Camera"),
        ("urn:reg:park", "OffStreetParking"),
    ] {
        let (s, v) = send(
            &c,
            &operator,
            M::POST,
            format!("{api}/csourceRegistrations"),
            Some(registration(id, ty)),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    assert!(
        eventually(Duration::from_secs(10), || !rx.received().is_empty()).await,
        "the partner hears of the car park source"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.received();
    let data: Vec<Value> = got
        .iter()
        .flat_map(|n| n.body["data"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        data.iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["urn:reg:park"],
        "never of the camera source: {data:?}"
    );
    assert_eq!(
        data[0]["information"][0]["propertyNames"],
        json!(["availableSpotNumber"]),
        "only the opened attribute: {data:?}"
    );
    // The operator's own subscription to registrations does not exist for the partner.
    let (s, v) = send(
        &c,
        &operator,
        M::POST,
        format!("{api}/csourceSubscriptions"),
        Some(json!({
            "id": "urn:csub:ops", "type": "Subscription",
            "entities": [{"type": "Camera"}],
            "notification": {"endpoint": {"uri": rx.uri(), "accept": "application/json"}}
        })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = send(
        &c,
        &partner,
        M::GET,
        format!("{api}/csourceSubscriptions"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let listed: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["urn:csub:kl"], "{v}");
    let (s, _) = send(
        &c,
        &partner,
        M::DELETE,
        format!("{api}/csourceSubscriptions/urn:csub:ops"),
        None,
    )
    .await;
    assert_eq!(s, 404, "not the partner's to delete");
    let (s, _) = send(
        &c,
        &partner,
        M::DELETE,
        format!("{api}/csourceSubscriptions/urn:csub:kl"),
        None,
    )
    .await;
    assert_eq!(s, 204, "its own");
}
