//! Tables for context compilation, expansion and compaction.

use serde_json::json;

use super::*;

const NGSI: &str = "https://uri.etsi.org/ngsi-ld/";

#[test]
fn core_expands_and_compacts() {
    let core = Context::core();
    assert!(core.is_core());
    let cases = [
        ("location", "https://uri.etsi.org/ngsi-ld/location"),
        ("observedAt", "https://uri.etsi.org/ngsi-ld/observedAt"),
        ("value", "https://uri.etsi.org/ngsi-ld/hasValue"),
        ("containedBy", "https://uri.etsi.org/ngsi-ld/isContainedBy"),
        ("Point", "https://purl.org/geojson/vocab#Point"),
        ("description", "http://purl.org/dc/terms/description"),
        (
            "attributeCount",
            "https://uri.etsi.org/ngsi-ld/default-context/attributeCount",
        ),
        (
            "Vehicle",
            "https://uri.etsi.org/ngsi-ld/default-context/Vehicle",
        ),
        ("urn:ngsi-ld:Vehicle:A1", "urn:ngsi-ld:Vehicle:A1"),
        ("http://example.org/speed", "http://example.org/speed"),
        ("unknown:thing", "unknown:thing"),
        ("id", "@id"),
        ("type", "@type"),
    ];
    for (term, iri) in cases {
        assert_eq!(core.expand_term(term), iri, "expand {term}");
        assert_eq!(core.compact_iri(iri), term, "compact {iri}");
    }
    // compact IRIs expand, but compaction gives fully qualified names (5.5.7)
    for (term, iri) in [
        ("ngsi-ld:foo", "https://uri.etsi.org/ngsi-ld/foo"),
        ("geojson:Thing", "https://purl.org/geojson/vocab#Thing"),
    ] {
        assert_eq!(core.expand_term(term), iri);
        assert_eq!(core.compact_iri(iri), iri);
    }
    assert_eq!(core.vocab(), DEFAULT_VOCAB);
    let vocab = core.term_def("vocab").unwrap();
    assert_eq!(vocab.iri, format!("{NGSI}hasVocab"));
    assert_eq!(vocab.type_.as_deref(), Some("@vocab"));
    let created = core.term_def("createdAt").unwrap();
    assert_eq!(
        created.type_.as_deref(),
        Some("https://uri.etsi.org/ngsi-ld/DateTime")
    );
    assert_eq!(
        core.term_def("languageMap").unwrap().container.as_deref(),
        Some("@language")
    );
}

#[test]
fn user_contexts_expand_and_compact() {
    let docs = [
        json!({
            "schema": "https://schema.org/",
            "ex": "http://example.org/",
            "Vehicle": "ex:Vehicle",
            "name": "schema:name",
            "speed": {"@id": "ex:speed", "@type": "@id"},
            "brand": {"@id": "schema:brand", "@type": "@vocab"},
            "Car": "Vehicle",
            "alias": "http://example.org/aliasTarget",
            "location": "schema:location",
            "id": "@id",
            "myType": "@type",
            "when": {"@id": "ex:when", "@type": "DateTime"},
            "nested": {"@id": "ex2:nested"},
            "ex2": "ex:v2/",
            "self": "self"
        }),
        json!({ "speed": "ex:velocity" }),
    ];
    let ctx = Context::compile(&docs).unwrap();
    let expand = [
        ("Vehicle", "http://example.org/Vehicle"),
        ("name", "https://schema.org/name"),
        ("speed", "http://example.org/velocity"),
        ("Car", "http://example.org/Vehicle"),
        ("schema:price", "https://schema.org/price"),
        ("location", "https://uri.etsi.org/ngsi-ld/location"),
        ("nested", "http://example.org/v2/nested"),
        ("self", "https://uri.etsi.org/ngsi-ld/default-context/self"),
        (
            "other",
            "https://uri.etsi.org/ngsi-ld/default-context/other",
        ),
        ("myType", "@type"),
    ];
    for (term, iri) in expand {
        assert_eq!(ctx.expand_term(term), iri, "expand {term}");
    }
    let compact = [
        ("http://example.org/Vehicle", "Car"),
        ("https://schema.org/name", "name"),
        ("http://example.org/velocity", "speed"),
        ("https://schema.org/price", "https://schema.org/price"),
        ("https://schema.org/location", "https://schema.org/location"),
        ("https://uri.etsi.org/ngsi-ld/location", "location"),
        (
            "https://uri.etsi.org/ngsi-ld/default-context/other",
            "other",
        ),
        (
            "https://uri.etsi.org/ngsi-ld/unknownCore",
            "https://uri.etsi.org/ngsi-ld/unknownCore",
        ),
        ("http://example.org/v2/deep", "http://example.org/v2/deep"),
        ("http://elsewhere.org/x", "http://elsewhere.org/x"),
        ("@type", "type"),
        ("@id", "id"),
    ];
    for (iri, term) in compact {
        assert_eq!(ctx.compact_iri(iri), term, "compact {iri}");
    }
    assert_eq!(
        ctx.term_def("brand").unwrap().type_.as_deref(),
        Some("@vocab")
    );
    assert_eq!(
        ctx.term_def("when").unwrap().type_.as_deref(),
        Some("https://uri.etsi.org/ngsi-ld/DateTime")
    );
}

