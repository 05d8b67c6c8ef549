//! A map of async mutexes, one per key, that frees a key's entry when nobody holds or waits
//! for it. The engine uses it so that, within one process, commands on one aggregate run one
//! after the other (and never conflict with each other), while different aggregates never wait.
//! The HTTP layer uses it so that a repeat of an idempotency key waits for the first request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Slots = Mutex<HashMap<String, Arc<AsyncMutex<()>>>>;

/// A map of async mutexes, one per key; an entry lives only while someone holds or waits
/// for its key.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let locks = factum_core::KeyedLock::default();
/// let a = locks.lock("a").await;
/// let b = locks.lock("b").await; // another key: no waiting
/// drop((a, b));
/// # });
/// ```
#[derive(Default)]
pub struct KeyedLock {
    slots: Arc<Slots>,
}

/// Holds one key of a [`KeyedLock`] until dropped.
pub struct KeyedGuard {
    key: String,
    slot: Arc<AsyncMutex<()>>,
    slots: Arc<Slots>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLock {
    /// Waits until nobody else holds `key`, then holds it.
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.to_owned()).or_default().clone()
        };
        let guard = slot.clone().lock_owned().await;
        KeyedGuard {
            key: key.to_owned(),
            slot,
            slots: self.slots.clone(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl std::fmt::Debug for KeyedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLock").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KeyedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Drop for KeyedGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Two references left (the map's and ours): nobody else holds or waits for the key.
        // New waiters clone under the map lock, which we hold, so this cannot race.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_freed_and_keys_are_exclusive() {
        let lock = Arc::new(KeyedLock::default());
        let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (lock, counter) = (lock.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let _g = lock.lock("k").await;
                    let before = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(before, 0, "two holders of one key at once");
                    tokio::task::yield_now().await;
                    counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(lock.len(), 0);
        let _a = lock.lock("a").await;
        let _b = lock.lock("b").await; // different keys never wait on each other
        assert_eq!(lock.len(), 2);
    }
}
