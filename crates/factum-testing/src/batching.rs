//! Hot-aggregate batching, checked on any store: many tasks on one aggregate through one
//! engine end exact, each caller gets its own outcome, a refused command refuses only
//! itself, and the commands share appends.
//!
//! The store is wrapped in [`CountingStore`], which counts appends and holds each one for a
//! millisecond (a stand-in for an fsync), so that commands do wait on each other's appends
//! even on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test support: a failure is a test failure.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use factum_core::store::{AppendRequest, Snapshot, StoredEvent};
use factum_core::{
    CommandError, CqrsCommandEngine, CqrsContext, EventStore, Metadata, Result, SnapshotPolicy,
    ViewStore, async_trait,
};

use crate::counter::{Counter, CounterCommand};

/// An [`EventStore`] that counts the appends it passes on and holds each for `delay`.
pub struct CountingStore {
    inner: Arc<dyn EventStore>,
    appends: AtomicU64,
    delay: Duration,
}

impl CountingStore {
    /// Wraps `inner`; every append waits `delay` before it is passed on.
    pub fn new(inner: Arc<dyn EventStore>, delay: Duration) -> Self {
        Self {
            inner,
            appends: AtomicU64::new(0),
            delay,
        }
    }

    /// How many appends were passed on.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        self.inner
            .read_stream(aggregate_type, aggregate_id, from_version, limit)
            .await
    }
    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.inner.read_all(after_position, limit).await
    }
    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64> {
        self.inner
            .stream_version(aggregate_type, aggregate_id)
            .await
    }
    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(aggregate_type, aggregate_id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn head_position(&self) -> Result<u64> {
        self.inner.head_position().await
    }
    async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<factum_core::IdempotencyRecord>> {
        self.inner.find_idempotency(scope, key, now).await
    }
    async fn remember_idempotency(
        &self,
        record: factum_core::IdempotencyRecord,
    ) -> Result<factum_core::IdempotencyRecord> {
        self.inner.remember_idempotency(record).await
    }
    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64> {
        self.inner.purge_idempotency(now).await
    }
    fn as_view_store(&self) -> Option<&dyn ViewStore> {
        self.inner.as_view_store()
    }
}

