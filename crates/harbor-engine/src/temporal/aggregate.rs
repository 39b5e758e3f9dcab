//! The aggregated temporal representation (4.5.19) computed while the store streams the
//! instances: each instance is read as an `InstanceSample` and fed to one `Aggregator` per
//! `datasetId`, so a series of 100k instances is aggregated without building any of them.
//!
//! The answer is the one the instances would give if loaded like any temporal query
//! (`load_temporal`) and aggregated afterwards: the same selection (time interval on
//! `timeproperty`, `datasetId`, expiry, `deletedAt`), deletions left out of the values but
//! not of the selection, periods aligned at the start of the range or else at the entity's
//! oldest selected instance, values in time order. Where streaming cannot give that
//! directly it falls back: a `lastN` or a series past `max_instances` (a page cut, 6.3.10)
//! loads the instances, and an attribute whose instances do not come in the order of
//! `timeproperty` is read again and sorted.

use std::collections::BTreeMap;

use harbor_jsonld::context::Context;
use harbor_jsonld::temporal::{simplified_payload, Aggregation};
use harbor_model::temporal::{NGSI_LD_NULL, SCOPE_ATTR};
use harbor_model::{
    time, AttrValue, NgsiResult, TemporalEntity, TemporalHeader, Tenant, TimeProperty, Timestamp,
};
use harbor_query::{AggregatedSeries, Aggregator, Sample};
use harbor_store::{EntityQuery, InstanceRange, InstanceSample, SamplePayload, TemporalStore};
use serde_json::Value;

use super::query::Paging;
use super::view::HistoryView;
use super::{not_found, InstanceSelection, TemporalPage, TemporalRange};
use crate::{store_err, Engine};

/// A temporal entity with each attribute aggregated: one series per `datasetId`. An
/// attribute with selected instances but nothing to aggregate (only deletions) has none.
pub type AggregatedEntity = TemporalEntity<Vec<AggregatedSeries>>;

impl Engine {
    /// 5.7.3 Retrieve Temporal Evolution of an Entity, aggregated (4.5.19). `ctx` compacts
    /// the values of VocabProperties, as the simplified representation shows them; a `view`
    /// keeps it to what the reader may see, as `retrieve_temporal_entity` does.
    pub fn retrieve_aggregated_temporal_entity(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: &InstanceSelection,
        aggr: &Aggregation,
        ctx: &Context,
        view: Option<HistoryView<'_>>,
    ) -> NgsiResult<(AggregatedEntity, Option<TemporalRange>)> {
        self.check_tenant(tenant)?;
        let header = self.temporal_header(tenant, id)?;
        let opened = self
            .opened(tenant, &header, view)?
            .ok_or_else(|| not_found(id))?;
        self.aggregate_temporal(tenant, header, &sel.within(&opened), aggr, ctx)
    }

    /// 5.7.4 Query Temporal Evolution of Entities, aggregated (4.5.19): the entities that
    /// `query_temporal_entities` would return, each aggregated.
    #[allow(clippy::too_many_arguments)]
    pub fn query_aggregated_temporal_entities(
        &self,
        tenant: &Tenant,
        q: &EntityQuery,
        sel: &InstanceSelection,
        aggr: &Aggregation,
        ctx: &Context,
        page: TemporalPage,
        view: Option<HistoryView<'_>>,
    ) -> NgsiResult<(Vec<AggregatedEntity>, usize, Option<TemporalRange>)> {
        // An aggregated entity cannot be cut again: the page reports the first range one
        // had to be cut to.
        let paging = Paging {
            load: &|h, _, sel| self.aggregate_temporal(tenant, h, sel, aggr, ctx),
            combine: &|first, r| first.unwrap_or(r),
            finish: &|_, first| first,
        };
        self.select_temporal(tenant, q, sel, page, paging, view)
    }

