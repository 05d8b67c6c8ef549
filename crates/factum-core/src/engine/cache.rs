//! The engine's state cache: the latest state this process knows of each aggregate, least
//! recently used first out, bounded by entries and by bytes, with hit and miss counts.
//!
//! A stale entry is harmless for commands (their append conflicts and they decide again);
//! reads use an entry only when the store confirms its version (see `load`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::outcome::LoadedAggregate;

/// What the state cache holds and how it has served, from
/// [`CqrsCommandEngine::cache_stats`](super::CqrsCommandEngine::cache_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Aggregates held.
    pub entries: usize,
    /// Their size, as the JSON bytes of their keys and states (each state measured when it
    /// comes in and every 32 versions after; 0 when the cache has no byte bound).
    pub bytes: usize,
    /// Lookups that found the aggregate.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries dropped to stay within the bounds.
    pub evictions: u64,
}

/// How many versions a cached state's measured size stands for before it is measured again.
pub(super) const REMEASURE_EVERY: u64 = 32;

struct Slot<A> {
    loaded: LoadedAggregate<A>,
    bytes: usize,
    /// The version whose state `bytes` was measured on (`None`: not counted).
    measured_at: Option<u64>,
    used: u64,
}

/// A least-recently-used map of aggregate states.
pub(super) struct StateCache<A> {
    max_entries: usize,
    max_bytes: usize,
    slots: HashMap<Arc<str>, Slot<A>>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    clock: u64,
    stats: CacheStats,
}

impl<A: Clone + Serialize> StateCache<A> {
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            slots: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            stats: CacheStats::default(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The entry of `key`, marked as just used.
    pub(super) fn get(&mut self, key: &str) -> Option<LoadedAggregate<A>> {
        let now = self.tick();
        let Some(slot) = self.slots.get_mut(key) else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.hits += 1;
        if let Some(name) = self.order.remove(&slot.used) {
            self.order.insert(now, name);
        }
        slot.used = now;
        Some(slot.loaded.clone())
    }

    /// Keeps `state` at `version` for `key`, then evicts the least recently used entries
    /// until both bounds hold (a state larger than the byte bound is not kept).
    ///
    /// A state's size is measured (serialized to a counter) when its key comes in and again
    /// every [`REMEASURE_EVERY`] versions; in between the last measurement stands, so a
    /// command does not pay a full serialization only to count bytes. With no byte bound
    /// (`usize::MAX`) nothing is measured.
    pub(super) fn put(&mut self, key: &str, state: &A, version: u64) {
        if self.max_entries == 0 {
            return;
        }
        let now = self.tick();
        let counting = self.max_bytes != usize::MAX;
        if let Some(slot) = self.slots.get_mut(key) {
            // In place: the key's allocation and its map entry are kept.
            let remeasure = counting
                && slot
                    .measured_at
                    .is_none_or(|at| version.abs_diff(at) >= REMEASURE_EVERY);
            let bytes = if remeasure {
                slot.measured_at = Some(version);
                measure(key, state)
            } else {
                slot.bytes
            };
            if bytes > self.max_bytes {
                self.remove(key);
                return;
            }
            if let Some(name) = self.order.remove(&slot.used) {
                self.order.insert(now, name);
            }
            self.stats.bytes = self.stats.bytes - slot.bytes + bytes;
            slot.bytes = bytes;
            slot.used = now;
            slot.loaded.state.clone_from(state);
            slot.loaded.version = version;
        } else {
            let bytes = if counting { measure(key, state) } else { 0 };
            if bytes > self.max_bytes {
                return;
            }
            let name: Arc<str> = Arc::from(key);
            self.order.insert(now, name.clone());
            self.slots.insert(
                name,
                Slot {
                    loaded: LoadedAggregate {
                        state: state.clone(),
                        version,
                    },
                    bytes,
                    measured_at: counting.then_some(version),
                    used: now,
                },
            );
            self.stats.bytes += bytes;
        }
        while self.slots.len() > self.max_entries || self.stats.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&oldest) {
                self.stats.bytes -= slot.bytes;
                self.stats.evictions += 1;
            }
        }
        self.stats.entries = self.slots.len();
    }

    /// [`put`](Self::put), unless the entry of `key` is at `version` or newer already.
    pub(super) fn put_newer(&mut self, key: &str, state: &A, version: u64) {
        if self
            .slots
            .get(key)
            .is_none_or(|slot| slot.loaded.version < version)
        {
            self.put(key, state, version);
        }
    }

    pub(super) fn remove(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.used);
            self.stats.bytes -= slot.bytes;
            self.stats.entries = self.slots.len();
        }
    }

    pub(super) fn stats(&self) -> CacheStats {
        self.stats
    }
}

