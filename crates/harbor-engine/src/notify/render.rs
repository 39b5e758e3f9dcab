//! The body of a notification (5.3.1): `Notification` with the entities of the changes it
//! reports, rendered through `harbor-jsonld` like a response, in the subscription's format,
//! with deleted attributes shown as `urn:ngsi-ld:null` (5.8.6), the previous values when
//! `showChanges` is set (5.2.14), and `pick` / `omit` (4.21).

use std::sync::Arc;

use harbor_jsonld::render::{
    attach_linked, render_entity, render_geojson_feature, render_instance,
};
use harbor_jsonld::render::{Format, RenderOptions};
use harbor_jsonld::CORE_CONTEXT_URL;
use harbor_model::subscription::NotificationFormat;
use harbor_model::{time, AttrValue, Attribute, Entity, EntityChange, Subscription, Timestamp};
use harbor_query::{parse_projection, ProjectionKind};
use serde_json::{Map, Value};

use super::compile::Compiled;
use crate::join::{join_with, JoinSpec, Joined, Lookup};

/// The GeoProperty that becomes the geometry of GeoJSON notifications.
const LOCATION: &str = harbor_model::names::LOCATION;

/// The NGSI-LD Null (4.5.0): what a deleted attribute is notified as.
const NULL: &str = "urn:ngsi-ld:null";

/// A rendered notification: body and the media it is in.
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: String,
    /// The `@context` URL for a `Link` header, when the body is plain JSON.
    pub link: Option<String>,
}

/// Renders the notification of `sub` (the current stored subscription) about `changes`.
pub fn notification(
    compiled: &Compiled,
    sub: &Subscription,
    changes: &[Arc<EntityChange>],
    now: Timestamp,
    lookup: &Lookup<'_>,
) -> Rendered {
    let accept = sub.notification.endpoint.accept.as_str();
    let geo = accept == "application/geo+json";
    let data: Vec<Value> = changes
        .iter()
        .flat_map(|c| entity_values(compiled, sub, c, geo, lookup))
        .collect();
    let context_url = sub
        .jsonld_context
        .clone()
        .unwrap_or_else(|| CORE_CONTEXT_URL.to_string());
    let mut n = Map::new();
    n.insert(
        "id".into(),
        Value::String(format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4())),
    );
    n.insert("type".into(), Value::String("Notification".into()));
    n.insert("subscriptionId".into(), Value::String(sub.id.clone()));
    n.insert("notifiedAt".into(), Value::String(time::format(&now)));
    if geo {
        let mut fc = Map::new();
        fc.insert("type".into(), Value::String("FeatureCollection".into()));
        fc.insert("features".into(), Value::Array(data));
        n.insert("data".into(), Value::Object(fc));
    } else {
        n.insert("data".into(), Value::Array(data));
    }
    let (content_type, link) = if accept == "application/ld+json" {
        // JSON-LD: the notification and every entity in it carry the `@context` (5.3.1).
        if let Some(Value::Array(list)) = n.get_mut("data") {
            for e in list.iter_mut().filter_map(Value::as_object_mut) {
                e.insert("@context".into(), Value::String(context_url.clone()));
            }
        }
        n.insert("@context".into(), Value::String(context_url));
        ("application/ld+json".to_string(), None)
    } else {
        (
            if geo {
                "application/geo+json".to_string()
            } else {
                "application/json".to_string()
            },
            Some(context_url),
        )
    };
    Rendered {
        body: serde_json::to_vec(&Value::Object(n)).unwrap_or_default(),
        content_type,
        link,
    }
}

/// The instance an attribute is notified as once deleted: its kind with the NGSI-LD Null.
fn null_instance(before: &Attribute) -> Attribute {
    let null = Value::String(NULL.into());
    let value = match &before.value {
        AttrValue::Property(_) => AttrValue::Property(null),
        AttrValue::GeoProperty(_) => AttrValue::GeoProperty(null),
        AttrValue::Relationship { .. } => AttrValue::Relationship {
            object: null,
            object_type: None,
        },
        AttrValue::LanguageProperty(_) => {
            let mut m = Map::new();
            m.insert("@none".into(), null);
            AttrValue::LanguageProperty(Value::Object(m))
        }
        AttrValue::JsonProperty(_) => AttrValue::JsonProperty(null),
        AttrValue::VocabProperty(_) => AttrValue::VocabProperty(null),
        AttrValue::ListProperty(_) => AttrValue::ListProperty(null),
        AttrValue::ListRelationship { .. } => AttrValue::ListRelationship {
            object_list: null,
            object_type: None,
        },
    };
    Attribute {
        value,
        dataset_id: before.dataset_id.clone(),
        observed_at: None,
        unit_code: None,
        created_at: before.created_at,
        modified_at: before.modified_at,
        expires_at: None,
        sub: Default::default(),
    }
}

