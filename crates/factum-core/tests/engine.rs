//! The engine's behaviour on the in-memory store: ids, snapshots, time travel, upcasting,
//! dispatchers, explicit expected versions, context in metadata; on the bar tabs of
//! `factum-testing`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use factum_core::store::{AppendRequest, NewEvent, Snapshot};
use factum_core::*;
use factum_testing::views::{Tab, TabCommand, TabError, TabEvent};

fn add(price: i64) -> TabCommand {
    TabCommand::Add {
        name: format!("item {price}"),
        price,
    }
}

fn store() -> Arc<InMemoryEventStore> {
    Arc::new(InMemoryEventStore::new())
}

/// Opens tab `t-1` (version 1) with a plain context, and returns the context.
async fn create_t1(engine: &CqrsCommandEngine<Tab>) -> CqrsContext {
    let ctx = CqrsContext::new();
    engine
        .create_with_id("t-1", &"a".to_owned(), &ctx)
        .await
        .unwrap();
    ctx
}

/// An engine on a fresh store where tab `t-1` is open, and a plain context.
async fn with_tab() -> (CqrsCommandEngine<Tab>, CqrsContext) {
    let engine = CqrsCommandEngine::<Tab>::new(store(), ());
    let ctx = create_t1(&engine).await;
    (engine, ctx)
}