/// `tasks` tasks each run `per_task` commands on one counter through one engine over
/// `store`; every `refuse_every`-th command of a task (if not 0) is one the counter
/// refuses, the others add 1 or record 2 steps. Checks every caller's own outcome and
/// metadata, the final state, and that the engine appended fewer times than it committed
/// commands.
pub async fn hot_aggregate(
    store: Arc<dyn EventStore>,
    tasks: usize,
    per_task: usize,
    refuse_every: usize,
) {
    let counting = Arc::new(CountingStore::new(store, Duration::from_millis(1)));
    let engine = CqrsCommandEngine::<Counter>::builder(counting.clone())
        .snapshot_policy(SnapshotPolicy::EveryNEvents(
            std::num::NonZeroU64::MIN.saturating_add(6),
        ))
        .build()
        .expect("engine");
    engine
        .create_with_id("hot", &(), &CqrsContext::new())
        .await
        .expect("created");
    let before = counting.appends();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            let mut refused = 0u64;
            for i in 0..per_task {
                let ctx = CqrsContext::new().with_request_id(format!("req-{task}-{i}"));
                let command = if refuse_every > 0 && i % refuse_every == refuse_every - 1 {
                    CounterCommand::Refuse
                } else if i % 3 == 0 {
                    CounterCommand::Steps(2)
                } else {
                    CounterCommand::Add(1)
                };
                match (engine.update("hot", &command, &ctx).await, &command) {
                    (Err(CommandError::Domain(_)), CounterCommand::Refuse) => refused += 1,
                    (Ok(outcome), CounterCommand::Add(_) | CounterCommand::Steps(_)) => {
                        let expected_events = if command == CounterCommand::Steps(2) {
                            2
                        } else {
                            1
                        };
                        assert_eq!(outcome.events.len(), expected_events, "its own events");
                        for (offset, event) in outcome.events.iter().enumerate() {
                            assert_eq!(
                                event.version,
                                outcome.version - (expected_events - 1 - offset) as u64,
                                "its events end at its version"
                            );
                            assert_eq!(
                                event.metadata.request_id.as_deref(),
                                Some(format!("req-{task}-{i}").as_str()),
                                "each event keeps its own command's metadata"
                            );
                        }
                        committed.push((outcome.version, expected_events as u64, ctx));
                    }
                    (other, command) => panic!("{command:?} answered {other:?}"),
                }
            }
            (committed, refused)
        }));
    }
    let (mut commands, mut events, mut refused) = (0u64, 0u64, 0u64);
    let mut versions = HashSet::new();
    let mut request_ids = std::collections::HashMap::new();
    for handle in handles {
        let (committed, task_refused) = handle.await.expect("task");
        refused += task_refused;
        for (version, count, ctx) in committed {
            commands += 1;
            events += count;
            for v in version + 1 - count..=version {
                assert!(versions.insert(v), "version {v} answered twice");
                request_ids.insert(v, ctx.request_id().to_owned());
            }
        }
    }
    if let Some(per) = per_task.checked_div(refuse_every) {
        assert_eq!(refused, (tasks * per) as u64);
    }
    let loaded = engine.load("hot").await.expect("load").expect("exists");
    assert_eq!(loaded.state.total, events, "no lost or doubled update");
    assert_eq!(loaded.version, 1 + events);
    assert_eq!(versions.len() as u64, events, "every version answered once");
    // What is stored is what each caller was told, with its own metadata.
    let stored = counting
        .read_stream("counter", "hot", 2, None)
        .await
        .expect("read");
    assert_eq!(stored.len() as u64, events);
    for event in &stored {
        let metadata: Metadata = serde_json::from_str(&event.metadata).expect("metadata");
        assert_eq!(
            metadata.request_id.as_ref(),
            request_ids.get(&event.version),
            "event {} was stored with its command's metadata",
            event.version
        );
    }
    // A fresh engine (no cache) reads the same state from the snapshot and the events.
    let fresh = CqrsCommandEngine::<Counter>::builder(counting.clone())
        .snapshot_policy(SnapshotPolicy::EveryNEvents(
            std::num::NonZeroU64::MIN.saturating_add(6),
        ))
        .cache_capacity(0)
        .build()
        .expect("engine");
    let reloaded = fresh.load("hot").await.expect("load").expect("exists");
    assert_eq!(
        (reloaded.state.total, reloaded.version),
        (events, 1 + events)
    );
    let appends = counting.appends() - before;
    assert!(
        appends < commands,
        "{commands} commands on one aggregate took {appends} appends: none were batched"
    );
}

/// One engine per store of `stores` (stores on one database stand for processes), `tasks`
/// tasks per engine, each adding 1 `per_task` times to one counter, retries bounded by
/// `retry_for`. Checks that no command gave up and the total is exact; returns how many
/// appends conflicted.
pub async fn engines_share_one_aggregate(
    stores: Vec<Arc<dyn EventStore>>,
    tasks: usize,
    per_task: usize,
    retry_for: Duration,
) -> u64 {
    let engines: Vec<_> = stores
        .into_iter()
        .map(|store| {
            CqrsCommandEngine::<Counter>::builder(store)
                .retry_for(retry_for)
                .build()
                .expect("engine")
        })
        .collect();
    let first = engines.first().expect("at least one store").clone();
    first
        .create_with_id("shared", &(), &CqrsContext::new())
        .await
        .expect("created");
    let mut handles = Vec::new();
    for engine in &engines {
        for _ in 0..tasks {
            let engine = engine.clone();
            handles.push(tokio::spawn(async move {
                let mut gave_up = 0u64;
                for _ in 0..per_task {
                    match engine
                        .update("shared", &CounterCommand::Add(1), &CqrsContext::new())
                        .await
                    {
                        Ok(_) => {}
                        Err(CommandError::TooManyConflicts { .. }) => gave_up += 1,
                        Err(other) => panic!("a deposit failed: {other}"),
                    }
                }
                gave_up
            }));
        }
    }
    let mut gave_up = 0;
    for handle in handles {
        gave_up += handle.await.expect("task");
    }
    assert_eq!(gave_up, 0, "commands gave up on conflicts");
    let total = (engines.len() * tasks * per_task) as u64;
    let loaded = first.load("shared").await.expect("load").expect("exists");
    assert_eq!((loaded.state.total, loaded.version), (total, total + 1));
    engines.iter().map(CqrsCommandEngine::conflicts).sum()
}
