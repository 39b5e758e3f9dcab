//! Resolver tables with a fake fetcher: caching, nesting, failures, limits, reload.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::registry::ContextKind;

const DEFAULT: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

#[derive(Default)]
struct FakeFetcher {
    docs: Mutex<HashMap<String, Result<Value, String>>>,
    calls: Mutex<Vec<String>>,
}

impl FakeFetcher {
    fn with(docs: &[(&str, Result<Value, String>)]) -> Arc<Self> {
        let f = FakeFetcher::default();
        for (url, doc) in docs {
            f.docs.lock().unwrap().insert(url.to_string(), doc.clone());
        }
        Arc::new(f)
    }
    fn set(&self, url: &str, doc: Result<Value, String>) {
        self.docs.lock().unwrap().insert(url.into(), doc);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ContextFetcher for FakeFetcher {
    async fn fetch(&self, url: &str) -> Result<Value, String> {
        self.calls.lock().unwrap().push(url.to_string());
        self.docs
            .lock()
            .unwrap()
            .get(url)
            .cloned()
            .unwrap_or_else(|| Err("404".into()))
    }
}

fn resolver(f: &Arc<FakeFetcher>) -> ContextResolver {
    ContextResolver::new(
        f.clone(),
        Arc::new(ContextRegistry::new("http://localhost:1026")),
    )
}

const A: &str = "https://example.org/a.jsonld";
const B: &str = "https://example.org/b.jsonld";

#[tokio::test]
async fn core_contexts_are_never_fetched() {
    let f = FakeFetcher::with(&[]);
    let r = resolver(&f);
    let cases = [
        None,
        Some(json!(
            "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
        )),
        Some(json!([
            "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
            "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
        ])),
    ];
    for c in cases {
        let ctx = r.resolve(c.as_ref()).await.unwrap();
        assert!(ctx.is_core(), "{c:?}");
    }
    assert!(f.calls().is_empty());
}

#[tokio::test]
async fn remote_documents_are_fetched_once_and_cached() {
    let f = FakeFetcher::with(&[(
        A,
        Ok(json!({"@context": {"A1": "urn:ngsi-ld:attributes:A1"}})),
    )]);
    let r = resolver(&f);
    let c = json!(A);
    let first = r.resolve(Some(&c)).await.unwrap();
    assert_eq!(first.expand_term("A1"), "urn:ngsi-ld:attributes:A1");
    let second = r.resolve(Some(&c)).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    // a different @context using the same document does not fetch again
    let mixed = json!([A, {"B1": "urn:b1"}]);
    let third = r.resolve(Some(&mixed)).await.unwrap();
    assert_eq!(third.expand_term("B1"), "urn:b1");
    assert_eq!(f.calls(), [A]);
    let entry = r.registry().lookup_url(A).unwrap();
    assert_eq!(entry.kind, ContextKind::Cached);
    assert_eq!(entry.number_of_hits(), 3);
    // The broker's own uses (cached or not) are not a client's hits (5.13.4).
    r.resolve_internal(Some(&c)).await.unwrap();
    r.resolve_internal(Some(&json!([A, {"C1": "urn:c1"}])))
        .await
        .unwrap();
    assert_eq!(entry.number_of_hits(), 3);
    assert!(r.resolve_cached(&c).is_some());
    assert!(r.resolve_cached(&json!({"other": "urn:x"})).is_none());
}

#[tokio::test]
async fn nested_documents_apply_in_order() {
    let f = FakeFetcher::with(&[
        (
            A,
            Ok(
                json!({"@context": [B, {"T": "http://example.org/a#T", "U": "http://example.org/a#U"}]}),
            ),
        ),
        (
            B,
            Ok(json!({"@context": {"T": "http://example.org/b#T", "V": "http://example.org/b#V"}})),
        ),
    ]);
    let r = resolver(&f);
    let ctx = r
        .resolve(Some(&json!([A, {"U": "http://example.org/inline#U"}])))
        .await
        .unwrap();
    let cases = [
        ("T", "http://example.org/a#T"),
        ("U", "http://example.org/inline#U"),
        ("V", "http://example.org/b#V"),
        ("W", "https://uri.etsi.org/ngsi-ld/default-context/W"),
    ];
    for (term, iri) in cases {
        assert_eq!(ctx.expand_term(term), iri, "{term}");
    }
    assert_eq!(f.calls(), [A, B]);
}

#[tokio::test]
async fn failures_and_invalid_documents() {
    let f = FakeFetcher::with(&[
        ("https://example.org/down", Err("connection refused".into())),
        (
            "https://example.org/nocontext",
            Ok(json!({"note": "no context member here"})),
        ),
        ("https://example.org/notjson", Ok(Value::Null)),
        (
            "https://example.org/badterm",
            Ok(json!({"@context": {"a": 5}})),
        ),
        (
            "https://example.org/self",
            Ok(json!({"@context": "https://example.org/self"})),
        ),
    ]);
    let r = resolver(&f);
    let cases = [
        (json!("https://example.org/down"), "NotAvailable"),
        (
            json!("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-non-existing.jsonld"),
            "NotAvailable",
        ),
        (json!("https://example.org/nocontext"), "Invalid"),
        (json!("https://example.org/notjson"), "Invalid"),
        (json!("https://example.org/badterm"), "Invalid"),
        (json!("https://example.org/self"), "Invalid"),
        (json!(42), "Invalid"),
        (json!([A, 7]), "Invalid"),
        (json!("relative.jsonld"), "Invalid"),
    ];
    for (c, want) in cases {
        let got = match r.resolve(Some(&c)).await {
            Err(JsonLdError::NotAvailable(_)) => "NotAvailable",
            Err(JsonLdError::Invalid(_)) => "Invalid",
            other => panic!("{c} gave {other:?}"),
        };
        assert_eq!(got, want, "{c}");
    }
    assert!(r
        .registry()
        .lookup_url("https://example.org/down")
        .is_none());
}

#[tokio::test]
async fn depth_and_size_limits() {
    let f = FakeFetcher::with(&[]);
    for i in 0..12 {
        let next = format!("https://example.org/chain/{}", i + 1);
        f.set(
            &format!("https://example.org/chain/{i}"),
            Ok(json!({"@context": [next, {}]})),
        );
    }
    f.set("https://example.org/chain/12", Ok(json!({"@context": {}})));
    let big: serde_json::Map<String, Value> = (0..2000)
        .map(|i| {
            (
                format!("t{i}"),
                json!(format!("http://example.org/{i:0>600}")),
            )
        })
        .collect();
    f.set("https://example.org/big", Ok(json!({"@context": big})));
    let r = resolver(&f);
    let deep = r.resolve(Some(&json!("https://example.org/chain/0"))).await;
    assert!(
        matches!(deep, Err(JsonLdError::Invalid(ref m)) if m.contains("levels")),
        "{deep:?}"
    );
    let ok = r.resolve(Some(&json!("https://example.org/chain/5"))).await;
    assert!(ok.is_ok(), "{ok:?}");
    let big = r.resolve(Some(&json!("https://example.org/big"))).await;
    assert!(
        matches!(big, Err(JsonLdError::NotAvailable(ref m))
            if m.contains("https://example.org/big") && m.contains("1048576 bytes")),
        "{big:?}"
    );
}

/// A remote document of `n` terms of about 40 bytes each, all its own.
fn many_terms(tag: usize, n: usize) -> Value {
    let m: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            (
                format!("term{i}x{tag}"),
                json!(format!("https://example.org/ns/{tag}/term{i}")),
            )
        })
        .collect();
    json!({ "@context": m })
}

