//! The Temporal API (5.6.11 – 5.6.16 provision, 5.7.3 – 5.7.4 consumption) over the
//! `TemporalStore`. The temporal store is fed two ways: the historian records every change of
//! the current state from the change feed (ADR 0006), and these operations write temporal
//! instances directly, once the historian has caught up. They touch the current state only
//! when a temporal entity is created for an id the current state does not hold (the entity
//! then comes into being with its latest instances) and when such a temporal entity is
//! deleted (ADR 0007). History is kept when the current entity is deleted; only Delete
//! Temporal Entity (5.6.16) removes it, and with it the current entity if that came into
//! being with it.
//!
//! Entity selection for queries uses the same `EntityQuery` as Query Entities: `id`,
//! `idPattern` and `type` are evaluated on the temporal entity's header; `q` and `geoQ` on
//! its latest state, that is the newest instance of each attribute and datasetId that is not
//! a deletion; `attrs` keeps entities that have instances of one of the attributes. The
//! scope has a history of its own (4.5.6, recorded under `SCOPE_ATTR`): `scopeQ` matches
//! when a matching scope held within the time window, and then only the instances observed
//! while it held are returned; an entity without scope history is matched on its header.
//!
//! Access policies reach history through a [`HistoryView`] for reads and the request's write
//! rule ([`crate::access`]) for writes, both decided on the entity the history belongs to
//! (module `view`).

use std::collections::BTreeMap;
use std::sync::Arc;

use harbor_jsonld::expand::AttrFragment;
use harbor_jsonld::temporal::{is_deletion, TemporalInput};
use harbor_model::temporal::{instance_id, scopes_of, SCOPE_ATTR};
use harbor_model::{
    time, Entity, NgsiError, NgsiResult, TemporalHeader, TemporalInstance, Tenant, Timestamp,
};
use harbor_query::TemporalQuery;
use harbor_store::{Change, InstanceRange, TemporalChange, TemporalStore};

use crate::merge::apply_fragment;
use crate::{store_err, Engine};

mod aggregate;
mod query;
mod view;

pub use aggregate::AggregatedEntity;
pub use view::{HistoryView, Opened};

/// Which instances of a temporal entity to return.
#[derive(Debug, Clone, Default)]
pub struct InstanceSelection {
    pub query: TemporalQuery,
    /// Expanded attribute names; `None`: all.
    pub attrs: Option<Vec<String>>,
    /// `datasetId`s to keep; `None` in the list is the default instance.
    pub datasets: Option<Vec<Option<String>>>,
    /// Most instances returned per attribute (the newest when `lastN` is given).
    pub max_instances: usize,
}

/// The time range a response was cut to when an attribute had more instances than allowed
/// (6.3.10): instances are taken oldest first (newest first with `lastN`) up to the limit,
/// and every attribute is cut at the same instant, so the page covers one range of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalRange {
    /// Where the range starts in the order of pagination (the later end with `lastN`).
    pub start: Timestamp,
    /// Where the page stops.
    pub end: Timestamp,
    /// `lastN` when given.
    pub size: Option<usize>,
}

/// Which page of matching temporal entities a query returns, in the order of their ids.
#[derive(Debug, Clone, Copy)]
pub struct TemporalPage {
    pub offset: usize,
    pub limit: usize,
    pub descending: bool,
}

fn new_instance(attr: harbor_model::Attribute) -> TemporalInstance {
    let deleted_at = is_deletion(&attr).then(|| attr.observed_at.unwrap_or(attr.modified_at));
    TemporalInstance {
        instance_id: instance_id(&uuid::Uuid::new_v4().to_string()),
        attr,
        deleted_at,
    }
}

fn not_found(id: &str) -> NgsiError {
    NgsiError::not_found(format!("temporal entity {id} does not exist"))
}

