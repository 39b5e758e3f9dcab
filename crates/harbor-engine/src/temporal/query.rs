//! Consumption of the Temporal API (5.7.3 Retrieve, 5.7.4 Query): which instances of a
//! temporal entity a request selects, which temporal entities a query selects, and how a page
//! is cut (6.3.10).

use std::collections::BTreeMap;

use harbor_model::temporal::{scope_spans, ScopeSpan, SCOPE_ATTR};
use harbor_model::{
    time, Entity, NgsiResult, TemporalEntity, TemporalHeader, TemporalInstance, Tenant,
    TimeProperty, Timestamp,
};
use harbor_query::TemporalQuery;
use harbor_store::{EntityQuery, InstanceRange};

use super::view::{HistoryView, Opened};
use super::{not_found, InstanceSelection, TemporalPage, TemporalRange};
use crate::{store_err, Engine};

/// How a temporal query makes each entity it selects and cuts its page (6.3.10): `load` makes
/// one (its instances, or their aggregation, as the entity's own selection says: the
/// request's, kept to what the reader may see) with where it had to be cut, if it was;
/// `combine` keeps the cut reached first; `finish` cuts the page at it and says what range
/// the page covers.
#[allow(clippy::type_complexity)]
pub(crate) struct Paging<'a, A, C> {
    pub load: &'a dyn Fn(
        TemporalHeader,
        Option<&[ScopeSpan]>,
        &InstanceSelection,
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
    pub(super) fn load_temporal(
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

    /// 5.7.3 Retrieve Temporal Evolution of an Entity; with a `view`, what it opens (a history
    /// it does not open answers as a missing one).
    pub fn retrieve_temporal_entity(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: &InstanceSelection,
        view: Option<HistoryView<'_>>,
    ) -> NgsiResult<(TemporalEntity, Option<TemporalRange>)> {
        self.check_tenant(tenant)?;
        let header = self.temporal_header(tenant, id)?;
        let opened = self
            .opened(tenant, &header, view)?
            .ok_or_else(|| not_found(id))?;
        self.load_temporal(tenant, header, &sel.within(&opened))
    }

    /// The latest state of a temporal entity: the newest instance of each opened attribute
    /// and datasetId that is not a deletion; the scopes of the scope's latest instance.
    fn latest_state(
        &self,
        tenant: &Tenant,
        h: &TemporalHeader,
        opened: &Opened,
    ) -> NgsiResult<Entity> {
        let store = self.temporal()?;
        let mut attrs = BTreeMap::new();
        let mut scopes = h.scopes.clone();
        for name in store.temporal_attrs(tenant, &h.id).map_err(store_err)? {
            if !opened.opens(&name) {
                continue;
            }
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
    /// `attrs` or `datasetId`, an entity with no instance selected does not match. With a
    /// `view`, only what it opens: the filters, the count and the cut are those of what the
    /// reader may see (module `view`).
    pub fn query_temporal_entities(
        &self,
        tenant: &Tenant,
        q: &EntityQuery,
        sel: &InstanceSelection,
        page: TemporalPage,
        view: Option<HistoryView<'_>>,
    ) -> NgsiResult<(Vec<TemporalEntity>, usize, Option<TemporalRange>)> {
        let backwards = sel.query.last_n.is_some();
        let paging = Paging {
            load: &|h, within, sel| self.select_instances(tenant, h, sel, within),
            combine: &|cut, c| earlier_in_paging(cut, c, backwards),
            finish: &|loaded, cut| cut_page(loaded, cut, &sel.query),
        };
        self.select_temporal(tenant, q, sel, page, paging, view)
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
        view: Option<HistoryView<'_>>,
    ) -> NgsiResult<(Vec<TemporalEntity<A>>, usize, Option<TemporalRange>)> {
        let Paging {
            load,
            combine,
            finish,
        } = paging;
        self.check_tenant(tenant)?;
        let store = self.temporal()?;
        let needs_state = q.q.is_some() || q.geo.is_some();
        // Candidates by what the header alone decides (ids, idPattern, type) first: the
        // latest state and the attribute names are read only for those.
        let candidates = match &q.ids {
            Some(ids) => {
                let mut ids: Vec<&String> = ids.iter().collect();
                ids.sort();
                ids.dedup();
                let mut found = Vec::new();
                for id in ids {
                    if let Some(h) = store.temporal_header(tenant, id).map_err(store_err)? {
                        found.push(h);
                    }
                }
                found
            }
            None => store.temporal_headers(tenant).map_err(store_err)?,
        };
        let mut matching = Vec::new();
        for h in candidates
            .into_iter()
            .filter(|h| q.matches_identity(&h.id, &h.types))
        {
            // A history the reader may not see does not exist for it; of one it may, the
            // filters below see only the opened attributes.
            let Some(opened) = self.opened(tenant, &h, view)? else {
                continue;
            };
            let mut e = if needs_state {
                self.latest_state(tenant, &h, &opened)?
            } else {
                super::view::bare(&h)
            };
            if let Some(wanted) = &q.attrs {
                let mut names = store.temporal_attrs(tenant, &h.id).map_err(store_err)?;
                names.retain(|n| opened.opens(n));
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
                matching.push((h, within, opened));
            }
        }
        if page.descending {
            matching.reverse();
        }
        let narrowed = sel.query.timerel.is_some() || sel.datasets.is_some() || sel.attrs.is_some();
        let mut loaded = Vec::new();
        let mut total = 0;
        let mut cut = None;
        for (h, within, opened) in matching {
            let within = within.as_deref();
            let sel = sel.within(&opened);
            let in_page = |total: usize, n: usize| total > page.offset && n < page.limit;
            if !narrowed {
                total += 1;
                if in_page(total, loaded.len()) {
                    let (e, c) = load(h, within, &sel)?;
                    if let Some(c) = c {
                        cut = Some(combine(cut, c));
                    }
                    loaded.push(e);
                }
                continue;
            }
            // Whether the entity has instances in the interval needs them read.
            let (e, c) = load(h, within, &sel)?;
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
