//! Temporal entities (4.5.7 – 4.5.9, 5.6.11, 5.7.3): reading a temporal entity payload, whose
//! attributes are arrays of instances that may share a `datasetId`, and rendering the
//! temporal representations — normalized (every instance with its `instanceId`) and
//! simplified (`temporalValues`: `[value, time]` pairs per `datasetId`). One instance renders
//! through the same code as the current state (`render.rs`).

use harbor_model::temporal::{is_null_payload, scope_attribute, NGSI_LD_NULL, SCOPE_ATTR};
use harbor_model::{
    AttrValue, Attribute, NgsiError, NgsiResult, TemporalEntity, TemporalInstance, TimeProperty,
    Timestamp,
};
use harbor_query::{AggrMethod, AggregatedSeries, Aggregator, Period, TimeRange};
use serde_json::{Map, Value};

use crate::attribute::{AttrInput, Payload};
use crate::context::Context;
use crate::expand::{parse_entity, parse_scopes};
use crate::render::{given_stamp, render_instance, stamp, Format, LangPrefs, RenderOptions};

/// A temporal entity payload (5.6.11, 5.6.12).
#[derive(Debug, Clone)]
pub struct TemporalInput {
    pub id: Option<String>,
    /// Expanded types; empty when the payload had none.
    pub types: Vec<String>,
    pub scopes: Option<Vec<String>>,
    /// Instances in payload order, by expanded attribute name.
    pub attrs: Vec<(String, Attribute)>,
}

/// Whether an instance's payload is an NGSI-LD Null: it records a deletion.
pub fn is_deletion(a: &Attribute) -> bool {
    is_null_payload(&a.value)
}

/// Reads a temporal entity payload. Every instance needs an `observedAt`: it is the time
/// the history is ordered and queried by. `require_id_type`: creating needs both.
pub fn parse_temporal_entity(
    ctx: &Context,
    body: &Value,
    require_id_type: bool,
    now: Timestamp,
) -> NgsiResult<TemporalInput> {
    let (body, scope_history) = split_scope_history(body, now)?;
    let input = parse_entity(ctx, &body, require_id_type, Payload::Temporal, now)?;
    let mut attrs = Vec::with_capacity(input.attrs.len() + scope_history.len());
    for (name, a) in input.attrs {
        let AttrInput::Put(p) = a else {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{}\": an NGSI-LD Null instance needs its type and \"observedAt\"",
                ctx.compact_iri(&name)
            )));
        };
        if p.attr.observed_at.is_none() {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{}\": every temporal instance needs an \"observedAt\"",
                ctx.compact_iri(&name)
            )));
        }
        attrs.push((name, p.attr));
    }
    attrs.extend(
        scope_history
            .into_iter()
            .map(|a| (SCOPE_ATTR.to_string(), a)),
    );
    Ok(TemporalInput {
        id: input.id,
        types: input.types,
        scopes: input.scopes,
        attrs,
    })
}

/// Takes the scope's history out of a temporal payload: a `scope` given as Property
/// instances with an `observedAt` each (4.5.6) is the temporal representation of the scope,
/// not the entity's current scopes. A `scope` of plain strings stays in the payload.
fn split_scope_history(body: &Value, now: Timestamp) -> NgsiResult<(Value, Vec<Attribute>)> {
    let Some(scope) = body.get("scope") else {
        return Ok((body.clone(), Vec::new()));
    };
    let items: Vec<&Value> = match scope {
        Value::Array(items) if items.iter().any(Value::is_object) => items.iter().collect(),
        Value::Object(o) if o.contains_key("observedAt") => vec![scope],
        _ => return Ok((body.clone(), Vec::new())),
    };
    let mut history = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(o) = item else {
            return Err(NgsiError::bad_request(format!(
                "\"scope\": every instance of its temporal representation must be a Property \
                 object, got {item}"
            )));
        };
        if let Some(t) = o.get("type").and_then(Value::as_str) {
            if t != "Property" {
                return Err(NgsiError::bad_request(format!(
                    "\"scope\": an instance of the scope is a Property, got type \"{t}\""
                )));
            }
        }
        let observed_at = o
            .get("observedAt")
            .and_then(Value::as_str)
            .and_then(harbor_model::time::parse)
            .ok_or_else(|| {
                NgsiError::bad_request(
                    "\"scope\": every temporal instance needs an \"observedAt\" DateTime",
                )
            })?;
        let value = o.get("value").cloned().unwrap_or(Value::Null);
        let mut a = if value.as_str() == Some(NGSI_LD_NULL) {
            Attribute::new(AttrValue::Property(value), now)
        } else {
            let scopes = parse_scopes(&value, Payload::Temporal)?;
            scope_attribute(&scopes, now)
        };
        a.observed_at = Some(observed_at);
        history.push(a);
    }
    let mut rest = body.clone();
    if let Value::Object(o) = &mut rest {
        o.remove("scope");
    }
    Ok((rest, history))
}