/// Splits a temporal payload into the current state it describes and the rest of its
/// instances. The current state holds the newest instance (by `observedAt`) of each attribute
/// and datasetId unless that one records a deletion, and the scopes given, else those of the
/// scope's newest instance. `None` when the payload has no type to create an entity with.
fn split_latest(id: &str, input: TemporalInput, now: Timestamp) -> (Option<Entity>, TemporalInput) {
    if input.types.is_empty() {
        return (None, input);
    }
    // Position of the newest instance of each attribute and datasetId (the last one given
    // wins a tie).
    let mut newest: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
    for (k, (name, a)) in input.attrs.iter().enumerate() {
        let slot = newest
            .entry((name.as_str(), a.dataset_id.as_deref()))
            .or_insert(k);
        if input.attrs[*slot].1.observed_at <= a.observed_at {
            *slot = k;
        }
    }
    let mut scopes = input.scopes.clone();
    let mut attrs: BTreeMap<String, Vec<harbor_model::Attribute>> = BTreeMap::new();
    let mut older = Vec::new();
    for (k, (name, a)) in input.attrs.iter().enumerate() {
        if newest.get(&(name.as_str(), a.dataset_id.as_deref())) != Some(&k) {
            older.push((name.clone(), a.clone()));
            continue;
        }
        if name == SCOPE_ATTR {
            if scopes.is_none() && !is_deletion(a) {
                scopes = Some(scopes_of(a));
            }
            // The scope is recorded again, as set, by the commit of the current state.
            older.push((name.clone(), a.clone()));
            continue;
        }
        if is_deletion(a) {
            older.push((name.clone(), a.clone()));
            continue;
        }
        attrs.entry(name.clone()).or_default().push(a.clone());
    }
    let entity = Entity {
        id: id.to_string(),
        types: input.types.clone(),
        scopes: scopes.unwrap_or_default(),
        attrs,
        created_at: now,
        modified_at: now,
        expires_at: None,
    };
    let rest = TemporalInput {
        attrs: older,
        ..input
    };
    (Some(entity), rest)
}

impl Engine {
    fn temporal(&self) -> NgsiResult<&Arc<dyn TemporalStore>> {
        self.temporal
            .as_ref()
            .ok_or_else(|| NgsiError::internal("this broker keeps no temporal history"))
    }

    fn temporal_header(&self, tenant: &Tenant, id: &str) -> NgsiResult<TemporalHeader> {
        self.temporal()?
            .temporal_header(tenant, id)
            .map_err(store_err)?
            .ok_or_else(|| not_found(id))
    }

    async fn commit_temporal(
        &self,
        tenant: &Tenant,
        changes: Vec<TemporalChange>,
    ) -> NgsiResult<()> {
        self.temporal()?
            .commit_temporal(tenant, changes)
            .await
            .map_err(store_err)
    }

    /// The changes that add the payload's instances. An instance with the `observedAt` and
    /// `datasetId` of a stored one replaces it: sending the same observation again corrects
    /// it rather than recording it twice.
    fn put_instances(
        &self,
        tenant: &Tenant,
        id: &str,
        input: TemporalInput,
        changes: &mut Vec<TemporalChange>,
    ) -> NgsiResult<()> {
        let store = self.temporal()?;
        for (attr, a) in input.attrs {
            if let Some(at) = a.observed_at {
                let range = InstanceRange {
                    from: Some(at),
                    to: Some(at + chrono::Duration::microseconds(1)),
                    newest_first: false,
                };
                store
                    .visit_instances(tenant, id, &attr, range, &mut |old| {
                        if old.attr.observed_at == Some(at) && old.attr.dataset_id == a.dataset_id {
                            changes.push(TemporalChange::DeleteInstance {
                                entity: id.to_string(),
                                attr: attr.clone(),
                                instance_id: old.instance_id,
                            });
                        }
                        true
                    })
                    .map_err(store_err)?;
            }
            changes.push(TemporalChange::PutInstance {
                entity: id.to_string(),
                attr,
                instance: Box::new(new_instance(a)),
            });
        }
        Ok(())
    }

    /// 5.6.11 Create or Update Temporal Representation of an Entity: true when created.
    /// An update adds the instances, unions the types and replaces the scopes if given.
    pub async fn upsert_temporal_entity(
        &self,
        tenant: &Tenant,
        mut input: TemporalInput,
    ) -> NgsiResult<bool> {
        self.history_caught_up().await;
        let Some(id) = input.id.take() else {
            return Err(NgsiError::bad_request("the temporal entity has no \"id\""));
        };
        self.ensure_tenant(tenant).await?;
        let _g = self.locks.lock(tenant, &id).await;
        let now = time::now();
        let old = self
            .temporal()?
            .temporal_header(tenant, &id)
            .map_err(store_err)?;
        // A writer under a rule writes to the history of the entity as it is now (if any).
        let before = match (&old, crate::access::active()) {
            (_, false) => None,
            (Some(h), true) => Some(self.history_subject(tenant, h)?),
            (None, true) => self.current(tenant, &id)?,
        };
        let created = old.is_none();
        let mut header = match old {
            None => TemporalHeader {
                id: id.clone(),
                types: input.types.clone(),
                scopes: input.scopes.clone().unwrap_or_default(),
                created_at: now,
                modified_at: now,
                provided_current: false,
            },
            Some(mut h) => {
                for t in &input.types {
                    if !h.types.contains(t) {
                        h.types.push(t.clone());
                    }
                }
                if let Some(s) = &input.scopes {
                    h.scopes = s.clone();
                }
                h.modified_at = now;
                h
            }
        };
        if crate::access::active() {
            // What the write makes of the entity: the types and scopes it gives, or for a new
            // one the current state it brings into being.
            let after = match &before {
                Some(b) => {
                    let mut e = Entity::clone(b);
                    for t in &input.types {
                        if !e.types.contains(t) {
                            e.types.push(t.clone());
                        }
                    }
                    if let Some(s) = &input.scopes {
                        e.scopes = s.clone();
                    }
                    e
                }
                None => split_latest(&id, input.clone(), now)
                    .0
                    .unwrap_or_else(|| view::bare(&header)),
            };
            let (touched, scopes) = view::written(&input);
            view::check_write(&id, before.as_deref(), Some(&after), &touched, &scopes)?;
        }
        if created && self.current(tenant, &id)?.is_none() {
            // The entity comes into being with its temporal evolution: its current state is
            // the latest of the instances given. That commit records those latest instances
            // in the history, like any change of the current state; the rest go in below.
            let (current, older) = split_latest(&id, input.clone(), now);
            if let Some(entity) = current {
                let _place = self.reserve_entities(tenant, 1, false)?;
                self.store
                    .commit(tenant, vec![Change::Put(entity)])
                    .await
                    .map_err(store_err)?;
                input = older;
                header.provided_current = true;
                // The creation's own rows first, so that the header written below is the
                // last word on this temporal entity.
                self.history_caught_up().await;
            }
        }
        let mut changes = vec![TemporalChange::PutHeader(header)];
        self.put_instances(tenant, &id, input, &mut changes)?;
        self.commit_temporal(tenant, changes).await?;
        Ok(created)
    }

