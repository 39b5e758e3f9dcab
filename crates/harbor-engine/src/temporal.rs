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

use std::collections::BTreeMap;
use std::sync::Arc;

use harbor_jsonld::expand::AttrFragment;
use harbor_jsonld::temporal::{is_deletion, TemporalInput};
use harbor_model::temporal::{instance_id, scope_spans, scopes_of, ScopeSpan, SCOPE_ATTR};
use harbor_model::{
    time, Entity, NgsiError, NgsiResult, TemporalEntity, TemporalHeader, TemporalInstance, Tenant,
    TimeProperty, Timestamp,
};
use harbor_query::TemporalQuery;
use harbor_store::{Change, EntityQuery, InstanceRange, TemporalChange, TemporalStore};

use crate::merge::apply_fragment;
use crate::{store_err, Engine};

mod aggregate;

pub use aggregate::AggregatedEntity;

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

/// How a temporal query makes each entity it selects and cuts its page (6.3.10): `load` makes
/// one (its instances, or their aggregation) with where it had to be cut, if it was;
/// `combine` keeps the cut reached first; `finish` cuts the page at it and says what range
/// the page covers.
#[allow(clippy::type_complexity)]
pub(crate) struct Paging<'a, A, C> {
    pub load: &'a dyn Fn(
        TemporalHeader,
        Option<&[ScopeSpan]>,
    ) -> NgsiResult<(TemporalEntity<A>, Option<C>)>,
    pub combine: &'a dyn Fn(Option<C>, C) -> C,
    pub finish: &'a dyn Fn(&mut [TemporalEntity<A>], Option<C>) -> Option<TemporalRange>,
}

/// The time an instance is paged by: its `timeproperty`, else its index time.
fn page_time(i: &TemporalInstance, q: &TemporalQuery) -> Timestamp {
    i.time(q.time_property).unwrap_or(i.index_time())
}

/// Of a cut so far and a new one, the one reached first in the order of pagination: the
/// earlier going forwards, the later going backwards (`lastN`).
fn earlier_in_paging(cut: Option<Timestamp>, new: Timestamp, backwards: bool) -> Timestamp {
    match (cut, backwards) {
        (None, _) => new,
        (Some(c), false) => c.min(new),
        (Some(c), true) => c.max(new),
    }
}

