//! The in-memory event store: thread-safe, for tests, examples and benchmarks. Nothing
//! survives the process.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use uuid::Uuid;

use crate::envelope::{Snapshot, StoredEvent};
use crate::error::{Error, Result};
use crate::store::{AppendRequest, EventStore};

type StreamKey = (String, String);

#[derive(Default)]
struct Inner {
    /// Every event in position order; position `p` is at index `p - 1`.
    log: Vec<StoredEvent>,
    /// Indexes into `log` of each stream's events, in version order.
    streams: HashMap<StreamKey, Vec<usize>>,
    /// Which stream each event id belongs to, and at which index of `log`.
    event_ids: HashMap<Uuid, usize>,
    snapshots: HashMap<StreamKey, Snapshot>,
}

/// A thread-safe in-memory [`EventStore`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use factum_core::{EventStore, InMemoryEventStore};
/// let store = InMemoryEventStore::new();
/// assert_eq!(store.stream_version("account", "a-1").await.unwrap(), 0);
/// assert!(store.read_all(0, 10).await.unwrap().is_empty());
/// # });
/// ```
#[derive(Default)]
pub struct InMemoryEventStore {
    inner: RwLock<Inner>,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn conflict(request: &AppendRequest, actual: u64) -> Error {
    Error::Conflict {
        aggregate_type: request.aggregate_type.clone(),
        aggregate_id: request.aggregate_id.clone(),
        expected: request.expected,
        actual: Some(actual),
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>> {
        let key = (request.aggregate_type.clone(), request.aggregate_id.clone());
        let mut inner = self.write();
        let inner = &mut *inner;
        let current = inner.streams.get(&key).map_or(0, Vec::len) as u64;

        if let Some(first) = request.events.first() {
            if let Some(&index) = inner.event_ids.get(&first.event_id) {
                // A retry of an append that already went through, or a clash.
                let stored = &inner.log[index];
                let same_stream = stored.aggregate_type == request.aggregate_type
                    && stored.aggregate_id == request.aggregate_id;
                let first_version = stored.version;
                let replay: Option<Vec<StoredEvent>> = same_stream
                    .then(|| {
                        let indexes = inner.streams.get(&key)?;
                        request
                            .events
                            .iter()
                            .enumerate()
                            .map(|(offset, event)| {
                                let at = usize::try_from(first_version - 1).ok()? + offset;
                                let stored = &inner.log[*indexes.get(at)?];
                                (stored.event_id == event.event_id).then(|| stored.clone())
                            })
                            .collect()
                    })
                    .flatten();
                return replay.ok_or_else(|| conflict(&request, current));
            }
        }
        if !request.expected.is_satisfied_by(current) {
            return Err(conflict(&request, current));
        }
        let mut batch_ids = std::collections::HashSet::new();
        for event in &request.events {
            if inner.event_ids.contains_key(&event.event_id) || !batch_ids.insert(event.event_id) {
                return Err(conflict(&request, current));
            }
        }

        let mut stored = Vec::with_capacity(request.events.len());
        for (offset, event) in request.events.into_iter().enumerate() {
            let index = inner.log.len();
            let record = StoredEvent {
                position: index as u64 + 1,
                event_id: event.event_id,
                aggregate_type: request.aggregate_type.clone(),
                aggregate_id: request.aggregate_id.clone(),
                version: current + offset as u64 + 1,
                event_type: event.event_type,
                schema_version: event.schema_version,
                payload: event.payload,
                metadata: event.metadata,
                recorded_at: event.recorded_at,
            };
            inner.event_ids.insert(record.event_id, index);
            inner.streams.entry(key.clone()).or_default().push(index);
            inner.log.push(record.clone());
            stored.push(record);
        }
        if let Some(snapshot) = request.snapshot {
            save_if_newer(&mut inner.snapshots, snapshot);
        }
        Ok(stored)
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let inner = self.read();
        let key = (aggregate_type.to_owned(), aggregate_id.to_owned());
        let Some(indexes) = inner.streams.get(&key) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(indexes
            .iter()
            .skip(skip)
            .take(limit.unwrap_or(usize::MAX))
            .map(|&index| inner.log[index].clone())
            .collect())
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let inner = self.read();
        let skip = usize::try_from(after_position).unwrap_or(usize::MAX);
        Ok(inner.log.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64> {
        let key = (aggregate_type.to_owned(), aggregate_id.to_owned());
        Ok(self.read().streams.get(&key).map_or(0, Vec::len) as u64)
    }

    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>> {
        let key = (aggregate_type.to_owned(), aggregate_id.to_owned());
        Ok(self.read().snapshots.get(&key).cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        save_if_newer(&mut self.write().snapshots, snapshot);
        Ok(())
    }
}

fn save_if_newer(snapshots: &mut HashMap<StreamKey, Snapshot>, snapshot: Snapshot) {
    let key = (
        snapshot.aggregate_type.clone(),
        snapshot.aggregate_id.clone(),
    );
    match snapshots.get(&key) {
        Some(existing) if existing.version > snapshot.version => {}
        _ => {
            snapshots.insert(key, snapshot);
        }
    }
}
