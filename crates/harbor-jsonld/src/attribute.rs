//! Reading one attribute of a payload (4.5.2 – 4.5.24), normalized or concise: the kind and
//! its payload member, the members each kind forbids, sub-attributes, and where an NGSI-LD
//! Null may stand (5.5.4): never when creating, as a deletion in update and merge fragments,
//! and inside JSON values only in merge fragments (5.5.12).

use std::collections::BTreeMap;

use harbor_model::names::{ATTR_RESERVED, LOCATION, OBSERVATION_SPACE, OPERATION_SPACE};
use harbor_model::{time, AttrValue, Attribute, NgsiError, NgsiResult, Timestamp};
use serde_json::{Map, Value};

use crate::context::Context;
use crate::expand::{expand_name, is_uri};

/// How deep sub-attributes may nest.
const MAX_SUB_DEPTH: usize = 8;

/// The literal that stands for an NGSI-LD Null (4.5.x, 5.5.4).
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// The request a payload belongs to; it decides where an NGSI-LD Null may appear (5.5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Create, replace, append, upsert: an NGSI-LD Null anywhere is BadRequestData.
    Full,
    /// Update attributes and partial attribute update (5.5.8): a Null attribute or
    /// sub-attribute is deleted; a Null inside a JSON value is refused.
    Update,
    /// Merge (5.5.12): as `Update`, and a Null inside a JSON value removes that key.
    Merge,
    /// A temporal entity (5.6.11, 5.6.12): as `Full`, except that an attribute may list
    /// several instances with one `datasetId`, and an instance's payload may be an NGSI-LD
    /// Null, which records a deletion in the history.
    Temporal,
}

impl Payload {
    pub(crate) fn allows_null(self) -> bool {
        matches!(self, Payload::Update | Payload::Merge)
    }
}

/// One attribute instance of a payload.
// Parse results live for one request; boxing the common variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AttrInput {
    Put(AttrPut),
    /// An NGSI-LD Null: delete the instance with this datasetId (the default one when `None`).
    Delete {
        dataset_id: Option<String>,
    },
}

/// An instance to store or merge.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPut {
    pub attr: Attribute,
    /// Whether the payload named the attribute's type; a concise one had it inferred, and a
    /// merge then keeps the stored type (5.6.17.4).
    pub typed: bool,
    /// Expanded names of sub-attributes the payload sets to NGSI-LD Null.
    pub deleted_subs: Vec<String>,
}

impl AttrInput {
    /// The datasetId the instance addresses.
    pub fn dataset_id(&self) -> Option<&str> {
        match self {
            AttrInput::Put(p) => p.attr.dataset_id.as_deref(),
            AttrInput::Delete { dataset_id } => dataset_id.as_deref(),
        }
    }
}

/// The members carrying an attribute's payload, one per kind.
const PAYLOAD_MEMBERS: &[&str] = &[
    "value",
    "object",
    "languageMap",
    "json",
    "vocab",
    "valueList",
    "objectList",
];

/// Members only a broker writes (showChanges, inline retrieval): never accepted as input.
const OUTPUT_ONLY: &[&str] = &[
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousJson",
    "previousVocab",
    "previousValueList",
    "previousObjectList",
    "entity",
    "entityList",
];

/// Non-reified members of the proof Property (4.5.2.2); no other attribute may carry them.
const SEALED: &[&str] = &["entityIdSealed", "entityTypeSealed"];

/// Reads the instances of one attribute: an array of instances (by `datasetId`) or one.
pub fn parse_attribute_instances(
    ctx: &Context,
    name: &str,
    v: &Value,
    payload: Payload,
    now: Timestamp,
) -> NgsiResult<Vec<AttrInput>> {
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
                out.push(parse_attribute(ctx, name, item, payload, now)?);
            }
            if payload != Payload::Temporal {
                check_unique_datasets(name, &out)?;
            }
            return Ok(out);
        }
    }
    Ok(vec![parse_attribute(ctx, name, v, payload, now)?])
}

