//! Reading NGSI-LD payloads (normalized or concise, 4.5) into model types: every name and
//! type is expanded with the request's `@context`, every member is validated, and each error
//! names the attribute and the member that is wrong.

use std::collections::BTreeMap;

use harbor_model::names::{ATTR_RESERVED, ENTITY_RESERVED};
use harbor_model::{time, AttrValue, Attribute, NgsiError, NgsiResult, Timestamp};
use serde_json::{Map, Value};

use crate::context::Context;

/// How deep sub-attributes may nest.
const MAX_SUB_DEPTH: usize = 8;

/// The literal that deletes an attribute in merge operations (4.5.x, "urn:ngsi-ld:null").
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// An entity payload as sent by a client, before it is combined with the stored entity.
#[derive(Debug, Clone)]
pub struct EntityInput {
    pub id: Option<String>,
    /// Expanded types; empty when the payload had none.
    pub types: Vec<String>,
    pub scopes: Option<Vec<String>>,
    /// Attribute instances in payload order, by expanded name. `None` is an explicit null
    /// (deletion in merge operations).
    pub attrs: Vec<(String, Option<Attribute>)>,
    pub expires_at: Option<Timestamp>,
}

/// Whether a string is an absolute URI as NGSI-LD ids must be (RFC 3986 scheme + ':' + rest).
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok
        && !rest.is_empty()
        && s.len() <= 2048
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
        })
}

/// Whether a short attribute or type name is acceptable (4.6.2: no characters that break `q`,
/// URLs or JSON-LD).
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>'
                        | '"'
                        | '\''
                        | '='
                        | ';'
                        | '('
                        | ')'
                        | '{'
                        | '}'
                        | '|'
                        | '\\'
                        | '^'
                        | '`'
                        | '['
                        | ']'
                        | ','
                )
        })
}

fn expand_name(ctx: &Context, what: &str, name: &str) -> NgsiResult<String> {
    if !is_valid_name(name) {
        return Err(NgsiError::bad_request(format!(
            "{what} \"{name}\" is not a valid name"
        )));
    }
    Ok(ctx.expand_term(name))
}

/// Reads the entity types of a payload's `type` member (string or non-empty array of strings).
pub fn parse_types(ctx: &Context, v: &Value) -> NgsiResult<Vec<String>> {
    let mut out = Vec::new();
    let mut push = |s: &Value| -> NgsiResult<()> {
        let Some(s) = s.as_str() else {
            return Err(NgsiError::bad_request(format!(
                "entity \"type\" must be a string or an array of strings, got {s}"
            )));
        };
        let t = expand_name(ctx, "entity type", s)?;
        if !out.contains(&t) {
            out.push(t);
        }
        Ok(())
    };
    match v {
        Value::Array(items) if !items.is_empty() => items.iter().try_for_each(&mut push)?,
        Value::String(_) => push(v)?,
        _ => {
            return Err(NgsiError::bad_request(format!(
                "entity \"type\" must be a string or a non-empty array of strings, got {v}"
            )))
        }
    }
    Ok(out)
}

fn parse_scopes(v: &Value) -> NgsiResult<Vec<String>> {
    let one = |s: &Value| -> NgsiResult<String> {
        match s.as_str() {
            Some(s) if s.starts_with('/') && !s.contains(char::is_whitespace) => Ok(s.to_string()),
            _ => Err(NgsiError::bad_request(format!(
                "\"scope\" entries must be strings like \"/City/District\", got {s}"
            ))),
        }
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        // A scope given as a Property object (as some clients send it).
        Value::Object(o) => parse_scopes(o.get("value").unwrap_or(&Value::Null)),
        _ => Ok(vec![one(v)?]),
    }
}

fn parse_datetime(what: &str, v: &Value) -> NgsiResult<Timestamp> {
    let s = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("@value").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    time::parse(s).ok_or_else(|| {
        NgsiError::bad_request(format!(
            "{what} must be a DateTime like \"2024-01-31T12:00:00Z\", got {v}"
        ))
    })
}

