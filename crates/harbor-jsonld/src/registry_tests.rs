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
fn cached_entries_are_bounded_in_bytes_least_recently_used_first() {
    let reg = ContextRegistry::new(BASE);
    let t = Tenant::default_tenant();
    let a = reg.insert_cached("https://example.org/a", minimal());
    let one = reg.cached_bytes();
    reg.limit_cached_bytes(one * 5 / 2);
    reg.insert_cached("https://example.org/b", minimal());
    assert!(reg.lookup_url("https://example.org/a").is_some()); // a is used, b is not
    reg.insert_cached("https://example.org/c", minimal());
    let urls: Vec<String> = reg
        .list(&t, Some(ContextKind::Cached))
        .iter()
        .map(|e| e.url.clone())
        .collect();
    assert_eq!(
        urls[1..].iter().map(String::as_str).collect::<Vec<_>>(),
        ["https://example.org/a", "https://example.org/c"],
        "the core context, then what fits"
    );
    assert!(reg.cached_bytes() <= one * 5 / 2);
    assert!(reg.lookup_url("https://example.org/b").is_none());
    // replacing keeps the local id
    let a2 = reg.insert_cached("https://example.org/a", json!({"@context": {}}));
    assert_eq!(a2.local_id, a.local_id);
    // a document heavier than the whole budget is handed back, not kept
    let big: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("t{i}"), json!(format!("https://example.org/{i}"))))
        .collect();
    reg.insert_cached("https://example.org/big", json!({"@context": big}));
    assert!(reg.lookup_url("https://example.org/big").is_none());
    assert!(reg.lookup_url("https://example.org/c").is_some());
}

#[test]
fn preloaded_urls_are_pinned() {
    let reg = ContextRegistry::new(BASE).with_pinned(["https://example.org/pre".to_string()]);
    reg.limit_cached_bytes(1);
    reg.insert_cached("https://example.org/pre", minimal());
    reg.insert_cached("https://example.org/other", minimal());
    assert!(reg.lookup_url("https://example.org/pre").is_some());
    assert!(reg.lookup_url("https://example.org/other").is_none());
    assert_eq!(reg.cached_bytes(), 0, "pinned entries are not counted");
}

fn limited(limits: StoredLimits) -> ContextRegistry {
    ContextRegistry::new(BASE).with_stored_limits(limits)
}

fn terms(n: usize) -> Value {
    let m: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("t{i}"), json!(format!("https://example.org/{i}"))))
        .collect();
    json!({ "@context": m })
}

#[test]
fn hosted_contexts_are_held_to_their_size_and_count() {
    let reg = limited(StoredLimits {
        max_document_bytes: 1000,
        max_hosted_per_tenant: 2,
        max_total_bytes: 0,
    });
    let t = Tenant::default_tenant();
    let other = Tenant::parse("other").unwrap();
    let big = reg.add_hosted(&t, &terms(100));
    assert!(
        matches!(big, Err(JsonLdError::TooLarge(ref m)) if m.contains("1000 bytes")),
        "{big:?}"
    );
    assert_eq!(
        big.unwrap_err().kind(),
        harbor_model::ErrorKind::PayloadTooLarge
    );
    let first = reg.add_hosted(&t, &terms(2)).unwrap();
    reg.add_hosted(&t, &terms(3)).unwrap();
    let third = reg.add_hosted(&t, &terms(4));
    assert!(
        matches!(third, Err(JsonLdError::Quota(ref m)) if m.contains("2 hosted") && m.contains("hosted_contexts_max")),
        "{third:?}"
    );
    assert_eq!(
        third.unwrap_err().kind(),
        harbor_model::ErrorKind::QuotaExceeded
    );
    reg.add_hosted(&other, &terms(4))
        .expect("the count is per tenant");
    reg.delete(&t, &first.local_id).unwrap();
    reg.add_hosted(&t, &terms(4))
        .expect("a deleted context frees its place");
    // implicitly created contexts are held to the document size, not to the count
    reg.add_implicit(&t, &terms(5)["@context"]).unwrap();
    assert!(matches!(
        reg.add_implicit(&t, &terms(100)["@context"]),
        Err(JsonLdError::TooLarge(_))
    ));
}

#[test]
fn stored_contexts_share_one_budget_of_bytes() {
    let size = content_key(&terms(10)["@context"]).len();
    let reg = limited(StoredLimits {
        max_document_bytes: 0,
        max_hosted_per_tenant: 0,
        max_total_bytes: size * 3,
    });
    let t = Tenant::default_tenant();
    let other = Tenant::parse("other").unwrap();
    reg.add_hosted(&t, &terms(10)).unwrap();
    reg.add_hosted(&other, &terms(10)).unwrap();
    reg.add_implicit(&other, &terms(10)["@context"]).unwrap();
    let over = reg.add_hosted(&t, &terms(10));
    assert!(
        matches!(over, Err(JsonLdError::Quota(ref m)) if m.contains(&format!("{}", size * 3))),
        "{over:?}"
    );
    // a refused persist gives the reservation back
    let reg = limited(StoredLimits {
        max_document_bytes: 0,
        max_hosted_per_tenant: 1,
        max_total_bytes: 0,
    });
    reg.set_persist_hook(Arc::new(|_: &StoredContext, _| Err("disk full".into())));
    assert!(reg.add_hosted(&t, &minimal()).is_err());
    reg.set_persist_hook(Arc::new(|_: &StoredContext, _| Ok(())));
    reg.add_hosted(&t, &minimal()).unwrap();
    // imported entries count
    let reg2 = limited(StoredLimits {
        max_document_bytes: 0,
        max_hosted_per_tenant: 1,
        max_total_bytes: 0,
    });
    reg2.import_hosted(reg.export_hosted());
    assert!(matches!(
        reg2.add_hosted(&t, &minimal()),
        Err(JsonLdError::Quota(_))
    ));
}

#[test]
fn concurrent_hosted_creates_do_not_overshoot_the_count() {
    let reg = Arc::new(limited(StoredLimits {
        max_document_bytes: 0,
        max_hosted_per_tenant: 5,
        max_total_bytes: 0,
    }));
    // a slow store makes the creates overlap
    reg.set_persist_hook(Arc::new(|_: &StoredContext, _| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok(())
    }));
    let t = Tenant::default_tenant();
    let ok = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| reg.add_hosted(&t, &minimal()).is_ok()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(ok, 5);
    assert_eq!(reg.list(&t, Some(ContextKind::Hosted)).len(), 5);
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
