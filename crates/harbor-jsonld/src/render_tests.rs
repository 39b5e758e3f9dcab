//! Rendering tables: each attribute kind in each format, system attributes, multi-instance
//! attributes, the language filter and the GeoJSON Feature.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

const D: &str = "https://uri.etsi.org/ngsi-ld/default-context/";
const T0: &str = "2024-01-01T12:00:00Z";
const T1: &str = "2024-01-02T08:30:00.250Z";
const T2: &str = "2100-01-01T00:00:00Z";

fn t(s: &str) -> Timestamp {
    time::parse(s).unwrap()
}

fn attr(value: AttrValue) -> Attribute {
    let mut a = Attribute::new(value, t(T0));
    a.modified_at = t(T1);
    a
}

fn entity(attrs: Vec<(&str, Vec<Attribute>)>) -> Entity {
    Entity {
        id: "urn:ngsi-ld:Vehicle:A1".into(),
        types: vec!["http://example.org/Vehicle".into()],
        scopes: vec![],
        attrs: attrs.into_iter().map(|(n, l)| (n.to_string(), l)).collect(),
        created_at: t(T0),
        modified_at: t(T1),
        expires_at: None,
    }
}

fn ctx() -> Context {
    Context::compile(&[json!({
        "Vehicle": "http://example.org/Vehicle",
        "speed": "http://example.org/speed",
        "Person": "http://example.org/Person"
    })])
    .unwrap()
}

fn opts(format: Format) -> RenderOptions<'static> {
    RenderOptions {
        format,
        ..Default::default()
    }
}

/// (attribute, [normalized, concise, keyValues])
fn kinds() -> Vec<(Attribute, [Value; 3])> {
    let point = json!({"type": "Point", "coordinates": [13.3, 52.5]});
    let mut measured = attr(AttrValue::Property(json!(120)));
    measured.observed_at = Some(t(T1));
    measured.unit_code = Some("KMH".into());
    let mut with_sub = attr(AttrValue::Property(json!("on")));
    with_sub.sub.insert(
        format!("{D}providedBy"),
        attr(AttrValue::Relationship {
            object: json!("urn:ngsi-ld:Device:1"),
            object_type: None,
        }),
    );
    vec![
        (
            attr(AttrValue::Property(json!(120))),
            [
                json!({"type": "Property", "value": 120}),
                json!(120),
                json!(120),
            ],
        ),
        (
            attr(AttrValue::Property(json!({"type": "x", "a": 1}))),
            [
                json!({"type": "Property", "value": {"type": "x", "a": 1}}),
                json!({"value": {"type": "x", "a": 1}}),
                json!({"type": "x", "a": 1}),
            ],
        ),
        (
            attr(AttrValue::Property(json!([1, 2]))),
            [
                json!({"type": "Property", "value": [1, 2]}),
                json!([1, 2]),
                json!([1, 2]),
            ],
        ),
        (
            measured,
            [
                json!({"type": "Property", "value": 120, "observedAt": T1, "unitCode": "KMH"}),
                json!({"value": 120, "observedAt": T1, "unitCode": "KMH"}),
                json!(120),
            ],
        ),
        (
            with_sub,
            [
                json!({"type": "Property", "value": "on",
                       "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"}}),
                json!({"value": "on", "providedBy": {"object": "urn:ngsi-ld:Device:1"}}),
                json!("on"),
            ],
        ),
        (
            attr(AttrValue::Relationship {
                object: json!("urn:ngsi-ld:Person:Bob"),
                object_type: Some(json!("http://example.org/Person")),
            }),
            [
                json!({"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob", "objectType": "Person"}),
                json!({"object": "urn:ngsi-ld:Person:Bob", "objectType": "Person"}),
                json!("urn:ngsi-ld:Person:Bob"),
            ],
        ),
        (
            attr(AttrValue::GeoProperty(point.clone())),
            [
                json!({"type": "GeoProperty", "value": point}),
                point.clone(),
                point.clone(),
            ],
        ),
        (
            attr(AttrValue::LanguageProperty(
                json!({"en": "yes", "fr": "oui"}),
            )),
            [
                json!({"type": "LanguageProperty", "languageMap": {"en": "yes", "fr": "oui"}}),
                json!({"languageMap": {"en": "yes", "fr": "oui"}}),
                json!({"languageMap": {"en": "yes", "fr": "oui"}}),
            ],
        ),
        (
            attr(AttrValue::JsonProperty(
                json!({"id": "85a6", "value": "Overstay"}),
            )),
            [
                json!({"type": "JsonProperty", "json": {"id": "85a6", "value": "Overstay"}}),
                json!({"json": {"id": "85a6", "value": "Overstay"}}),
                json!({"json": {"id": "85a6", "value": "Overstay"}}),
            ],
        ),
        (
            attr(AttrValue::VocabProperty(json!(format!("{D}Male")))),
            [
                json!({"type": "VocabProperty", "vocab": "Male"}),
                json!({"vocab": "Male"}),
                json!({"vocab": "Male"}),
            ],
        ),
        (
            attr(AttrValue::VocabProperty(json!([
                "http://example.org/Person",
                "urn:x:y"
            ]))),
            [
                json!({"type": "VocabProperty", "vocab": ["Person", "urn:x:y"]}),
                json!({"vocab": ["Person", "urn:x:y"]}),
                json!({"vocab": ["Person", "urn:x:y"]}),
            ],
        ),
        (
            attr(AttrValue::ListProperty(json!(["First", "Second"]))),
            [
                json!({"type": "ListProperty", "valueList": ["First", "Second"]}),
                json!({"valueList": ["First", "Second"]}),
                json!(["First", "Second"]),
            ],
        ),
        (
            attr(AttrValue::ListRelationship {
                object_list: json!(["urn:ngsi-ld:BusStop:1", "urn:ngsi-ld:BusStop:2"]),
                object_type: None,
            }),
            [
                json!({"type": "ListRelationship",
                       "objectList": [{"object": "urn:ngsi-ld:BusStop:1"}, {"object": "urn:ngsi-ld:BusStop:2"}]}),
                json!({"objectList": ["urn:ngsi-ld:BusStop:1", "urn:ngsi-ld:BusStop:2"]}),
                json!(["urn:ngsi-ld:BusStop:1", "urn:ngsi-ld:BusStop:2"]),
            ],
        ),
    ]
}

