//! Tables for the `/jsonldContexts` store: validation, visibility, deletion rules, hits,
//! persistence.

use std::sync::Mutex;

use serde_json::json;

use super::*;

const BASE: &str = "http://localhost:1026";

fn tenant(name: &str) -> Tenant {
    Tenant::parse(name).unwrap()
}

fn minimal() -> Value {
    json!({"@context": {"A1": "urn:ngsi-ld:attributes:A1", "A2": "urn:ngsi-ld:attributes:A2"}})
}

#[test]
fn add_hosted_validates_the_body() {
    let reg = ContextRegistry::new(BASE);
    let t = Tenant::default_tenant();
    let good = [
        minimal(),
        json!({"@context": ["https://example.org/a.jsonld", "https://example.org/b.jsonld"]}),
        json!({"@context": "https://example.org/a.jsonld"}),
        json!({"@context": [{"x": "http://example.org/x"}, "https://example.org/a.jsonld"]}),
    ];
    for body in good {
        let e = reg.add_hosted(&t, &body).unwrap();
        assert_eq!(e.kind, ContextKind::Hosted);
        assert_eq!(e.url, format!("{BASE}{CONTEXTS_PATH}{}", e.local_id));
        assert_eq!(e.document, body);
    }
    let bad = [
        json!({"A1": "urn:ngsi-ld:attributes:A1"}),
        json!({"@context": 42}),
        json!({"@context": true}),
        json!({"@context": ["https://example.org/ctx.jsonld", 7]}),
        json!({"@context": []}),
        json!({"@context": {"a": 5}}),
        json!({"@context": "not-a-url"}),
        json!([minimal()]),
    ];
    for body in bad {
        let got = reg.add_hosted(&t, &body);
        assert!(
            matches!(got, Err(JsonLdError::Invalid(_))),
            "{body} gave {got:?}"
        );
    }
    assert_eq!(reg.list(&t, Some(ContextKind::Hosted)).len(), 4);
}

#[test]
fn serve_list_and_tenants() {
    let reg = ContextRegistry::new("http://broker:1026/");
    let (a, b) = (tenant("a"), tenant("b"));
    let e = reg.add_hosted(&a, &minimal()).unwrap();
    assert!(e
        .url
        .starts_with("http://broker:1026/ngsi-ld/v1/jsonldContexts/"));
    // by local id, by URL, by the URL under another host name
    let other_host = format!("http://localhost:9090{CONTEXTS_PATH}{}", e.local_id);
    for id in [e.local_id.as_str(), e.url.as_str(), other_host.as_str()] {
        assert_eq!(reg.serve(&a, id, false).unwrap(), minimal(), "{id}");
        assert!(
            matches!(reg.serve(&b, id, false), Err(JsonLdError::NotFound(_))),
            "{id}"
        );
    }
    let details = reg.serve(&a, &e.local_id, true).unwrap();
    let keys: Vec<&str> = details
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["URL", "localId", "kind", "createdAt", "numberOfHits"]
    );
    assert_eq!(details["kind"], "Hosted");
    assert_eq!(details["numberOfHits"], 0);

    let urls = |t: &Tenant, k: Option<ContextKind>| -> Vec<String> {
        reg.list(t, k).iter().map(|e| e.url.clone()).collect()
    };
    assert_eq!(
        urls(&a, None),
        [CORE_CONTEXT_URL.to_string(), e.url.clone()]
    );
    assert_eq!(urls(&a, Some(ContextKind::Hosted)), vec![e.url.clone()]);
    assert_eq!(
        urls(&a, Some(ContextKind::Cached)),
        [CORE_CONTEXT_URL.to_string()]
    );
    assert!(urls(&a, Some(ContextKind::ImplicitlyCreated)).is_empty());
    assert_eq!(urls(&b, None), [CORE_CONTEXT_URL.to_string()]);

    // the core context under any published URL, and its local id
    for id in [
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
        CORE_CONTEXT_URL,
        CORE_LOCAL_ID,
    ] {
        assert_eq!(reg.serve(&b, id, true).unwrap()["kind"], "Cached", "{id}");
    }
    assert!(reg.serve(&a, "wrong_id_context", true).is_err());
}

#[test]
fn delete_and_reload_rules() {
    let reg = ContextRegistry::new(BASE);
    let t = Tenant::default_tenant();
    let hosted = reg.add_hosted(&t, &minimal()).unwrap();
    let implicit = reg
        .add_implicit(&t, &json!(["https://example.org/a.jsonld"]))
        .unwrap();
    let cached = reg.insert_cached("https://example.org/c.jsonld", minimal());
    let core_v16 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld";

    // reload=true (suite 051_04, 051_07, 051_09)
    let not_allowed =
        |id: &str| matches!(reg.reload_target(&t, id), Err(JsonLdError::NotAllowed(_)));
    assert!(not_allowed("wrong_id_context"));
    assert!(not_allowed(&hosted.local_id));
    assert!(not_allowed(&implicit.local_id));
    assert!(reg.reload_target(&t, core_v16).unwrap().is_none());
    assert!(reg.reload_target(&t, &cached.url).unwrap().is_some());

    // plain delete (051_01, 051_02, 051_03, 051_06, 051_08)
    assert!(matches!(
        reg.delete(&t, "1234567890123456"),
        Err(JsonLdError::NotFound(_))
    ));
    assert!(matches!(
        reg.delete(&t, core_v16),
        Err(JsonLdError::NotAllowed(_))
    ));
    assert!(matches!(
        reg.delete(&tenant("other"), &hosted.local_id),
        Err(JsonLdError::NotFound(_))
    ));
    let generation = reg.generation();
    for id in [&hosted.local_id, &implicit.local_id, &cached.url] {
        reg.delete(&t, id).unwrap();
        assert!(
            matches!(reg.delete(&t, id), Err(JsonLdError::NotFound(_))),
            "{id}"
        );
    }
    assert!(reg.generation() > generation);
    assert_eq!(reg.list(&t, None).len(), 1);
}

