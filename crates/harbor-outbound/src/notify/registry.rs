//! A bounded map of per-endpoint resources (permit pools, broker connections). When it is full it
//! forgets the least recently used entry that nobody holds, so a broker that notifies many
//! endpoints over its life keeps a fixed amount of state.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

pub(crate) struct Registry<K, V> {
    cap: usize,
    entries: Mutex<HashMap<K, Slot<V>>>,
}

struct Slot<V> {
    value: Arc<V>,
    used: Instant,
}

impl<K: Eq + Hash + Clone, V> Registry<K, V> {
    pub fn new(cap: usize) -> Self {
        Registry {
            cap: cap.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry for `key`. `make` builds it when it is missing, or when `usable` says the stored
    /// one is spent. `None` when the map is full and every entry is held by someone.
    ///
    /// An entry is held while an `Arc` to it exists outside the map. Clones are only made here,
    /// under the lock, so an entry seen unheld cannot be picked up while it is being dropped.
    pub fn get(
        &self,
        key: &K,
        usable: impl FnOnce(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> Option<Arc<V>> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if let Some(slot) = entries.get_mut(key) {
            if !usable(&slot.value) {
                slot.value = Arc::new(make());
            }
            slot.used = now;
            return Some(slot.value.clone());
        }
        if entries.len() >= self.cap {
            let unheld = entries
                .iter()
                .filter(|(_, slot)| Arc::strong_count(&slot.value) == 1)
                .min_by_key(|(_, slot)| slot.used)
                .map(|(k, _)| k.clone())?;
            entries.remove(&unheld);
        }
        let value = Arc::new(make());
        entries.insert(
            key.clone(),
            Slot {
                value: value.clone(),
                used: now,
            },
        );
        Some(value)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_forgets_the_least_recently_used_unheld_entry() {
        let r: Registry<&str, String> = Registry::new(2);
        let a = r.get(&"a", |_| true, || "a1".into()).unwrap();
        drop(r.get(&"b", |_| true, || "b1".into()).unwrap());
        drop(a);
        // Both unheld; "a" was used first, so it goes.
        drop(r.get(&"c", |_| true, || "c1".into()).unwrap());
        assert_eq!(r.len(), 2);
        assert_eq!(*r.get(&"b", |_| true, || "b2".into()).unwrap(), "b1");
        assert_eq!(*r.get(&"a", |_| true, || "a2".into()).unwrap(), "a2");
    }

    #[test]
    fn held_entries_are_never_forgotten_and_a_full_registry_says_so() {
        let r: Registry<&str, String> = Registry::new(2);
        let a = r.get(&"a", |_| true, || "a".into()).unwrap();
        let b = r.get(&"b", |_| true, || "b".into()).unwrap();
        assert!(r.get(&"c", |_| true, || "c".into()).is_none());
        drop(b);
        assert!(r.get(&"c", |_| true, || "c".into()).is_some());
        assert_eq!(*r.get(&"a", |_| true, || "other".into()).unwrap(), *a);
    }

    #[test]
    fn a_spent_entry_is_replaced_in_place() {
        let r: Registry<&str, String> = Registry::new(1);
        drop(r.get(&"a", |_| true, || "old".into()).unwrap());
        let fresh = r.get(&"a", |v| v != "old", || "new".into()).unwrap();
        assert_eq!(*fresh, "new");
        assert_eq!(r.len(), 1);
    }
}
