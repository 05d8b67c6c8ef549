//! The in-memory event store: thread-safe, for tests, examples and benchmarks. Nothing
//! survives the process.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::idempotency::IdempotencyRecord;
use crate::parked::ParkedEvent;
use crate::store::{AppendRequest, EventStore, rules};
use crate::store::{Snapshot, StoredEvent};
use crate::view::{
    Page, ProjectionBatch, ProjectionCheckpoint, ViewChange, ViewField, ViewQuery, ViewRecord,
    ViewStore,
};

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
    /// View records by (view type, view id).
    views: HashMap<StreamKey, ViewRecord>,
    checkpoints: HashMap<String, ProjectionCheckpoint>,
    /// Parked events by (projection, position).
    parked: std::collections::BTreeMap<(String, u64), ParkedEvent>,
    /// Idempotency records by (scope, key).
    idempotency: HashMap<StreamKey, IdempotencyRecord>,
}

impl Inner {
    fn apply_view_changes(&mut self, changes: Vec<ViewChange>) {
        for change in changes {
            match change {
                ViewChange::Upsert(record) => {
                    self.views
                        .insert((record.view_type.clone(), record.view_id.clone()), record);
                }
                ViewChange::Delete { view_type, view_id } => {
                    self.views.remove(&(view_type, view_id));
                }
            }
        }
    }