/// Reads an entity payload (`POST /entities`, batch items, replace, merge, append bodies).
/// `require_id_type`: creating operations need both. `allow_null`: merge semantics.
pub fn parse_entity(
    ctx: &Context,
    body: &Value,
    require_id_type: bool,
    allow_null: bool,
    now: Timestamp,
) -> NgsiResult<EntityInput> {
    let Value::Object(obj) = body else {
        return Err(NgsiError::invalid(format!(
            "the entity must be a JSON object, got {}",
            kind_of(body)
        )));
    };
    let id = match obj.get("id").or_else(|| obj.get("@id")) {
        None => None,
        Some(Value::String(s)) if is_uri(s) => Some(s.clone()),
        Some(v) => {
            return Err(NgsiError::bad_request(format!(
                "entity \"id\" must be a URI, got {v}"
            )))
        }
    };
    let types = match obj.get("type").or_else(|| obj.get("@type")) {
        None => Vec::new(),
        Some(v) => parse_types(ctx, v)?,
    };
    if require_id_type && id.is_none() {
        return Err(NgsiError::bad_request("the entity has no \"id\""));
    }
    if require_id_type && types.is_empty() {
        return Err(NgsiError::bad_request("the entity has no \"type\""));
    }
    let scopes = obj.get("scope").map(parse_scopes).transpose()?;
    let expires_at = obj
        .get("expiresAt")
        .map(|v| parse_datetime("entity \"expiresAt\"", v))
        .transpose()?;
    let mut attrs = Vec::new();
    for (name, v) in obj {
        if ENTITY_RESERVED.contains(&name.as_str()) {
            continue;
        }
        let expanded = expand_name(ctx, "attribute", name)?;
        if v.is_null() {
            if allow_null {
                attrs.push((expanded, None));
                continue;
            }
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" is null"
            )));
        }
        for inst in parse_attribute_instances(ctx, name, v, allow_null, now)? {
            attrs.push((expanded.clone(), inst));
        }
    }
    Ok(EntityInput {
        id,
        types,
        scopes,
        attrs,
        expires_at,
    })
}

/// Reads the instances of one attribute: an array of instances (by `datasetId`) or a single
/// one. `None` marks a deletion (`urn:ngsi-ld:null` in merge).
pub fn parse_attribute_instances(
    ctx: &Context,
    name: &str,
    v: &Value,
    allow_null: bool,
    now: Timestamp,
) -> NgsiResult<Vec<Option<Attribute>>> {
    if let Value::Array(items) = v {
        // An array of attribute objects is a multi-instance attribute; any other array is the
        // concise form of a Property whose value is the array.
        if !items.is_empty()
            && items
                .iter()
                .all(|i| i.as_object().is_some_and(is_attribute_object))
        {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(parse_attribute(ctx, name, item, allow_null, now, 0)?);
            }
            check_unique_datasets(name, &out)?;
            return Ok(out);
        }
    }
    Ok(vec![parse_attribute(ctx, name, v, allow_null, now, 0)?])
}

fn check_unique_datasets(name: &str, instances: &[Option<Attribute>]) -> NgsiResult<()> {
    let mut seen = Vec::new();
    for a in instances.iter().flatten() {
        if seen.contains(&&a.dataset_id) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" has two instances with the same datasetId {}",
                a.dataset_id.as_deref().unwrap_or("(default)")
            )));
        }
        seen.push(&a.dataset_id);
    }
    Ok(())
}

fn is_attribute_object(o: &Map<String, Value>) -> bool {
    [
        "type",
        "value",
        "object",
        "languageMap",
        "json",
        "vocab",
        "valueList",
        "objectList",
    ]
    .iter()
    .any(|k| o.contains_key(*k))
}