#[test]
fn core_terms_and_vocab_are_protected() {
    let ctx = Context::compile(&[json!({
        "@vocab": "http://example.org/vocab/",
        "type": "http://example.org/myType",
        "observedAt": "http://example.org/observedAt",
        "ngsi-ld": "http://example.org/fake/",
        "T": "T",
        "U": "ngsi-ld:U"
    })])
    .unwrap();
    assert_eq!(ctx.expand_term("type"), "@type");
    assert_eq!(ctx.expand_term("observedAt"), format!("{NGSI}observedAt"));
    assert_eq!(ctx.expand_term("ngsi-ld:x"), format!("{NGSI}x"));
    // the user @vocab applies to the user's own definitions only
    assert_eq!(ctx.expand_term("T"), "http://example.org/vocab/T");
    assert_eq!(
        ctx.expand_term("Unknown"),
        format!("{DEFAULT_VOCAB}Unknown")
    );
    // inside the user context its own "ngsi-ld" prefix was in force
    assert_eq!(ctx.expand_term("U"), "http://example.org/fake/U");
    assert_eq!(ctx.user_terms().count(), 2);
}

#[test]
fn invalid_contexts_are_rejected() {
    let bad = [
        json!({"a": "b", "b": "a"}),
        json!({"a": "b:x", "b": "a:y/"}),
        json!({"a": 5}),
        json!({"a": {"@id": 5}}),
        json!({"a": {"@id": "x:y", "@container": 3}}),
        json!({"a": {"@id": "http://example.org/a", "@context": {"type": "@id"}}}),
        json!({"@vocab": 3}),
        json!("http://example.org/remote.jsonld"),
        json!(42),
    ];
    for doc in bad {
        let got = Context::compile(std::slice::from_ref(&doc));
        assert!(
            matches!(got, Err(JsonLdError::Invalid(_))),
            "{doc} gave {got:?}"
        );
    }
}

#[test]
fn null_and_core_urls_and_arrays() {
    let ctx = Context::compile(&[
        json!({"a": "http://example.org/a"}),
        json!(null),
        json!([{"b": "http://example.org/b"}, CORE_CONTEXT_URL]),
        json!({"b": null}),
        json!({"c": {"@reverse": "http://example.org/c"}}),
    ])
    .unwrap();
    assert_eq!(ctx.expand_term("a"), format!("{DEFAULT_VOCAB}a"));
    assert_eq!(ctx.expand_term("b"), format!("{DEFAULT_VOCAB}b"));
    assert_eq!(ctx.expand_term("c"), format!("{DEFAULT_VOCAB}c"));
}

#[test]
fn core_urls_are_recognised() {
    let yes = [
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
        "http://uri.etsi.org/ngsi-ld/ngsi-ld-core-context-v1.8.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.10.jsonld",
    ];
    let no = [
        "https://example.org/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v2.0.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.json",
        "ftp://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    ];
    for u in yes {
        assert!(is_core_context_url(u), "{u}");
    }
    for u in no {
        assert!(!is_core_context_url(u), "{u}");
    }
}

#[test]
fn content_hash_is_stable_and_distinguishes() {
    let a = json!({"a": "http://example.org/a"});
    let b = json!({"a": "http://example.org/b"});
    assert_eq!(content_hash(&a), content_hash(&a.clone()));
    assert_ne!(content_hash(&a), content_hash(&b));
    assert_eq!(content_hash(&a).len(), 16);
}
