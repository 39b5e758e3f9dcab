//! Entities to JSON in the NGSI-LD representations (4.5): normalized (4.5.2.2, 4.5.3.2),
//! concise (4.5.2.3, 4.5.3.3, 4.7.3, 4.5.22.3), simplified / keyValues (4.5.4) and the GeoJSON
//! Feature (4.5.16), with names compacted by the request's `@context` and the language
//! filter of 4.15. Responses and notifications both render through here.
//!
//! The caller applies `pick` / `omit` on the rendered object and selects `datasetId`
//! instances before rendering; `attrs` filters attributes here. `createdAt`, `modifiedAt` and
//! `expiresAt` (a system attribute per 4.22, 6.3.11; suite 6311_01) appear only with
//! `sys_attrs`. System timestamps print with milliseconds (`time::format`); client-given ones
//! (`observedAt`, `expiresAt`) print with as many fractional digits as they carry, so
//! `2100-01-01T00:00:00Z` comes back unchanged (suite 422_08).

use harbor_model::{time, AttrValue, Attribute, Entity, Timestamp};
use serde_json::{Map, Value};

use crate::context::Context;

/// The representation asked for with `format` / `options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Normalized,
    Concise,
    KeyValues,
}

/// How to render an entity.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions<'a> {
    pub format: Format,
    /// Include `createdAt` / `modifiedAt` on the entity and every attribute.
    pub sys_attrs: bool,
    /// The `lang` parameter (4.15): LanguageProperties become Properties holding the best
    /// matching string, with a `lang` member naming the language chosen.
    pub lang: Option<&'a str>,
    /// Expanded names of the attributes to keep; `None` keeps all.
    pub attrs: Option<&'a [String]>,
}

/// An entity in the requested representation.
pub fn render_entity(e: &Entity, ctx: &Context, opts: &RenderOptions) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(e.id.clone()));
    out.insert("type".into(), entity_types(e, ctx));
    entity_members(e, ctx, opts, &mut out);
    Value::Object(out)
}

