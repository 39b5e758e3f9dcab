//! Registrations and forwarding under access policies: a partner lists and retrieves only the
//! registrations about entities its policies select, cut to what they open, with counts that
//! agree; an entity a context source answers with is projected like a local one; writing
//! registrations needs a role.

use std::sync::Arc;

use async_trait::async_trait;
use harbor_engine::forward::{ContextSourceClient, Forward};
use serde_json::{json, Value};

use super::policy_history::{broker_with, get, partner, send};

const REGS: &str = "/ngsi-ld/v1/csourceRegistrations";

/// A context source holding a car park and a camera, each with a hidden `secret`.
struct Source;

#[async_trait]
impl ContextSourceClient for Source {
    async fn get(&self, f: &Forward) -> Result<Option<Value>, String> {
        let (id, ty) = match f.path.as_str() {
            "/entities/urn:remote:p" => ("urn:remote:p", "OffStreetParking"),
            "/entities/urn:remote:c" => ("urn:remote:c", "Camera"),
            _ => return Ok(None),
        };
        Ok(Some(json!({
            "id": id, "type": ty,
            "free": {"type": "Property", "value": 4},
            "secret": {"type": "Property", "value": 7},
        })))
    }
}

fn registration(id: &str, information: Value) -> Value {
    json!({
        "id": id, "type": "ContextSourceRegistration", "information": information,
        "endpoint": "http://source.example.org",
        "contextSourceInfo": [{"key": "Authorization", "value": "Bearer source-secret"}],
    })
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_partner_sees_registrations_and_remote_entities_as_its_policies_open_them() {
    let (app, operator) = broker_with("policy-sources", 1000, |state| {
        let engine = Arc::try_unwrap(state.engine)
            .ok()
            .expect("the engine is not shared yet");
        harbor_http::AppState {
            engine: Arc::new(engine.with_context_sources(Arc::new(Source))),
            ..state
        }
    })
    .await;
    let partner = partner(
        &app,
        &operator,
        &[
            (
                "parking-read",
                &["read"],
                json!([{"type": ["OffStreetParking"]}]),
                Some(&["free"]),
            ),
            (
                "parking-manage",
                &["manage"],
                json!([{"type": ["OffStreetParking"]}]),
                None,
            ),
        ],
    )
    .await;
    let registrations = [
        registration(
            "urn:r:parking",
            json!([{"entities": [{"type": "OffStreetParking"}], "propertyNames": ["free", "secret"]}]),
        ),
        registration("urn:r:camera", json!([{"entities": [{"type": "Camera"}]}])),
        registration(
            "urn:r:both",
            json!([{"entities": [{"type": "OffStreetParking", "id": "urn:remote:p"},
                                 {"type": "Camera", "id": "urn:remote:c"}]}]),
        ),
    ];
    let local = json!({"id": "urn:local:1", "type": "OffStreetParking"});
    let (s, v, _) = send(&app, &operator, "POST", "/ngsi-ld/v1/entities", local).await;
    assert_eq!(s, 201, "{v}");
    for r in registrations {
        let (s, v, _) = send(&app, &operator, "POST", REGS, r).await;
        assert_eq!(s, 201, "{v}");
    }

    // (query, the operator's registrations, the partner's): filters run on what is seen.
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            "type=OffStreetParking,Camera",
            &["urn:r:both", "urn:r:camera", "urn:r:parking"],
            &["urn:r:both", "urn:r:parking"],
        ),
        ("type=Camera", &["urn:r:both", "urn:r:camera"], &[]),
        // A registered type without id offers every id of that type.
        (
            "id=urn:remote:c",
            &["urn:r:both", "urn:r:camera", "urn:r:parking"],
            &["urn:r:parking"],
        ),
    ];
    for (query, for_operator, for_partner) in cases {
        let uri = format!("{REGS}?{query}&count=true");
        for (key, want) in [(&operator, for_operator), (&partner, for_partner)] {
            let (s, v, h) = get(&app, key, &uri).await;
            let mut got = ids(&v);
            got.sort();
            assert_eq!((s, got), (200, want.to_vec()), "{query}: {v}");
            assert_eq!(
                h["NGSILD-Results-Count"],
                want.len().to_string().as_str(),
                "{query}"
            );
        }
    }
    // What the partner sees of one: the entries and names it may read, not the source's
    // credentials.
    let (s, v, _) = get(&app, &partner, &format!("{REGS}/urn:r:both")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["information"],
        json!([{"entities": [{"type": "OffStreetParking", "id": "urn:remote:p"}]}])
    );
    assert!(v.get("contextSourceInfo").is_none(), "{v}");
    let (_, v, _) = get(&app, &partner, &format!("{REGS}/urn:r:parking")).await;
    assert_eq!(v["information"][0]["propertyNames"], json!(["free"]), "{v}");
    let (_, v, _) = get(&app, &operator, &format!("{REGS}/urn:r:parking")).await;
    assert_eq!(
        v["information"][0]["propertyNames"],
        json!(["free", "secret"]),
        "{v}"
    );
    assert!(v.get("contextSourceInfo").is_some(), "{v}");
    // One it may not see answers as a missing one; pages count what is seen.
    let (s, hidden, _) = get(&app, &partner, &format!("{REGS}/urn:r:camera")).await;
    let (_, missing, _) = get(&app, &partner, &format!("{REGS}/urn:r:nope")).await;
    assert_eq!(s, 404);
    assert_eq!(
        hidden.to_string(),
        missing.to_string().replace("urn:r:nope", "urn:r:camera")
    );
    let (_, v, h) = get(
        &app,
        &partner,
        &format!("{REGS}?type=OffStreetParking,Camera&limit=1&count=true"),
    )
    .await;
    assert_eq!(ids(&v), ["urn:r:both"]);
    assert_eq!(h["NGSILD-Results-Count"], "2");
    assert!(h
        .get_all("link")
        .iter()
        .any(|l| l.to_str().unwrap().contains("rel=\"next\"")));

    // Entities from the context source are projected as local ones are.
    let (s, v, _) = get(&app, &operator, "/ngsi-ld/v1/entities/urn:remote:p").await;
    assert_eq!((s, v["secret"]["value"].clone()), (200, json!(7)), "{v}");
    let (s, v, _) = get(&app, &partner, "/ngsi-ld/v1/entities/urn:remote:p").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["free"]["value"], json!(4));
    assert!(v.get("secret").is_none(), "{v}");
    let (s, _, _) = get(&app, &operator, "/ngsi-ld/v1/entities/urn:remote:c").await;
    assert_eq!(s, 200);
    let (s, hidden, _) = get(&app, &partner, "/ngsi-ld/v1/entities/urn:remote:c").await;
    let (_, missing, _) = get(&app, &partner, "/ngsi-ld/v1/entities/urn:remote:x").await;
    assert_eq!(s, 404);
    assert_eq!(
        hidden.to_string(),
        missing.to_string().replace("urn:remote:x", "urn:remote:c")
    );

    // Writing registrations needs a role, even with a policy naming `manage`.
    let r = registration(
        "urn:r:new",
        json!([{"entities": [{"type": "OffStreetParking"}]}]),
    );
    let (s, v, _) = send(&app, &partner, "POST", REGS, r).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("needs a role"),
        "{v}"
    );
    let (s, v, _) = send(
        &app,
        &partner,
        "DELETE",
        &format!("{REGS}/urn:r:parking"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (s, _, _) = get(&app, &operator, &format!("{REGS}/urn:r:parking")).await;
    assert_eq!(s, 200, "still there");
}
