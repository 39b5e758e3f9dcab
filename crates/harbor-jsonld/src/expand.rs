//! Reading NGSI-LD entity payloads (normalized or concise, 4.5) into model types: every name
//! and type is expanded with the request's `@context`, ids, names and scopes are checked
//! against their grammars (4.5.1, 4.6.2, 4.18), and each error names what is wrong. One
//! attribute is read by [`crate::attribute`].

use harbor_model::names::{ATTR_RESERVED, ENTITY_RESERVED};
use harbor_model::{NgsiError, NgsiResult, Timestamp};
use serde_json::Value;

use crate::attribute::parse_datetime;
pub use crate::attribute::{
    is_null_literal, parse_attribute_fragment, parse_attribute_instances, AttrFragment, AttrInput,
    AttrPut, Payload, NGSI_LD_NULL,
};
use crate::context::Context;

/// Members that carry an attribute's payload; allowed as attribute names (see 4.5.1 below).
const PAYLOAD_MEMBERS: &[&str] = &[
    "value",
    "object",
    "languageMap",
    "json",
    "vocab",
    "valueList",
    "objectList",
];

/// An entity payload as sent by a client, before it is combined with the stored entity.
#[derive(Debug, Clone)]
pub struct EntityInput {
    pub id: Option<String>,
    /// Expanded types; empty when the payload had none.
    pub types: Vec<String>,
    /// The payload's scopes; `Some(vec![])` is an NGSI-LD Null (delete the scope).
    pub scopes: Option<Vec<String>>,
    /// Attribute instances in payload order, by expanded name.
    pub attrs: Vec<(String, AttrInput)>,
    pub expires_at: Option<Timestamp>,
    /// `expiresAt: "urn:ngsi-ld:null"` in an update or merge fragment: the entity stops
    /// being transient (5.5.4 fragment rule, applied per 5.5.8).
    pub clear_expiry: bool,
}

/// Characters that are valid in an IRI (RFC 3987) but make an id read as a different one:
/// format and bidi controls, fillers, variation selectors, blanks and noncharacters.
fn is_invisible(c: char) -> bool {
    let u = c as u32;
    matches!(
        u,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F
            | 0x1160
            | 0x17B4
            | 0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFDD0..=0xFDEF
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    ) || (u & 0xFFFE) == 0xFFFE
}

/// Whether a string is an absolute URI as NGSI-LD ids must be (RFC 3986 scheme + ':' + rest;
/// non-ASCII letters as RFC 3987 allows, but no invisible characters).
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
                || is_invisible(c)
                || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
        })
}

/// Whether a name is acceptable where a short name, compact IRI or IRI may stand: no
/// characters that break `q`, URLs or JSON-LD.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || is_invisible(c)
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

/// Whether a short name follows 4.6.2: `name = unicodeLetter *(unicodeLetter / unicodeNumber
/// / "_")`. Names with a `:` are compact IRIs or IRIs and only need [`is_valid_name`].
pub fn is_ngsi_name(s: &str) -> bool {
    if s.contains(':') {
        return is_valid_name(s);
    }
    let mut chars = s.chars();
    chars.next().is_some_and(char::is_alphabetic)
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && s.len() <= 512
}