fn url(i: usize) -> String {
    format!("https://example.org/ctx/{i}.jsonld")
}

#[tokio::test]
async fn the_cache_holds_its_budget_of_bytes_and_keeps_what_is_used() {
    let f = FakeFetcher::with(&[]);
    for i in 0..40 {
        f.set(&url(i), Ok(many_terms(i, 500)));
    }
    let registry = Arc::new(ContextRegistry::new("http://localhost:1026"));
    let budget = 3 * 1024 * 1024;
    let r = ContextResolver::with_limits(
        f.clone(),
        registry.clone(),
        ResolverLimits {
            cache_bytes: budget,
            ..ResolverLimits::default()
        },
    );
    let hot = json!(url(0));
    for i in 0..40 {
        r.resolve(Some(&json!(url(i)))).await.unwrap();
        // the hot context is used between every two others: it is never the oldest
        let ctx = r.resolve(Some(&hot)).await.unwrap();
        assert_eq!(ctx.expand_term("term7x0"), "https://example.org/ns/0/term7");
        assert!(
            r.compiled_bytes() + registry.cached_bytes() <= budget,
            "{} + {} > {budget}",
            r.compiled_bytes(),
            registry.cached_bytes()
        );
    }
    let fetched = f.calls();
    assert_eq!(fetched.len(), 40, "each fetched once: {fetched:?}");
    assert!(
        r.compiled_bytes() > budget / 3,
        "the cache is used, not emptied"
    );
    // the oldest cold context was evicted: using it again fetches and compiles it again
    r.resolve(Some(&json!(url(1)))).await.unwrap();
    assert_eq!(f.calls().len(), 41);
}