/// What an entry counts against the byte bound: its key and its state's JSON.
fn measure(key: &str, state: &impl Serialize) -> usize {
    json_size(state).saturating_add(key.len())
}

/// How many bytes `value` takes as JSON, without building the text.
fn json_size(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A state that does not serialize counts as nothing here; its snapshot reports it.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first_within_entries_and_bytes() {
        let mut cache = StateCache::<String>::new(2, 1_000);
        cache.put("a", &"1".to_owned(), 1);
        cache.put("b", &"2".to_owned(), 1);
        assert!(cache.get("a").is_some()); // b is now the oldest
        cache.put("c", &"3".to_owned(), 1);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").map(|l| l.state), Some("1".to_owned()));
        assert!(cache.get("c").is_some());
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.evictions), (2, 1));
        assert_eq!((stats.hits, stats.misses), (3, 1));

        // By bytes: each entry is its key plus its JSON ("\"xxxx\"": 6 bytes).
        let mut small = StateCache::<String>::new(100, 15);
        small.put("a", &"xxxx".to_owned(), 1);
        small.put("b", &"yyyy".to_owned(), 1);
        small.put("c", &"zzzz".to_owned(), 1);
        assert_eq!(small.stats().entries, 2);
        assert!(small.stats().bytes <= 15);
        assert!(small.get("a").is_none());
        // Too large for the bound on its own: not kept, nothing else lost.
        small.put("d", &"x".repeat(100), 1);
        assert!(small.get("d").is_none());
        assert_eq!(small.stats().entries, 2);
        small.put_newer("b", &"old".to_owned(), 0);
        assert_eq!(small.get("b").map(|l| l.state), Some("yyyy".to_owned()));
        small.put_newer("b", &"new".to_owned(), 2);
        assert_eq!(
            small.get("b").map(|l| (l.state, l.version)),
            Some(("new".to_owned(), 2))
        );
        small.remove("b");
        assert_eq!(small.stats().entries, 1);
    }

    #[test]
    fn sizes_are_measured_on_arrival_and_every_few_versions_and_not_without_a_bound() {
        let mut cache = StateCache::<String>::new(10, 1_000);
        cache.put("a", &"xx".to_owned(), 1);
        assert_eq!(cache.stats().bytes, 1 + 4);
        // Within REMEASURE_EVERY versions the first measurement stands ...
        cache.put("a", &"x".repeat(20), 2);
        assert_eq!(cache.stats().bytes, 1 + 4);
        assert_eq!(cache.get("a").map(|l| l.state.len()), Some(20));
        // ... and then the state is measured again.
        cache.put("a", &"x".repeat(20), 1 + REMEASURE_EVERY);
        assert_eq!(cache.stats().bytes, 1 + 22);

        let mut unbounded = StateCache::<String>::new(10, usize::MAX);
        unbounded.put("a", &"xx".to_owned(), 1);
        unbounded.put("a", &"xxx".to_owned(), 2);
        assert_eq!((unbounded.stats().entries, unbounded.stats().bytes), (1, 0));
    }
}