#[tokio::test]
async fn create_generates_ids_and_records_the_context() {
    let clock = Arc::new(ManualClock::new(
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
    ));
    let ctx = CqrsContext::new()
        .with_user("alice")
        .with_request_id("req-1")
        .with_correlation_id("corr-1")
        .with_causation_id("cmd-1")
        .with_metadata("ip", "10.1.2.3")
        .with_clock(clock.clone())
        .with_id_source(Arc::new(SequentialIds::default()));
    let engine = CqrsCommandEngine::<Tab>::new(store(), ());
    let created = engine.create(&"alice".to_owned(), &ctx).await.unwrap();
    assert_eq!(created.aggregate_id, "00000000-0000-0000-0000-000000000001");
    assert_eq!(created.version, 1);
    let event = &created.events[0];
    assert_eq!(event.event_id.as_u128(), 2);
    assert_eq!(event.recorded_at, clock.now());
    assert_eq!(event.metadata.user_id.as_deref(), Some("alice"));
    assert_eq!(event.metadata.request_id.as_deref(), Some("req-1"));
    assert_eq!(event.metadata.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(event.metadata.causation_id.as_deref(), Some("cmd-1"));
    assert_eq!(
        event.metadata.extra.get("ip"),
        Some(&serde_json::json!("10.1.2.3"))
    );
    let history = engine.events(&created.aggregate_id, 1, None).await.unwrap();
    assert_eq!(
        history[0].metadata, event.metadata,
        "the metadata is stored, not just returned"
    );
}

#[tokio::test]
async fn a_derived_id_makes_a_repeated_create_a_conflict() {
    let engine = CqrsCommandEngine::<Tab>::builder(store())
        .id_generator(FnIdGenerator::new(|owner: &String, _: &CqrsContext| {
            Ok(format!("owner_{owner}"))
        }))
        .build()
        .unwrap();
    let ctx = CqrsContext::new();
    let bob = "bob".to_owned();
    let first = engine.create(&bob, &ctx).await.unwrap();
    assert_eq!(first.aggregate_id, "owner_bob");
    let again = engine.create(&bob, &ctx).await.unwrap_err();
    assert!(
        matches!(again, CommandError::AlreadyExists { .. }),
        "{again:?}"
    );
    assert_eq!(again.status(), 409);
    assert_eq!(
        engine
            .store()
            .stream_version("tab", "owner_bob")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn updates_report_typed_domain_errors_and_store_nothing() {
    let (engine, ctx) = with_tab().await;
    let remove = TabCommand::Remove { item_id: 9 };
    let err = engine.update("t-1", &remove, &ctx).await.unwrap_err();
    assert_eq!(
        err.domain_error(),
        Some(&TabError::NoSuchItem { item_id: 9 })
    );
    assert_eq!(err.to_cqrs_error().internal_code, 77_001);
    let missing = engine.update("t-404", &add(1), &ctx).await.unwrap_err();
    assert_eq!(missing.code(), "TAB_MISSING");
    assert_eq!(missing.status(), 404);
    let odd = engine.update("bad id", &add(1), &ctx).await.unwrap_err();
    assert!(matches!(odd, CommandError::Validation(_)));
    assert_eq!(
        engine.store().stream_version("tab", "t-1").await.unwrap(),
        1
    );
}

#[tokio::test]
async fn explicit_expected_version_is_checked_not_retried() {
    let (engine, ctx) = with_tab().await;
    let ok = engine
        .update_at_version("t-1", 1, &add(5), &ctx)
        .await
        .unwrap();
    assert_eq!(ok.version, 2);
    let stale = engine
        .update_at_version("t-1", 1, &add(5), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            CommandError::Conflict {
                actual: Some(2),
                ..
            }
        ),
        "{stale:?}"
    );
    assert_eq!(
        engine.store().stream_version("tab", "t-1").await.unwrap(),
        2
    );
}

#[tokio::test]
async fn snapshots_follow_the_policy_and_loading_uses_them() {
    for (policy, expected_snapshot) in [
        (SnapshotPolicy::EveryCommand, Some(7)),
        (
            SnapshotPolicy::EveryNEvents(NonZeroU64::new(3).unwrap()),
            Some(6),
        ),
        (SnapshotPolicy::Never, None),
    ] {
        let store = store();
        let engine = CqrsCommandEngine::<Tab>::builder(store.clone())
            .config(
                EngineConfig::default()
                    .with_snapshot_policy(policy)
                    .with_state_cache_capacity(0),
            )
            .build()
            .unwrap();
        let ctx = create_t1(&engine).await;
        for n in 1..=6 {
            engine.update("t-1", &add(n), &ctx).await.unwrap();
        }
        let snapshot = store.load_snapshot("tab", "t-1").await.unwrap();
        assert_eq!(
            snapshot.as_ref().map(|s| s.version),
            expected_snapshot,
            "{policy:?}"
        );
        let loaded = engine.load("t-1").await.unwrap().unwrap();
        assert_eq!(
            (loaded.state.total(), loaded.version),
            (21, 7),
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn an_unreadable_snapshot_falls_back_to_events() {
    let store = store();
    let engine = CqrsCommandEngine::<Tab>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand))
        .build()
        .unwrap();
    let ctx = create_t1(&engine).await;
    engine.update("t-1", &add(4), &ctx).await.unwrap();
    store
        .save_snapshot(Snapshot {
            aggregate_type: "tab".into(),
            aggregate_id: "t-1".into(),
            version: 9,
            state: r#"{"an old shape": true}"#.into(),
            taken_at: Utc::now(),
        })
        .await
        .unwrap();
    let loaded = engine.load("t-1").await.unwrap().unwrap();
    assert_eq!((loaded.state.total(), loaded.version), (4, 2));
}

#[tokio::test]
async fn time_travel_returns_past_states() {
    let engine = CqrsCommandEngine::<Tab>::builder(store())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand))
        .build()
        .unwrap();
    let ctx = create_t1(&engine).await;
    for n in [10, 20, 30] {
        engine.update("t-1", &add(n), &ctx).await.unwrap();
    }
    let at2 = engine.load_at_version("t-1", 2).await.unwrap();
    assert_eq!((at2.state.total(), at2.version), (10, 2));
    let at4 = engine.load_at_version("t-1", 4).await.unwrap();
    assert_eq!(at4.state.total(), 60);
    assert!(matches!(
        engine.load_at_version("t-1", 0).await,
        Err(Error::Validation(_))
    ));
    let beyond = engine.load_at_version("t-1", 5).await.unwrap_err();
    assert!(
        matches!(
            beyond,
            Error::VersionNotFound {
                requested: 5,
                current: 4,
                ..
            }
        ),
        "{beyond:?}"
    );
    assert_eq!(beyond.status(), 404);
    assert_eq!(
        engine
            .load_at_version("nobody", 1)
            .await
            .unwrap_err()
            .code(),
        "TAB_MISSING"
    );
}

#[tokio::test]
async fn old_events_are_upcast_when_loading() {
    let store = store();
    // Schema 1 of `ItemAdded` stored `cents`; the current schema 2 calls it `price`.
    store
        .append(AppendRequest {
            aggregate_type: "tab".into(),
            aggregate_id: "t-old".into(),
            expected: ExpectedVersion::NoStream,
            events: vec![
                NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "Opened".into(),
                    schema_version: 1,
                    payload: r#"{"type":"Opened","owner":"z"}"#.into(),
                    metadata: "{}".into(),
                    recorded_at: Utc::now(),
                },
                NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "ItemAdded".into(),
                    schema_version: 1,
                    payload: r#"{"type":"ItemAdded","item_id":1,"name":"tea","cents":7}"#.into(),
                    metadata: "{}".into(),
                    recorded_at: Utc::now(),
                },
            ],
            snapshot: None,
            view_changes: Vec::new(),
            idempotency: None,
        })
        .await
        .unwrap();
    let plain = CqrsCommandEngine::<Tab>::new(store.clone(), ());
    assert!(matches!(
        plain.load("t-old").await,
        Err(Error::Serialization { .. })
    ));
    let engine = CqrsCommandEngine::<Tab>::builder(store.clone())
        .upcasters(
            Upcasters::new().register("ItemAdded", 1, |mut p: serde_json::Value| {
                let cents = p.get("cents").cloned().ok_or("cents missing")?;
                p["price"] = cents;
                Ok::<_, &str>(p)
            }),
        )
        .build()
        .unwrap();
    let loaded = engine.load("t-old").await.unwrap().unwrap();
    assert_eq!(loaded.state.total(), 7);
    let updated = engine
        .update("t-old", &add(1), &CqrsContext::new())
        .await
        .unwrap();
    assert_eq!((updated.state.total(), updated.version), (8, 3));
    assert_eq!(
        engine.events("t-old", 2, None).await.unwrap()[0].payload,
        TabEvent::ItemAdded {
            item_id: 1,
            name: "tea".to_owned(),
            price: 7
        }
    );
}