    /// One temporal entity, aggregated.
    fn aggregate_temporal(
        &self,
        tenant: &Tenant,
        header: TemporalHeader,
        sel: &InstanceSelection,
        aggr: &Aggregation,
        ctx: &Context,
    ) -> NgsiResult<(AggregatedEntity, Option<TemporalRange>)> {
        if sel.query.last_n.is_some() {
            return self.aggregate_loaded(tenant, header, sel, aggr, ctx);
        }
        let store = self.temporal()?;
        let names: Vec<String> = store
            .temporal_attrs(tenant, &header.id)
            .map_err(store_err)?
            .into_iter()
            // The scope's history is the entity's setting, not a measured value: it is not
            // aggregated.
            .filter(|n| n != SCOPE_ATTR && sel.attrs.as_ref().is_none_or(|a| a.contains(n)))
            .collect();
        let scan = Scan::new(sel);
        // Periods start at the range's start, else at the entity's oldest selected instance.
        let origin = match aggr.range.start {
            Some(_) => None,
            None => {
                let mut oldest: Option<Timestamp> = None;
                for name in &names {
                    oldest = match (
                        oldest,
                        scan.oldest(store.as_ref(), tenant, &header.id, name)?,
                    ) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                oldest
            }
        };
        let mut attrs = BTreeMap::new();
        for name in names {
            let attr = Attr {
                store: store.as_ref(),
                tenant,
                id: &header.id,
                name: &name,
                time: sel.query.time_property,
            };
            match scan.aggregate(&attr, aggr, origin, ctx)? {
                Outcome::Empty => {}
                Outcome::Series(series) => {
                    attrs.insert(name, series);
                }
                // More instances than one answer may hold: the page is cut like any other.
                Outcome::TooMany => return self.aggregate_loaded(tenant, header, sel, aggr, ctx),
            }
        }
        Ok((TemporalEntity { header, attrs }, None))
    }

    /// One temporal entity loaded like any temporal query (`lastN`, page cut), aggregated.
    fn aggregate_loaded(
        &self,
        tenant: &Tenant,
        header: TemporalHeader,
        sel: &InstanceSelection,
        aggr: &Aggregation,
        ctx: &Context,
    ) -> NgsiResult<(AggregatedEntity, Option<TemporalRange>)> {
        let (e, range) = self.load_temporal(tenant, header, sel)?;
        let tp = sel.query.time_property;
        let origin = match aggr.range.start {
            Some(_) => None,
            None => e.attrs.values().flatten().filter_map(|i| i.time(tp)).min(),
        };
        let attrs = e
            .attrs
            .into_iter()
            .filter(|(name, _)| name != SCOPE_ATTR)
            .map(|(name, list)| {
                let mut timed: Vec<(Timestamp, InstanceSample<'_>)> = list
                    .iter()
                    .map(|i| InstanceSample::of(i, tp))
                    .filter(|s| !is_deletion(s))
                    .filter_map(|s| Some((s.at?, s)))
                    .collect();
                timed.sort_by_key(|(at, _)| *at);
                let mut series = Series::new(aggr, origin);
                for (at, s) in &timed {
                    series.push(s.dataset_id, s.kind, &s.payload, *at, ctx);
                }
                (name, series.finish())
            })
            .collect();
        Ok((
            TemporalEntity {
                header: e.header,
                attrs,
            },
            range,
        ))
    }
}

/// One attribute of one temporal entity in the store.
struct Attr<'a> {
    store: &'a dyn TemporalStore,
    tenant: &'a Tenant,
    id: &'a str,
    name: &'a str,
    /// The time property instances are selected and aggregated by.
    time: TimeProperty,
}

impl Attr<'_> {
    fn visit(
        &self,
        range: InstanceRange,
        f: &mut dyn FnMut(&InstanceSample<'_>) -> bool,
    ) -> NgsiResult<()> {
        self.store
            .visit_samples(self.tenant, self.id, self.name, range, self.time, f)
            .map_err(store_err)
    }
}

enum Outcome {
    /// No instance selected: the attribute is not part of the answer.
    Empty,
    /// The series of the selected instances (none when every one is a deletion).
    Series(Vec<AggregatedSeries>),
    /// More instances selected than an answer may hold.
    TooMany,
}

/// Which instances of an attribute are selected, as `load_temporal` selects them.
struct Scan<'a> {
    sel: &'a InstanceSelection,
    range: InstanceRange,
    now: Timestamp,
    max: usize,
}

impl<'a> Scan<'a> {
    fn new(sel: &'a InstanceSelection) -> Self {
        let q = &sel.query;
        let (from, to) = match q.time_property {
            // The store orders by observedAt (else modifiedAt): it can seek to the bounds.
            TimeProperty::ObservedAt => q.bounds(),
            _ => (None, None),
        };
        Scan {
            sel,
            range: InstanceRange {
                from,
                to,
                newest_first: false,
            },
            now: time::now(),
            max: sel.max_instances.max(1),
        }
    }