#[test]
fn every_kind_in_every_format() {
    let ctx = ctx();
    for (a, expected) in kinds() {
        let e = entity(vec![("http://example.org/speed", vec![a.clone()])]);
        for (format, want) in [Format::Normalized, Format::Concise, Format::KeyValues]
            .into_iter()
            .zip(expected)
        {
            let got = render_entity(&e, &ctx, &opts(format));
            let full = json!({"id": "urn:ngsi-ld:Vehicle:A1", "type": "Vehicle", "speed": want});
            assert_eq!(got, full, "{format:?} of {:?}", a.value);
            assert_eq!(
                render_attribute(std::slice::from_ref(&a), &ctx, &opts(format)),
                full["speed"]
            );
        }
    }
}

#[test]
fn system_attributes_and_expiry() {
    let ctx = ctx();
    let mut a = attr(AttrValue::Property(json!(1)));
    a.expires_at = Some(t(T2));
    let mut e = entity(vec![(&format!("{D}p"), vec![a])]);
    e.scopes = vec!["/Madrid".into(), "/Madrid/Centro".into()];
    e.expires_at = Some(t(T2));
    let sys = RenderOptions {
        format: Format::Normalized,
        sys_attrs: true,
        ..Default::default()
    };
    let want = json!({
        "id": "urn:ngsi-ld:Vehicle:A1", "type": "Vehicle",
        "scope": ["/Madrid", "/Madrid/Centro"],
        "createdAt": "2024-01-01T12:00:00.000Z", "modifiedAt": "2024-01-02T08:30:00.250Z",
        "expiresAt": T2,
        "p": {"type": "Property", "value": 1, "expiresAt": T2,
              "createdAt": "2024-01-01T12:00:00.000Z", "modifiedAt": "2024-01-02T08:30:00.250Z"}
    });
    assert_eq!(render_entity(&e, &ctx, &sys), want);
    let concise = RenderOptions {
        format: Format::Concise,
        sys_attrs: true,
        ..Default::default()
    };
    let got = render_entity(&e, &ctx, &concise);
    assert_eq!(got["p"]["value"], 1);
    assert!(got["p"].get("type").is_none());
    assert_eq!(
        render_entity(&e, &ctx, &opts(Format::Concise))["p"],
        json!(1)
    );
    e.scopes = vec!["/Madrid".into()];
    let plain = render_entity(&e, &ctx, &opts(Format::KeyValues));
    assert_eq!(
        plain,
        json!({"id": "urn:ngsi-ld:Vehicle:A1", "type": "Vehicle", "scope": "/Madrid", "p": 1})
    );
}

