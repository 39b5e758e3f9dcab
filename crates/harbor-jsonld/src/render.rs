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
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

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
    to_value(&EntityJson::new(e, ctx, opts))
}

/// An entity as a GeoJSON Feature (4.5.16.2); `geometry_property` is the expanded name of
/// the GeoProperty whose default instance becomes the `geometry` (null when missing).
pub fn render_geojson_feature(
    e: &Entity,
    ctx: &Context,
    opts: &RenderOptions,
    geometry_property: &str,
) -> Value {
    to_value(&EntityJson::new(e, ctx, opts).feature(geometry_property))
}

/// The member value of one attribute with all its instances (an object for one instance, an
/// array for several; the `dataset` object of 4.5.4 in keyValues).
pub fn render_attribute(instances: &[Attribute], ctx: &Context, opts: &RenderOptions) -> Value {
    let lang = opts.lang.map(LangPrefs::parse);
    let r = Renderer::new(ctx, opts, lang.as_ref());
    to_value(&AttrJson { r: &r, instances })
}

/// One attribute instance (normalized or concise; keyValues gives the bare payload).
pub fn render_instance(a: &Attribute, ctx: &Context, opts: &RenderOptions) -> Value {
    let lang = opts.lang.map(LangPrefs::parse);
    let r = Renderer::new(ctx, opts, lang.as_ref());
    match opts.format {
        Format::KeyValues => to_value(&Simplified { r: &r, a }),
        _ => to_value(&InstJson {
            r: &r,
            a,
            in_array: false,
        }),
    }
}

/// Collects a rendering into a JSON tree, for callers that edit it afterwards.
fn to_value(rendering: &impl Serialize) -> Value {
    // Every map key written here is a string, the one thing `to_value` can refuse.
    serde_json::to_value(rendering).unwrap_or(Value::Null)
}

/// An entity rendered while it is serialised, with no JSON tree in between: a response
/// writes it straight into its body (`serde_json::to_writer`). [`render_entity`] and
/// [`render_geojson_feature`] are this, collected into a `Value`, so both paths give the
/// same JSON, member for member and in the same order.
pub struct EntityJson<'a> {
    e: &'a Entity,
    ctx: &'a Context,
    opts: &'a RenderOptions<'a>,
    lang: Option<LangPrefs>,
    /// A GeoJSON Feature, with this GeoProperty as its geometry.
    geometry: Option<&'a str>,
    /// An `@context` member written last (JSON-LD bodies).
    context: Option<&'a Value>,
}

impl<'a> EntityJson<'a> {
    pub fn new(e: &'a Entity, ctx: &'a Context, opts: &'a RenderOptions<'a>) -> Self {
        EntityJson {
            e,
            ctx,
            opts,
            lang: opts.lang.map(LangPrefs::parse),
            geometry: None,
            context: None,
        }
    }

    /// As a GeoJSON Feature whose `geometry` is the default instance of `geometry_property`.
    pub fn feature(mut self, geometry_property: &'a str) -> Self {
        self.geometry = Some(geometry_property);
        self
    }

    /// With an `@context` member after everything else.
    pub fn with_context(mut self, context: &'a Value) -> Self {
        self.context = Some(context);
        self
    }
}

impl Serialize for EntityJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = Renderer::new(self.ctx, self.opts, self.lang.as_ref());
        let e = self.e;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &e.id)?;
        match self.geometry {
            Some(property) => {
                let geometry = e
                    .attrs
                    .get(property)
                    .and_then(|list| list.iter().find(|a| a.dataset_id.is_none()))
                    .and_then(|a| match &a.value {
                        AttrValue::GeoProperty(g) => Some(g),
                        _ => None,
                    });
                m.serialize_entry("type", "Feature")?;
                m.serialize_entry("geometry", &geometry)?;
                m.serialize_entry("properties", &Properties { r: &r, e })?;
            }
            None => {
                m.serialize_entry("type", &Types { r: &r, e })?;
                members(&mut m, &r, e)?;
            }
        }
        if let Some(context) = self.context {
            m.serialize_entry("@context", context)?;
        }
        m.end()
    }
}

/// The entity's type: one name, or an array of them.
struct Types<'a> {
    r: &'a Renderer<'a>,
    e: &'a Entity,
}

impl Serialize for Types<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.e.types.as_slice() {
            [one] => s.serialize_str(self.r.ctx.compact(one)),
            many => s.collect_seq(many.iter().map(|t| self.r.ctx.compact(t))),
        }
    }
}

