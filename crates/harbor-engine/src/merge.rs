//! How payload attributes combine with stored ones, one function per rule set: creation,
//! update attributes (5.6.2 with the partial update patch of 5.5.8), append (5.6.3), partial
//! attribute update (5.6.4) and merge (5.6.17 with the merge patch of 5.5.12). Each keeps the
//! `createdAt` of what was there.

use std::collections::BTreeMap;

use harbor_jsonld::expand::{is_null_literal, AttrFragment, AttrInput, AttrPut, EntityInput};
use harbor_model::{AttrValue, Attribute, Entity, NgsiError, NgsiResult, Timestamp};
use serde_json::Value;

use crate::entities::{NotUpdated, UpdateResult};

/// The name under which scope changes are reported in an UpdateResult.
const SCOPE: &str = "scope";

/// Builds a new entity from a creating payload.
pub fn new_entity(input: EntityInput, now: Timestamp) -> NgsiResult<Entity> {
    let id = input
        .id
        .ok_or_else(|| NgsiError::bad_request("the entity has no \"id\""))?;
    if input.types.is_empty() {
        return Err(NgsiError::bad_request("the entity has no \"type\""));
    }
    let mut attrs: BTreeMap<String, Vec<Attribute>> = BTreeMap::new();
    for (name, a) in input.attrs {
        let AttrInput::Put(p) = a else {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" is an NGSI-LD Null; a new entity cannot delete attributes"
            )));
        };
        let list = attrs.entry(name.clone()).or_default();
        if list.iter().any(|x| x.dataset_id == p.attr.dataset_id) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" is given twice with the same datasetId"
            )));
        }
        list.push(p.attr);
    }
    Ok(Entity {
        id,
        types: input.types,
        scopes: input.scopes.unwrap_or_default(),
        attrs,
        created_at: now,
        modified_at: now,
        expires_at: input.expires_at,
    })
}

/// Position of the instance with this datasetId.
pub fn find_instance(list: &[Attribute], dataset_id: Option<&str>) -> Option<usize> {
    list.iter()
        .position(|a| a.dataset_id.as_deref() == dataset_id)
}

/// Puts `new` in place of the instance with the same datasetId (keeping its `createdAt`), or
/// adds it. Returns whether an instance was replaced.
pub fn put_instance(list: &mut Vec<Attribute>, mut new: Attribute) -> bool {
    match find_instance(list, new.dataset_id.as_deref()) {
        Some(i) => {
            new.created_at = list[i].created_at;
            list[i] = new;
            true
        }
        None => {
            list.push(new);
            false
        }
    }
}

/// Removes one instance; drops the attribute once it has none. Returns whether it existed.
fn remove_instance(e: &mut Entity, name: &str, dataset_id: Option<&str>) -> bool {
    let Some(list) = e.attrs.get_mut(name) else {
        return false;
    };
    let Some(i) = find_instance(list, dataset_id) else {
        return false;
    };
    list.remove(i);
    if list.is_empty() {
        e.attrs.remove(name);
    }
    true
}

/// Adds types not yet present. Returns whether any was added.
pub fn add_types(e: &mut Entity, types: &[String]) -> bool {
    let before = e.types.len();
    for t in types {
        if !e.types.contains(t) {
            e.types.push(t.clone());
        }
    }
    e.types.len() != before
}

fn report(r: &mut UpdateResult, name: &str) {
    if !r.updated.iter().any(|n| n == name) {
        r.updated.push(name.to_string());
    }
}

fn not_updated(r: &mut UpdateResult, name: &str, reason: &str) {
    r.not_updated.push(NotUpdated {
        attribute: name.to_string(),
        reason: reason.to_string(),
    });
}

/// 5.6.2.4: existing instances are replaced, missing ones appended, NGSI-LD Nulls delete;
/// scope is replaced only when the entity has one.
pub fn update_into(e: &mut Entity, input: EntityInput) -> UpdateResult {
    let mut r = UpdateResult::default();
    add_types(e, &input.types);
    if let Some(scopes) = input.scopes {
        if e.scopes.is_empty() {
            not_updated(&mut r, SCOPE, "the entity has no scope to update");
        } else {
            e.scopes = scopes;
            report(&mut r, SCOPE);
        }
    }
    if input.expires_at.is_some() {
        e.expires_at = input.expires_at;
    }
    if input.clear_expiry {
        e.expires_at = None;
    }
    for (name, a) in input.attrs {
        match a {
            AttrInput::Put(p) => {
                put_instance(e.attrs.entry(name.clone()).or_default(), p.attr);
                report(&mut r, &name);
            }
            AttrInput::Delete { dataset_id } => {
                if remove_instance(e, &name, dataset_id.as_deref()) {
                    report(&mut r, &name);
                } else {
                    not_updated(
                        &mut r,
                        &name,
                        "there is no such attribute instance to delete",
                    );
                }
            }
        }
    }
    r
}