fn is_geojson_geometry(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str).is_some_and(|t| {
        matches!(
            t,
            "Point"
                | "MultiPoint"
                | "LineString"
                | "MultiLineString"
                | "Polygon"
                | "MultiPolygon"
                | "GeometryCollection"
        )
    }) && (v.get("coordinates").is_some() || v.get("geometries").is_some())
}

fn is_null_literal(v: &Value) -> bool {
    v.as_str() == Some(NGSI_LD_NULL) || v.is_null()
}

/// Reads one attribute instance, normalized or concise.
pub fn parse_attribute(
    ctx: &Context,
    name: &str,
    v: &Value,
    allow_null: bool,
    now: Timestamp,
    depth: usize,
) -> NgsiResult<Option<Attribute>> {
    if depth > MAX_SUB_DEPTH {
        return Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": sub-attributes nest deeper than {MAX_SUB_DEPTH} levels"
        )));
    }
    if allow_null && is_null_literal(v) {
        return Ok(None);
    }
    let obj = match v {
        Value::Object(o) if is_attribute_object(o) => o,
        Value::Null => {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" is null"
            )))
        }
        // Concise: a bare value is a Property (or GeoProperty for a GeoJSON geometry).
        other => {
            let value = if is_geojson_geometry(other) {
                check_geometry(name, other)?;
                AttrValue::GeoProperty(other.clone())
            } else {
                AttrValue::Property(other.clone())
            };
            return Ok(Some(Attribute::new(value, now)));
        }
    };
    let declared = match obj.get("type").or_else(|| obj.get("@type")) {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(t) => {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": \"type\" must be a string, got {t}"
            )))
        }
    };
    let kind = match declared {
        Some(t) => t.strip_prefix("https://uri.etsi.org/ngsi-ld/").unwrap_or(t),
        None if obj.contains_key("object") => "Relationship",
        None if obj.contains_key("languageMap") => "LanguageProperty",
        None if obj.contains_key("json") => "JsonProperty",
        None if obj.contains_key("vocab") => "VocabProperty",
        None if obj.contains_key("valueList") => "ListProperty",
        None if obj.contains_key("objectList") => "ListRelationship",
        None if obj.get("value").is_some_and(is_geojson_geometry) => "GeoProperty",
        None => "Property",
    };
    let member = |m: &str| -> NgsiResult<&Value> {
        match obj.get(m) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" of type {kind} has no \"{m}\""
            ))),
        }
    };
    if allow_null {
        let payload = match kind {
            "Relationship" => obj.get("object"),
            "LanguageProperty" => obj.get("languageMap"),
            "JsonProperty" => obj.get("json"),
            "VocabProperty" => obj.get("vocab"),
            "ListProperty" => obj.get("valueList"),
            "ListRelationship" => obj.get("objectList"),
            _ => obj.get("value"),
        };
        if payload.is_some_and(is_null_literal) {
            return Ok(None);
        }
    }
    let value = match kind {
        "Property" => AttrValue::Property(member("value")?.clone()),
        "GeoProperty" => {
            let g = member("value")?;
            check_geometry(name, g)?;
            AttrValue::GeoProperty(g.clone())
        }
        "Relationship" => {
            let object = member("object")?;
            check_uris(name, "object", object)?;
            AttrValue::Relationship { object: object.clone(), object_type: object_type(ctx, name, obj)? }
        }
        "LanguageProperty" => {
            let map = member("languageMap")?;
            check_language_map(name, map)?;
            AttrValue::LanguageProperty(map.clone())
        }
        "JsonProperty" => AttrValue::JsonProperty(member("json")?.clone()),
        "VocabProperty" => AttrValue::VocabProperty(expand_vocab(ctx, name, member("vocab")?)?),
        "ListProperty" => {
            let list = member("valueList")?;
            if !list.is_array() {
                return Err(NgsiError::bad_request(format!("attribute \"{name}\": \"valueList\" must be an array")));
            }
            AttrValue::ListProperty(list.clone())
        }
        "ListRelationship" => {
            let list = member("objectList")?;
            let Value::Array(items) = list else {
                return Err(NgsiError::bad_request(format!("attribute \"{name}\": \"objectList\" must be an array")));
            };
            let mut uris = Vec::with_capacity(items.len());
            for item in items {
                let uri = item.get("object").unwrap_or(item);
                check_uris(name, "objectList", uri)?;
                uris.push(uri.clone());
            }
            AttrValue::ListRelationship { object_list: Value::Array(uris), object_type: object_type(ctx, name, obj)? }
        }
        other => {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" has an unknown type \"{other}\": use Property, Relationship, GeoProperty, LanguageProperty, JsonProperty, VocabProperty, ListProperty or ListRelationship"
            )))
        }
    };
    let mut attr = Attribute::new(value, now);
    if let Some(ds) = obj.get("datasetId") {
        match ds.as_str() {
            Some(s) if is_uri(s) => attr.dataset_id = Some(s.to_string()),
            _ => {
                return Err(NgsiError::bad_request(format!(
                    "attribute \"{name}\": \"datasetId\" must be a URI, got {ds}"
                )))
            }
        }
    }
    if let Some(t) = obj.get("observedAt") {
        attr.observed_at = Some(parse_datetime(
            &format!("attribute \"{name}\": \"observedAt\""),
            t,
        )?);
    }
    if let Some(t) = obj.get("expiresAt") {
        attr.expires_at = Some(parse_datetime(
            &format!("attribute \"{name}\": \"expiresAt\""),
            t,
        )?);
    }
    if let Some(u) = obj.get("unitCode") {
        match u.as_str() {
            Some(s) if !s.is_empty() => attr.unit_code = Some(s.to_string()),
            _ => {
                return Err(NgsiError::bad_request(format!(
                    "attribute \"{name}\": \"unitCode\" must be a non-empty string, got {u}"
                )))
            }
        }
    }
    let mut sub = BTreeMap::new();
    for (sub_name, sv) in obj {
        if ATTR_RESERVED.contains(&sub_name.as_str()) {
            continue;
        }
        let expanded = expand_name(ctx, &format!("sub-attribute of \"{name}\""), sub_name)?;
        let path = format!("{name}.{sub_name}");
        if let Some(a) = parse_attribute(ctx, &path, sv, false, now, depth + 1)? {
            sub.insert(expanded, a);
        }
    }
    attr.sub = sub;
    Ok(Some(attr))
}

