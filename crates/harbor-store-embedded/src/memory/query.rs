//! Query planning over the in-memory indexes: which index yields the candidates, and how a
//! page of matches is cut from them.
//!
//! Candidates come, cheapest first, from the ids asked for, the geometry R-tree, the value
//! indexes the `q` expression narrows to (per type), the type index, the attribute index,
//! or every entity. Each candidate is re-checked against the whole query, so an index only
//! has to find a superset. An ordering on a plain attribute of one type walks that type's
//! value index in key order and stops once the page is full; any other ordering sorts every
//! match.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use harbor_model::{Entity, Tenant, Timestamp};
use harbor_query::{EntityQuery, OrderBy, Plan, ScalarKey};
use harbor_store::{Page, Paging};
use rstar::AABB;

use super::packed::Names;
use super::values::{Id, Keyed, Slot, ValueIndex};
use super::{Memory, TenantState};

/// Below this many candidates from a filter, an ordered query sorts them rather than walk
/// the ordering's index.
const SORT_BELOW: usize = 4096;

/// How an ordered query that an index can follow is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ordered {
    /// Sort the candidates of a narrow filter, walk the index otherwise.
    Adaptive,
    /// Walk the ordering's index.
    #[cfg_attr(not(test), allow(dead_code))]
    Walk,
    /// Sort every match.
    #[cfg_attr(not(test), allow(dead_code))]
    Sort,
}

/// Where a query's candidates come from.
enum Candidates<'a> {
    /// Sorted by id, without duplicates.
    Ids(Vec<&'a Id>),
    /// One index set.
    Set(&'a BTreeSet<Id>),
    All,
}

impl Candidates<'_> {
    fn len(&self, state: &TenantState) -> usize {
        match self {
            Candidates::Ids(v) => v.len(),
            Candidates::Set(s) => s.len(),
            Candidates::All => state.entities.len(),
        }
    }
}

/// How candidates are read: only the attributes a query's filters and ordering read, so a
/// scan does not build whole entities; the entities of a page are read whole at the end.
struct Reading<'a> {
    names: &'a Names,
    /// Name numbers of the attributes to read; `None` for all.
    wanted: Option<Vec<u32>>,
}

impl<'a> Reading<'a> {
    fn of(names: &'a Names, q: &EntityQuery, order: Option<&OrderBy>) -> Self {
        let mut read = q.attributes_read();
        read.extend(order.map(OrderBy::attributes).unwrap_or_default());
        Reading {
            names,
            wanted: Some(read.iter().filter_map(|n| names.find(n)).collect()),
        }
    }
}

impl Memory {
    /// Every entity matching the query exactly, sorted by id.
    pub fn query(&self, t: &Tenant, q: &EntityQuery) -> Vec<Arc<Entity>> {
        let Some(state) = self.tenants.get(t) else {
            return Vec::new();
        };
        let candidates = state.candidates(q);
        let reading = Reading::of(&self.names, q, None);
        let found: Vec<Arc<Entity>> = state.matches(&candidates, q, None, &reading).collect();
        state.whole(found, &self.names)
    }

    /// One page of the entities matching the query exactly and visible at `now`.
    pub fn query_page(&self, t: &Tenant, q: &EntityQuery, paging: &Paging, now: Timestamp) -> Page {
        self.query_page_with(t, q, paging, now, Ordered::Adaptive)
    }