/// An entity as a GeoJSON Feature (4.5.16.2); `geometry_property` is the expanded name of
/// the GeoProperty whose default instance becomes the `geometry` (null when missing).
pub fn render_geojson_feature(
    e: &Entity,
    ctx: &Context,
    opts: &RenderOptions,
    geometry_property: &str,
) -> Value {
    let geometry = e
        .attrs
        .get(geometry_property)
        .and_then(|list| list.iter().find(|a| a.dataset_id.is_none()))
        .and_then(|a| match &a.value {
            AttrValue::GeoProperty(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap_or(Value::Null);
    let mut properties = Map::new();
    properties.insert("type".into(), entity_types(e, ctx));
    entity_members(e, ctx, opts, &mut properties);
    let mut out = Map::new();
    out.insert("id".into(), Value::String(e.id.clone()));
    out.insert("type".into(), Value::String("Feature".into()));
    out.insert("geometry".into(), geometry);
    out.insert("properties".into(), Value::Object(properties));
    Value::Object(out)
}

/// The member value of one attribute with all its instances (an object for one instance, an
/// array for several; the `dataset` object of 4.5.4 in keyValues).
pub fn render_attribute(instances: &[Attribute], ctx: &Context, opts: &RenderOptions) -> Value {
    let lang = opts.lang.map(LangPrefs::parse);
    let r = Renderer {
        ctx,
        opts,
        lang: lang.as_ref(),
    };
    r.attribute(instances)
}

/// One attribute instance (normalized or concise; keyValues gives the bare payload).
pub fn render_instance(a: &Attribute, ctx: &Context, opts: &RenderOptions) -> Value {
    let lang = opts.lang.map(LangPrefs::parse);
    let r = Renderer {
        ctx,
        opts,
        lang: lang.as_ref(),
    };
    match opts.format {
        Format::KeyValues => r.simplified(a),
        _ => r.instance(a, false),
    }
}

fn entity_types(e: &Entity, ctx: &Context) -> Value {
    match e.types.as_slice() {
        [one] => Value::String(ctx.compact_iri(one)),
        many => Value::Array(
            many.iter()
                .map(|t| Value::String(ctx.compact_iri(t)))
                .collect(),
        ),
    }
}

fn entity_members(e: &Entity, ctx: &Context, opts: &RenderOptions, out: &mut Map<String, Value>) {
    match e.scopes.as_slice() {
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
        out.insert("createdAt".into(), stamp(&e.created_at));
        out.insert("modifiedAt".into(), stamp(&e.modified_at));
        if let Some(t) = &e.expires_at {
            out.insert("expiresAt".into(), given_stamp(t));
        }
    }
    let lang = opts.lang.map(LangPrefs::parse);
    let r = Renderer {
        ctx,
        opts,
        lang: lang.as_ref(),
    };
    let mut attrs: Vec<(String, &Vec<Attribute>)> = e
        .attrs
        .iter()
        .filter(|(name, list)| {
            !list.is_empty() && opts.attrs.is_none_or(|keep| keep.contains(name))
        })
        .map(|(name, list)| (ctx.compact_iri(name), list))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, list) in attrs {
        out.insert(name, r.attribute(list));
    }
}

/// A system timestamp (`createdAt`, `modifiedAt`).
pub(crate) fn stamp(t: &Timestamp) -> Value {
    Value::String(time::format(t))
}

/// A client-given timestamp (`observedAt`, `expiresAt`): no more fractional digits than needed.
pub(crate) fn given_stamp(t: &Timestamp) -> Value {
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

struct Renderer<'a> {
    ctx: &'a Context,
    opts: &'a RenderOptions<'a>,
    lang: Option<&'a LangPrefs>,
}

impl Renderer<'_> {
    fn attribute(&self, instances: &[Attribute]) -> Value {
        if self.opts.format == Format::KeyValues {
            return self.simplified_all(instances);
        }
        match instances {
            [one] => self.instance(one, false),
            many => Value::Array(many.iter().map(|a| self.instance(a, true)).collect()),
        }
    }

    /// keyValues: the payload, or `{"dataset": {...}}` when instances carry datasetIds.
    fn simplified_all(&self, instances: &[Attribute]) -> Value {
        if let [one] = instances {
            if one.dataset_id.is_none() {
                return self.simplified(one);
            }
        }
        let mut dataset = Map::new();
        for a in instances {
            let key = a.dataset_id.clone().unwrap_or_else(|| "@none".into());
            dataset.insert(key, self.simplified(a));
        }
        let mut out = Map::new();
        out.insert("dataset".into(), Value::Object(dataset));
        Value::Object(out)
    }

    fn simplified(&self, a: &Attribute) -> Value {
        let wrap = |key: &str, v: Value| {
            let mut m = Map::new();
            m.insert(key.into(), v);
            Value::Object(m)
        };
        match &a.value {
            AttrValue::Property(v) | AttrValue::GeoProperty(v) | AttrValue::ListProperty(v) => {
                v.clone()
            }
            AttrValue::Relationship { object, .. } => object.clone(),
            AttrValue::ListRelationship { object_list, .. } => object_list.clone(),
            AttrValue::LanguageProperty(map) => match self.lang.and_then(|l| l.pick(map)) {
                Some((_, text)) => text,
                None => wrap("languageMap", map.clone()),
            },
            AttrValue::JsonProperty(v) => wrap("json", v.clone()),
            AttrValue::VocabProperty(v) => wrap("vocab", self.compact_values(v)),
        }
    }

    /// Normalized or concise form of one instance. `in_array`: part of a multi-instance
    /// array, where a concise instance must stay an object.
    fn instance(&self, a: &Attribute, in_array: bool) -> Value {
        let concise = self.opts.format == Format::Concise;
        let mut out = Map::new();
        let put_type = |out: &mut Map<String, Value>, t: &str| {
            if !concise {
                out.insert("type".into(), Value::String(t.into()));
            }
        };
        match &a.value {
            AttrValue::Property(v) | AttrValue::GeoProperty(v) => {
                if concise && !in_array && self.is_plain(a) && bare_ok(&a.value) {
                    return v.clone();
                }
                put_type(&mut out, a.value.type_name());
                out.insert("value".into(), v.clone());
            }
            AttrValue::Relationship {
                object,
                object_type,
            } => {
                put_type(&mut out, "Relationship");
                out.insert("object".into(), object.clone());
                if let Some(t) = object_type {
                    out.insert("objectType".into(), self.compact_values(t));
                }
            }
            AttrValue::ListRelationship {
                object_list,
                object_type,
            } => {
                put_type(&mut out, "ListRelationship");
                let list = match (concise, object_list) {
                    (false, Value::Array(items)) => Value::Array(
                        items
                            .iter()
                            .map(|uri| {
                                let mut m = Map::new();
                                m.insert("object".into(), uri.clone());
                                Value::Object(m)
                            })
                            .collect(),
                    ),
                    (_, other) => other.clone(),
                };
                out.insert("objectList".into(), list);
                if let Some(t) = object_type {
                    out.insert("objectType".into(), self.compact_values(t));
                }
            }
            AttrValue::LanguageProperty(map) => match self.lang.and_then(|l| l.pick(map)) {
                Some((tag, text)) => {
                    put_type(&mut out, "Property");
                    out.insert("value".into(), text);
                    out.insert("lang".into(), Value::String(tag));
                }
                None => {
                    put_type(&mut out, "LanguageProperty");
                    out.insert("languageMap".into(), map.clone());
                }
            },
            AttrValue::JsonProperty(v) => {
                put_type(&mut out, "JsonProperty");
                out.insert("json".into(), v.clone());
            }
            AttrValue::VocabProperty(v) => {
                put_type(&mut out, "VocabProperty");
                out.insert("vocab".into(), self.compact_values(v));
            }
            AttrValue::ListProperty(v) => {
                put_type(&mut out, "ListProperty");
                out.insert("valueList".into(), v.clone());
            }
        }
        self.metadata(a, &mut out);
        Value::Object(out)
    }

    /// Whether an instance carries nothing but its payload in the chosen output.
    fn is_plain(&self, a: &Attribute) -> bool {
        a.sub.is_empty()
            && a.dataset_id.is_none()
            && a.observed_at.is_none()
            && a.unit_code.is_none()
            && !self.opts.sys_attrs
    }

    fn metadata(&self, a: &Attribute, out: &mut Map<String, Value>) {
        if let Some(ds) = &a.dataset_id {
            out.insert("datasetId".into(), Value::String(ds.clone()));
        }
        if let Some(t) = &a.observed_at {
            out.insert("observedAt".into(), given_stamp(t));
        }
        if let Some(u) = &a.unit_code {
            out.insert("unitCode".into(), Value::String(u.clone()));
        }
        if self.opts.sys_attrs {
            if let Some(t) = &a.expires_at {
                out.insert("expiresAt".into(), given_stamp(t));
            }
            out.insert("createdAt".into(), stamp(&a.created_at));
            out.insert("modifiedAt".into(), stamp(&a.modified_at));
        }
        let mut subs: Vec<(String, &Attribute)> = a
            .sub
            .iter()
            .map(|(name, s)| (self.ctx.compact_iri(name), s))
            .collect();
        subs.sort_by(|x, y| x.0.cmp(&y.0));
        for (name, s) in subs {
            out.insert(name, self.instance(s, false));
        }
    }

    /// Compacts a vocab / objectType value: an IRI or an array of IRIs.
    fn compact_values(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.ctx.compact_iri(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.compact_values(i)).collect())
            }
            other => other.clone(),
        }
    }
}