fn object_type(ctx: &Context, name: &str, obj: &Map<String, Value>) -> NgsiResult<Option<Value>> {
    obj.get("objectType")
        .map(|v| expand_vocab(ctx, name, v))
        .transpose()
}

fn expand_vocab(ctx: &Context, name: &str, v: &Value) -> NgsiResult<Value> {
    let one = |s: &Value| -> NgsiResult<Value> {
        match s.as_str() {
            Some(s) if !s.is_empty() => Ok(Value::String(ctx.expand_term(s))),
            _ => Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": vocabulary terms must be strings, got {s}"
            ))),
        }
    };
    match v {
        Value::Array(items) => Ok(Value::Array(
            items.iter().map(one).collect::<NgsiResult<_>>()?,
        )),
        _ => one(v),
    }
}

fn check_uris(name: &str, member: &str, v: &Value) -> NgsiResult<()> {
    let ok = |s: &Value| s.as_str().is_some_and(is_uri);
    let good = match v {
        Value::Array(items) => !items.is_empty() && items.iter().all(ok),
        _ => ok(v),
    };
    if good {
        Ok(())
    } else {
        Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": \"{member}\" must be a URI or an array of URIs, got {v}"
        )))
    }
}

fn check_language_map(name: &str, v: &Value) -> NgsiResult<()> {
    let Value::Object(map) = v else {
        return Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": \"languageMap\" must be an object from language tag to string"
        )));
    };
    for (lang, s) in map {
        let ok = match s {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok || lang.is_empty() {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": \"languageMap\" entry \"{lang}\" must be a string"
            )));
        }
    }
    Ok(())
}