/// 5.6.3.4: instances are added, or replaced unless `no_overwrite`; scope is replaced, or
/// with `no_overwrite` extended by the new scopes.
pub fn append_into(e: &mut Entity, input: EntityInput, no_overwrite: bool) -> UpdateResult {
    let mut r = UpdateResult::default();
    add_types(e, &input.types);
    if let Some(scopes) = input.scopes {
        if no_overwrite {
            for s in scopes {
                if !e.scopes.contains(&s) {
                    e.scopes.push(s);
                }
            }
        } else {
            e.scopes = scopes;
        }
        report(&mut r, SCOPE);
    }
    if input.expires_at.is_some() {
        e.expires_at = input.expires_at;
    }
    if input.clear_expiry {
        e.expires_at = None;
    }
    for (name, a) in input.attrs {
        let AttrInput::Put(p) = a else { continue };
        let list = e.attrs.entry(name.clone()).or_default();
        if no_overwrite && find_instance(list, p.attr.dataset_id.as_deref()).is_some() {
            not_updated(
                &mut r,
                &name,
                "the attribute exists and noOverwrite was asked for",
            );
            continue;
        }
        put_instance(list, p.attr);
        report(&mut r, &name);
    }
    r
}

/// 5.6.17.4 / 5.5.12: attributes are merged into the stored ones, NGSI-LD Nulls delete.
pub fn merge_into(e: &mut Entity, input: EntityInput, now: Timestamp) {
    add_types(e, &input.types);
    if let Some(scopes) = input.scopes {
        e.scopes = scopes;
    }
    if input.expires_at.is_some() {
        e.expires_at = input.expires_at;
    }
    if input.clear_expiry {
        e.expires_at = None;
    }
    for (name, a) in input.attrs {
        match a {
            AttrInput::Delete { dataset_id } => {
                remove_instance(e, &name, dataset_id.as_deref());
            }
            AttrInput::Put(p) => {
                let list = e.attrs.entry(name).or_default();
                match find_instance(list, p.attr.dataset_id.as_deref()) {
                    Some(i) => list[i] = merge_instance(&list[i], p, now),
                    None => list.push(strip_nulls(p.attr)),
                }
            }
        }
    }
}

/// Merges a payload instance into a stored one: members present in the payload win, others
/// are kept; JSON object values merge as RFC 7396 patches; sub-attributes merge one level at a
/// time; a concise payload keeps the stored attribute's type.
pub fn merge_instance(old: &Attribute, patch: AttrPut, now: Timestamp) -> Attribute {
    let mut sub = old.sub.clone();
    for (name, p) in patch.attr.sub {
        let merged = match sub.get(&name) {
            Some(o) => merge_instance(
                o,
                AttrPut {
                    attr: p,
                    typed: true,
                    deleted_subs: Vec::new(),
                },
                now,
            ),
            None => p,
        };
        sub.insert(name, merged);
    }
    for name in &patch.deleted_subs {
        sub.remove(name);
    }
    let value = if patch.typed {
        patch.attr.value
    } else {
        keep_kind(&old.value, patch.attr.value)
    };
    Attribute {
        value: merge_value(&old.value, value),
        dataset_id: old.dataset_id.clone(),
        observed_at: patch.attr.observed_at.or(old.observed_at),
        unit_code: patch.attr.unit_code.or_else(|| old.unit_code.clone()),
        created_at: old.created_at,
        modified_at: now,
        expires_at: patch.attr.expires_at.or(old.expires_at),
        sub,
    }
}

/// A concise payload (type inferred as Property) given for a stored attribute of another kind
/// becomes that kind when its shape fits (5.6.17.4: the stored type is preserved).
fn keep_kind(old: &AttrValue, new: AttrValue) -> AttrValue {
    let AttrValue::Property(v) = new else {
        return new;
    };
    match old {
        AttrValue::Relationship { object_type, .. } if v.is_string() || v.is_array() => {
            AttrValue::Relationship {
                object: v,
                object_type: object_type.clone(),
            }
        }
        AttrValue::LanguageProperty(_) if v.is_object() => AttrValue::LanguageProperty(v),
        AttrValue::JsonProperty(_) if v.is_object() || v.is_array() => AttrValue::JsonProperty(v),
        AttrValue::ListProperty(_) if v.is_array() => AttrValue::ListProperty(v),
        _ => AttrValue::Property(v),
    }
}

/// RFC 7396 for Property and JsonProperty values that are objects on both sides; any other
/// value replaces the stored one, with NGSI-LD Nulls inside it dropped.
fn merge_value(old: &AttrValue, new: AttrValue) -> AttrValue {
    match (old, new) {
        (AttrValue::Property(o), AttrValue::Property(n)) if o.is_object() && n.is_object() => {
            AttrValue::Property(merge_patch(o, n))
        }
        (AttrValue::JsonProperty(o), AttrValue::JsonProperty(n))
            if o.is_object() && n.is_object() =>
        {
            AttrValue::JsonProperty(merge_patch(o, n))
        }
        (_, AttrValue::Property(n)) => AttrValue::Property(drop_nulls(n)),
        (_, other) => other,
    }
}