#[test]
fn multi_instance_attributes() {
    let ctx = ctx();
    let default = attr(AttrValue::Property(json!(1)));
    let mut other = attr(AttrValue::Property(json!(2)));
    other.dataset_id = Some("urn:ngsi-ld:Dataset:1".into());
    let e = entity(vec![(
        "http://example.org/speed",
        vec![default, other.clone()],
    )]);
    let cases = [
        (
            Format::Normalized,
            json!([{"type": "Property", "value": 1},
                   {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:1"}]),
        ),
        (
            Format::Concise,
            json!([{"value": 1}, {"value": 2, "datasetId": "urn:ngsi-ld:Dataset:1"}]),
        ),
        (
            Format::KeyValues,
            json!({"dataset": {"@none": 1, "urn:ngsi-ld:Dataset:1": 2}}),
        ),
    ];
    for (format, want) in cases {
        assert_eq!(
            render_entity(&e, &ctx, &opts(format))["speed"],
            want,
            "{format:?}"
        );
    }
    let single = entity(vec![("http://example.org/speed", vec![other])]);
    assert_eq!(
        render_entity(&single, &ctx, &opts(Format::KeyValues))["speed"],
        json!({"dataset": {"urn:ngsi-ld:Dataset:1": 2}})
    );
    assert_eq!(
        render_entity(&single, &ctx, &opts(Format::Concise))["speed"],
        json!({"value": 2, "datasetId": "urn:ngsi-ld:Dataset:1"})
    );
}

#[test]
fn language_filter() {
    let ctx = ctx();
    let map = json!({"en": "yes", "fr": "oui", "fr-CH": "ja", "@none": "default"});
    let e = entity(vec![(
        &format!("{D}says"),
        vec![attr(AttrValue::LanguageProperty(map.clone()))],
    )]);
    let cases = [
        ("fr", "fr", "oui"),
        ("FR-ch", "fr-CH", "ja"),
        ("de,en;q=0.5", "en", "yes"),
        ("fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5", "fr-CH", "ja"),
        ("en;q=0.1,fr", "fr", "oui"),
        ("de", "@none", "default"),
        ("*", "@none", "default"),
    ];
    for (lang, tag, text) in cases {
        let normalized = RenderOptions {
            format: Format::Normalized,
            lang: Some(lang),
            ..Default::default()
        };
        assert_eq!(
            render_entity(&e, &ctx, &normalized)["says"],
            json!({"type": "Property", "value": text, "lang": tag}),
            "{lang}"
        );
        let concise = RenderOptions {
            format: Format::Concise,
            lang: Some(lang),
            ..Default::default()
        };
        assert_eq!(
            render_entity(&e, &ctx, &concise)["says"],
            json!({"value": text, "lang": tag})
        );
        let kv = RenderOptions {
            format: Format::KeyValues,
            lang: Some(lang),
            ..Default::default()
        };
        assert_eq!(render_entity(&e, &ctx, &kv)["says"], json!(text), "{lang}");
    }
    let street = json!({"fr": "Grand Place", "nl": "Grote Markt"});
    let regional = json!({"de": "Marktplatz", "en-US": "Main Square"});
    let picks = [
        ("fr;q=0.2,nl;q=0.9", &street, "nl"),
        ("FR", &street, "fr"),
        ("nl-BE", &street, "nl"),
        ("en", &regional, "en-US"),
        ("pt", &street, "fr"),
        ("*", &street, "fr"),
        ("fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5", &street, "fr"),
    ];
    for (lang, map, tag) in picks {
        assert_eq!(LangPrefs::parse(lang).pick(map).unwrap().0, tag, "{lang}");
    }
    let no_default = LangPrefs::parse("de");
    assert_eq!(
        no_default.pick(&json!({"it": "sì", "en": "yes"})),
        Some(("it".into(), json!("sì")))
    );
    assert_eq!(no_default.pick(&json!({})), None);
}

#[test]
fn types_attrs_filter_and_order() {
    let ctx = ctx();
    let mut e = entity(vec![
        (
            &format!("{D}zeta"),
            vec![attr(AttrValue::Property(json!(1)))],
        ),
        (
            "http://example.org/speed",
            vec![attr(AttrValue::Property(json!(2)))],
        ),
        (
            "http://other.org/alpha",
            vec![attr(AttrValue::Property(json!(3)))],
        ),
    ]);
    e.types = vec!["http://example.org/Vehicle".into(), format!("{D}Car")];
    let all = render_entity(&e, &ctx, &opts(Format::KeyValues));
    let keys: Vec<&str> = all
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["id", "type", "http://other.org/alpha", "speed", "zeta"]
    );
    assert_eq!(all["type"], json!(["Vehicle", "Car"]));
    let keep = vec!["http://example.org/speed".to_string()];
    let some = RenderOptions {
        format: Format::KeyValues,
        attrs: Some(&keep),
        ..Default::default()
    };
    assert_eq!(
        render_entity(&e, &ctx, &some),
        json!({"id": "urn:ngsi-ld:Vehicle:A1", "type": ["Vehicle", "Car"], "speed": 2})
    );
}

#[test]
fn geojson_features() {
    let ctx = ctx();
    let point = json!({"type": "Point", "coordinates": [13.3, 52.5]});
    let mut e = entity(vec![
        (
            "https://uri.etsi.org/ngsi-ld/location",
            vec![attr(AttrValue::GeoProperty(point.clone()))],
        ),
        (
            "http://example.org/speed",
            vec![attr(AttrValue::Property(json!(80)))],
        ),
    ]);
    let kv = render_geojson_feature(
        &e,
        &ctx,
        &opts(Format::KeyValues),
        "https://uri.etsi.org/ngsi-ld/location",
    );
    assert_eq!(
        kv,
        json!({"id": "urn:ngsi-ld:Vehicle:A1", "type": "Feature", "geometry": point,
               "properties": {"type": "Vehicle", "location": point, "speed": 80}})
    );
    let normalized = render_geojson_feature(
        &e,
        &ctx,
        &opts(Format::Normalized),
        "https://uri.etsi.org/ngsi-ld/location",
    );
    assert_eq!(
        normalized["properties"]["speed"],
        json!({"type": "Property", "value": 80})
    );
    let missing = render_geojson_feature(
        &e,
        &ctx,
        &opts(Format::Normalized),
        "http://example.org/speed",
    );
    assert_eq!(missing["geometry"], Value::Null);
    e.attrs = BTreeMap::new();
    let empty = render_geojson_feature(
        &e,
        &ctx,
        &opts(Format::Normalized),
        "https://uri.etsi.org/ngsi-ld/location",
    );
    assert_eq!(empty["geometry"], Value::Null);
    assert_eq!(empty["properties"], json!({"type": "Vehicle"}));
}

#[test]
fn single_instances() {
    let ctx = ctx();
    let mut a = attr(AttrValue::Property(json!(5)));
    a.observed_at = Some(t(T0));
    assert_eq!(
        render_instance(&a, &ctx, &opts(Format::KeyValues)),
        json!(5)
    );
    assert_eq!(
        render_instance(&a, &ctx, &opts(Format::Concise)),
        json!({"value": 5, "observedAt": "2024-01-01T12:00:00Z"})
    );
}
