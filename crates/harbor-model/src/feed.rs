//! The change feed and the notification outbox (the spine of the broker): every acknowledged
//! change of an entity becomes one [`EntityChange`], committed in the same transaction as the
//! change itself; the matcher turns changes into [`Delivery`] records in a durable outbox;
//! delivery workers settle them (delivered, retried later, or dead-lettered).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Entity, Tenant, Timestamp};

/// One committed change of one entity, numbered in commit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityChange {
    /// Position in the feed: strictly increasing in commit order, never reused.
    pub seq: u64,
    pub tenant: Tenant,
    pub id: String,
    /// When the change was committed.
    pub at: Timestamp,
    /// The entity after the change; `None` when it was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Arc<Entity>>,
    /// The entity before the change; `None` when it was created. For an update it carries
    /// only the attributes named in `changed` (with `id`, types and scopes whole), which is
    /// what triggers and `showChanges` need; for a deletion it is the whole entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Entity>,
    /// Expanded names of the attributes whose instances differ between before and after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// What happened to an entity or attribute, as `notificationTrigger` names it (5.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    EntityCreated,
    EntityUpdated,
    EntityDeleted,
    AttributeCreated,
    AttributeUpdated,
    AttributeDeleted,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EntityCreated => "entityCreated",
            Self::EntityUpdated => "entityUpdated",
            Self::EntityDeleted => "entityDeleted",
            Self::AttributeCreated => "attributeCreated",
            Self::AttributeUpdated => "attributeUpdated",
            Self::AttributeDeleted => "attributeDeleted",
        }
    }
}

impl EntityChange {
    /// The record of one change, the same for every store: `before` is the state the change
    /// replaced (`None` when it created the entity), `after` the new one (`None` when it
    /// deleted it). For an update, `before` keeps only the attributes that changed.
    pub fn derive(
        seq: u64,
        tenant: &Tenant,
        id: &str,
        at: Timestamp,
        before: Option<&Entity>,
        after: Option<Arc<Entity>>,
    ) -> EntityChange {
        let (before, changed) = match (before, after.as_deref()) {
            (None, Some(a)) => (None, a.attrs.keys().cloned().collect()),
            (Some(b), None) => (Some(b.clone()), Vec::new()),
            (Some(b), Some(a)) => {
                let changed: Vec<String> = b
                    .attrs
                    .keys()
                    .chain(a.attrs.keys().filter(|k| !b.attrs.contains_key(*k)))
                    .filter(|k| b.attrs.get(*k) != a.attrs.get(*k))
                    .cloned()
                    .collect();
                let partial = Entity {
                    id: b.id.clone(),
                    types: b.types.clone(),
                    scopes: b.scopes.clone(),
                    attrs: changed
                        .iter()
                        .filter_map(|k| b.attrs.get(k).map(|v| (k.clone(), v.clone())))
                        .collect(),
                    created_at: b.created_at,
                    modified_at: b.modified_at,
                    expires_at: b.expires_at,
                };
                (Some(partial), changed)
            }
            (None, None) => (None, Vec::new()),
        };
        EntityChange {
            seq,
            tenant: tenant.clone(),
            id: id.to_string(),
            at,
            after,
            before,
            changed,
        }
    }

    /// The record as JSON with `after` given already encoded (`after_json`, the entity's own
    /// JSON), so that a store writing both does not encode the entity twice. It reads back as
    /// the record itself.
    pub fn to_json_with_after(&self, after_json: Option<&[u8]>) -> serde_json::Result<Vec<u8>> {
        #[derive(Serialize)]
        struct Bare<'a> {
            seq: u64,
            tenant: &'a Tenant,
            id: &'a str,
            at: &'a Timestamp,
            #[serde(skip_serializing_if = "Option::is_none")]
            after: Option<&'a Entity>,
            #[serde(skip_serializing_if = "Option::is_none")]
            before: Option<&'a Entity>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            changed: &'a [String],
        }
        let bare = Bare {
            seq: self.seq,
            tenant: &self.tenant,
            id: &self.id,
            at: &self.at,
            after: if after_json.is_some() {
                None
            } else {
                self.after.as_deref()
            },
            before: self.before.as_ref(),
            changed: &self.changed,
        };
        let mut out = serde_json::to_vec(&bare)?;
        if let (Some(after), Some(b'}')) = (after_json, out.last()) {
            out.pop();
            out.extend_from_slice(b",\"after\":");
            out.extend_from_slice(after);
            out.push(b'}');
        }
        Ok(out)
    }

    /// Whether the entity exists neither before nor after (a no-op record).
    pub fn is_empty(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }

    /// The entity the change is about: the new state, or the last one when deleted.
    pub fn subject(&self) -> Option<&Entity> {
        self.after.as_deref().or(self.before.as_ref())
    }

    /// The attribute-level events of this change, per instance (`datasetId`): an instance
    /// added is `attributeCreated`, one removed `attributeDeleted`, one changed
    /// `attributeUpdated`. An attribute may give several.
    pub fn attribute_events(&self) -> Vec<(Trigger, &str)> {
        let mut out = Vec::new();
        for name in &self.changed {
            let was = self.before.as_ref().and_then(|b| b.attrs.get(name));
            let is = self.after.as_ref().and_then(|a| a.attrs.get(name));
            let mut push = |t: Trigger| {
                if !out.contains(&(t, name.as_str())) {
                    out.push((t, name.as_str()));
                }
            };
            match (was, is) {
                (None, Some(_)) => push(Trigger::AttributeCreated),
                (Some(_), None) => push(Trigger::AttributeDeleted),
                (Some(old), Some(new)) => {
                    for n in new {
                        match old.iter().find(|o| o.dataset_id == n.dataset_id) {
                            None => push(Trigger::AttributeCreated),
                            Some(o) if o != n => push(Trigger::AttributeUpdated),
                            Some(_) => {}
                        }
                    }
                    if old
                        .iter()
                        .any(|o| !new.iter().any(|n| n.dataset_id == o.dataset_id))
                    {
                        push(Trigger::AttributeDeleted);
                    }
                }
                (None, None) => {}
            }
        }
        out
    }

    /// The entity-level event of this change, if any.
    pub fn entity_event(&self) -> Option<Trigger> {
        match (&self.before, &self.after) {
            (None, Some(_)) => Some(Trigger::EntityCreated),
            (Some(_), None) => Some(Trigger::EntityDeleted),
            (Some(b), Some(a)) => {
                let moved = !self.changed.is_empty()
                    || b.types != a.types
                    || b.scopes != a.scopes
                    || b.expires_at != a.expires_at;
                moved.then_some(Trigger::EntityUpdated)
            }
            (None, None) => None,
        }
    }
}