/// Whether a Property / GeoProperty value may stand bare in concise form and still be read
/// back as the same attribute kind.
fn bare_ok(value: &AttrValue) -> bool {
    match value {
        AttrValue::GeoProperty(_) => true,
        AttrValue::Property(Value::Object(_)) | AttrValue::Property(Value::Null) => false,
        AttrValue::Property(Value::Array(items)) => !items.iter().any(Value::is_object),
        AttrValue::Property(_) => true,
        _ => false,
    }
}

/// Puts a linked Entity into the rendered Relationship that targets it: an `entity` member
/// (an `entityList` entry for a ListRelationship) or, in keyValues, in place of the id.
pub fn attach_linked(member: &mut Value, object: &str, target: Value, key_values: bool) {
    let is_object = |v: &Value| v.as_str() == Some(object);
    if key_values {
        match member {
            v if is_object(v) => *v = target,
            Value::Array(items) => {
                if let Some(slot) = items.iter_mut().find(|v| is_object(v)) {
                    *slot = target;
                }
            }
            Value::Object(m) => {
                if let Some(Value::Object(ds)) = m.get_mut("dataset") {
                    for v in ds.values_mut() {
                        if is_object(v) {
                            *v = target.clone();
                        }
                    }
                }
            }
            _ => {}
        }
        return;
    }
    match member {
        Value::Array(instances) => {
            for inst in instances {
                attach_linked(inst, object, target.clone(), false);
            }
        }
        Value::Object(m) => {
            if m.get("object").is_some_and(is_object) {
                m.insert("entity".into(), target);
            } else if m
                .get("objectList")
                .and_then(Value::as_array)
                .is_some_and(|l| {
                    l.iter()
                        .any(|x| is_object(x) || x.get("object").is_some_and(is_object))
                })
            {
                let list = m
                    .entry("entityList")
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(l) = list {
                    l.push(target);
                }
            }
        }
        _ => {}
    }
}

