//! An event store that fails as told: the failures a real backend reports when its server or
//! file goes away, for tests of what a service answers then (a backend's own tests produce
//! the same failures from a real server or file). It wraps an in-memory store, or any store
//! with its appends held a while and counted (a slow disk's stand-in, for batching tests).
//! It passes on events only, no views.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use factum_core::store::{AppendRequest, Snapshot, StoredEvent};
use factum_core::{Error, EventStore, InMemoryEventStore, Result, async_trait};

/// How a [`FaultyStore`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// It does not fail.
    None = 0,
    /// Every call fails with a store error whose text holds internals a client must not see
    /// (a path, SQL); the health check answers unavailable.
    Broken = 1,
    /// The health check answers unavailable (the server refuses connections); the other calls
    /// still work.
    Unreachable = 2,
    /// The health check answers that the store is full.
    Full = 3,
    /// The health check never answers.
    Hanging = 4,
}

/// An event store that fails as its [`Fault`] says.
pub struct FaultyStore {
    inner: Arc<dyn EventStore>,
    fault: AtomicU8,
    append_delay: Duration,
    appends: AtomicU64,
}

impl Default for FaultyStore {
    fn default() -> Self {
        Self::over(Arc::new(InMemoryEventStore::new()), Duration::ZERO)
    }
}

impl FaultyStore {
    /// An in-memory store that does not fail until told to.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps `inner`: every append waits `append_delay` before it is passed on.
    pub fn over(inner: Arc<dyn EventStore>, append_delay: Duration) -> Self {
        Self {
            inner,
            fault: AtomicU8::new(Fault::None as u8),
            append_delay,
            appends: AtomicU64::new(0),
        }
    }

    /// How many appends were passed on.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// Fails from now on as `fault` says.
    pub fn fail(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    fn fault(&self) -> Fault {
        match self.fault.load(Ordering::SeqCst) {
            1 => Fault::Broken,
            2 => Fault::Unreachable,
            3 => Fault::Full,
            4 => Fault::Hanging,
            _ => Fault::None,
        }
    }

    fn check(&self) -> Result<()> {
        if self.fault() == Fault::Broken {
            Err(Error::store(std::io::Error::other(
                "/srv/secret/events.db: disk I/O error in SELECT * FROM events",
            )))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl EventStore for FaultyStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>> {
        self.check()?;
        self.appends.fetch_add(1, Ordering::SeqCst);
        if !self.append_delay.is_zero() {
            tokio::time::sleep(self.append_delay).await;
        }
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        t: &str,
        id: &str,
        from: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        self.check()?;
        self.inner.read_stream(t, id, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.check()?;
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, t: &str, id: &str) -> Result<u64> {
        self.check()?;
        self.inner.stream_version(t, id).await
    }
    async fn load_snapshot(&self, t: &str, id: &str) -> Result<Option<Snapshot>> {
        self.check()?;
        self.inner.load_snapshot(t, id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.check()?;
        self.inner.save_snapshot(snapshot).await
    }
    async fn head_position(&self) -> Result<u64> {
        self.check()?;
        self.inner.head_position().await
    }
    async fn health_check(&self) -> Result<()> {
        match self.fault() {
            Fault::None => Ok(()),
            Fault::Broken | Fault::Unreachable => Err(Error::Unavailable(
                "connection refused by 10.0.0.7:5432".into(),
            )),
            Fault::Full => Err(Error::StoreFull(
                "/srv/bank.db: database or disk is full".into(),
            )),
            Fault::Hanging => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_fails_as_told_and_recovers() {
        let store = FaultyStore::new();
        store.health_check().await.unwrap();
        store.fail(Fault::Broken);
        assert!(matches!(store.head_position().await, Err(Error::Store(_))));
        assert!(matches!(
            store.health_check().await,
            Err(Error::Unavailable(_))
        ));
        store.fail(Fault::Full);
        assert_eq!(store.head_position().await.unwrap(), 0);
        assert!(matches!(
            store.health_check().await,
            Err(Error::StoreFull(_))
        ));
        store.fail(Fault::None);
        store.health_check().await.unwrap();
        assert!(store.as_view_store().is_none(), "events only");
    }
}
