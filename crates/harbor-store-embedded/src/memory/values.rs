//! The value index of one attribute of one entity type: every key `harbor_query::index_keys`
//! gives for it, with the entities holding it, ordered by key and then by id.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use harbor_model::Entity;
use harbor_query::{index_keys, KeyRange, ScalarKey, Unkeyed};

/// An entity id shared by every index that holds it.
pub type Id = Arc<str>;

/// The id half of an index entry, with the bounds that come before and after every id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    First,
    Id(Id),
    Last,
}

/// What an index keeps of one attribute of one entity.
#[derive(Debug, Default, PartialEq)]
pub struct Keyed {
    /// Sorted, without duplicates.
    pub keys: Vec<ScalarKey>,
    pub unkeyed: Unkeyed,
}

impl Keyed {
    pub fn of(e: &Entity, attr: &str) -> Keyed {
        let mut keys = Vec::new();
        let unkeyed = index_keys(e, attr, &mut keys);
        keys.sort_unstable();
        keys.dedup();
        Keyed { keys, unkeyed }
    }

    /// The smallest key that ranks the entity in an ordering, if any.
    pub fn order_key(&self) -> Option<&ScalarKey> {
        self.keys.first().filter(|k| !k.is_time())
    }
}

/// The index of one (type, attribute).
#[derive(Debug, Default)]
pub struct ValueIndex {
    pub keys: BTreeSet<(ScalarKey, Slot)>,
    /// Entities with a string too long to be a key.
    pub long: BTreeSet<Id>,
    /// How many entities have a value no key ranks.
    pub others: usize,
}

impl ValueIndex {
    pub fn insert(&mut self, id: &Id, k: &Keyed) {
        for key in &k.keys {
            self.keys.insert((key.clone(), Slot::Id(id.clone())));
        }
        if k.unkeyed.long {
            self.long.insert(id.clone());
        }
        self.others += usize::from(k.unkeyed.other);
    }

    pub fn remove(&mut self, id: &Id, k: &Keyed) {
        for key in &k.keys {
            self.keys.remove(&(key.clone(), Slot::Id(id.clone())));
        }
        if k.unkeyed.long {
            self.long.remove(id);
        }
        self.others -= usize::from(k.unkeyed.other);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.long.is_empty() && self.others == 0
    }

    /// Whether the ordering by this attribute is the order of its keys: no entity holds a
    /// value that no key ranks.
    pub fn orders_everything(&self) -> bool {
        self.long.is_empty() && self.others == 0
    }

    /// The ids with a key in `range`, by key and then by id (an id may come more than once).
    pub fn ids_in<'a>(&'a self, range: &KeyRange) -> impl Iterator<Item = &'a Id> + 'a {
        let bounds = entry_bounds(range);
        bounds
            .into_iter()
            .flat_map(move |b| self.keys.range(b))
            .filter_map(|(_, slot)| match slot {
                Slot::Id(id) => Some(id),
                _ => None,
            })
    }
}

type EntryBound = Bound<(ScalarKey, Slot)>;

/// The bounds over entries of a range over keys; `None` when the range is empty (which
/// `BTreeSet::range` would refuse).
fn entry_bounds(range: &KeyRange) -> Option<(EntryBound, EntryBound)> {
    let lower = match &range.0 {
        Bound::Included(k) => Bound::Included((k.clone(), Slot::First)),
        Bound::Excluded(k) => Bound::Excluded((k.clone(), Slot::Last)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let upper = match &range.1 {
        Bound::Included(k) => Bound::Included((k.clone(), Slot::Last)),
        Bound::Excluded(k) => Bound::Excluded((k.clone(), Slot::First)),
        Bound::Unbounded => Bound::Unbounded,
    };
    match (&lower, &upper) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b))
            if a >= b =>
        {
            None
        }
        _ => Some((lower, upper)),
    }
}