    fn tp(&self) -> TimeProperty {
        self.sel.query.time_property
    }

    fn selects(&self, s: &InstanceSample<'_>) -> bool {
        let t = s.at;
        // A transient instance's history evaporates with it (4.22).
        let expired = s.expires_at.is_some_and(|t| t <= self.now);
        let in_dataset = !expired
            && (self.sel.datasets.as_ref())
                .is_none_or(|d| d.iter().any(|ds| ds.as_deref() == s.dataset_id));
        let deleted_only = self.tp() == TimeProperty::DeletedAt;
        self.sel.query.selects(t) && in_dataset && (!deleted_only || t.is_some())
    }

    /// The earliest time (by `timeproperty`) of the selected instances of one attribute.
    fn oldest(
        &self,
        store: &dyn TemporalStore,
        tenant: &Tenant,
        id: &str,
        name: &str,
    ) -> NgsiResult<Option<Timestamp>> {
        let attr = Attr {
            store,
            tenant,
            id,
            name,
            time: self.tp(),
        };
        let by_observed = self.tp() == TimeProperty::ObservedAt;
        let mut oldest: Option<Timestamp> = None;
        attr.visit(self.range, &mut |s| {
            if self.selects(s) {
                if let Some(t) = s.at {
                    oldest = Some(oldest.map_or(t, |o| o.min(t)));
                }
            }
            // The store orders by observedAt to the microsecond: once past the oldest
            // one's microsecond, nothing older can come.
            !(by_observed
                && oldest.is_some_and(|o| s.index_time.timestamp_micros() > o.timestamp_micros()))
        })?;
        Ok(oldest)
    }

    /// Aggregates the selected instances of one attribute as the store gives them; if they
    /// do not come in time order, reads them again and sorts them.
    fn aggregate(
        &self,
        attr: &Attr<'_>,
        aggr: &Aggregation,
        origin: Option<Timestamp>,
        ctx: &Context,
    ) -> NgsiResult<Outcome> {
        let mut selected = 0usize;
        let mut series = Series::new(aggr, origin);
        let mut in_order = true;
        attr.visit(self.range, &mut |s| {
            if !self.selects(s) {
                return true;
            }
            selected += 1;
            if selected > self.max {
                return false;
            }
            if let (false, Some(at)) = (is_deletion(s), s.at) {
                in_order = series.push(s.dataset_id, s.kind, &s.payload, at, ctx);
            }
            in_order
        })?;
        if selected > self.max {
            return Ok(Outcome::TooMany);
        }
        if selected == 0 {
            return Ok(Outcome::Empty);
        }
        if in_order {
            return Ok(Outcome::Series(series.finish()));
        }
        let mut owned = Vec::new();
        let mut selected = 0usize;
        attr.visit(self.range, &mut |s| {
            if !self.selects(s) {
                return true;
            }
            selected += 1;
            if let (false, Some(at)) = (is_deletion(s), s.at) {
                owned.push((at, Owned::of(s)));
            }
            selected <= self.max
        })?;
        if selected > self.max {
            return Ok(Outcome::TooMany);
        }
        owned.sort_by_key(|(at, _)| *at);
        let mut series = Series::new(aggr, origin);
        for (at, o) in &owned {
            series.push(o.dataset_id.as_deref(), o.kind, &o.payload(), *at, ctx);
        }
        Ok(Outcome::Series(series.finish()))
    }
}

/// Whether an instance records a deletion: its payload is the NGSI-LD Null.
fn is_deletion(s: &InstanceSample<'_>) -> bool {
    matches!(s.payload, SamplePayload::Str(p) if p == NGSI_LD_NULL)
}

/// The series of one attribute being aggregated: one aggregator per `datasetId`, in the
/// order their first instances come.
struct Series<'a> {
    aggr: &'a Aggregation,
    origin: Option<Timestamp>,
    groups: Vec<(Option<String>, &'static str, Aggregator)>,
    last: Option<Timestamp>,
}

impl<'a> Series<'a> {
    fn new(aggr: &'a Aggregation, origin: Option<Timestamp>) -> Self {
        Series {
            aggr,
            origin,
            groups: Vec::new(),
            last: None,
        }
    }

