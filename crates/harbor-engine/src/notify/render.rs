//! The body of a notification (5.3.1): `Notification` with the entities of the changes it
//! reports, rendered through `harbor-jsonld` like a response, in the subscription's format,
//! with deleted attributes shown as `urn:ngsi-ld:null` (5.8.6), the previous values when
//! `showChanges` is set (5.2.14), and `pick` / `omit` (4.21).

use std::sync::Arc;

use harbor_jsonld::render::{render_entity, render_geojson_feature, render_instance};
use harbor_jsonld::render::{Format, RenderOptions};
use harbor_jsonld::CORE_CONTEXT_URL;
use harbor_model::subscription::NotificationFormat;
use harbor_model::{time, AttrValue, Attribute, Entity, EntityChange, Subscription, Timestamp};
use harbor_query::{parse_projection, ProjectionKind};
use serde_json::{Map, Value};

use super::compile::Compiled;

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
) -> Rendered {
    let accept = sub.notification.endpoint.accept.as_str();
    let geo = accept == "application/geo+json";
    let data: Vec<Value> = changes
        .iter()
        .filter_map(|c| entity_value(compiled, sub, c, geo))
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
/// watched attributes as NGSI-LD Null; for a deleted entity, only those.
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
        before.attrs.keys().collect()
    } else {
        c.changed.iter().collect()
    };
    for name in names {
        if !compiled.watches(name) {
            continue;
        }
        let Some(old) = before.attrs.get(name) else {
            continue;
        };
        for inst in old {
            let still = e
                .attrs
                .get(name)
                .is_some_and(|l| l.iter().any(|a| a.dataset_id == inst.dataset_id));
            if !still {
                e.attrs
                    .entry(name.clone())
                    .or_default()
                    .push(null_instance(inst));
                deleted.push((name.clone(), inst.dataset_id.clone()));
            }
        }
    }
    Some((e, deleted))
}

fn entity_value(
    compiled: &Compiled,
    sub: &Subscription,
    c: &EntityChange,
    geo: bool,
) -> Option<Value> {
    let (mut e, deleted) = shown_entity(compiled, c)?;
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
    let format = match n.format {
        NotificationFormat::Normalized => Format::Normalized,
        NotificationFormat::Concise => Format::Concise,
        NotificationFormat::KeyValues | NotificationFormat::Simplified => Format::KeyValues,
    };
    let opts = RenderOptions {
        format,
        sys_attrs: n.sys_attrs,
        lang: sub.lang.as_deref(),
        attrs: n.attributes.as_deref(),
    };
    let ctx = &compiled.render_ctx;
    let mut v = if geo {
        render_geojson_feature(&e, ctx, &opts, "https://uri.etsi.org/ngsi-ld/location")
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
        for (name, dataset) in &deleted {
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
