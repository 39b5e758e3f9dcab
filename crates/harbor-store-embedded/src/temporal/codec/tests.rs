//! Round trips of the binary instance encoding over every attribute kind and field, and its
//! samples against the samples of the decoded instance.

use serde_json::json;

use super::*;

fn at(s: &str) -> Timestamp {
    harbor_model::time::parse(s).unwrap()
}

fn instance(value: AttrValue) -> TemporalInstance {
    TemporalInstance {
        instance_id: "urn:ngsi-ld:AttributeInstance:1".into(),
        attr: Attribute::new(value, at("2026-01-01T00:00:00Z")),
        deleted_at: None,
    }
}

/// One instance of every kind, every optional field set somewhere, payloads of every JSON
/// type, times before 1970 and with nanoseconds, and a deleted instance.
fn every_kind() -> Vec<(&'static str, TemporalInstance)> {
    let obj = json!({"z": 1, "a": [1, -2, 2.5, -0.0, true, null, "é"], "m": {"k": u64::MAX}});
    let mut full = instance(AttrValue::Property(json!(42)));
    full.attr.dataset_id = Some("urn:ngsi-ld:Dataset:a".into());
    full.attr.observed_at = Some(at("1969-07-20T20:17:40.123456789Z"));
    full.attr.unit_code = Some("KMH".into());
    full.attr.expires_at = Some(at("2999-12-31T23:59:59Z"));
    let mut sub = instance(AttrValue::Relationship {
        object: json!("urn:ngsi-ld:Person:1"),
        object_type: Some(json!("https://e.org/Person")),
    })
    .attr;
    sub.sub.insert(
        "https://e.org/deeper".into(),
        instance(AttrValue::Property(json!("x"))).attr,
    );
    full.attr.sub.insert("https://e.org/providedBy".into(), sub);
    full.attr.sub.insert(
        "https://e.org/accuracy".into(),
        instance(AttrValue::Property(json!(0.5))).attr,
    );
    let gone = TemporalInstance::deleted(
        "urn:ngsi-ld:AttributeInstance:2".into(),
        &full.attr,
        at("2026-02-01T00:00:00Z"),
    );
    vec![
        ("a Property with every field", full),
        ("a deleted instance", gone),
        (
            "a negative integer",
            instance(AttrValue::Property(json!(-7))),
        ),
        ("a float", instance(AttrValue::Property(json!(1.0)))),
        ("a boolean", instance(AttrValue::Property(json!(false)))),
        ("a string", instance(AttrValue::Property(json!("on")))),
        ("null", instance(AttrValue::Property(json!(null)))),
        (
            "an object, key order kept",
            instance(AttrValue::Property(obj.clone())),
        ),
        (
            "a Relationship without objectType",
            instance(AttrValue::Relationship {
                object: json!(["urn:a:1", "urn:a:2"]),
                object_type: None,
            }),
        ),
        (
            "a GeoProperty",
            instance(AttrValue::GeoProperty(
                json!({"type": "Point", "coordinates": [103.8, 1.3]}),
            )),
        ),
        (
            "a LanguageProperty",
            instance(AttrValue::LanguageProperty(
                json!({"en": "car", "fr": ["auto", "voiture"]}),
            )),
        ),
        ("a JsonProperty", instance(AttrValue::JsonProperty(obj))),
        (
            "a VocabProperty",
            instance(AttrValue::VocabProperty(json!("https://e.org/Open"))),
        ),
        (
            "a ListProperty",
            instance(AttrValue::ListProperty(json!([1, "two", [3]]))),
        ),
        (
            "a ListRelationship with objectType",
            instance(AttrValue::ListRelationship {
                object_list: json!(["urn:a:1"]),
                object_type: Some(json!(["https://e.org/A", "https://e.org/B"])),
            }),
        ),
    ]
}

#[test]
fn round_trips_every_kind() {
    for (what, i) in every_kind() {
        let bytes = encode(&i);
        let back = decode(&i.instance_id, &bytes).unwrap();
        assert_eq!(back, i, "{what}");
        // Equal as values is not enough: the JSON written back must be the same text
        // (1.0 stays 1.0, members keep their order).
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&i).unwrap(),
            "{what}"
        );
    }
}

#[test]
fn samples_agree_with_the_decoded_instance() {
    for (what, i) in every_kind() {
        let bytes = encode(&i);
        for time in [
            TimeProperty::ObservedAt,
            TimeProperty::CreatedAt,
            TimeProperty::ModifiedAt,
            TimeProperty::DeletedAt,
        ] {
            let want = InstanceSample::of(&i, time);
            assert_eq!(sample(&bytes, time).unwrap(), want, "{what} at {time:?}");
        }
    }
}

#[test]
fn is_smaller_than_json() {
    let mut i = instance(AttrValue::Property(json!(123)));
    i.attr.observed_at = Some(at("2026-01-01T00:00:00Z"));
    let json = serde_json::to_vec(&i).unwrap();
    assert!(encode(&i).len() * 3 < json.len(), "{}", encode(&i).len());
}

#[test]
fn refuses_corrupt_rows_without_panicking() {
    let (_, full) = &every_kind()[0];
    let bytes = encode(full);
    for cut in 0..bytes.len() {
        assert!(decode("x", &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(decode("x", &extra).unwrap_err().contains("left after"));
    // Flags, then created and modified: 2026, day 1, midnight.
    let mut huge = vec![0];
    for _ in 0..2 {
        huge.extend_from_slice(&2026i32.to_le_bytes());
        huge.extend_from_slice(&1u16.to_le_bytes());
        huge.extend_from_slice(&[0; 8]);
    }
    huge.extend_from_slice(&[0, J_ARRAY, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode("x", &huge).unwrap_err().contains("past the end"));
}