    pub(super) fn query_page_with(
        &self,
        t: &Tenant,
        q: &EntityQuery,
        paging: &Paging,
        now: Timestamp,
        ordered: Ordered,
    ) -> Page {
        let Some(state) = self.tenants.get(t) else {
            return Page {
                total: paging.count.then_some(0),
                ..Page::default()
            };
        };
        let names = &self.names;
        let candidates = state.candidates(q);
        let reading = Reading::of(names, q, paging.order.as_ref());
        let mut page = match &paging.order {
            None => state.page_by_id(&candidates, q, paging, now, &reading),
            Some(order) => {
                let walked = match ordered {
                    Ordered::Sort => None,
                    _ => state.page_by_index(&candidates, q, order, paging, now, ordered, &reading),
                };
                walked.unwrap_or_else(|| {
                    let mut all: Vec<Arc<Entity>> =
                        state.matches(&candidates, q, Some(now), &reading).collect();
                    order.sort(&mut all);
                    Page::of(all, paging)
                })
            }
        };
        page.entities = state.whole(std::mem::take(&mut page.entities), names);
        page
    }
}

fn live(e: &Entity, now: Option<Timestamp>) -> bool {
    now.is_none_or(|now| e.expires_at.is_none_or(|t| t > now))
}

impl TenantState {
    fn candidates(&self, q: &EntityQuery) -> Candidates<'_> {
        if let Some(ids) = &q.ids {
            let mut found: Vec<&Id> = ids
                .iter()
                .filter_map(|id| self.entities.get_key_value(id.as_str()).map(|(k, _)| k))
                .collect();
            found.sort_unstable();
            found.dedup();
            return Candidates::Ids(found);
        }
        if let Some(geo) = &q.geo {
            let Some(tree) = self.geo.get(&geo.geoproperty) else {
                return Candidates::Ids(Vec::new());
            };
            let mut found: Vec<&Id> = match geo.bounding_rect() {
                Some(r) => tree
                    .locate_in_envelope_intersecting(&AABB::from_corners(
                        [r.min().x, r.min().y],
                        [r.max().x, r.max().y],
                    ))
                    .map(|g| &g.data)
                    .collect(),
                None => tree.iter().map(|g| &g.data).collect(),
            };
            found.sort_unstable();
            found.dedup();
            return Candidates::Ids(found);
        }
        if let Some(types) = q.types.as_ref().and_then(|t| t.simple_types()) {
            if let Some(found) =
                q.q.as_ref()
                    .and_then(|x| x.plan())
                    .and_then(|p| self.plan_ids(&types, &p))
            {
                return Candidates::Ids(found);
            }
            return any_of(&self.by_type, &types);
        }
        if let Some(attrs) = &q.attrs {
            return any_of(&self.by_attr, attrs);
        }
        Candidates::All
    }

    /// The candidates the plan narrows the types to, sorted by id; `None` when it does not.
    fn plan_ids(&self, types: &[String], plan: &Plan) -> Option<Vec<&Id>> {
        match plan {
            Plan::Values { attr, ranges } => {
                let mut found: Vec<&Id> = Vec::new();
                for index in types.iter().filter_map(|t| self.value_index_of(t, attr)) {
                    for r in ranges {
                        found.extend(index.ids_in(r));
                    }
                    found.extend(index.long.iter());
                }
                found.sort_unstable();
                found.dedup();
                Some(found)
            }
            // Every entity of the types that has the attribute: rarely narrower than the types.
            Plan::Has(_) => None,
            Plan::And(parts) => parts
                .iter()
                .filter_map(|p| self.plan_ids(types, p))
                .reduce(intersect),
            Plan::Or(parts) => parts
                .iter()
                .map(|p| self.plan_ids(types, p))
                .collect::<Option<Vec<_>>>()
                .map(union),
        }
    }

    /// The entities read in part, read whole.
    fn whole(&self, part: Vec<Arc<Entity>>, names: &Names) -> Vec<Arc<Entity>> {
        part.iter()
            .filter_map(|e| self.entity(&e.id, names))
            .collect()
    }

    /// The entity with this id as `reading` reads it.
    fn read(&self, id: &str, reading: &Reading<'_>) -> Option<Arc<Entity>> {
        let (key, packed) = self.entities.get_key_value(id)?;
        read_packed(key, packed, reading)
    }

    fn value_index_of(&self, ty: &str, attr: &str) -> Option<&ValueIndex> {
        self.values.get(ty)?.get(attr)
    }

    /// The candidates that match, in id order.
    fn matches<'a>(
        &'a self,
        candidates: &'a Candidates<'a>,
        q: &'a EntityQuery,
        now: Option<Timestamp>,
        reading: &'a Reading<'a>,
    ) -> Box<dyn Iterator<Item = Arc<Entity>> + 'a> {
        let check = move |e: &Arc<Entity>| live(e, now) && q.matches(e);
        let read = move |id: &str| self.read(id, reading).filter(check);
        match candidates {
            Candidates::Ids(ids) => Box::new(ids.iter().filter_map(move |id| read(id))),
            Candidates::Set(ids) => Box::new(ids.iter().filter_map(move |id| read(id))),
            Candidates::All => Box::new(
                self.entities
                    .iter()
                    .filter_map(move |(id, p)| read_packed(id, p, reading).filter(check)),
            ),
        }
    }

    fn page_by_id(
        &self,
        candidates: &Candidates<'_>,
        q: &EntityQuery,
        paging: &Paging,
        now: Timestamp,
        reading: &Reading<'_>,
    ) -> Page {
        let mut matches = self.matches(candidates, q, Some(now), reading);
        let skipped = matches.by_ref().take(paging.offset).count();
        let entities: Vec<Arc<Entity>> = matches.by_ref().take(paging.limit).collect();
        let seen = skipped + entities.len();
        let (total, more) = if paging.count {
            let total = match self.count_of_types(candidates, q, now, reading.names) {
                Some(n) => n,
                None => seen + matches.count(),
            };
            (Some(total), total > seen)
        } else {
            (None, matches.next().is_some())
        };
        Page {
            entities,
            total,
            more,
        }
    }

    /// The count of a query on one type and nothing else, from the type's index: its
    /// entities less those that have expired and are not reclaimed yet.
    fn count_of_types(
        &self,
        candidates: &Candidates<'_>,
        q: &EntityQuery,
        now: Timestamp,
        names: &Names,
    ) -> Option<usize> {
        let Candidates::Set(set) = candidates else {
            return None;
        };
        let only_types = q.ids.is_none()
            && q.id_pattern.is_none()
            && q.attrs.is_none()
            && q.q.is_none()
            && q.geo.is_none()
            && q.scope.is_none()
            && q.types.is_some();
        if !only_types {
            return None;
        }
        let expired = self
            .expiry
            .iter()
            .take_while(|(when, _)| *when <= now)
            .filter(|(_, id)| set.contains(id))
            .filter(|(_, id)| {
                let times = Reading {
                    names,
                    wanted: Some(Vec::new()),
                };
                self.read(id, &times).is_some_and(|e| !live(&e, Some(now)))
            })
            .count();
        Some(set.len() - expired)
    }

    /// A page in the order of one attribute's value index, when the query is on one type
    /// and the ordering is one the index follows; `None` otherwise.
    #[allow(clippy::too_many_arguments)]
    fn page_by_index(
        &self,
        candidates: &Candidates<'_>,
        q: &EntityQuery,
        order: &OrderBy,
        paging: &Paging,
        now: Timestamp,
        ordered: Ordered,
        reading: &Reading<'_>,
    ) -> Option<Page> {
        let (attr, desc) = order.plain_key()?;
        let types = q.types.as_ref()?.simple_types()?;
        let [ty] = types.as_slice() else {
            return None;
        };
        // A narrow filter is cheaper to sort than the index to walk.
        if ordered == Ordered::Adaptive
            && !matches!(candidates, Candidates::Set(_))
            && candidates.len(self) < SORT_BELOW
        {
            return None;
        }
        let empty = ValueIndex::default();
        let index = self.value_index_of(ty, attr).unwrap_or(&empty);
        if !index.orders_everything() {
            return None;
        }
        let check = |e: &Arc<Entity>| live(e, Some(now)) && q.matches(e);
        // Each entity ranks at its smallest key: skip its other keys.
        let ranked_here = |e: &Entity, key: &ScalarKey| Keyed::of(e, attr).order_key() == Some(key);
        let keyed = keyed_in_order(index, desc).filter_map(|(key, id)| {
            let e = self.read(id, reading)?;
            (ranked_here(&e, key) && check(&e)).then_some(e)
        });
        // Then the entities without a key, by id: they rank last either way.
        let unkeyed = self
            .matches(candidates, q, Some(now), reading)
            .filter(|e| Keyed::of(e, attr).order_key().is_none());
        let mut all = keyed.chain(unkeyed);
        let skipped = all.by_ref().take(paging.offset).count();
        let entities: Vec<Arc<Entity>> = all.by_ref().take(paging.limit).collect();
        let seen = skipped + entities.len();
        let (total, more) = if paging.count {
            let total = match self.count_of_types(candidates, q, now, reading.names) {
                Some(n) => n,
                None => self.matches(candidates, q, Some(now), reading).count(),
            };
            (Some(total), total > seen)
        } else {
            (None, all.next().is_some())
        };
        Some(Page {
            entities,
            total,
            more,
        })
    }
}