/// `(attribute, datasetId)` of the instances shown as deleted.
type Deleted = Vec<(String, Option<String>)>;

/// The entity as the notification shows it: the new state plus the deleted instances of
/// watched attributes as NGSI-LD Null (5.8.6); an attribute deleted whole shows as one Null
/// instance. A deleted entity shows its attributes (as Null) only when the subscription
/// asked for `showChanges` or is notified of `attributeDeleted`; else just id, type and
/// `deletedAt`.
fn shown_entity(compiled: &Compiled, c: &EntityChange) -> Option<(Entity, Deleted)> {
    let mut deleted = Deleted::new();
    let mut e = match (&c.after, &c.before) {
        (Some(a), _) => (**a).clone(),
        (None, Some(b)) => Entity {
            attrs: Default::default(),
            ..b.clone()
        },
        (None, None) => return None,
    };
    let Some(before) = &c.before else {
        return Some((e, deleted));
    };
    let names: Vec<&String> = if c.after.is_none() {
        if compiled.sub.notification.show_changes || compiled.notified_of_attribute_deletion() {
            before.attrs.keys().collect()
        } else {
            Vec::new()
        }
    } else {
        c.changed.iter().collect()
    };
    for name in names {
        if !compiled.watches(name) {
            continue;
        }
        let Some(old) = before.attrs.get(name).filter(|l| !l.is_empty()) else {
            continue;
        };
        match e.attrs.get_mut(name) {
            None => {
                // Deleted whole: one Null instance.
                let first = old
                    .iter()
                    .find(|a| a.dataset_id.is_none())
                    .unwrap_or(&old[0]);
                let mut null = null_instance(first);
                null.dataset_id = None;
                e.attrs.insert(name.clone(), vec![null]);
                deleted.push((name.clone(), None));
            }
            Some(now) => {
                for inst in old {
                    if !now.iter().any(|a| a.dataset_id == inst.dataset_id) {
                        now.push(null_instance(inst));
                        deleted.push((name.clone(), inst.dataset_id.clone()));
                    }
                }
            }
        }
    }
    Some((e, deleted))
}

/// The entity of one change as the notification shows it, followed (with `join=flat`) by
/// the Entities its Relationships lead to; with `join=inline` those sit inside it (4.5.23).
fn entity_values(
    compiled: &Compiled,
    sub: &Subscription,
    c: &EntityChange,
    geo: bool,
    lookup: &Lookup<'_>,
) -> Vec<Value> {
    let Some((e, deleted)) = shown_entity(compiled, c) else {
        return Vec::new();
    };
    let n = &sub.notification;
    let join = n
        .join
        .as_deref()
        .filter(|j| *j != "@none" && c.after.is_some());
    let Some(kind) = join else {
        return entity_value(compiled, sub, c, e, &deleted, geo)
            .into_iter()
            .collect();
    };
    let spec = JoinSpec {
        level: n.join_level.unwrap_or(1) as usize,
        attrs: n.attributes.clone(),
        ..Default::default()
    };
    let root = Arc::new(e);
    let Ok(mut joined) = join_with(std::slice::from_ref(&root), &spec, lookup) else {
        return entity_value(compiled, sub, c, (*root).clone(), &deleted, geo)
            .into_iter()
            .collect();
    };
    let Some(tree) = joined.pop() else {
        return Vec::new();
    };
    let Some(mut v) = entity_value(compiled, sub, c, (*root).clone(), &deleted, geo) else {
        return Vec::new();
    };
    let linked = |j: &Joined| linked_value(compiled, sub, &j.entity, geo);
    if kind == "inline" {
        inline_links(compiled, sub, &tree, &mut v, geo);
        vec![v]
    } else {
        let mut out = vec![v];
        out.extend(
            Joined::flatten([&tree])
                .into_iter()
                .skip(1)
                .filter_map(linked),
        );
        out
    }
}

/// A linked Entity rendered like the notified ones, whole.
fn linked_value(compiled: &Compiled, sub: &Subscription, e: &Entity, geo: bool) -> Option<Value> {
    let opts = render_options(sub, None);
    let ctx = &compiled.render_ctx;
    Some(if geo {
        render_geojson_feature(e, ctx, &opts, LOCATION)
    } else {
        render_entity(e, ctx, &opts)
    })
}

/// Puts every linked Entity of `tree` inside the Relationship of `v` that targets it.
fn inline_links(compiled: &Compiled, sub: &Subscription, tree: &Joined, v: &mut Value, geo: bool) {
    let key_values = sub.notification.format.is_key_values();
    for link in &tree.links {
        let Some(mut target) = linked_value(compiled, sub, &link.target.entity, geo) else {
            continue;
        };
        inline_links(compiled, sub, &link.target, &mut target, geo);
        let members = if geo {
            v.get_mut("properties").and_then(Value::as_object_mut)
        } else {
            v.as_object_mut()
        };
        if let Some(member) =
            members.and_then(|m| m.get_mut(&compiled.render_ctx.compact_iri(&link.attr)))
        {
            attach_linked(member, &link.object, target, key_values);
        }
    }
}