/// `aggrMethods`, `aggrPeriodDuration` and the requested range (4.5.19).
#[derive(Debug, Clone, Default)]
pub struct Aggregation {
    pub methods: Vec<AggrMethod>,
    pub period: Period,
    pub range: TimeRange,
}

/// How to render a temporal entity.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemporalRenderOptions<'a> {
    /// `options=aggregatedValues`: the aggregated representation (takes precedence).
    pub aggregation: Option<&'a Aggregation>,
    /// `options=temporalValues` (or `simplified` / `keyValues`): the simplified representation.
    pub temporal_values: bool,
    pub sys_attrs: bool,
    pub lang: Option<&'a str>,
    /// The time paired with each value in the simplified representation.
    pub time_property: TimeProperty,
}

/// A temporal entity in the requested representation. An attribute with no instance (a page
/// cut before its first one) is an empty array.
pub fn render_temporal_entity(
    e: &TemporalEntity,
    ctx: &Context,
    opts: &TemporalRenderOptions,
) -> Value {
    let h = &e.header;
    let mut out = Map::new();
    out.insert("id".into(), Value::String(h.id.clone()));
    let types: Vec<Value> = h
        .types
        .iter()
        .map(|t| Value::String(ctx.compact_iri(t)))
        .collect();
    out.insert(
        "type".into(),
        match types.len() {
            1 => types[0].clone(),
            _ => Value::Array(types),
        },
    );
    // The scope's history, when there is one, renders below as the temporal Property it is.
    let scopes = match e.attrs.contains_key(SCOPE_ATTR) {
        true => &[][..],
        false => h.scopes.as_slice(),
    };
    match scopes {
        [] => {}
        [one] => {
            out.insert("scope".into(), Value::String(one.clone()));
        }
        many => {
            out.insert(
                "scope".into(),
                many.iter().cloned().map(Value::String).collect(),
            );
        }
    }
    if opts.sys_attrs {
        out.insert("createdAt".into(), stamp(&h.created_at));
        out.insert("modifiedAt".into(), stamp(&h.modified_at));
    }
    // Every attribute's periods start at the entity's oldest instance, so they line up.
    let oldest = e
        .attrs
        .values()
        .flatten()
        .filter_map(|i| pair_time(i, opts.time_property))
        .min();
    for (name, list) in &e.attrs {
        let v = if let Some(aggr) = opts.aggregation {
            if name == SCOPE_ATTR {
                continue;
            }
            match aggregated_values(list, ctx, opts, aggr, oldest) {
                Some(v) => v,
                None => continue,
            }
        } else if opts.temporal_values {
            temporal_values(list, ctx, opts)
        } else {
            Value::Array(list.iter().map(|i| instance(i, ctx, opts)).collect())
        };
        out.insert(ctx.compact_iri(name), v);
    }
    Value::Object(out)
}

/// One recorded instance, normalized, with its `instanceId` (and `deletedAt` once deleted).
fn instance(i: &TemporalInstance, ctx: &Context, opts: &TemporalRenderOptions) -> Value {
    let ro = RenderOptions {
        format: Format::Normalized,
        sys_attrs: opts.sys_attrs,
        lang: opts.lang,
        attrs: None,
    };
    let mut v = render_instance(&i.attr, ctx, &ro);
    if let Value::Object(o) = &mut v {
        o.insert("instanceId".into(), Value::String(i.instance_id.clone()));
        if let Some(t) = &i.deleted_at {
            o.insert("deletedAt".into(), stamp(t));
        }
    }
    v
}

/// The time an instance is paired with in the simplified and aggregated representations.
fn pair_time(i: &TemporalInstance, p: TimeProperty) -> Option<Timestamp> {
    i.time(p)
}

