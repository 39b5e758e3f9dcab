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