fn render_options<'a>(sub: &'a Subscription, attrs: Option<&'a [String]>) -> RenderOptions<'a> {
    let n = &sub.notification;
    RenderOptions {
        format: match n.format {
            NotificationFormat::Normalized => Format::Normalized,
            NotificationFormat::Concise => Format::Concise,
            NotificationFormat::KeyValues | NotificationFormat::Simplified => Format::KeyValues,
        },
        sys_attrs: n.sys_attrs,
        lang: sub.lang.as_deref(),
        attrs,
    }
}

fn entity_value(
    compiled: &Compiled,
    sub: &Subscription,
    c: &EntityChange,
    mut e: Entity,
    deleted: &Deleted,
    geo: bool,
) -> Option<Value> {
    if let Some(keep) = &sub.dataset_id {
        let keep: Vec<Option<String>> = keep
            .iter()
            .map(|d| (d != "@none").then(|| d.clone()))
            .collect();
        for list in e.attrs.values_mut() {
            list.retain(|a| keep.contains(&a.dataset_id));
        }
        e.attrs.retain(|_, l| !l.is_empty());
    }
    let n = &sub.notification;
    let opts = render_options(sub, n.attributes.as_deref());
    let format = opts.format;
    let ctx = &compiled.render_ctx;
    let mut v = if geo {
        render_geojson_feature(&e, ctx, &opts, LOCATION)
    } else {
        render_entity(&e, ctx, &opts)
    };
    let target = if geo {
        v.get_mut("properties")
    } else {
        Some(&mut v)
    };
    let Some(Value::Object(obj)) = target else {
        return Some(v);
    };
    if c.after.is_none() {
        obj.insert("deletedAt".into(), Value::String(time::format(&c.at)));
    }
    if format != Format::KeyValues {
        for (name, dataset) in deleted {
            if n.sys_attrs {
                for inst in instances_mut(obj, &ctx.compact_iri(name)) {
                    if inst.get("datasetId").and_then(Value::as_str) == dataset.as_deref()
                        && value_is_null(inst)
                    {
                        inst.insert("deletedAt".into(), Value::String(time::format(&c.at)));
                    }
                }
            }
        }
        if n.show_changes {
            if let Some(before) = &c.before {
                for (name, old) in &before.attrs {
                    if !c.changed.contains(name) && c.after.is_some() {
                        continue;
                    }
                    let key = ctx.compact_iri(name);
                    for inst in instances_mut(obj, &key) {
                        let ds = inst
                            .get("datasetId")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        let Some(prev) = old.iter().find(|a| a.dataset_id == ds) else {
                            continue;
                        };
                        let rendered = render_instance(prev, ctx, &opts);
                        let member = prev.value.payload_member();
                        let prev_value = match &rendered {
                            Value::Object(o) => o.get(member).cloned(),
                            other => Some(other.clone()),
                        };
                        if let Some(pv) = prev_value {
                            inst.insert(previous_member(member), pv);
                        }
                    }
                }
            }
        }
    }
    for (text, kind) in [
        (&n.pick, ProjectionKind::Pick),
        (&n.omit, ProjectionKind::Omit),
    ] {
        if let Some(list) = text {
            let expand = |s: &str| compiled.ctx.expand_term(s);
            if let Ok(p) = parse_projection(&list.join(","), kind, &expand) {
                obj.retain(|k, _| p.keeps(k));
            }
        }
    }
    Some(v)
}

/// `previousValue`, `previousObject`, `previousLanguageMap`, ... (5.2.14 showChanges).
fn previous_member(payload: &str) -> String {
    let mut chars = payload.chars();
    match chars.next() {
        Some(first) => format!("previous{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => "previous".into(),
    }
}

fn value_is_null(inst: &Map<String, Value>) -> bool {
    [
        "value",
        "object",
        "json",
        "vocab",
        "valueList",
        "objectList",
    ]
    .iter()
    .any(|m| inst.get(*m).and_then(Value::as_str) == Some(NULL))
        || inst
            .get("languageMap")
            .and_then(|m| m.get("@none"))
            .and_then(Value::as_str)
            == Some(NULL)
}

/// The rendered instances of one attribute (an object, or an array of them).
fn instances_mut<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Vec<&'a mut Map<String, Value>> {
    match obj.get_mut(key) {
        Some(Value::Object(o)) => vec![o],
        Some(Value::Array(list)) => list.iter_mut().filter_map(Value::as_object_mut).collect(),
        _ => Vec::new(),
    }
}