pub(crate) fn expand_name(ctx: &Context, what: &str, name: &str) -> NgsiResult<String> {
    if !is_ngsi_name(name) {
        return Err(NgsiError::bad_request(format!(
            "{what} \"{name}\" is not a valid name: names start with a letter and hold letters, digits and \"_\" (4.6.2)"
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
        if t.starts_with('@') || ctx.term_def(s).is_some_and(|d| d.iri.starts_with('@')) {
            return Err(NgsiError::bad_request(format!(
                "entity type \"{s}\" is a JSON-LD keyword in the @context, not a type name"
            )));
        }
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

/// Whether a scope follows 4.18: `[/] ScopeLevel *(/ ScopeLevel)`, each level a letter then
/// letters, digits or `_`.
fn is_scope(s: &str) -> bool {
    let body = s.strip_prefix('/').unwrap_or(s);
    !body.is_empty()
        && body.split('/').all(|level| {
            let mut chars = level.chars();
            chars.next().is_some_and(char::is_alphabetic)
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}

pub(crate) fn parse_scopes(v: &Value, payload: Payload) -> NgsiResult<Vec<String>> {
    if payload.allows_null() && is_null_literal(v) {
        return Ok(Vec::new());
    }
    let one = |s: &Value| -> NgsiResult<String> {
        match s.as_str() {
            Some(s) if is_scope(s) => Ok(s.to_string()),
            _ => Err(NgsiError::bad_request(format!(
                "\"scope\" entries must be like \"/City/District\": levels start with a letter and hold letters, digits and \"_\" (4.18); got {s}"
            ))),
        }
    };
    match v {
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        // A scope given as a Property object (as some clients send it).
        Value::Object(o) => parse_scopes(o.get("value").unwrap_or(&Value::Null), payload),
        _ => Ok(vec![one(v)?]),
    }
}

/// Reads an entity payload (`POST /entities`, batch items, replace, merge, append, update
/// bodies). `require_id_type`: creating operations need both.
pub fn parse_entity(
    ctx: &Context,
    body: &Value,
    require_id_type: bool,
    payload: Payload,
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
        Some(Value::String(s)) if is_uri(s) && s != NGSI_LD_NULL => Some(s.clone()),
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
    let scopes = obj
        .get("scope")
        .map(|v| parse_scopes(v, payload))
        .transpose()?;
    let clear_expiry = matches!(payload, Payload::Update | Payload::Merge)
        && obj.get("expiresAt").and_then(Value::as_str) == Some(NGSI_LD_NULL);
    let expires_at = match obj.get("expiresAt") {
        Some(_) if clear_expiry => None,
        Some(v) => Some(parse_datetime("entity \"expiresAt\"", v)?),
        None => None,
    };
    let mut attrs = Vec::new();
    for (name, v) in obj {
        if ENTITY_RESERVED.contains(&name.as_str()) {
            continue;
        }
        // 4.5.1: "Terms defined in the Core Context as non-reified Properties (such as
        // datasetId, instanceId, etc.) shall not be used as Attribute names". The members that
        // carry an attribute's payload (value, object, vocab, json, ...) are not such Properties,
        // and city data models do use some of them as names (a "vocab" attribute, say).
        if (ATTR_RESERVED.contains(&name.as_str()) && !PAYLOAD_MEMBERS.contains(&name.as_str()))
            || name == "valueType"
        {
            return Err(NgsiError::bad_request(format!(
                "\"{name}\" is an NGSI-LD core term and cannot name an attribute (4.5.1)"
            )));
        }
        let expanded = expand_name(ctx, "attribute", name)?;
        for inst in parse_attribute_instances(ctx, name, v, payload, now)? {
            attrs.push((expanded.clone(), inst));
        }
    }
    Ok(EntityInput {
        id,
        types,
        scopes,
        attrs,
        expires_at,
        clear_expiry,
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
    use harbor_model::time;
    use serde_json::json;

    fn put(a: &AttrInput) -> &harbor_model::Attribute {
        match a {
            AttrInput::Put(p) => &p.attr,
            AttrInput::Delete { .. } => panic!("expected an instance, got a deletion"),
        }
    }

    #[test]
    fn uris() {
        for ok in [
            "urn:ngsi-ld:Vehicle:A1",
            "http://example.org/x",
            "urn:a:b",
            "urn:ngsi-ld:Ciudad:Par\u{ed}s",
        ] {
            assert!(is_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "Vehicle",
            "urn:",
            "1urn:x",
            "urn:a b",
            ":x",
            "urn:a:\u{202e}b",
            "urn:a:\u{200b}b",
            "urn:a:\u{feff}b",
            "urn:a:\u{fe0f}b",
            "urn:a:\u{e0100}b",
            "urn:a:\u{fdd0}b",
            "urn:a:\u{fffe}b",
            "urn:a:\u{3164}b",
            "urn:a:\u{2800}b",
        ] {
            assert!(!is_uri(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_and_scopes_follow_their_grammars() {
        for ok in [
            "speed",
            "v\u{fd}\u{161}ka_1",
            "ex:speed",
            "https://e.org/x#y",
        ] {
            assert!(is_ngsi_name(ok), "{ok}");
        }
        for bad in ["9Vehicle", "my attr", "a-b", "", "_x"] {
            assert!(!is_ngsi_name(bad), "{bad}");
        }
        for ok in ["/Madrid/Gardens/ParqueNorte", "Madrid", "/a_1/b2"] {
            assert!(is_scope(ok), "{ok}");
        }
        for bad in ["9bad", "/a//b", "a-b", "/", "urn:ngsi-ld:null"] {
            assert!(!is_scope(bad), "{bad}");
        }
    }

    #[test]
    fn reads_every_attribute_kind() {
        let ctx = Context::core();
        let now = time::now();
        let body = json!({
            "id": "urn:ngsi-ld:OffStreetParking:sg-1",
            "type": "OffStreetParking",
            "name": {"type": "Property", "value": "Marina Bay", "observedAt": "2024-01-01T00:00:00Z"},
            "spots": 42,
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [103.85, 1.29]}},
            "area": {"type": "GeoProperty", "value": "{\"type\": \"Point\", \"coordinates\": [1, 2]}"},
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Org:1"},
            "label": {"type": "LanguageProperty", "languageMap": {"en": "Car park", "ms": "Tempat letak kereta"}},
            "meta": {"type": "JsonProperty", "json": {"a": [1]}},
            "category": {"type": "VocabProperty", "vocab": "public"},
            "history": {"type": "ListProperty", "valueList": [1, 2]},
            "feeds": {"type": "ListRelationship", "objectList": ["urn:a:2", {"object": "urn:a:1"}]},
        });
        let e = parse_entity(&ctx, &body, true, Payload::Full, now).unwrap();
        let kinds: Vec<&str> = e
            .attrs
            .iter()
            .map(|(_, a)| put(a).value.type_name())
            .collect();
        assert_eq!(
            kinds,
            [
                "Property",
                "Property",
                "GeoProperty",
                "GeoProperty",
                "Relationship",
                "LanguageProperty",
                "JsonProperty",
                "VocabProperty",
                "ListProperty",
                "ListRelationship"
            ]
        );
        let concise =
            json!({"id": "urn:a:b", "type": "T", "l": {"type": "Point", "coordinates": [1, 2]}});
        let c = parse_entity(&ctx, &concise, true, Payload::Full, now).unwrap();
        assert_eq!(put(&c.attrs[0].1).value.type_name(), "GeoProperty");
        assert_eq!(
            put(&e.attrs[3].1).value.payload(),
            &json!({"type": "Point", "coordinates": [1, 2]})
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let ctx = Context::core();
        let now = time::now();
        let e = |attrs: serde_json::Value| {
            let mut body = json!({"id": "urn:a:b", "type": "T"});
            body.as_object_mut()
                .unwrap()
                .extend(attrs.as_object().unwrap().clone());
            body
        };
        let cases = [
            (json!({"type": "T"}), "no \"id\""),
            (json!({"id": "not a uri", "type": "T"}), "must be a URI"),
            (
                json!({"id": "urn:ngsi-ld:null", "type": "T"}),
                "must be a URI",
            ),
            (json!({"id": "urn:a:b"}), "no \"type\""),
            (json!({"id": "urn:a:b", "type": "9T"}), "not a valid name"),
            (json!({"id": "urn:a:b", "type": "type"}), "JSON-LD keyword"),
            (
                e(json!({"p": {"type": "Property", "value": null}})),
                "has no \"value\"",
            ),
            (e(json!({"p": {"type": "Property"}})), "has no \"value\""),
            (
                e(json!({"r": {"type": "Relationship", "object": "x y"}})),
                "must be a URI",
            ),
            (
                e(json!({"p": {"type": "Blob", "value": 1}})),
                "unknown type",
            ),
            (
                e(json!({"p": {"type": "Property", "value": 1, "observedAt": "x"}})),
                "observedAt",
            ),
            (
                e(
                    json!({"p": {"type": "Property", "value": 1, "observedAt": "2026-08-10T12:00:00+02:00"}}),
                ),
                "UTC DateTime",
            ),
            (
                e(
                    json!({"l": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": "x"}}}),
                ),
                "GeoJSON",
            ),
            (
                e(
                    json!({"l": {"type": "GeoProperty", "value": {"type": "GeometryCollection", "geometries": []}}}),
                ),
                "GeometryCollection",
            ),
            (
                e(json!({"location": {"type": "Property", "value": 7}})),
                "GeoProperty",
            ),
            (e(json!({"bad name": 1})), "not a valid name"),
            (
                e(json!({"datasetId": {"type": "Property", "value": 1}})),
                "core term",
            ),
            (
                e(json!({"p": {"type": "Property", "value": 1, "@context": {}}})),
                "embedded @context",
            ),
            (
                e(json!({"p": {"type": "Property", "value": 1, "object": "urn:a:b"}})),
                "\"object\"",
            ),
            (
                e(json!({"p": {"type": "Property", "value": 1, "previousValue": 0}})),
                "previousValue",
            ),
            (
                e(json!({"p": {"type": "Property", "value": 1, "entityIdSealed": "urn:a:b"}})),
                "ngsildproof",
            ),
            (
                e(json!({"ngsildproof": {"type": "Property", "value": "x"}})),
                "proof object",
            ),
            (
                e(json!({"r": {"type": "Relationship", "object": "urn:a:b", "unitCode": "MTR"}})),
                "unitless",
            ),
            (
                e(json!({"j": {"type": "JsonProperty", "json": 5}})),
                "\"json\" must be",
            ),
            (
                e(json!({"j": {"type": "JsonProperty", "json": {}, "value": 1}})),
                "\"value\"",
            ),
            (
                e(json!({"l": {"type": "ListProperty", "valueList": [1], "value": 3}})),
                "\"value\"",
            ),
            (
                e(
                    json!({"l": {"type": "LanguageProperty", "languageMap": {"en": "x"}, "valueType": "xsd:string"}}),
                ),
                "langString",
            ),
            (
                e(json!({"l": {"type": "LanguageProperty", "languageMap": {"en": ["a", 5]}}})),
                "languageMap",
            ),
            (
                e(json!({"p": {"type": "Property", "value": "urn:ngsi-ld:null"}})),
                "NGSI-LD Null",
            ),
            (
                e(
                    json!({"p": {"type": "Property", "value": 1, "s": {"type": "Property", "value": "urn:ngsi-ld:null"}}}),
                ),
                "NGSI-LD Null",
            ),
            (
                e(
                    json!({"l": {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}}}),
                ),
                "NGSI-LD Null",
            ),
            (
                e(json!({"p": {"type": "Property", "value": {"a": {"b": "urn:ngsi-ld:null"}}}})),
                "merge",
            ),
            (e(json!({"scope": "urn:ngsi-ld:null"})), "scope"),
            (e(json!({"scope": "/a//b"})), "scope"),
            (
                e(
                    json!({"p": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "@none"}]}),
                ),
                "same datasetId",
            ),
        ];
        for (body, want) in cases {
            let err = parse_entity(&ctx, &body, true, Payload::Full, now).unwrap_err();
            assert!(err.detail.contains(want), "{body}: {}", err.detail);
        }
        let err = parse_entity(&ctx, &json!([1]), true, Payload::Full, now).unwrap_err();
        assert!(err.detail.contains("JSON object"), "{}", err.detail);
    }

    #[test]
    fn nulls_delete_in_updates_and_merges() {
        let ctx = Context::core();
        let now = time::now();
        let body = json!({
            "a": "urn:ngsi-ld:null",
            "b": {"type": "Relationship", "object": "urn:ngsi-ld:null", "datasetId": "urn:ds:1"},
            "c": {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}},
            "d": {"type": "Property", "value": 1, "s": "urn:ngsi-ld:null"},
            "scope": "urn:ngsi-ld:null",
        });
        let e = parse_entity(&ctx, &body, false, Payload::Update, now).unwrap();
        assert_eq!(e.scopes, Some(vec![]));
        let ds = |i: usize| match &e.attrs[i].1 {
            AttrInput::Delete { dataset_id } => dataset_id.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ds(0), None);
        assert_eq!(ds(1), Some("urn:ds:1".to_string()));
        assert_eq!(ds(2), None);
        let AttrInput::Put(p) = &e.attrs[3].1 else {
            panic!()
        };
        assert_eq!(p.deleted_subs, vec![ctx.expand_term("s")]);
        let nested = json!({"p": {"type": "Property", "value": {"k": "urn:ngsi-ld:null"}}});
        assert!(parse_entity(&ctx, &nested, false, Payload::Update, now).is_err());
        assert!(parse_entity(&ctx, &nested, false, Payload::Merge, now).is_ok());
        let null_ds =
            json!({"p": {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:null"}});
        let err = parse_entity(&ctx, &null_ds, false, Payload::Update, now).unwrap_err();
        assert!(
            err.detail.contains("datasetId cannot be deleted"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn reads_attribute_fragments() {
        let ctx = Context::core();
        let now = time::now();
        let f = parse_attribute_fragment(
            &ctx,
            "p",
            &json!({"providedBy": {"type": "Relationship", "object": "urn:a:b"}}),
            now,
        )
        .unwrap();
        assert_eq!(f.value, None);
        assert_eq!(f.kind, None);
        assert_eq!(f.sub.len(), 1);
        let f = parse_attribute_fragment(
            &ctx,
            "p",
            &json!({"type": "GeoProperty", "value": "urn:ngsi-ld:null"}),
            now,
        )
        .unwrap();
        assert!(f.delete);
        let f = parse_attribute_fragment(&ctx, "p", &json!({"object": "urn:a:c"}), now).unwrap();
        assert_eq!(f.kind.as_deref(), Some("Relationship"));
        for bad in [
            json!({}),
            json!({"datasetId": "urn:ngsi-ld:null"}),
            json!({"value": {"k": "urn:ngsi-ld:null"}}),
        ] {
            assert!(
                parse_attribute_fragment(&ctx, "p", &bad, now).is_err(),
                "{bad}"
            );
        }
    }
}