    /// Adds one instance; false (and nothing added) when it is older than the one before.
    fn push(
        &mut self,
        dataset_id: Option<&str>,
        kind: &'static str,
        payload: &SamplePayload<'_>,
        at: Timestamp,
        ctx: &Context,
    ) -> bool {
        if self.last.is_some_and(|last| at < last) {
            return false;
        }
        self.last = Some(at);
        let pos = match self
            .groups
            .iter()
            .position(|g| g.0.as_deref() == dataset_id)
        {
            Some(p) => p,
            None => {
                let mut a = Aggregator::new(&self.aggr.methods, self.aggr.period, self.aggr.range);
                if let (None, Some(o)) = (self.aggr.range.start, self.origin) {
                    a = a.aligned_at(o);
                }
                self.groups.push((dataset_id.map(str::to_string), kind, a));
                self.groups.len() - 1
            }
        };
        let a = &mut self.groups[pos].2;
        // In time order, so the only refusal left is MAX_DISTINCT values in one period,
        // where that one value is left out of the distinct count (as when rendering).
        let _ = match wrapped(kind, payload) {
            Some(v) => a.push(&simplified_payload(&v, ctx), at),
            None => a.push_sample(sample(payload), at),
        };
        true
    }

    fn finish(self) -> Vec<AggregatedSeries> {
        self.groups
            .into_iter()
            .map(|(dataset_id, kind, a)| AggregatedSeries {
                kind,
                dataset_id,
                values: a.finish(),
            })
            .filter(|s| !s.values.is_empty())
            .collect()
    }
}

/// The aggregated value of a payload whose simplified form is itself.
fn sample<'s>(payload: &'s SamplePayload<'_>) -> Sample<'s> {
    match payload {
        SamplePayload::Number(x) => Sample::Number(*x),
        SamplePayload::Bool(b) => Sample::Bool(*b),
        SamplePayload::Str(s) => Sample::Str(s),
        SamplePayload::Whole(v) => Sample::Json(v.payload()),
    }
}

/// For the kinds whose simplified payload wraps the payload in an object (`{"json": ...}`,
/// `{"languageMap": ...}`, `{"vocab": ...}`), the attribute value to simplify.
fn wrapped(kind: &str, payload: &SamplePayload<'_>) -> Option<AttrValue> {
    let make: fn(Value) -> AttrValue = match kind {
        "JsonProperty" => AttrValue::JsonProperty,
        "LanguageProperty" => AttrValue::LanguageProperty,
        "VocabProperty" => AttrValue::VocabProperty,
        _ => return None,
    };
    Some(match payload {
        SamplePayload::Whole(v) => v.as_ref().clone().into_owned(),
        SamplePayload::Number(x) => make(Value::from(*x)),
        SamplePayload::Bool(b) => make(Value::Bool(*b)),
        SamplePayload::Str(s) => make(Value::String(s.to_string())),
    })
}

/// A selected instance kept for sorting.
struct Owned {
    dataset_id: Option<String>,
    kind: &'static str,
    payload: OwnedPayload,
}

enum OwnedPayload {
    Number(f64),
    Bool(bool),
    Str(String),
    Whole(AttrValue),
}

impl Owned {
    fn of(s: &InstanceSample<'_>) -> Self {
        let payload = match &s.payload {
            SamplePayload::Number(x) => OwnedPayload::Number(*x),
            SamplePayload::Bool(b) => OwnedPayload::Bool(*b),
            SamplePayload::Str(p) => OwnedPayload::Str(p.to_string()),
            SamplePayload::Whole(v) => OwnedPayload::Whole(v.as_ref().clone().into_owned()),
        };
        Owned {
            dataset_id: s.dataset_id.map(str::to_string),
            kind: s.kind,
            payload,
        }
    }

    fn payload(&self) -> SamplePayload<'_> {
        match &self.payload {
            OwnedPayload::Number(x) => SamplePayload::Number(*x),
            OwnedPayload::Bool(b) => SamplePayload::Bool(*b),
            OwnedPayload::Str(s) => SamplePayload::Str(s),
            OwnedPayload::Whole(v) => SamplePayload::Whole(Box::new(std::borrow::Cow::Borrowed(v))),
        }
    }
}