fn check_unique_datasets(name: &str, instances: &[AttrInput]) -> NgsiResult<()> {
    let mut seen = Vec::new();
    for a in instances {
        let ds = a.dataset_id();
        if seen.contains(&ds) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" has two instances with the same datasetId {}",
                ds.unwrap_or("(default)")
            )));
        }
        seen.push(ds);
    }
    Ok(())
}

/// Whether a JSON object is a (normalized or concise) attribute rather than a bare value.
pub fn is_attribute_object(o: &Map<String, Value>) -> bool {
    let geometry = o.contains_key("coordinates") || o.contains_key("geometries");
    !geometry && (o.contains_key("type") || PAYLOAD_MEMBERS.iter().any(|k| o.contains_key(*k)))
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

/// Whether a value is an NGSI-LD Null: the literal, or its array or object form. JSON null
/// is not one: JSON-LD drops it, leaving a member without value.
pub fn is_null_literal(v: &Value) -> bool {
    match v {
        Value::String(s) => s == NGSI_LD_NULL,
        Value::Array(items) => items.len() == 1 && is_null_literal(&items[0]),
        Value::Object(o) => {
            // {"@none": "urn:ngsi-ld:null"} (languageMap) or {"object": "urn:ngsi-ld:null"}.
            o.len() == 1
                && o.get("@none")
                    .or_else(|| o.get("object"))
                    .is_some_and(is_null_literal)
        }
        _ => false,
    }
}

/// Whether a JSON value holds an NGSI-LD Null anywhere inside it.
fn contains_null(v: &Value) -> bool {
    match v {
        Value::String(s) => s == NGSI_LD_NULL,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(o) => o.values().any(contains_null),
        _ => false,
    }
}

fn declared_kind<'a>(name: &str, obj: &'a Map<String, Value>) -> NgsiResult<Option<&'a str>> {
    match obj.get("type").or_else(|| obj.get("@type")) {
        None => Ok(None),
        Some(Value::String(t)) => Ok(Some(
            t.strip_prefix("https://uri.etsi.org/ngsi-ld/").unwrap_or(t),
        )),
        Some(t) => Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": \"type\" must be a string, got {t}"
        ))),
    }
}

/// The kind a type-less attribute object has, from its payload member (4.5.x.3).
fn inferred_kind(obj: &Map<String, Value>) -> Option<&'static str> {
    if obj.contains_key("object") {
        Some("Relationship")
    } else if obj.contains_key("languageMap") {
        Some("LanguageProperty")
    } else if obj.contains_key("json") {
        Some("JsonProperty")
    } else if obj.contains_key("vocab") {
        Some("VocabProperty")
    } else if obj.contains_key("valueList") {
        Some("ListProperty")
    } else if obj.contains_key("objectList") {
        Some("ListRelationship")
    } else if obj.get("value").is_some_and(is_geojson_geometry) {
        Some("GeoProperty")
    } else if obj.contains_key("value") {
        Some("Property")
    } else {
        None
    }
}

/// The payload member of a kind, `None` for an unknown kind.
fn payload_member(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Property" | "GeoProperty" => "value",
        "Relationship" => "object",
        "LanguageProperty" => "languageMap",
        "JsonProperty" => "json",
        "VocabProperty" => "vocab",
        "ListProperty" => "valueList",
        "ListRelationship" => "objectList",
        _ => return None,
    })
}

fn unknown_kind(name: &str, kind: &str) -> NgsiError {
    NgsiError::bad_request(format!(
        "attribute \"{name}\" has an unknown type \"{kind}\": use Property, Relationship, GeoProperty, LanguageProperty, JsonProperty, VocabProperty, ListProperty or ListRelationship"
    ))
}