/// The `properties` of a GeoJSON Feature: the entity's type and members.
struct Properties<'a> {
    r: &'a Renderer<'a>,
    e: &'a Entity,
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "type",
            &Types {
                r: self.r,
                e: self.e,
            },
        )?;
        members(&mut m, self.r, self.e)?;
        m.end()
    }
}

/// Scope, system times and attributes, the attributes ordered by their compacted names.
fn members<M: SerializeMap>(m: &mut M, r: &Renderer, e: &Entity) -> Result<(), M::Error> {
    match e.scopes.as_slice() {
        [] => {}
        [one] => m.serialize_entry("scope", one)?,
        many => m.serialize_entry("scope", many)?,
    }
    if r.opts.sys_attrs {
        m.serialize_entry("createdAt", &time::format(&e.created_at))?;
        m.serialize_entry("modifiedAt", &time::format(&e.modified_at))?;
        if let Some(t) = &e.expires_at {
            m.serialize_entry("expiresAt", &given(t))?;
        }
    }
    let mut attrs: Vec<(&str, &Vec<Attribute>)> = e
        .attrs
        .iter()
        .filter(|(name, list)| {
            !list.is_empty() && r.opts.attrs.is_none_or(|keep| keep.contains(name))
        })
        .map(|(name, list)| (r.ctx.compact(name), list))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    for (name, instances) in attrs {
        m.serialize_entry(name, &AttrJson { r, instances })?;
    }
    Ok(())
}

/// A system timestamp (`createdAt`, `modifiedAt`).
pub(crate) fn stamp(t: &Timestamp) -> Value {
    Value::String(time::format(t))
}

/// A client-given timestamp (`observedAt`, `expiresAt`): no more fractional digits than needed.
pub(crate) fn given_stamp(t: &Timestamp) -> Value {
    Value::String(given(t))
}

fn given(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

struct Renderer<'a> {
    ctx: &'a Context,
    opts: &'a RenderOptions<'a>,
    lang: Option<&'a LangPrefs>,
}

impl<'a> Renderer<'a> {
    fn new(ctx: &'a Context, opts: &'a RenderOptions<'a>, lang: Option<&'a LangPrefs>) -> Self {
        Renderer { ctx, opts, lang }
    }

    /// Whether an instance carries nothing but its payload in the chosen output.
    fn is_plain(&self, a: &Attribute) -> bool {
        a.sub.is_empty()
            && a.dataset_id.is_none()
            && a.observed_at.is_none()
            && a.unit_code.is_none()
            && !self.opts.sys_attrs
    }
}

/// One attribute with all its instances: an object for one instance, an array for several;
/// in keyValues the payload, or the `dataset` object of 4.5.4 when instances carry
/// datasetIds.
struct AttrJson<'a> {
    r: &'a Renderer<'a>,
    instances: &'a [Attribute],
}

impl Serialize for AttrJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.r;
        if r.opts.format == Format::KeyValues {
            if let [one] = self.instances {
                if one.dataset_id.is_none() {
                    return Simplified { r, a: one }.serialize(s);
                }
            }
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("dataset", &Datasets(r, self.instances))?;
            return m.end();
        }
        match self.instances {
            [one] => InstJson {
                r,
                a: one,
                in_array: false,
            }
            .serialize(s),
            many => s.collect_seq(many.iter().map(|a| InstJson {
                r,
                a,
                in_array: true,
            })),
        }
    }
}

/// keyValues: instances by datasetId (`@none` for the default one).
struct Datasets<'a>(&'a Renderer<'a>, &'a [Attribute]);

impl Serialize for Datasets<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        s.collect_map(self.1.iter().map(|a| {
            (
                a.dataset_id.as_deref().unwrap_or("@none"),
                Simplified { r, a },
            )
        }))
    }
}

/// keyValues form of one instance: its payload.
struct Simplified<'a> {
    r: &'a Renderer<'a>,
    a: &'a Attribute,
}

impl Serialize for Simplified<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.r;
        match &self.a.value {
            AttrValue::Property(v) | AttrValue::GeoProperty(v) | AttrValue::ListProperty(v) => {
                v.serialize(s)
            }
            AttrValue::Relationship { object, .. } => object.serialize(s),
            AttrValue::ListRelationship { object_list, .. } => object_list.serialize(s),
            AttrValue::LanguageProperty(map) => match r.lang.and_then(|l| l.pick(map)) {
                Some((_, text)) => text.serialize(s),
                None => one_member(s, "languageMap", map),
            },
            AttrValue::JsonProperty(v) => one_member(s, "json", v),
            AttrValue::VocabProperty(v) => one_member(s, "vocab", &Compacted(r, v)),
        }
    }
}

fn one_member<S: Serializer>(s: S, key: &str, value: &impl Serialize) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry(key, value)?;
    m.end()
}