/// The aggregated representation of one attribute (4.5.19): per `datasetId`, the kind and
/// one `[value, start, end]` series per method; `None` when no instance fell in the range.
fn aggregated_values(
    list: &[TemporalInstance],
    ctx: &Context,
    opts: &TemporalRenderOptions,
    aggr: &Aggregation,
    oldest: Option<Timestamp>,
) -> Option<Value> {
    let mut timed: Vec<(Timestamp, &TemporalInstance)> = list
        .iter()
        .filter(|i| !is_deletion(&i.attr))
        .filter_map(|i| Some((pair_time(i, opts.time_property)?, i)))
        .collect();
    // The aggregator takes instances in time order; the store orders by observedAt.
    timed.sort_by_key(|(at, _)| *at);
    let mut groups: Vec<(Option<String>, Map<String, Value>, Aggregator)> = Vec::new();
    for (at, i) in timed {
        let ds = i.attr.dataset_id.clone();
        let pos = match groups.iter().position(|g| g.0 == ds) {
            Some(p) => p,
            None => {
                let mut head = Map::new();
                head.insert(
                    "type".into(),
                    Value::String(i.attr.value.type_name().into()),
                );
                if let Some(d) = &ds {
                    head.insert("datasetId".into(), Value::String(d.clone()));
                }
                let mut a = Aggregator::new(&aggr.methods, aggr.period, aggr.range);
                if let (None, Some(o)) = (aggr.range.start, oldest) {
                    a = a.aligned_at(o);
                }
                groups.push((ds, head, a));
                groups.len() - 1
            }
        };
        // In time order, so the only refusal left is MAX_DISTINCT values in one period,
        // where that one value is left out of the distinct count.
        let _ = groups[pos]
            .2
            .push(&simplified_payload(&i.attr.value, ctx), at);
    }
    let mut out: Vec<Value> = groups
        .into_iter()
        .filter_map(|(_, mut head, a)| {
            let done = a.finish();
            if done.is_empty() {
                return None;
            }
            head.extend(done.to_members());
            Some(Value::Object(head))
        })
        .collect();
    match out.len() {
        0 => None,
        1 => Some(out.swap_remove(0)),
        _ => Some(Value::Array(out)),
    }
}

/// A temporal entity whose attributes were aggregated as the store streamed them (4.5.19):
/// the header as [`render_temporal_entity`] renders it, then per attribute one entry per
/// `datasetId` (an object for one, else an array); an attribute without any is left out.
pub fn render_aggregated_temporal_entity(
    e: &TemporalEntity<Vec<AggregatedSeries>>,
    ctx: &Context,
    opts: &TemporalRenderOptions,
) -> Value {
    let header = TemporalEntity {
        header: e.header.clone(),
        attrs: Default::default(),
    };
    let mut out = match render_temporal_entity(&header, ctx, opts) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    for (name, series) in &e.attrs {
        let mut items: Vec<Value> = series
            .iter()
            .map(|s| {
                let mut head = Map::new();
                head.insert("type".into(), Value::String(s.kind.into()));
                if let Some(d) = &s.dataset_id {
                    head.insert("datasetId".into(), Value::String(d.clone()));
                }
                head.extend(s.values.to_members());
                Value::Object(head)
            })
            .collect();
        let v = match items.len() {
            0 => continue,
            1 => items.swap_remove(0),
            _ => Value::Array(items),
        };
        out.insert(ctx.compact_iri(name), v);
    }
    Value::Object(out)
}

/// The instances of one datasetId in the simplified representation.
type Group = (Option<String>, Map<String, Value>, Vec<Value>);

