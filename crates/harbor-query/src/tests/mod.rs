//! Table-driven tests for every parser and evaluator of the crate, with a small builder
//! that turns NGSI-LD normalized JSON into a model [`Entity`].

mod geo;
mod geo_parse;
mod hostile;
mod order;
mod projection;
mod q_eval;
mod q_parse;
mod scope;
mod type_expr;

use std::collections::BTreeMap;

use harbor_model::{AttrValue, Attribute, Entity};
use serde_json::{json, Value};

/// The test "context": every short name `x` expands to `ex:x`; IRIs stay as they are.
pub(crate) fn ex(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        format!("ex:{s}")
    }
}

fn ts(s: &str) -> harbor_model::Timestamp {
    harbor_model::time::parse(s).expect("test timestamp")
}

/// Builds an Entity from normalized NGSI-LD JSON with short names (expanded with [`ex`]).
/// Created 2021-01-01, modified 2022-01-01.
pub(crate) fn entity(v: Value) -> Entity {
    let obj = v.as_object().expect("entity object");
    let types = match &obj["type"] {
        Value::String(t) => vec![ex(t)],
        Value::Array(ts) => ts.iter().map(|t| ex(t.as_str().unwrap())).collect(),
        _ => panic!("type"),
    };
    let scopes = match obj.get("scope") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(xs)) => xs.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        _ => vec![],
    };
    let mut attrs = BTreeMap::new();
    for (k, val) in obj {
        if ["id", "type", "scope"].contains(&k.as_str()) {
            continue;
        }
        let instances = match val {
            Value::Array(xs) => xs.iter().map(attribute).collect(),
            one => vec![attribute(one)],
        };
        attrs.insert(ex(k), instances);
    }
    Entity {
        id: obj["id"].as_str().unwrap().to_string(),
        types,
        scopes,
        attrs,
        created_at: ts("2021-01-01T00:00:00Z"),
        modified_at: ts("2022-01-01T00:00:00Z"),
        expires_at: None,
    }
}

fn attribute(v: &Value) -> Attribute {
    let m = v.as_object().expect("attribute object");
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let value = match m["type"].as_str().unwrap() {
        "Property" => AttrValue::Property(get("value")),
        "GeoProperty" => AttrValue::GeoProperty(get("value")),
        "LanguageProperty" => AttrValue::LanguageProperty(get("languageMap")),
        "VocabProperty" => AttrValue::VocabProperty(get("vocab")),
        "JsonProperty" => AttrValue::JsonProperty(get("json")),
        "ListProperty" => AttrValue::ListProperty(get("valueList")),
        "Relationship" => AttrValue::Relationship {
            object: get("object"),
            object_type: None,
        },
        "ListRelationship" => AttrValue::ListRelationship {
            object_list: get("objectList"),
            object_type: None,
        },
        other => panic!("attribute type {other}"),
    };
    let mut a = Attribute::new(value, ts("2021-01-01T00:00:00Z"));
    a.observed_at = m.get("observedAt").map(|t| ts(t.as_str().unwrap()));
    a.unit_code = m.get("unitCode").map(|t| t.as_str().unwrap().to_string());
    a.dataset_id = m.get("datasetId").map(|t| t.as_str().unwrap().to_string());
    for (k, sub) in m {
        let reserved = harbor_model::names::ATTR_RESERVED.contains(&k.as_str());
        if !reserved && sub.is_object() && sub.get("type").is_some() {
            a.sub.insert(ex(k), attribute(sub));
        }
    }
    a
}

#[test]
fn builder_reads_all_attribute_kinds() {
    let e = entity(json!({
        "id": "urn:x:1", "type": "T", "scope": "/a",
        "p": {"type": "Property", "value": 1, "q": {"type": "Property", "value": 2}},
        "r": {"type": "Relationship", "object": "urn:y"}
    }));
    assert_eq!(e.types, vec!["ex:T"]);
    assert_eq!(e.scopes, vec!["/a"]);
    assert_eq!(e.attrs["ex:p"][0].sub["ex:q"].value.payload(), &json!(2));
    assert_eq!(e.attrs["ex:r"][0].value.type_name(), "Relationship");
}