    /// 5.6.12 Add Attributes to Temporal Representation of an Entity.
    pub async fn add_temporal_attrs(
        &self,
        tenant: &Tenant,
        id: &str,
        input: TemporalInput,
    ) -> NgsiResult<()> {
        self.history_caught_up().await;
        if input.id.as_deref().is_some_and(|b| b != id) {
            return Err(NgsiError::bad_request(format!(
                "the payload's id differs from the temporal entity addressed, {id}"
            )));
        }
        let _g = self.locks.lock(tenant, id).await;
        let mut header = self.temporal_header(tenant, id)?;
        if crate::access::active() {
            let before = self.history_subject(tenant, &header)?;
            let (touched, scopes) = view::written(&input);
            view::check_write(id, Some(&before), Some(&before), &touched, &scopes)?;
        }
        header.modified_at = time::now();
        let mut changes = vec![TemporalChange::PutHeader(header)];
        self.put_instances(tenant, id, input, &mut changes)?;
        self.commit_temporal(tenant, changes).await
    }

    /// 5.6.16 Delete Temporal Representation of an Entity: the header, every instance and,
    /// when the current entity came into being with this temporal entity and still exists,
    /// the current entity too (ADR 0007). The current entity goes first: its deletion is
    /// recorded and then removed with the rest of the history. A current entity created
    /// through the core API stays: deleting history never deletes a live entity.
    pub async fn delete_temporal_entity(&self, tenant: &Tenant, id: &str) -> NgsiResult<()> {
        self.history_caught_up().await;
        let _g = self.locks.lock(tenant, id).await;
        let header = self.temporal_header(tenant, id)?;
        if crate::access::active() {
            // Every attribute of the history goes, and of the current entity if it goes too.
            let before = self.history_subject(tenant, &header)?;
            let mut names = self
                .temporal()?
                .temporal_attrs(tenant, id)
                .map_err(store_err)?;
            names.retain(|n| n != SCOPE_ATTR);
            names.extend(before.attrs.keys().cloned());
            names.sort();
            names.dedup();
            let touched: Vec<&str> = names.iter().map(String::as_str).collect();
            view::check_write(id, Some(&before), None, &touched, &[])?;
        }
        if header.provided_current && self.current(tenant, id)?.is_some() {
            self.store
                .commit(tenant, vec![Change::Delete(id.to_string())])
                .await
                .map_err(store_err)?;
            // The deletion's rows are recorded before the history goes, never after it.
            self.history_caught_up().await;
        }
        self.commit_temporal(tenant, vec![TemporalChange::DeleteEntity(id.to_string())])
            .await
    }

    /// Every instance of one attribute, oldest first.
    fn all_instances(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
    ) -> NgsiResult<Vec<TemporalInstance>> {
        let mut out = Vec::new();
        self.temporal()?
            .visit_instances(tenant, id, attr, InstanceRange::default(), &mut |i| {
                out.push(i);
                true
            })
            .map_err(store_err)?;
        Ok(out)
    }

    /// The scope's history of a temporal entity, oldest first.
    fn scope_history(&self, tenant: &Tenant, id: &str) -> NgsiResult<Vec<TemporalInstance>> {
        self.all_instances(tenant, id, SCOPE_ATTR)
    }