/// The simplified representation of one attribute (4.5.9): per `datasetId`, the kind and its
/// `[value, time]` pairs; one object for a single dataset, else an array.
fn temporal_values(
    list: &[TemporalInstance],
    ctx: &Context,
    opts: &TemporalRenderOptions,
) -> Value {
    let lang = opts.lang.map(LangPrefs::parse);
    // Per datasetId, in order of first appearance: its head (type, datasetId) and its pairs.
    let mut groups: Vec<Group> = Vec::new();
    for i in list {
        let ds = i.attr.dataset_id.clone();
        let pos = match groups.iter().position(|g| g.0 == ds) {
            Some(p) => p,
            None => {
                let mut head = Map::new();
                head.insert(
                    "type".into(),
                    Value::String(i.attr.value.type_name().into()),
                );
                if let Some(d) = &ds {
                    head.insert("datasetId".into(), Value::String(d.clone()));
                }
                groups.push((ds, head, Vec::new()));
                groups.len() - 1
            }
        };
        let mut payload = simplified_payload(&i.attr.value, ctx);
        if let (AttrValue::LanguageProperty(map), Some(l)) = (&i.attr.value, &lang) {
            if let Some((_, text)) = l.pick(map) {
                payload = text;
                groups[pos]
                    .1
                    .insert("type".into(), Value::String("Property".into()));
            }
        }
        let time = match opts.time_property {
            TimeProperty::ObservedAt => i.attr.observed_at.as_ref().map(given_stamp),
            p => i.time(p).as_ref().map(stamp),
        };
        groups[pos]
            .2
            .push(Value::Array(vec![payload, time.unwrap_or(Value::Null)]));
    }
    if groups.is_empty() {
        // A page cut before the attribute's first instance (6.3.10) leaves no instance to
        // tell its kind: it shows as an empty series of the most common kind.
        let mut head = Map::new();
        head.insert("type".into(), Value::String("Property".into()));
        groups.push((None, head, Vec::new()));
    }
    let mut out: Vec<Value> = groups
        .into_iter()
        .map(|(_, mut head, pairs)| {
            let member = plural_member(&head);
            head.insert(member.into(), Value::Array(pairs));
            Value::Object(head)
        })
        .collect();
    match out.len() {
        1 => out.swap_remove(0),
        _ => Value::Array(out),
    }
}

/// The value of one pair (4.5.9): the payload, wrapped in its member for the kinds whose
/// payload is an object (`{"json": ...}`, `{"languageMap": ...}`, `{"vocab": ...}`), as in
/// the simplified representation of the current state. A deletion stays the NGSI-LD Null.
pub fn simplified_payload(v: &AttrValue, ctx: &Context) -> Value {
    let wrap = |k: &str, inner: Value| {
        let mut m = Map::new();
        m.insert(k.into(), inner);
        Value::Object(m)
    };
    let payload = v.payload();
    if payload.as_str() == Some(NGSI_LD_NULL) {
        return payload.clone();
    }
    let compact = |x: &Value| match x {
        Value::String(s) => Value::String(ctx.compact_iri(s)),
        other => other.clone(),
    };
    match v {
        AttrValue::JsonProperty(j) => wrap("json", j.clone()),
        AttrValue::LanguageProperty(m) => wrap("languageMap", m.clone()),
        AttrValue::VocabProperty(Value::Array(items)) => {
            wrap("vocab", Value::Array(items.iter().map(compact).collect()))
        }
        AttrValue::VocabProperty(x) => wrap("vocab", compact(x)),
        _ => payload.clone(),
    }
}