fn check_geometry(name: &str, v: &Value) -> NgsiResult<()> {
    harbor_query::geojson_to_geometry(v)
        .map(|_| ())
        .map_err(|e| {
            NgsiError::bad_request(format!(
                "attribute \"{name}\": the value is not a valid GeoJSON geometry: {}",
                e.detail
            ))
        })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        for ok in ["urn:ngsi-ld:Vehicle:A1", "http://example.org/x", "urn:a:b"] {
            assert!(is_uri(ok), "{ok}");
        }
        for bad in ["", "Vehicle", "urn:", "1urn:x", "urn:a b", ":x"] {
            assert!(!is_uri(bad), "{bad}");
        }
    }

    #[test]
    fn reads_every_attribute_kind() {
        let ctx = Context::core();
        let now = time::now();
        let body = serde_json::json!({
            "id": "urn:ngsi-ld:OffStreetParking:sg-1",
            "type": "OffStreetParking",
            "name": {"type": "Property", "value": "Marina Bay", "observedAt": "2024-01-01T00:00:00Z"},
            "spots": 42,
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [103.85, 1.29]}},
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Org:1"},
            "label": {"type": "LanguageProperty", "languageMap": {"en": "Car park", "ms": "Tempat letak kereta"}},
            "meta": {"type": "JsonProperty", "json": {"a": [1]}},
            "category": {"type": "VocabProperty", "vocab": "public"},
            "history": {"type": "ListProperty", "valueList": [1, 2]},
            "feeds": {"type": "ListRelationship", "objectList": [{"object": "urn:a:1"}]},
        });
        let e = parse_entity(&ctx, &body, true, false, now).unwrap();
        let kinds: Vec<&str> = e
            .attrs
            .iter()
            .map(|(_, a)| a.as_ref().unwrap().value.type_name())
            .collect();
        assert_eq!(
            kinds,
            [
                "Property",
                "Property",
                "GeoProperty",
                "Relationship",
                "LanguageProperty",
                "JsonProperty",
                "VocabProperty",
                "ListProperty",
                "ListRelationship"
            ]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let ctx = Context::core();
        let now = time::now();
        let cases = [
            (serde_json::json!({"type": "T"}), "no \"id\""),
            (
                serde_json::json!({"id": "not a uri", "type": "T"}),
                "must be a URI",
            ),
            (serde_json::json!({"id": "urn:a:b"}), "no \"type\""),
            (
                serde_json::json!({"id": "urn:a:b", "type": "T", "p": {"type": "Property"}}),
                "has no \"value\"",
            ),
            (
                serde_json::json!({"id": "urn:a:b", "type": "T", "r": {"type": "Relationship", "object": "x y"}}),
                "must be a URI",
            ),
            (
                serde_json::json!({"id": "urn:a:b", "type": "T", "p": {"type": "Blob", "value": 1}}),
                "unknown type",
            ),
            (
                serde_json::json!({"id": "urn:a:b", "type": "T", "p": {"type": "Property", "value": 1, "observedAt": "x"}}),
                "observedAt",
            ),
            (
                serde_json::json!({"id": "urn:a:b", "type": "T", "l": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": "x"}}}),
                "GeoJSON",
            ),
            (
                serde_json::json!({"id": "urn:a:b", "type": "T", "bad name": 1}),
                "not a valid name",
            ),
            (serde_json::json!([1]), "JSON object"),
        ];
        for (body, want) in cases {
            let err = parse_entity(&ctx, &body, true, false, now).unwrap_err();
            assert!(err.detail.contains(want), "{body}: {}", err.detail);
        }
    }
}
