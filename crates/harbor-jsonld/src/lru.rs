//! A cache bounded by the bytes its entries hold, not by their number: one remote `@context`
//! of a megabyte weighs as much as a thousand small ones. The least recently used entries go
//! first; pinned entries (operator-preloaded documents) are never evicted and not counted.
//!
//! A hit only stores a stamp in an atomic, so it needs no more than shared access: callers
//! keep the cache behind a `RwLock` and look up under its read lock. Recency is settled at
//! eviction time: the queue holds each entry under the stamp it was queued with, and an entry
//! used since then is queued again under its newer stamp instead of being evicted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

struct Slot<V> {
    value: V,
    weight: usize,
    pinned: bool,
    /// The stamp under which the slot is in `order` (unused when pinned).
    queued: u64,
    last_used: AtomicU64,
}

/// Entries by key, within a budget of bytes.
pub struct ByteLru<V> {
    budget: usize,
    used: usize,
    tick: AtomicU64,
    map: HashMap<String, Slot<V>>,
    /// Stamp → key, oldest first; every unpinned entry once.
    order: BTreeMap<u64, String>,
}

/// What an insert did.
#[derive(Debug)]
pub enum Inserted<V> {
    /// Stored; these entries were evicted to make room (drop them outside any lock).
    Stored(Vec<V>),
    /// Heavier than the whole budget: not stored, handed back.
    TooHeavy(V),
}

impl<V> ByteLru<V> {
    pub fn new(budget: usize) -> Self {
        ByteLru {
            budget,
            used: 0,
            tick: AtomicU64::new(0),
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn stamp(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// The entry for `key`, marked as just used.
    pub fn get(&self, key: &str) -> Option<&V> {
        let slot = self.map.get(key)?;
        slot.last_used.store(self.stamp(), Ordering::Relaxed);
        Some(&slot.value)
    }

    /// The entry for `key`, without marking it used.
    pub fn peek(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// Stores `value` under `key`, replacing what was there, then evicts the least recently
    /// used unpinned entries until the budget holds. An unpinned value heavier than the whole
    /// budget is not stored (it would only evict everything else and go next).
    pub fn insert(&mut self, key: String, value: V, weight: usize, pinned: bool) -> Inserted<V> {
        if !pinned && weight > self.budget {
            return Inserted::TooHeavy(value);
        }
        let mut evicted: Vec<V> = self.remove(&key).into_iter().collect();
        let stamp = self.stamp();
        if !pinned {
            self.used += weight;
            self.order.insert(stamp, key.clone());
        }
        self.map.insert(
            key,
            Slot {
                value,
                weight,
                pinned,
                queued: stamp,
                last_used: AtomicU64::new(stamp),
            },
        );
        while self.used > self.budget {
            let Some(v) = self.evict_one() else { break };
            evicted.push(v);
        }
        Inserted::Stored(evicted)
    }

    fn evict_one(&mut self) -> Option<V> {
        loop {
            let (stamp, key) = self.order.pop_first()?;
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            let last = slot.last_used.load(Ordering::Relaxed);
            if last != stamp {
                // Used since it was queued: it is younger than it looked.
                slot.queued = last;
                self.order.insert(last, key);
                continue;
            }
            let slot = self.map.remove(&key)?;
            self.used -= slot.weight;
            return Some(slot.value);
        }
    }

    /// Changes the budget, evicting what no longer fits.
    pub fn set_budget(&mut self, budget: usize) -> Vec<V> {
        self.budget = budget;
        let mut evicted = Vec::new();
        while self.used > self.budget {
            let Some(v) = self.evict_one() else { break };
            evicted.push(v);
        }
        evicted
    }

    /// Removes the entry for `key`.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.map.remove(key)?;
        if !slot.pinned {
            self.order.remove(&slot.queued);
            self.used -= slot.weight;
        }
        Some(slot.value)
    }

    /// Removes every entry, pinned ones too.
    pub fn clear(&mut self) -> Vec<V> {
        self.order.clear();
        self.used = 0;
        self.map.drain().map(|(_, s)| s.value).collect()
    }

    /// Bytes held by unpinned entries.
    pub fn used(&self) -> usize {
        self.used
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored<V>(i: Inserted<V>) -> Vec<V> {
        match i {
            Inserted::Stored(v) => v,
            Inserted::TooHeavy(_) => panic!("refused"),
        }
    }

    #[test]
    fn evicts_least_recently_used_first_until_the_budget_holds() {
        let mut c = ByteLru::new(100);
        for k in ["a", "b", "c"] {
            assert!(stored(c.insert(k.into(), k, 30, false)).is_empty());
        }
        c.get("a"); // b is now the oldest
        let gone = stored(c.insert("d".into(), "d", 30, false));
        assert_eq!(gone, ["b"]);
        assert_eq!(c.used(), 90);
        // One heavy entry pushes out as many as it needs, oldest first: c, then a.
        let gone = stored(c.insert("e".into(), "e", 60, false));
        assert_eq!(gone, ["c", "a"]);
        assert_eq!(c.used(), 90);
        assert!(c.contains("d") && c.contains("e"));
    }

    #[test]
    fn the_budget_holds_whatever_the_order_of_use() {
        let mut c = ByteLru::new(1000);
        for i in 0..500u64 {
            let key = format!("k{}", i % 97);
            if c.get(&key).is_none() {
                c.insert(key, i, 10 + (i as usize * 37) % 200, false);
            }
            assert!(c.used() <= c.budget(), "{} > {}", c.used(), c.budget());
            let sum: usize = c.map.values().filter(|s| !s.pinned).map(|s| s.weight).sum();
            assert_eq!(sum, c.used());
            assert_eq!(c.order.len(), c.map.len());
        }
    }

    #[test]
    fn pinned_entries_stay_and_do_not_count() {
        let mut c = ByteLru::new(50);
        c.insert("core".into(), 0, 1_000, true);
        c.insert("a".into(), 1, 40, false);
        let gone = stored(c.insert("b".into(), 2, 40, false));
        assert_eq!(gone, [1]);
        assert_eq!(c.used(), 40);
        assert_eq!(c.peek("core"), Some(&0));
        assert_eq!(c.remove("core"), Some(0));
        assert_eq!(c.used(), 40);
    }

    #[test]
    fn an_entry_heavier_than_the_budget_is_handed_back() {
        let mut c = ByteLru::new(50);
        c.insert("a".into(), 1, 40, false);
        assert!(matches!(
            c.insert("big".into(), 2, 51, false),
            Inserted::TooHeavy(2)
        ));
        assert_eq!(c.peek("a"), Some(&1), "nothing was evicted for it");
    }

    #[test]
    fn replacing_an_entry_reweighs_it() {
        let mut c = ByteLru::new(100);
        c.insert("a".into(), 1, 40, false);
        let gone = stored(c.insert("a".into(), 2, 70, false));
        assert_eq!(gone, [1]);
        assert_eq!(c.used(), 70);
        assert_eq!(c.len(), 1);
        assert_eq!(c.remove("a"), Some(2));
        assert_eq!(c.used(), 0);
        assert!(c.order.is_empty());
    }
}