/// Cuts every entity of one response at the same instant, so that the page covers one range
/// of time for all of them (6.3.10), and returns that range; `None` when nothing was cut. An
/// attribute emptied by the cut stays as an empty list: it has instances later on.
fn cut_page(
    entities: &mut [TemporalEntity],
    cut: Option<Timestamp>,
    q: &TemporalQuery,
) -> Option<TemporalRange> {
    let cut = cut?;
    let backwards = q.last_n.is_some();
    // The scope's history is the setting of the page, not paged data (4.5.6).
    let paged = |name: &String| name != SCOPE_ATTR;
    for e in entities.iter_mut() {
        for (_, list) in e.attrs.iter_mut().filter(|(n, _)| paged(n)) {
            list.retain(|i| {
                let t = page_time(i, q);
                if backwards {
                    t >= cut
                } else {
                    t <= cut
                }
            });
        }
    }
    let times = entities
        .iter()
        .flat_map(|e| e.attrs.iter().filter(|(n, _)| paged(n)))
        .flat_map(|(_, list)| list)
        .map(|i| page_time(i, q));
    let (lower, upper) = q.bounds();
    let start = if backwards {
        upper.or_else(|| times.max())
    } else {
        lower.or_else(|| times.min())
    };
    Some(TemporalRange {
        start: start.unwrap_or(cut),
        end: cut,
        size: q.last_n,
    })
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
        self.store.ensure_tenant(tenant).await.map_err(store_err)?;
        let _g = self.locks.lock(tenant, &id).await;
        let now = time::now();
        let old = self
            .temporal()?
            .temporal_header(tenant, &id)
            .map_err(store_err)?;
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
        if created && self.current(tenant, &id)?.is_none() {
            // The entity comes into being with its temporal evolution: its current state is
            // the latest of the instances given. That commit records those latest instances
            // in the history, like any change of the current state; the rest go in below.
            let (current, older) = split_latest(&id, input.clone(), now);
            if let Some(entity) = current {
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
        self.temporal_header(tenant, id)?;
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

    fn find_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: &str,
    ) -> NgsiResult<TemporalInstance> {
        self.temporal_header(tenant, id)?;
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

    /// The selected instances of one temporal entity, and the instant its instances were cut
    /// at when an attribute had more than `max_instances` (6.3.10): the time of the last
    /// instance kept of the attribute cut first (going backwards with `lastN`).
    ///
    /// `within`: only instances observed while one of these scope spans held (a `scopeQ`
    /// over the scope's history). The scope's own instances are selected by the span they
    /// held for: the one that held when a window opened is part of the window.
    fn select_instances(
        &self,
        tenant: &Tenant,
        mut header: TemporalHeader,
        sel: &InstanceSelection,
        within: Option<&[ScopeSpan]>,
    ) -> NgsiResult<(TemporalEntity, Option<Timestamp>)> {
        let store = self.temporal()?;
        let q = &sel.query;
        let names = store
            .temporal_attrs(tenant, &header.id)
            .map_err(store_err)?;
        if names.iter().any(|n| n == SCOPE_ATTR) {
            // The scope is represented by its history, not by the header's latest value.
            header.scopes.clear();
        }
        let (from, to) = match q.time_property {
            // The store orders by observedAt (else modifiedAt): it can seek to the bounds.
            TimeProperty::ObservedAt => q.bounds(),
            _ => (None, None),
        };
        let max = sel.max_instances.max(1);
        let cap = q.last_n.map_or(max, |n| n.min(max));
        let backwards = q.last_n.is_some();
        let mut cut: Option<Timestamp> = None;
        let now = time::now();
        let range = InstanceRange {
            from,
            to,
            newest_first: backwards,
        };
        let mut attrs = BTreeMap::new();
        for name in names {
            if sel.attrs.as_ref().is_some_and(|a| !a.contains(&name)) {
                continue;
            }
            if name == SCOPE_ATTR && q.time_property == TimeProperty::ObservedAt {
                let history = self.scope_history(tenant, &header.id)?;
                let spans = scope_spans(&history);
                let (from, to) = q.bounds();
                let list: Vec<TemporalInstance> = history
                    .into_iter()
                    .zip(&spans)
                    .filter(|(_, span)| span.overlaps(from, to))
                    .map(|(i, _)| i)
                    .collect();
                if !list.is_empty() {
                    attrs.insert(name, list);
                }
                continue;
            }
            let observed_within = |i: &TemporalInstance| {
                let t = i.attr.observed_at.unwrap_or(i.index_time());
                within.is_none_or(|spans| spans.iter().any(|s| s.holds_at(t)))
            };
            let mut list = Vec::new();
            store
                .visit_instances(tenant, &header.id, &name, range, &mut |i| {
                    let t = i.time(q.time_property);
                    let deleted_only = q.time_property == TimeProperty::DeletedAt;
                    // A transient instance's history evaporates with it (4.22).
                    let expired = i.attr.expires_at.is_some_and(|t| t <= now);
                    let in_dataset = !expired
                        && sel
                            .datasets
                            .as_ref()
                            .is_none_or(|d| d.contains(&i.attr.dataset_id));
                    if q.selects(t)
                        && in_dataset
                        && (!deleted_only || t.is_some())
                        && observed_within(&i)
                    {
                        list.push(i);
                    }
                    // One more than allowed tells whether the attribute was cut short.
                    list.len() <= cap
                })
                .map_err(store_err)?;
            // Only a cut below the request's own lastN is a partial answer.
            let max_cut = list.len() > max && list.len() > cap;
            list.truncate(cap);
            if max_cut {
                if let Some(last) = list.last().map(|i| page_time(i, q)) {
                    cut = Some(earlier_in_paging(cut, last, backwards));
                }
            }
            if backwards {
                list.reverse();
            }
            if !list.is_empty() {
                attrs.insert(name, list);
            }
        }
        Ok((TemporalEntity { header, attrs }, cut))
    }

    /// The selected instances of one temporal entity, cut to one page (6.3.10).
    fn load_temporal(
        &self,
        tenant: &Tenant,
        header: TemporalHeader,
        sel: &InstanceSelection,
    ) -> NgsiResult<(TemporalEntity, Option<TemporalRange>)> {
        let (e, cut) = self.select_instances(tenant, header, sel, None)?;
        let mut page = [e];
        let range = cut_page(&mut page, cut, &sel.query);
        let [e] = page;
        Ok((e, range))
    }

    /// 5.7.3 Retrieve Temporal Evolution of an Entity.
    pub fn retrieve_temporal_entity(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: &InstanceSelection,
    ) -> NgsiResult<(TemporalEntity, Option<TemporalRange>)> {
        self.check_tenant(tenant)?;
        let header = self.temporal_header(tenant, id)?;
        self.load_temporal(tenant, header, sel)
    }

    /// The latest state of a temporal entity: the newest instance of each attribute and
    /// datasetId that is not a deletion; the scopes of the scope's latest instance.
    fn latest_state(&self, tenant: &Tenant, h: &TemporalHeader) -> NgsiResult<Entity> {
        let store = self.temporal()?;
        let mut attrs = BTreeMap::new();
        let mut scopes = h.scopes.clone();
        for name in store.temporal_attrs(tenant, &h.id).map_err(store_err)? {
            if name == SCOPE_ATTR {
                let history = self.scope_history(tenant, &h.id)?;
                scopes = scope_spans(&history)
                    .pop()
                    .map_or(scopes, |latest| latest.scopes);
                continue;
            }
            // The newest instance of each datasetId: an attribute may hold several at once.
            let mut newest: Vec<TemporalInstance> = Vec::new();
            let range = InstanceRange {
                newest_first: true,
                ..Default::default()
            };
            store
                .visit_instances(tenant, &h.id, &name, range, &mut |i| {
                    if !newest
                        .iter()
                        .any(|n| n.attr.dataset_id == i.attr.dataset_id)
                    {
                        newest.push(i);
                    }
                    true
                })
                .map_err(store_err)?;
            let live: Vec<_> = newest
                .into_iter()
                .filter(|i| i.deleted_at.is_none())
                .map(|i| i.attr)
                .collect();
            if !live.is_empty() {
                attrs.insert(name, live);
            }
        }
        Ok(Entity {
            id: h.id.clone(),
            types: h.types.clone(),
            scopes,
            attrs,
            created_at: h.created_at,
            modified_at: h.modified_at,
            expires_at: None,
        })
    }

    /// 5.7.4 Query Temporal Evolution of Entities: one page of the matching temporal
    /// entities (by id, descending when asked), how many match in all, and the time range
    /// the page was cut to: one cut for every entity of the page (6.3.10). With a `timerel`,
    /// `attrs` or `datasetId`, an entity with no instance selected does not match.
    pub fn query_temporal_entities(
        &self,
        tenant: &Tenant,
        q: &EntityQuery,
        sel: &InstanceSelection,
        page: TemporalPage,
    ) -> NgsiResult<(Vec<TemporalEntity>, usize, Option<TemporalRange>)> {
        let backwards = sel.query.last_n.is_some();
        let paging = Paging {
            load: &|h, within| self.select_instances(tenant, h, sel, within),
            combine: &|cut, c| earlier_in_paging(cut, c, backwards),
            finish: &|loaded, cut| cut_page(loaded, cut, &sel.query),
        };
        self.select_temporal(tenant, q, sel, page, paging)
    }

    /// The matching temporal entities as `query_temporal_entities` selects them, each made
    /// and the page cut as `paging` says.
    pub(crate) fn select_temporal<A, C>(
        &self,
        tenant: &Tenant,
        q: &EntityQuery,
        sel: &InstanceSelection,
        page: TemporalPage,
        paging: Paging<'_, A, C>,
    ) -> NgsiResult<(Vec<TemporalEntity<A>>, usize, Option<TemporalRange>)> {
        let Paging {
            load,
            combine,
            finish,
        } = paging;
        self.check_tenant(tenant)?;
        let store = self.temporal()?;
        let needs_state = q.q.is_some() || q.geo.is_some();
        let mut matching = Vec::new();
        for h in store.temporal_headers(tenant).map_err(store_err)? {
            let mut e = if needs_state {
                self.latest_state(tenant, &h)?
            } else {
                Entity {
                    id: h.id.clone(),
                    types: h.types.clone(),
                    scopes: h.scopes.clone(),
                    attrs: BTreeMap::new(),
                    created_at: h.created_at,
                    modified_at: h.modified_at,
                    expires_at: None,
                }
            };
            if let Some(wanted) = &q.attrs {
                let names = store.temporal_attrs(tenant, &h.id).map_err(store_err)?;
                if !wanted.iter().any(|a| names.contains(a)) {
                    continue;
                }
                for n in names.into_iter().filter(|n| n != SCOPE_ATTR) {
                    e.attrs.entry(n).or_default();
                }
            }
            // scopeQ over the scope's history (4.18, 5.7.4): the entity matches when a scope
            // that matches held within the window, and only for as long as it held.
            let mut within = None;
            if let Some(scope_q) = &q.scope {
                let spans = scope_spans(&self.scope_history(tenant, &h.id)?);
                if !spans.is_empty() {
                    let (from, to) = sel.query.bounds();
                    let held: Vec<ScopeSpan> = spans
                        .into_iter()
                        .filter(|s| s.overlaps(from, to) && scope_q.matches(&s.scopes))
                        .collect();
                    let Some(first) = held.first() else {
                        continue;
                    };
                    e.scopes = first.scopes.clone();
                    within = Some(held);
                }
            }
            if q.matches(&e) {
                matching.push((h, within));
            }
        }
        if page.descending {
            matching.reverse();
        }
        let narrowed = sel.query.timerel.is_some() || sel.datasets.is_some() || sel.attrs.is_some();
        let mut loaded = Vec::new();
        let mut total = 0;
        let mut cut = None;
        for (h, within) in matching {
            let within = within.as_deref();
            let in_page = |total: usize, n: usize| total > page.offset && n < page.limit;
            if !narrowed {
                total += 1;
                if in_page(total, loaded.len()) {
                    let (e, c) = load(h, within)?;
                    if let Some(c) = c {
                        cut = Some(combine(cut, c));
                    }
                    loaded.push(e);
                }
                continue;
            }
            // Whether the entity has instances in the interval needs them read.
            let (e, c) = load(h, within)?;
            if e.attrs.is_empty() {
                continue;
            }
            total += 1;
            if in_page(total, loaded.len()) {
                if let Some(c) = c {
                    cut = Some(combine(cut, c));
                }
                loaded.push(e);
            }
        }
        let range = finish(&mut loaded, cut);
        Ok((loaded, total, range))
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