fn merge_patch(old: &Value, patch: Value) -> Value {
    match (old, patch) {
        (Value::Object(o), Value::Object(p)) => {
            let mut out = o.clone();
            for (k, v) in p {
                if v.is_null() || is_null_literal(&v) && !v.is_object() {
                    out.remove(&k);
                } else {
                    let merged = match out.get(&k) {
                        Some(existing) => merge_patch(existing, v),
                        None => drop_nulls(v),
                    };
                    out.insert(k, merged);
                }
            }
            Value::Object(out)
        }
        (_, p) => drop_nulls(p),
    }
}

/// Removes the keys a merge patch sets to NGSI-LD Null from a value that has nothing to merge
/// into.
fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(_, x)| {
                    !(x.is_null() || x.as_str() == Some(harbor_jsonld::expand::NGSI_LD_NULL))
                })
                .map(|(k, x)| (k, drop_nulls(x)))
                .collect(),
        ),
        other => other,
    }
}

fn strip_nulls(mut a: Attribute) -> Attribute {
    if let AttrValue::Property(v) = a.value {
        a.value = AttrValue::Property(drop_nulls(v));
    }
    a
}

/// 5.6.4.4 / 5.5.8: the members the fragment carries replace the stored ones; sub-attributes
/// are replaced or deleted one by one; the attribute's type cannot change.
pub fn apply_fragment(
    old: &Attribute,
    frag: AttrFragment,
    name: &str,
    now: Timestamp,
) -> NgsiResult<Attribute> {
    let old_kind = old.value.type_name();
    if let Some(kind) = frag.kind.as_deref() {
        let same = kind == old_kind
            || (kind == "Property" && old_kind == "GeoProperty" && frag.value.is_none());
        if !same {
            return Err(NgsiError::bad_request(format!(
                "attribute {name} is a {old_kind}; a partial update cannot make it a {kind}"
            )));
        }
    }
    let mut new = old.clone();
    if let Some(v) = frag.value {
        new.value = v;
    }
    if frag.observed_at.is_some() {
        new.observed_at = frag.observed_at;
    }
    if frag.unit_code.is_some() {
        new.unit_code = frag.unit_code;
    }
    if frag.expires_at.is_some() {
        new.expires_at = frag.expires_at;
    }
    for (k, v) in frag.sub {
        new.sub.insert(k, v);
    }
    for k in &frag.deleted_subs {
        new.sub.remove(k);
    }
    new.modified_at = now;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbor_model::time;
    use serde_json::json;

    fn put(value: AttrValue, typed: bool) -> AttrPut {
        AttrPut {
            attr: Attribute::new(value, time::now()),
            typed,
            deleted_subs: Vec::new(),
        }
    }

    #[test]
    fn merge_rules() {
        let now = time::now();
        let rel = AttrValue::Relationship {
            object: json!("urn:a:1"),
            object_type: None,
        };
        let address =
            AttrValue::Property(json!({"street": "Bayfront", "city": "SG", "geo": {"lat": 1}}));
        // stored, patch, typed, expected
        let cases = [
            (
                address.clone(),
                AttrValue::Property(json!({"city": "urn:ngsi-ld:null", "geo": {"lon": 2}})),
                true,
                AttrValue::Property(json!({"street": "Bayfront", "geo": {"lat": 1, "lon": 2}})),
            ),
            (
                address,
                AttrValue::Property(json!(5)),
                true,
                AttrValue::Property(json!(5)),
            ),
            (
                rel.clone(),
                AttrValue::Property(json!("urn:a:2")),
                false,
                AttrValue::Relationship {
                    object: json!("urn:a:2"),
                    object_type: None,
                },
            ),
            (
                rel,
                AttrValue::Property(json!("x")),
                true,
                AttrValue::Property(json!("x")),
            ),
        ];
        for (stored, patch, typed, want) in cases {
            let old = Attribute::new(stored.clone(), now);
            let merged = merge_instance(&old, put(patch.clone(), typed), now);
            assert_eq!(merged.value, want, "{stored:?} + {patch:?}");
        }
    }

    #[test]
    fn fragments_cannot_change_the_type() {
        let now = time::now();
        let old = Attribute::new(
            AttrValue::GeoProperty(json!({"type": "Point", "coordinates": [1, 2]})),
            now,
        );
        let frag = AttrFragment {
            kind: Some("Relationship".into()),
            ..Default::default()
        };
        assert!(apply_fragment(&old, frag, "location", now).is_err());
        let frag = AttrFragment {
            unit_code: Some("MTR".into()),
            ..Default::default()
        };
        let new = apply_fragment(&old, frag, "location", now).unwrap();
        assert_eq!(new.value, old.value);
        assert_eq!(new.unit_code.as_deref(), Some("MTR"));
    }
}