    /// 5.6.13 Delete Attribute from Temporal Representation of an Entity: the instances of
    /// the default dataset, of one `datasetId`, or all of them (`deleteAll`).
    pub async fn delete_temporal_attr(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        dataset: Option<&str>,
        delete_all: bool,
    ) -> NgsiResult<()> {
        self.history_caught_up().await;
        let _g = self.locks.lock(tenant, id).await;
        let header = self.temporal_header(tenant, id)?;
        self.check_attrs_write(tenant, &header, &[attr])?;
        let all = self.all_instances(tenant, id, attr)?;
        if all.is_empty() {
            return Err(NgsiError::not_found(format!(
                "temporal entity {id} has no attribute {attr}"
            )));
        }
        let changes: Vec<TemporalChange> = if delete_all {
            vec![TemporalChange::DeleteAttr {
                entity: id.to_string(),
                attr: attr.to_string(),
            }]
        } else {
            all.iter()
                .filter(|i| i.attr.dataset_id.as_deref() == dataset)
                .map(|i| TemporalChange::DeleteInstance {
                    entity: id.to_string(),
                    attr: attr.to_string(),
                    instance_id: i.instance_id.clone(),
                })
                .collect()
        };
        if changes.is_empty() {
            return Err(NgsiError::not_found(format!(
                "attribute {attr} of temporal entity {id} has no instance with datasetId {}",
                dataset.unwrap_or("(default)")
            )));
        }
        self.commit_temporal(tenant, changes).await
    }

    /// The instance a write addresses, once the request's write rule allows writing `attr`.
    fn find_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: &str,
    ) -> NgsiResult<TemporalInstance> {
        let header = self.temporal_header(tenant, id)?;
        self.check_attrs_write(tenant, &header, &[attr])?;
        let all = self.all_instances(tenant, id, attr)?;
        if all.is_empty() {
            return Err(NgsiError::not_found(format!(
                "temporal entity {id} has no attribute {attr}"
            )));
        }
        all.into_iter()
            .find(|i| i.instance_id == instance)
            .ok_or_else(|| {
                NgsiError::not_found(format!(
                    "attribute {attr} of temporal entity {id} has no instance {instance}"
                ))
            })
    }

    /// 5.6.14 Modify Attribute Instance in Temporal Representation of an Entity: the members
    /// given replace the stored ones; the instance keeps its id.
    pub async fn modify_temporal_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: &str,
        frag: AttrFragment,
    ) -> NgsiResult<()> {
        self.history_caught_up().await;
        if frag.delete {
            return Err(NgsiError::bad_request(
                "an attribute instance cannot be set to NGSI-LD Null; delete it instead",
            ));
        }
        let _g = self.locks.lock(tenant, id).await;
        let old = self.find_instance(tenant, id, attr, instance)?;
        let now = time::now();
        let mut new = old.clone();
        new.attr = apply_fragment(&old.attr, frag, attr, now)?;
        new.attr.modified_at = now;
        let changes = vec![
            TemporalChange::DeleteInstance {
                entity: id.to_string(),
                attr: attr.to_string(),
                instance_id: old.instance_id,
            },
            TemporalChange::PutInstance {
                entity: id.to_string(),
                attr: attr.to_string(),
                instance: Box::new(new),
            },
        ];
        self.commit_temporal(tenant, changes).await
    }

    /// 5.6.15 Delete Attribute Instance from Temporal Representation of an Entity.
    pub async fn delete_temporal_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: &str,
    ) -> NgsiResult<()> {
        self.history_caught_up().await;
        let _g = self.locks.lock(tenant, id).await;
        let old = self.find_instance(tenant, id, attr, instance)?;
        let change = TemporalChange::DeleteInstance {
            entity: id.to_string(),
            attr: attr.to_string(),
            instance_id: old.instance_id,
        };
        self.commit_temporal(tenant, vec![change]).await
    }
}

impl Engine {
    /// Retention: drops every recorded instance whose time (`observedAt`, else `modifiedAt`)
    /// is before `before`, in every tenant; the temporal entities themselves stay. Returns
    /// how many temporal entities were trimmed.
    pub async fn trim_history(&self, before: harbor_model::Timestamp) -> NgsiResult<usize> {
        self.history_caught_up().await;
        let store = self.temporal()?;
        let mut n = 0;
        for tenant in self.store().tenants() {
            let ids: Vec<String> = store
                .temporal_headers(&tenant)
                .map_err(crate::store_err)?
                .into_iter()
                .map(|h| h.id)
                .collect();
            for chunk in ids.chunks(256) {
                let changes = chunk
                    .iter()
                    .map(|id| harbor_store::TemporalChange::TrimBefore {
                        entity: id.clone(),
                        before,
                    })
                    .collect();
                store
                    .commit_temporal(&tenant, changes)
                    .await
                    .map_err(crate::store_err)?;
                n += chunk.len();
            }
        }
        Ok(n)
    }
}