/// Refuses the members a kind shall never include (4.5.2.2, 4.5.3.2, 4.5.18 – 4.5.24).
fn check_members(name: &str, kind: &str, obj: &Map<String, Value>) -> NgsiResult<()> {
    let own = payload_member(kind).unwrap_or("value");
    for m in PAYLOAD_MEMBERS {
        if *m != own && obj.contains_key(*m) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": a {kind} carries its payload in \"{own}\" and shall not include \"{m}\""
            )));
        }
    }
    for m in OUTPUT_ONLY {
        if obj.contains_key(*m) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": \"{m}\" is only ever written by the broker"
            )));
        }
    }
    let unitless = matches!(kind, "Relationship" | "ListRelationship" | "JsonProperty");
    if unitless && obj.contains_key("unitCode") {
        return Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": a {kind} is unitless and shall not include \"unitCode\""
        )));
    }
    if obj.contains_key("objectType") && !matches!(kind, "Relationship" | "ListRelationship") {
        return Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": \"objectType\" belongs to Relationships only"
        )));
    }
    if kind == "LanguageProperty" {
        if let Some(vt) = obj.get("valueType") {
            if vt.as_str() != Some("langString") && vt.as_str() != Some("rdf:langString") {
                return Err(NgsiError::bad_request(format!(
                    "attribute \"{name}\": the \"valueType\" of a LanguageProperty shall be \"langString\", got {vt}"
                )));
            }
        }
    }
    Ok(())
}

/// Reads one attribute instance, normalized or concise, at the top of an entity.
pub fn parse_attribute(
    ctx: &Context,
    name: &str,
    v: &Value,
    payload: Payload,
    now: Timestamp,
) -> NgsiResult<AttrInput> {
    Reader {
        ctx,
        payload,
        now,
        expanded: ctx.expand_term(name),
    }
    .attribute(name, v, 0)
}

struct Reader<'a> {
    ctx: &'a Context,
    payload: Payload,
    now: Timestamp,
    /// Expanded name of the top-level attribute.
    expanded: String,
}

