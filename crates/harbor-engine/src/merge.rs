//! How payload attributes combine with stored ones: creation, replacement of an instance,
//! and merging (5.6.4 partial update, 5.6.17 merge), keeping `createdAt` of what was there.

use std::collections::BTreeMap;

use harbor_jsonld::expand::EntityInput;
use harbor_model::{Attribute, Entity, NgsiError, NgsiResult, Timestamp};

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
        let Some(a) = a else { continue };
        let list = attrs.entry(name.clone()).or_default();
        if list.iter().any(|x| x.dataset_id == a.dataset_id) {
            return Err(NgsiError::bad_request(format!(
                "attribute \"{name}\" is given twice with the same datasetId"
            )));
        }
        list.push(a);
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

/// Merges a fragment into a stored instance: members present in the fragment win, others are
/// kept; sub-attributes merge one level at a time.
pub fn merge_instance(old: &Attribute, patch: Attribute, now: Timestamp) -> Attribute {
    let mut sub = old.sub.clone();
    for (name, p) in patch.sub {
        let merged = match sub.get(&name) {
            Some(o) => merge_instance(o, p, now),
            None => p,
        };
        sub.insert(name, merged);
    }
    Attribute {
        value: patch.value,
        dataset_id: old.dataset_id.clone(),
        observed_at: patch.observed_at.or(old.observed_at),
        unit_code: patch.unit_code.or_else(|| old.unit_code.clone()),
        created_at: old.created_at,
        modified_at: now,
        expires_at: patch.expires_at.or(old.expires_at),
        sub,
    }
}

/// Adds types not yet present.
pub fn add_types(e: &mut Entity, types: &[String]) {
    for t in types {
        if !e.types.contains(t) {
            e.types.push(t.clone());
        }
    }
}