/// The `lang` parameter: language ranges with quality values (RFC 4647 / 9110 syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct LangPrefs {
    /// Ranges in preference order (highest q first, then as given), lowercase.
    ranges: Vec<String>,
}

impl LangPrefs {
    pub fn parse(s: &str) -> LangPrefs {
        let mut ranked: Vec<(String, f32, usize)> = s
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.split(';');
                let range = pieces.next()?.trim().trim_matches('"').to_ascii_lowercase();
                if range.is_empty() {
                    return None;
                }
                let q = pieces
                    .filter_map(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.parse::<f32>().ok())
                    })
                    .next()
                    .unwrap_or(1.0);
                (q > 0.0).then_some((range, q, i))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
        LangPrefs {
            ranges: ranked.into_iter().map(|(r, _, _)| r).collect(),
        }
    }

    /// The best entry of a languageMap: (tag, text). Per range: the same tag, else a longer
    /// tag it prefixes (`en` → `en-US`), else the range cut at its last subtag (`nl-BE` →
    /// `nl`). When nothing matches: `@none`, then the first entry (4.15: "default to any
    /// supported language").
    pub fn pick(&self, map: &Value) -> Option<(String, Value)> {
        let map = map.as_object()?;
        let found = |tag: &String, text: &Value| Some((tag.clone(), text.clone()));
        for range in &self.ranges {
            if range == "*" {
                break;
            }
            let longer = |tag: &str| {
                tag.get(..range.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(range))
                    && tag.as_bytes().get(range.len()) == Some(&b'-')
            };
            let hit = map
                .iter()
                .find(|(tag, _)| tag.eq_ignore_ascii_case(range))
                .or_else(|| map.iter().find(|(tag, _)| longer(tag)))
                .or_else(|| {
                    let mut cut = range.as_str();
                    while let Some((head, _)) = cut.rsplit_once('-') {
                        cut = head;
                        if let Some(e) = map.iter().find(|(tag, _)| tag.eq_ignore_ascii_case(cut)) {
                            return Some(e);
                        }
                    }
                    None
                });
            if let Some((tag, text)) = hit {
                return found(tag, text);
            }
        }
        map.get_key_value("@none")
            .or_else(|| map.iter().next())
            .and_then(|(tag, text)| found(tag, text))
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