/// Normalized or concise form of one instance. `in_array`: part of a multi-instance array,
/// where a concise instance must stay an object.
struct InstJson<'a> {
    r: &'a Renderer<'a>,
    a: &'a Attribute,
    in_array: bool,
}

impl Serialize for InstJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, a) = (self.r, self.a);
        let concise = r.opts.format == Format::Concise;
        if let AttrValue::Property(v) | AttrValue::GeoProperty(v) = &a.value {
            if concise && !self.in_array && r.is_plain(a) && bare_ok(&a.value) {
                return v.serialize(s);
            }
        }
        let mut m = s.serialize_map(None)?;
        let put_type = |m: &mut S::SerializeMap, t: &str| {
            if concise {
                Ok(())
            } else {
                m.serialize_entry("type", t)
            }
        };
        match &a.value {
            AttrValue::Property(v) | AttrValue::GeoProperty(v) => {
                put_type(&mut m, a.value.type_name())?;
                m.serialize_entry("value", v)?;
            }
            AttrValue::Relationship {
                object,
                object_type,
            } => {
                put_type(&mut m, "Relationship")?;
                m.serialize_entry("object", object)?;
                if let Some(t) = object_type {
                    m.serialize_entry("objectType", &Compacted(r, t))?;
                }
            }
            AttrValue::ListRelationship {
                object_list,
                object_type,
            } => {
                put_type(&mut m, "ListRelationship")?;
                match (concise, object_list) {
                    (false, Value::Array(items)) => {
                        m.serialize_entry("objectList", &Seq(items.iter().map(Object)))?
                    }
                    (_, other) => m.serialize_entry("objectList", other)?,
                }
                if let Some(t) = object_type {
                    m.serialize_entry("objectType", &Compacted(r, t))?;
                }
            }
            AttrValue::LanguageProperty(map) => match r.lang.and_then(|l| l.pick(map)) {
                Some((tag, text)) => {
                    put_type(&mut m, "Property")?;
                    m.serialize_entry("value", &text)?;
                    m.serialize_entry("lang", &tag)?;
                }
                None => {
                    put_type(&mut m, "LanguageProperty")?;
                    m.serialize_entry("languageMap", map)?;
                }
            },
            AttrValue::JsonProperty(v) => {
                put_type(&mut m, "JsonProperty")?;
                m.serialize_entry("json", v)?;
            }
            AttrValue::VocabProperty(v) => {
                put_type(&mut m, "VocabProperty")?;
                m.serialize_entry("vocab", &Compacted(r, v))?;
            }
            AttrValue::ListProperty(v) => {
                put_type(&mut m, "ListProperty")?;
                m.serialize_entry("valueList", v)?;
            }
        }
        if let Some(ds) = &a.dataset_id {
            m.serialize_entry("datasetId", ds)?;
        }
        if let Some(t) = &a.observed_at {
            m.serialize_entry("observedAt", &given(t))?;
        }
        if let Some(u) = &a.unit_code {
            m.serialize_entry("unitCode", u)?;
        }
        if r.opts.sys_attrs {
            if let Some(t) = &a.expires_at {
                m.serialize_entry("expiresAt", &given(t))?;
            }
            m.serialize_entry("createdAt", &time::format(&a.created_at))?;
            m.serialize_entry("modifiedAt", &time::format(&a.modified_at))?;
        }
        let mut subs: Vec<(&str, &Attribute)> = a
            .sub
            .iter()
            .map(|(name, sub)| (r.ctx.compact(name), sub))
            .collect();
        subs.sort_by(|x, y| x.0.cmp(y.0));
        for (name, sub) in subs {
            m.serialize_entry(
                name,
                &InstJson {
                    r,
                    a: sub,
                    in_array: false,
                },
            )?;
        }
        m.end()
    }
}

/// A vocab / objectType value with its IRIs compacted: an IRI or an array of IRIs.
struct Compacted<'a>(&'a Renderer<'a>, &'a Value);

impl Serialize for Compacted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            Value::String(iri) => s.serialize_str(self.0.ctx.compact(iri)),
            Value::Array(items) => s.collect_seq(items.iter().map(|i| Compacted(self.0, i))),
            other => other.serialize(s),
        }
    }
}

/// `{"object": uri}`: one entry of a normalized `objectList`.
struct Object<'a>(&'a Value);

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        one_member(s, "object", self.0)
    }
}

/// A sequence written from an iterator that can be walked again.
struct Seq<I>(I);

impl<I, T> Serialize for Seq<I>
where
    I: Iterator<Item = T> + Clone,
    T: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
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