/// One notification the broker owes: a subscription and the feed records it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Position in the outbox, strictly increasing.
    pub id: u64,
    pub tenant: Tenant,
    pub subscription: String,
    /// Feed records (`EntityChange::seq`) whose entities the notification carries.
    pub changes: Vec<u64>,
    pub created_at: Timestamp,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this instant (backoff after a failed attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Given up after the retry limit or a permanent failure; kept until replayed or dropped.
    #[serde(default)]
    pub dead: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{time, AttrValue, Attribute};

    fn entity(attrs: &[(&str, i64)]) -> Entity {
        let at = time::parse("2024-01-01T12:00:00Z").unwrap();
        Entity {
            id: "urn:ngsi-ld:OffStreetParking:1".into(),
            types: vec!["https://example.org/OffStreetParking".into()],
            scopes: vec![],
            attrs: attrs
                .iter()
                .map(|(n, v)| {
                    let a = Attribute::new(AttrValue::Property(json!(v)), at);
                    (n.to_string(), vec![a])
                })
                .collect(),
            created_at: at,
            modified_at: at,
            expires_at: None,
        }
    }

    fn derive(before: Option<&Entity>, after: Option<Entity>) -> EntityChange {
        let at = time::parse("2024-01-02T00:00:00Z").unwrap();
        let tenant = Tenant::default();
        EntityChange::derive(
            7,
            &tenant,
            "urn:ngsi-ld:OffStreetParking:1",
            at,
            before,
            after.map(Arc::new),
        )
    }

    #[test]
    fn a_creation_changes_every_attribute() {
        let c = derive(None, Some(entity(&[("a", 1), ("b", 2)])));
        assert_eq!(c.changed, ["a", "b"]);
        assert!(c.before.is_none());
    }

    #[test]
    fn an_update_keeps_before_only_what_changed() {
        let before = entity(&[("a", 1), ("b", 2), ("c", 3)]);
        let c = derive(Some(&before), Some(entity(&[("a", 1), ("b", 5), ("d", 4)])));
        assert_eq!(c.changed, ["b", "c", "d"]);
        let kept: Vec<&String> = c.before.as_ref().unwrap().attrs.keys().collect();
        assert_eq!(kept, ["b", "c"]);
    }

    #[test]
    fn a_deletion_keeps_the_whole_entity() {
        let before = entity(&[("a", 1)]);
        let c = derive(Some(&before), None);
        assert_eq!(c.before.as_ref(), Some(&before));
        assert!(c.changed.is_empty() && c.after.is_none());
    }

    /// The JSON written with the entity's own encoding for `after` reads back as the record,
    /// and so does the JSON written without it.
    #[test]
    fn json_with_the_encoded_after_reads_back_as_the_record() {
        let before = entity(&[("a", 1), ("b", 2)]);
        let after = entity(&[("a", 1), ("b", 3)]);
        let encoded = serde_json::to_vec(&after).unwrap();
        for c in [
            derive(Some(&before), Some(after.clone())),
            derive(None, Some(after.clone())),
            derive(Some(&before), None),
        ] {
            let given = c.after.is_some().then_some(encoded.as_slice());
            for bytes in [
                c.to_json_with_after(given).unwrap(),
                c.to_json_with_after(None).unwrap(),
            ] {
                let back: EntityChange = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(back, c);
            }
        }
    }
}
