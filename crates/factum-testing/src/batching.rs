//! Hot-aggregate batching, checked on any store: many tasks on one aggregate through one
//! engine end exact, each caller gets its own outcome, a refused command refuses only
//! itself, and the commands share appends.
//!
//! The store is wrapped in a [`FaultyStore`] that counts appends and holds each one for a
//! millisecond (a stand-in for an fsync), so that commands do wait on each other's appends
//! even on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test support: a failure is a test failure.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use factum_core::{
    CommandError, CqrsCommandEngine, CqrsContext, EventStore, Metadata, SnapshotPolicy,
};

use crate::counter::{Counter, CounterCommand};
use crate::faulty::FaultyStore;

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
    let counting = Arc::new(FaultyStore::over(store, Duration::from_millis(1)));
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