struct Recorder {
    seen: Mutex<Vec<(String, u64)>>,
    fail: bool,
}

#[async_trait]
impl Dispatcher<Tab> for Recorder {
    fn name(&self) -> &str {
        if self.fail { "failing" } else { "recorder" }
    }
    async fn dispatch(&self, id: &str, events: &[EventEnvelope<TabEvent>]) -> Result<()> {
        if self.fail {
            return Err(Error::Unavailable("the mail server is down".into()));
        }
        let mut seen = self.seen.lock().unwrap();
        seen.extend(events.iter().map(|e| (id.to_owned(), e.version)));
        Ok(())
    }
}

#[tokio::test]
async fn dispatchers_see_committed_events_and_failures_are_reported() {
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        fail: false,
    });
    let failing = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        fail: true,
    });
    let reported = Arc::new(AtomicU64::new(0));
    let counter = reported.clone();
    let engine = CqrsCommandEngine::<Tab>::builder(store())
        .dispatcher(recorder.clone())
        .dispatcher(failing)
        .on_dispatch_error(move |failure| {
            assert_eq!(failure.dispatcher, "failing");
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let ctx = create_t1(&engine).await;
    engine
        .update("t-1", &add(3), &ctx)
        .await
        .expect("a dispatcher failure does not undo the command");
    let _ = engine
        .update("t-1", &TabCommand::Remove { item_id: 9 }, &ctx)
        .await
        .unwrap_err();
    assert_eq!(
        *recorder.seen.lock().unwrap(),
        vec![("t-1".to_owned(), 1), ("t-1".to_owned(), 2)]
    );
    assert_eq!(reported.load(Ordering::SeqCst), 2);
    assert_eq!(engine.dispatch_failures(), 2);
}

#[tokio::test]
async fn commands_on_different_aggregates_do_not_wait_for_each_other() {
    let engine = CqrsCommandEngine::<Tab>::new(store(), ());
    let ctx = CqrsContext::new();
    for id in ["a", "b"] {
        engine
            .create_with_id(id, &id.to_owned(), &ctx)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let id = if i % 2 == 0 { "a" } else { "b" };
            engine
                .update(id, &add(1), &CqrsContext::new())
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(engine.load("a").await.unwrap().unwrap().state.total(), 100);
    assert_eq!(engine.load("b").await.unwrap().unwrap().version, 101);
    assert_eq!(
        engine.conflicts(),
        0,
        "one process never conflicts with itself"
    );
}