    /// The live record of `(scope, key)` at `now`.
    fn live_record(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Option<&IdempotencyRecord> {
        self.idempotency
            .get(&(scope.to_owned(), key.to_owned()))
            .filter(|record| record.is_live_at(now))
    }

    /// The stored checkpoint of `projection` (the start for one never run).
    fn checkpoint(&self, projection: &str) -> ProjectionCheckpoint {
        self.checkpoints
            .get(projection)
            .copied()
            .unwrap_or_default()
    }

    fn views_of(&self, view_type: &str) -> impl Iterator<Item = &ViewRecord> {
        self.views
            .values()
            .filter(move |r| r.view_type == view_type)
    }
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

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>> {
        rules::validate(&request)?;
        let key = (request.aggregate_type.clone(), request.aggregate_id.clone());
        let mut inner = self.write();
        let inner = &mut *inner;
        let current = inner.streams.get(&key).map_or(0, Vec::len) as u64;

        if let Some(first) = request.events.first()
            && let Some(&index) = inner.event_ids.get(&first.event_id)
        {
            // A retry of an append that already went through, or a clash.
            let at = &inner.log[index];
            let same_stream = at.aggregate_type == request.aggregate_type
                && at.aggregate_id == request.aggregate_id;
            let from = usize::try_from(at.version - 1).unwrap_or(usize::MAX);
            let stored: Vec<StoredEvent> = match inner.streams.get(&key) {
                Some(indexes) if same_stream => indexes
                    .iter()
                    .skip(from)
                    .take(request.events.len())
                    .map(|&i| inner.log[i].clone())
                    .collect(),
                _ => Vec::new(),
            };
            return rules::retry_of(&request, stored)
                .ok_or_else(|| rules::conflict(&request, Some(current)));
        }
        if let Some(record) = &request.idempotency
            && self_live(inner, record)
        {
            return Err(rules::key_taken(record));
        }
        rules::check_expected(&request, current)?;
        rules::check_snapshot_version(&request, current)?;
        if request
            .events
            .iter()
            .any(|event| inner.event_ids.contains_key(&event.event_id))
        {
            return Err(rules::conflict(&request, Some(current)));
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
        inner.apply_view_changes(request.view_changes);
        if let Some(record) = request.idempotency {
            inner
                .idempotency
                .insert((record.scope.clone(), record.key.clone()), record);
        }
        Ok(stored)
    }

    async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>> {
        Ok(self.read().live_record(scope, key, now).cloned())
    }

    async fn remember_idempotency(&self, record: IdempotencyRecord) -> Result<IdempotencyRecord> {
        let mut inner = self.write();
        if let Some(existing) = inner.live_record(&record.scope, &record.key, record.created_at) {
            return Ok(existing.clone());
        }
        inner
            .idempotency
            .insert((record.scope.clone(), record.key.clone()), record.clone());
        Ok(record)
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.write();
        let before = inner.idempotency.len();
        inner.idempotency.retain(|_, record| record.is_live_at(now));
        Ok((before - inner.idempotency.len()) as u64)
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

    fn known_stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Option<u64> {
        // Every write goes through this value: the answer is always exact, and takes no I/O.
        let key = (aggregate_type.to_owned(), aggregate_id.to_owned());
        Some(self.read().streams.get(&key).map_or(0, Vec::len) as u64)
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

    async fn head_position(&self) -> Result<u64> {
        Ok(self.read().log.len() as u64)
    }

    fn as_view_store(&self) -> Option<&dyn ViewStore> {
        Some(self)
    }

    fn into_view_store(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn ViewStore>> {
        Some(self)
    }
}

#[async_trait]
impl ViewStore for InMemoryEventStore {
    async fn get_view(&self, view_type: &str, view_id: &str) -> Result<Option<ViewRecord>> {
        Ok(self
            .read()
            .views
            .get(&(view_type.to_owned(), view_id.to_owned()))
            .cloned())
    }

    async fn list_views_of(&self, view_type: &str, aggregate_id: &str) -> Result<Vec<ViewRecord>> {
        let mut records: Vec<ViewRecord> = self
            .read()
            .views_of(view_type)
            .filter(|r| r.aggregate_id == aggregate_id)
            .cloned()
            .collect();
        records.sort_by(|a, b| a.view_id.cmp(&b.view_id));
        Ok(records)
    }

    async fn query_views(
        &self,
        view_type: &str,
        query: &ViewQuery,
        fields: &[ViewField],
    ) -> Result<Page<ViewRecord>> {
        query.validate(fields)?;
        let records: Vec<ViewRecord> = self.read().views_of(view_type).cloned().collect();
        query.apply_to(records)
    }

    async fn apply_projection(&self, batch: ProjectionBatch) -> Result<()> {
        let mut inner = self.write();
        let current = inner.checkpoint(&batch.projection);
        batch.expected.expect(&batch.projection, current)?;
        inner.apply_view_changes(batch.changes);
        inner.checkpoints.insert(
            batch.projection,
            ProjectionCheckpoint {
                position: batch.checkpoint,
                generation: current.generation,
            },
        );
        Ok(())
    }

    async fn projection_checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint> {
        Ok(self.read().checkpoint(projection))
    }

    async fn reset_projection(&self, projection: &str, view_types: &[&str]) -> Result<()> {
        let mut inner = self.write();
        inner
            .views
            .retain(|(view_type, _), _| !view_types.contains(&view_type.as_str()));
        inner.parked.retain(|(name, _), _| name != projection);
        let generation = inner
            .checkpoints
            .get(projection)
            .map_or(0, |c| c.generation)
            + 1;
        inner.checkpoints.insert(
            projection.to_owned(),
            ProjectionCheckpoint {
                position: 0,
                generation,
            },
        );
        Ok(())
    }

    async fn park_event(&self, expected: ProjectionCheckpoint, parked: ParkedEvent) -> Result<()> {
        let mut inner = self.write();
        let current = inner.checkpoint(&parked.projection);
        expected.expect(&parked.projection, current)?;
        inner.checkpoints.insert(
            parked.projection.clone(),
            ProjectionCheckpoint {
                position: parked.position,
                generation: current.generation,
            },
        );
        inner
            .parked
            .insert((parked.projection.clone(), parked.position), parked);
        Ok(())
    }

    async fn parked_events(&self, projection: &str) -> Result<Vec<ParkedEvent>> {
        Ok(self
            .read()
            .parked
            .values()
            .filter(|p| p.projection == projection)
            .cloned()
            .collect())
    }

    async fn unpark_event(&self, projection: &str, position: u64) -> Result<bool> {
        Ok(self
            .write()
            .parked
            .remove(&(projection.to_owned(), position))
            .is_some())
    }
}

/// Whether a live record holds `record`'s scope and key (live when `record` was made).
fn self_live(inner: &Inner, record: &IdempotencyRecord) -> bool {
    inner
        .live_record(&record.scope, &record.key, record.created_at)
        .is_some()
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