#[tokio::test]
async fn hits_count_on_documents_the_cache_still_keeps() {
    let f = FakeFetcher::with(&[(A, Ok(json!({"@context": {"A1": "urn:a1"}})))]);
    let r = resolver(&f);
    let c = json!(A);
    r.resolve(Some(&c)).await.unwrap();
    r.resolve(Some(&c)).await.unwrap();
    let entry = r.registry().lookup_url(A).unwrap();
    assert_eq!(entry.number_of_hits(), 2);
}

#[tokio::test]
async fn preloaded_contexts_stay_compiled_and_skip_the_size_limit() {
    let pre = "https://example.org/preloaded.jsonld";
    let f = FakeFetcher::with(&[(pre, Ok(many_terms(999, 2000)))]);
    for i in 0..10 {
        f.set(&url(i), Ok(many_terms(i, 500)));
    }
    let registry =
        Arc::new(ContextRegistry::new("http://localhost:1026").with_pinned([pre.into()]));
    let r = ContextResolver::with_limits(
        f.clone(),
        registry.clone(),
        ResolverLimits {
            cache_bytes: 1024 * 1024,
            max_document_bytes: 10_000,
            ..ResolverLimits::default()
        },
    );
    let big = r.resolve(Some(&json!(url(0)))).await;
    assert!(matches!(big, Err(JsonLdError::NotAvailable(_))), "{big:?}");
    r.resolve(Some(&json!(pre))).await.unwrap();
    assert_eq!(r.compiled_bytes(), 0, "pinned: not counted");
    for _ in 0..3 {
        r.resolve(Some(&json!(pre))).await.unwrap();
    }
    assert_eq!(f.calls().iter().filter(|u| *u == pre).count(), 1);
}

#[tokio::test]
async fn hosted_contexts_resolve_without_fetching() {
    let f = FakeFetcher::with(&[(A, Ok(json!({"@context": {"A1": "urn:a1"}})))]);
    let r = resolver(&f);
    let t = Tenant::default_tenant();
    let hosted = r
        .registry()
        .add_hosted(&t, &json!({"@context": [A, {"H": "http://example.org/H"}]}))
        .unwrap();
    let via_other_host = format!(
        "http://127.0.0.1:9090/ngsi-ld/v1/jsonldContexts/{}",
        hosted.local_id
    );
    for url in [hosted.url.clone(), via_other_host] {
        let ctx = r.resolve(Some(&json!(url))).await.unwrap();
        assert_eq!(ctx.expand_term("H"), "http://example.org/H");
        assert_eq!(ctx.expand_term("A1"), "urn:a1");
    }
    assert_eq!(f.calls(), [A]);
    assert_eq!(hosted.number_of_hits(), 2);
    // deleting the hosted context drops compiled contexts built from it
    r.registry().delete(&t, &hosted.local_id).unwrap();
    let gone = r.resolve(Some(&json!(hosted.url.clone()))).await;
    assert!(
        matches!(gone, Err(JsonLdError::NotAvailable(_))),
        "{gone:?}"
    );
}

#[tokio::test]
async fn reload_replaces_or_keeps_the_cached_copy() {
    let f = FakeFetcher::with(&[(A, Ok(json!({"@context": {"X": "http://example.org/v1/X"}})))]);
    let r = resolver(&f);
    let t = Tenant::default_tenant();
    let c = json!(A);
    assert_eq!(
        r.resolve(Some(&c)).await.unwrap().expand_term("X"),
        "http://example.org/v1/X"
    );
    f.set(A, Ok(json!({"@context": {"X": "http://example.org/v2/X"}})));
    r.reload(&t, A).await.unwrap();
    assert_eq!(
        r.resolve(Some(&c)).await.unwrap().expand_term("X"),
        "http://example.org/v2/X"
    );
    f.set(A, Err("timeout".into()));
    assert!(matches!(
        r.reload(&t, A).await,
        Err(JsonLdError::NotAvailable(_))
    ));
    assert_eq!(r.registry().find(&t, A).unwrap().kind, ContextKind::Cached);
    assert_eq!(
        r.resolve(Some(&c)).await.unwrap().expand_term("X"),
        "http://example.org/v2/X"
    );
    // the core context reloads trivially; unknown ids and Hosted entries cannot be reloaded
    r.reload(
        &t,
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
    )
    .await
    .unwrap();
    assert!(matches!(
        r.reload(&t, "wrong_id_context").await,
        Err(JsonLdError::NotAllowed(_))
    ));
    let hosted = r
        .registry()
        .add_hosted(&t, &json!({"@context": {}}))
        .unwrap();
    assert!(matches!(
        r.reload(&t, &hosted.local_id).await,
        Err(JsonLdError::NotAllowed(_))
    ));
    let _ = DEFAULT;
}