#[test]
fn hits_follow_the_suite() {
    let reg = ContextRegistry::new(BASE);
    let t = Tenant::default_tenant();
    let hosted = reg.add_hosted(&t, &minimal()).unwrap();
    let cached = reg.insert_cached("https://example.org/c.jsonld", minimal());
    // serving a Hosted entry is not a hit (053_04) ...
    assert_eq!(
        reg.serve(&t, &hosted.local_id, true).unwrap()["numberOfHits"],
        0
    );
    hosted.record_hit();
    assert_eq!(
        reg.serve(&t, &hosted.local_id, true).unwrap()["numberOfHits"],
        1
    );
    assert!(reg
        .serve(&t, &hosted.local_id, true)
        .unwrap()
        .get("lastUsage")
        .is_some());
    // ... serving a Cached one is, counted after the answer (053_06)
    cached.record_hit();
    assert_eq!(reg.serve(&t, &cached.url, true).unwrap()["numberOfHits"], 1);
    cached.record_hit();
    assert_eq!(reg.serve(&t, &cached.url, true).unwrap()["numberOfHits"], 3);
}

#[test]
fn implicit_entries_are_shared_per_tenant_and_content() {
    let reg = ContextRegistry::new(BASE);
    let ctx = json!([
        "https://example.org/a.jsonld",
        "https://example.org/b.jsonld"
    ]);
    let a1 = reg.add_implicit(&tenant("a"), &ctx).unwrap();
    let a2 = reg.add_implicit(&tenant("a"), &ctx).unwrap();
    let b1 = reg.add_implicit(&tenant("b"), &ctx).unwrap();
    assert_eq!(a1.local_id, a2.local_id);
    assert_ne!(a1.local_id, b1.local_id);
    assert_eq!(a1.kind, ContextKind::ImplicitlyCreated);
    assert_eq!(a1.document, json!({"@context": ctx}));
    assert!(reg.add_implicit(&tenant("a"), &json!(7)).is_err());
}

#[test]
fn persistence_hook_export_and_import() {
    let reg = ContextRegistry::new(BASE);
    let log: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let sink = log.clone();
    reg.set_persist_hook(Arc::new(move |s: &StoredContext, deleted| {
        sink.lock().unwrap().push((s.local_id.clone(), deleted));
        Ok(())
    }));
    let t = tenant("city");
    let h = reg.add_hosted(&t, &minimal()).unwrap();
    let i = reg
        .add_implicit(&t, &json!("https://example.org/a.jsonld"))
        .unwrap();
    reg.insert_cached("https://example.org/c.jsonld", minimal());
    let exported = reg.export_hosted();
    assert_eq!(exported.len(), 2);
    reg.delete(&t, &h.local_id).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            (h.local_id.clone(), false),
            (i.local_id.clone(), false),
            (h.local_id.clone(), true)
        ]
    );

    let fresh = ContextRegistry::new("https://city.example");
    let json = serde_json::to_string(&exported).unwrap();
    fresh.import_hosted(serde_json::from_str(&json).unwrap());
    let back = fresh.find(&t, &h.local_id).unwrap();
    assert_eq!(
        back.url,
        format!("https://city.example{CONTEXTS_PATH}{}", h.local_id)
    );
    assert_eq!(back.document, minimal());
    assert!(fresh.find(&Tenant::default_tenant(), &h.local_id).is_none());
    let again = fresh
        .add_implicit(&t, &json!("https://example.org/a.jsonld"))
        .unwrap();
    assert_eq!(again.local_id, i.local_id);

    reg.set_persist_hook(Arc::new(|_: &StoredContext, _| Err("disk full".into())));
    assert!(matches!(
        reg.add_hosted(&t, &minimal()),
        Err(JsonLdError::Internal(_))
    ));
    assert_eq!(reg.list(&t, Some(ContextKind::Hosted)).len(), 0);
}

#[test]
fn cached_entries_are_bounded() {
    let reg = ContextRegistry::new(BASE).with_max_cached(2);
    let t = Tenant::default_tenant();
    let a = reg.insert_cached("https://example.org/a", minimal());
    reg.insert_cached("https://example.org/b", minimal());
    a.record_hit();
    reg.insert_cached("https://example.org/c", minimal());
    let urls: Vec<String> = reg
        .list(&t, Some(ContextKind::Cached))
        .iter()
        .map(|e| e.url.clone())
        .collect();
    assert!(
        urls.contains(&"https://example.org/a".to_string()),
        "{urls:?}"
    );
    assert!(
        !urls.contains(&"https://example.org/b".to_string()),
        "{urls:?}"
    );
    assert_eq!(urls.len(), 3); // core + 2
                               // replacing keeps the local id
    let a2 = reg.insert_cached("https://example.org/a", json!({"@context": {}}));
    assert_eq!(a2.local_id, a.local_id);
}

#[test]
fn kind_parameter() {
    for k in [
        ContextKind::Hosted,
        ContextKind::Cached,
        ContextKind::ImplicitlyCreated,
    ] {
        assert_eq!(ContextKind::parse(k.as_str()).unwrap(), k);
    }
    for bad in ["other", "hosted", ""] {
        assert!(ContextKind::parse(bad).is_err(), "{bad}");
    }
}