/// A packed entity as `reading` reads it; one that does not read back is left out, and
/// said so.
fn read_packed(
    id: &str,
    packed: &super::packed::Packed,
    reading: &Reading<'_>,
) -> Option<Arc<Entity>> {
    match packed.unpack_only(id, reading.names, reading.wanted.as_deref()) {
        Ok(e) => Some(Arc::new(e)),
        Err(e) => {
            tracing::error!(error = %e, entity = %id, "an entity left out of an answer");
            None
        }
    }
}

/// The ordering entries of an index (no `Time` keys), by key ascending or descending, and
/// by id ascending within one key either way.
fn keyed_in_order(
    index: &ValueIndex,
    desc: bool,
) -> Box<dyn Iterator<Item = (&ScalarKey, &Id)> + '_> {
    let below_time = Bound::Excluded((ScalarKey::FIRST_TIME, Slot::First));
    fn entry((k, slot): &(ScalarKey, Slot)) -> Option<(&ScalarKey, &Id)> {
        match slot {
            Slot::Id(id) => Some((k, id)),
            _ => None,
        }
    }
    if !desc {
        return Box::new(
            index
                .keys
                .range((Bound::Unbounded, below_time))
                .filter_map(entry),
        );
    }
    // Descending keys, each key's entries ascending: find the next key down, then walk it.
    let mut upper = below_time;
    Box::new(
        std::iter::from_fn(move || {
            let (key, _) = index
                .keys
                .range((Bound::Unbounded, upper.clone()))
                .next_back()?;
            upper = Bound::Excluded((key.clone(), Slot::First));
            Some(
                index
                    .keys
                    .range((
                        Bound::Included((key.clone(), Slot::First)),
                        Bound::Included((key.clone(), Slot::Last)),
                    ))
                    .filter_map(entry),
            )
        })
        .flatten(),
    )
}

/// The entities an index holds under any of `keys`: the one set itself for one key.
fn any_of<'a>(index: &'a HashMap<String, BTreeSet<Id>>, keys: &[String]) -> Candidates<'a> {
    match keys {
        [one] => index
            .get(one)
            .map_or(Candidates::Ids(Vec::new()), Candidates::Set),
        many => Candidates::Ids(union(
            many.iter()
                .filter_map(|k| index.get(k))
                .map(|s| s.iter().collect())
                .collect(),
        )),
    }
}

/// The union of sorted lists, sorted, without duplicates.
fn union(lists: Vec<Vec<&Id>>) -> Vec<&Id> {
    let mut all: Vec<&Id> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The intersection of two sorted lists.
fn intersect<'a>(a: Vec<&'a Id>, b: Vec<&'a Id>) -> Vec<&'a Id> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