/// The member holding the pairs of a kind (4.5.9): `values`, `objects`, `languageMaps`, ...
fn plural_member(head: &Map<String, Value>) -> &'static str {
    match head.get("type").and_then(Value::as_str) {
        Some("Relationship") => "objects",
        Some("LanguageProperty") => "languageMaps",
        Some("JsonProperty") => "jsons",
        Some("VocabProperty") => "vocabs",
        Some("ListProperty") => "valueLists",
        Some("ListRelationship") => "objectLists",
        _ => "values",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use harbor_model::{time, TemporalHeader};
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    #[test]
    fn reads_temporal_payloads() {
        let ctx = Context::core();
        let now = time::now();
        let ok = json!({
            "id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
            "speed": [
                {"type": "Property", "value": 1, "observedAt": "2020-08-01T12:03:00Z"},
                {"type": "Property", "value": 2, "observedAt": "2020-08-01T12:05:00Z"},
                {"type": "Property", "value": "urn:ngsi-ld:null", "observedAt": "2020-08-01T12:07:00Z"},
            ],
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:null", "observedAt": "2020-08-01T12:07:00Z"},
        });
        let t = parse_temporal_entity(&ctx, &ok, true, now).unwrap();
        assert_eq!(
            t.attrs.len(),
            4,
            "instances sharing the default dataset are all kept"
        );
        let deletions: Vec<bool> = t.attrs.iter().map(|(_, a)| is_deletion(a)).collect();
        assert_eq!(deletions, [false, false, true, true]);
        let cases = [
            (
                json!({"type": "Vehicle", "speed": [{"value": 1, "observedAt": "2020-08-01T12:03:00Z"}]}),
                "no \"id\"",
            ),
            (
                json!({"id": "urn:a:b", "type": "V", "speed": [{"type": "Property", "value": 1}]}),
                "needs an \"observedAt\"",
            ),
            (
                json!({"id": "urn:a:b", "type": "V", "speed": [{"type": "Property", "value": 1, "observedAt": "yesterday"}]}),
                "observedAt",
            ),
            (
                json!({"id": "urn:a:b", "type": "V", "speed": "urn:ngsi-ld:null"}),
                "NGSI-LD Null",
            ),
            (
                json!({"id": "urn:a:b", "type": "V", "expiresAt": "urn:ngsi-ld:null"}),
                "expiresAt",
            ),
            (json!([]), "JSON object"),
        ];
        for (body, want) in cases {
            let err = parse_temporal_entity(&ctx, &body, true, now).unwrap_err();
            assert!(err.detail.contains(want), "{body}: {}", err.detail);
        }
    }

    fn entity() -> TemporalEntity {
        let inst = |n: &str, v: Value, t: &str, ds: Option<&str>| {
            let mut a = Attribute::new(AttrValue::Property(v), at("2024-01-01T00:00:00Z"));
            a.observed_at = Some(at(t));
            a.dataset_id = ds.map(str::to_string);
            TemporalInstance {
                instance_id: format!("urn:ngsi-ld:AttributeInstance:{n}"),
                attr: a,
                deleted_at: None,
            }
        };
        let mut gone = TemporalInstance::deleted(
            "urn:ngsi-ld:AttributeInstance:d".into(),
            &inst("x", json!(0), "2020-01-01T00:00:00Z", None).attr,
            at("2024-02-01T00:00:00Z"),
        );
        gone.attr.created_at = at("2024-01-01T00:00:00Z");
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "https://uri.etsi.org/ngsi-ld/default-context/speed".to_string(),
            vec![
                inst("a", json!(120), "2020-08-01T12:03:00Z", None),
                inst("b", json!(80), "2020-08-01T12:05:00Z", Some("urn:ds:1")),
            ],
        );
        attrs.insert(
            "https://uri.etsi.org/ngsi-ld/default-context/fuel".to_string(),
            vec![gone],
        );
        TemporalEntity {
            header: TemporalHeader {
                id: "urn:ngsi-ld:Vehicle:1".into(),
                types: vec!["https://uri.etsi.org/ngsi-ld/default-context/Vehicle".into()],
                scopes: vec![],
                created_at: at("2024-01-01T00:00:00Z"),
                modified_at: at("2024-01-01T00:00:00Z"),
                provided_current: false,
            },
            attrs,
        }
    }

    #[test]
    fn renders_the_temporal_representations() {
        let ctx = Context::core();
        let cases = [
            (
                TemporalRenderOptions::default(),
                json!({
                    "id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
                    "speed": [
                        {"type": "Property", "value": 120, "observedAt": "2020-08-01T12:03:00Z",
                         "instanceId": "urn:ngsi-ld:AttributeInstance:a"},
                        {"type": "Property", "value": 80, "observedAt": "2020-08-01T12:05:00Z",
                         "datasetId": "urn:ds:1", "instanceId": "urn:ngsi-ld:AttributeInstance:b"},
                    ],
                    "fuel": [
                        {"type": "Property", "value": "urn:ngsi-ld:null",
                         "instanceId": "urn:ngsi-ld:AttributeInstance:d",
                         "deletedAt": "2024-02-01T00:00:00.000Z"},
                    ],
                }),
            ),
            (
                TemporalRenderOptions {
                    temporal_values: true,
                    ..Default::default()
                },
                json!({
                    "id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
                    "speed": [
                        {"type": "Property", "values": [[120, "2020-08-01T12:03:00Z"]]},
                        {"type": "Property", "datasetId": "urn:ds:1",
                         "values": [[80, "2020-08-01T12:05:00Z"]]},
                    ],
                    "fuel": {"type": "Property", "values": [["urn:ngsi-ld:null", null]]},
                }),
            ),
            (
                TemporalRenderOptions {
                    temporal_values: true,
                    time_property: TimeProperty::DeletedAt,
                    ..Default::default()
                },
                json!({
                    "id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
                    "speed": [
                        {"type": "Property", "values": [[120, null]]},
                        {"type": "Property", "datasetId": "urn:ds:1", "values": [[80, null]]},
                    ],
                    "fuel": {"type": "Property",
                             "values": [["urn:ngsi-ld:null", "2024-02-01T00:00:00.000Z"]]},
                }),
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(
                render_temporal_entity(&entity(), &ctx, &opts),
                want,
                "{opts:?}"
            );
        }
    }
}