impl Reader<'_> {
    fn null_refused(&self, name: &str) -> NgsiError {
        NgsiError::bad_request(format!(
            "attribute \"{name}\": an NGSI-LD Null (\"{NGSI_LD_NULL}\" or null) can only delete, in an update or merge"
        ))
    }

    /// The NGSI-LD Null form of an attribute, if `v` is one.
    fn null_form(&self, name: &str, v: &Value) -> NgsiResult<Option<AttrInput>> {
        if self.payload == Payload::Temporal && v.is_object() {
            return Ok(None);
        }
        let obj = match v {
            Value::Object(o) if is_attribute_object(o) => o,
            // RFC 7396: in a merge patch a JSON null member deletes too.
            other
                if !other.is_object()
                    && (is_null_literal(other)
                        || other.is_null() && self.payload == Payload::Merge) =>
            {
                return Ok(Some(AttrInput::Delete { dataset_id: None }))
            }
            _ => return Ok(None),
        };
        let kind = match declared_kind(name, obj)? {
            Some(k) => Some(k),
            None => inferred_kind(obj),
        };
        let Some(member) = kind.and_then(payload_member) else {
            return Ok(None);
        };
        if !obj.get(member).is_some_and(is_null_literal) {
            return Ok(None);
        }
        Ok(Some(AttrInput::Delete {
            dataset_id: self.dataset_id(name, obj)?,
        }))
    }

    fn dataset_id(&self, name: &str, obj: &Map<String, Value>) -> NgsiResult<Option<String>> {
        match obj.get("datasetId") {
            None => Ok(None),
            // 4.5.5.1: "@none" names the default instance.
            Some(Value::String(s)) if s == "@none" => Ok(None),
            Some(Value::String(s)) if s == NGSI_LD_NULL => Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": a datasetId cannot be deleted by setting it to \"{NGSI_LD_NULL}\""
            ))),
            Some(Value::String(s)) if is_uri(s) => Ok(Some(s.clone())),
            Some(ds) => Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": \"datasetId\" must be a URI, got {ds}"
            ))),
        }
    }

    fn attribute(&self, name: &str, v: &Value, depth: usize) -> NgsiResult<AttrInput> {
        if depth > MAX_SUB_DEPTH {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": sub-attributes nest deeper than {MAX_SUB_DEPTH} levels"
            )));
        }
        if let Some(del) = self.null_form(name, v)? {
            if !self.payload.allows_null() {
                return Err(self.null_refused(name));
            }
            return Ok(del);
        }
        let obj = match v {
            Value::Object(o) if is_attribute_object(o) => o,
            // Concise: a bare value is a Property (or GeoProperty for a GeoJSON geometry).
            other => {
                let value = self.bare_value(name, other)?;
                return Ok(AttrInput::Put(AttrPut {
                    attr: Attribute::new(value, self.now),
                    typed: false,
                    deleted_subs: Vec::new(),
                }));
            }
        };
        let declared = declared_kind(name, obj)?;
        let kind = match declared.or_else(|| inferred_kind(obj)) {
            Some(k) => k,
            None => {
                return Err(NgsiError::bad_request(format!(
                    "attribute \"{name}\" has neither a \"type\" nor a payload member (\"value\", \"object\", ...)"
                )))
            }
        };
        let Some(member) = payload_member(kind) else {
            return Err(unknown_kind(name, kind));
        };
        check_members(name, kind, obj)?;
        let payload = match obj.get(member) {
            Some(p) if !p.is_null() => p,
            _ => {
                return Err(NgsiError::bad_request(format!(
                    "attribute \"{name}\" of type {kind} has no \"{member}\""
                )))
            }
        };
        let value = self.value(name, kind, payload, obj)?;
        if name == "ngsildproof" && !value.payload().is_object() {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": the value of ngsildproof must be a W3C Data Integrity proof object"
            )));
        }
        let mut attr = Attribute::new(value, self.now);
        attr.dataset_id = self.dataset_id(name, obj)?;
        self.read_meta(name, obj, &mut attr)?;
        let (sub, deleted_subs) = self.subs(name, obj, depth)?;
        attr.sub = sub;
        Ok(AttrInput::Put(AttrPut {
            attr,
            typed: declared.is_some(),
            deleted_subs,
        }))
    }

    /// A concise bare value: Property, or GeoProperty for a geometry.
    fn bare_value(&self, name: &str, v: &Value) -> NgsiResult<AttrValue> {
        if v.is_null() {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" is null"
            )));
        }
        if is_geojson_geometry(v) {
            check_geometry(name, v)?;
            return Ok(AttrValue::GeoProperty(v.clone()));
        }
        self.check_value_nulls(name, v)?;
        if self.is_geo_name() {
            return Err(not_geo(name));
        }
        Ok(AttrValue::Property(v.clone()))
    }

    /// Whether the top-level attribute is one the spec defines as a GeoProperty (4.7.1).
    fn is_geo_name(&self) -> bool {
        [LOCATION, OBSERVATION_SPACE, OPERATION_SPACE].contains(&self.expanded.as_str())
    }

    fn check_value_nulls(&self, name: &str, v: &Value) -> NgsiResult<()> {
        if self.payload != Payload::Merge && contains_null(v) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": \"{NGSI_LD_NULL}\" inside a value is only meaningful in a merge"
            )));
        }
        Ok(())
    }

    fn value(
        &self,
        name: &str,
        kind: &str,
        payload: &Value,
        obj: &Map<String, Value>,
    ) -> NgsiResult<AttrValue> {
        if self.payload == Payload::Temporal && is_null_literal(payload) {
            let null = Value::String(NGSI_LD_NULL.into());
            return Ok(match kind {
                "Relationship" => AttrValue::Relationship {
                    object: null,
                    object_type: None,
                },
                "ListRelationship" => AttrValue::ListRelationship {
                    object_list: null,
                    object_type: None,
                },
                "GeoProperty" => AttrValue::GeoProperty(null),
                "LanguageProperty" => AttrValue::LanguageProperty(null),
                "JsonProperty" => AttrValue::JsonProperty(null),
                "VocabProperty" => AttrValue::VocabProperty(null),
                "ListProperty" => AttrValue::ListProperty(null),
                _ => AttrValue::Property(null),
            });
        }
        Ok(match kind {
            "Property" => {
                if self.is_geo_name() {
                    return Err(not_geo(name));
                }
                self.check_value_nulls(name, payload)?;
                AttrValue::Property(payload.clone())
            }
            "GeoProperty" => AttrValue::GeoProperty(geometry_value(name, payload)?),
            "Relationship" => {
                check_uris(name, "object", payload)?;
                AttrValue::Relationship {
                    object: payload.clone(),
                    object_type: object_type(self.ctx, name, obj)?,
                }
            }
            "LanguageProperty" => {
                check_language_map(name, payload)?;
                AttrValue::LanguageProperty(payload.clone())
            }
            "JsonProperty" => {
                let ok = match payload {
                    Value::Object(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_object),
                    _ => false,
                };
                if !ok {
                    return Err(NgsiError::bad_request(format!(
                        "attribute \"{name}\": \"json\" must be a JSON object or an array of objects, got {payload}"
                    )));
                }
                AttrValue::JsonProperty(payload.clone())
            }
            "VocabProperty" => AttrValue::VocabProperty(expand_vocab(self.ctx, name, payload)?),
            "ListProperty" => {
                if !payload.is_array() {
                    return Err(NgsiError::bad_request(format!(
                        "attribute \"{name}\": \"valueList\" must be an array"
                    )));
                }
                self.check_value_nulls(name, payload)?;
                AttrValue::ListProperty(payload.clone())
            }
            "ListRelationship" => {
                let Value::Array(items) = payload else {
                    return Err(NgsiError::bad_request(format!(
                        "attribute \"{name}\": \"objectList\" must be an array"
                    )));
                };
                let mut uris = Vec::with_capacity(items.len());
                for item in items {
                    let uri = item.get("object").unwrap_or(item);
                    check_uris(name, "objectList", uri)?;
                    uris.push(uri.clone());
                }
                AttrValue::ListRelationship {
                    object_list: Value::Array(uris),
                    object_type: object_type(self.ctx, name, obj)?,
                }
            }
            other => return Err(unknown_kind(name, other)),
        })
    }

    /// `observedAt`, `expiresAt`, `unitCode` and the proof members.
    fn read_meta(
        &self,
        name: &str,
        obj: &Map<String, Value>,
        attr: &mut Attribute,
    ) -> NgsiResult<()> {
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
        let is_proof = name == "ngsildproof";
        for m in SEALED {
            if let Some(v) = obj.get(*m) {
                if !is_proof {
                    return Err(NgsiError::bad_request(format!(
                        "attribute \"{name}\": \"{m}\" may only appear in the \"ngsildproof\" Property"
                    )));
                }
                if !v.is_string() {
                    return Err(NgsiError::bad_request(format!(
                        "attribute \"{name}\": \"{m}\" must be a string, got {v}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sub-attributes, and the names of those set to NGSI-LD Null.
    fn subs(
        &self,
        name: &str,
        obj: &Map<String, Value>,
        depth: usize,
    ) -> NgsiResult<(BTreeMap<String, Attribute>, Vec<String>)> {
        let mut sub = BTreeMap::new();
        let mut deleted = Vec::new();
        for (sub_name, sv) in obj {
            if sub_name == "@context" {
                return Err(NgsiError::bad_request(format!(
                    "attribute \"{name}\" carries an embedded @context; the @context belongs to the request (5.5.7)"
                )));
            }
            if ATTR_RESERVED.contains(&sub_name.as_str())
                || SEALED.contains(&sub_name.as_str())
                || sub_name == "valueType"
            {
                continue;
            }
            let expanded =
                expand_name(self.ctx, &format!("sub-attribute of \"{name}\""), sub_name)?;
            let path = format!("{name}.{sub_name}");
            match self.attribute(&path, sv, depth + 1)? {
                AttrInput::Put(p) => {
                    sub.insert(expanded, p.attr);
                }
                AttrInput::Delete { .. } => deleted.push(expanded),
            }
        }
        Ok((sub, deleted))
    }
}

fn not_geo(name: &str) -> NgsiError {
    NgsiError::bad_request(format!(
        "attribute \"{name}\" is defined by NGSI-LD as a GeoProperty (4.7.1) and needs a GeoJSON geometry"
    ))
}

/// A GeoProperty value: a geometry object, or its JSON-string encoding (4.7.2).
fn geometry_value(name: &str, v: &Value) -> NgsiResult<Value> {
    let g = match v {
        Value::String(s) => serde_json::from_str::<Value>(s).map_err(|_| {
            NgsiError::bad_request(format!(
                "attribute \"{name}\": the value is a string that does not encode a GeoJSON geometry"
            ))
        })?,
        other => other.clone(),
    };
    check_geometry(name, &g)?;
    Ok(g)
}

fn check_geometry(name: &str, v: &Value) -> NgsiResult<()> {
    if v.get("type").and_then(Value::as_str) == Some("GeometryCollection") {
        return Err(NgsiError::bad_request(format!(
            "attribute \"{name}\": GeometryCollection is not a supported geometry (4.6.3)"
        )));
    }
    harbor_query::geojson_to_geometry(v)
        .map(|_| ())
        .map_err(|e| {
            NgsiError::bad_request(format!(
                "attribute \"{name}\": the value is not a valid GeoJSON geometry: {}",
                e.detail
            ))
        })
}

/// Reads an NGSI-LD DateTime (4.6.3): ISO 8601 in UTC, ending in `Z`.
pub fn parse_datetime(what: &str, v: &Value) -> NgsiResult<Timestamp> {
    let s = v.as_str().unwrap_or("");
    let parsed = if s.ends_with('Z') {
        time::parse(s)
    } else {
        None
    };
    parsed.ok_or_else(|| {
        NgsiError::bad_request(format!(
            "{what} must be a UTC DateTime like \"2024-01-31T12:00:00Z\", got {v}"
        ))
    })
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
    let ok = |s: &Value| s.as_str().is_some_and(|s| is_uri(s) && s != NGSI_LD_NULL);
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
            Value::String(s) => s != NGSI_LD_NULL,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok || lang.is_empty() {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\": \"languageMap\" entry \"{lang}\" must be a string or an array of strings"
            )));
        }
    }
    Ok(())
}

/// The body of a partial attribute update (5.6.4): every member is optional, the ones given
/// replace the stored ones (5.5.8).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttrFragment {
    /// The kind, declared by `type` or inferred from the payload member.
    pub kind: Option<String>,
    pub value: Option<AttrValue>,
    pub dataset_id: Option<String>,
    pub observed_at: Option<Timestamp>,
    pub unit_code: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub sub: BTreeMap<String, Attribute>,
    /// Expanded names of sub-attributes set to NGSI-LD Null.
    pub deleted_subs: Vec<String>,
    /// The fragment's payload is an NGSI-LD Null: the instance is deleted.
    pub delete: bool,
}

/// Reads the Attribute Fragment of a partial attribute update.
pub fn parse_attribute_fragment(
    ctx: &Context,
    name: &str,
    v: &Value,
    now: Timestamp,
) -> NgsiResult<AttrFragment> {
    let r = Reader {
        ctx,
        payload: Payload::Update,
        now,
        expanded: ctx.expand_term(name),
    };
    let obj = match v {
        Value::Object(o) if o.is_empty() => {
            return Err(NgsiError::bad_request(format!(
                "the fragment for attribute \"{name}\" is empty"
            )))
        }
        Value::Object(o) => o,
        other => {
            if is_null_literal(other) {
                return Err(r.null_refused(name));
            }
            let value = r.bare_value(name, other)?;
            return Ok(AttrFragment {
                kind: Some(value.type_name().to_string()),
                value: Some(value),
                ..Default::default()
            });
        }
    };
    if let Some(AttrInput::Delete { dataset_id }) = r.null_form(name, v)? {
        return Ok(AttrFragment {
            dataset_id,
            delete: true,
            ..Default::default()
        });
    }
    let declared = declared_kind(name, obj)?;
    let kind = declared.or_else(|| inferred_kind(obj));
    let mut frag = AttrFragment {
        kind: kind.map(str::to_string),
        dataset_id: r.dataset_id(name, obj)?,
        ..Default::default()
    };
    if let Some(kind) = kind {
        let Some(member) = payload_member(kind) else {
            return Err(unknown_kind(name, kind));
        };
        check_members(name, kind, obj)?;
        if let Some(p) = obj.get(member) {
            frag.value = Some(r.value(name, kind, p, obj)?);
        }
    }
    let mut meta = Attribute::new(AttrValue::Property(Value::Null), now);
    r.read_meta(name, obj, &mut meta)?;
    frag.observed_at = meta.observed_at;
    frag.unit_code = meta.unit_code;
    frag.expires_at = meta.expires_at;
    let (sub, deleted_subs) = r.subs(name, obj, 0)?;
    frag.sub = sub;
    frag.deleted_subs = deleted_subs;
    Ok(frag)
}
