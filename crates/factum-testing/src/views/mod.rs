//! View conformance: inline views and asynchronous projections, checked against a replay of
//! the events from scratch, on a small domain of bar tabs.

// This module is test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference;
mod tabs;

pub use self::reference::{all_records, random_commands, replay};
pub use self::tabs::{Tab, TabCommand, TabError, TabEvent, TabItem, TabSummary};

use std::sync::Arc;

use factum_core::{
    Aggregate, CqrsCommandEngine, CqrsContext, EngineBuilder, EngineConfig, EventStore, Projector,
    SnapshotPolicy, View, ViewStore,
};

fn engine_builder(store: &Arc<dyn EventStore>) -> EngineBuilder<Tab> {
    CqrsCommandEngine::<Tab>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand))
}

fn engine(store: &Arc<dyn EventStore>) -> CqrsCommandEngine<Tab> {
    engine_builder(store).build().unwrap()
}

/// Inline views equal a from-scratch replay after 1,000 random commands.
pub async fn inline_views_equal_replay(store: Arc<dyn EventStore>) {
    let engine = engine_builder(&store)
        .inline_view::<TabSummary>()
        .inline_view::<TabItem>()
        .build()
        .unwrap();
    random_commands(&engine, 1000, 7).await;
    let views = store.as_view_store().expect("the store keeps views");
    let summaries = all_records(views, TabSummary::TYPE, TabSummary::fields()).await;
    assert_eq!(summaries.len(), 20);
    assert_eq!(summaries, replay::<TabSummary>(&*store).await);
    let items = all_records(views, TabItem::TYPE, TabItem::fields()).await;
    assert!(!items.is_empty());
    assert_eq!(items, replay::<TabItem>(&*store).await);
    let children = views.list_views_of(TabItem::TYPE, "tab-03").await.unwrap();
    assert!(
        children
            .iter()
            .all(|r| r.aggregate_id == "tab-03" && r.view_id.starts_with("tab-03-"))
    );
}

/// A projection stopped mid-way (its task aborted) resumes from its checkpoint and ends equal
/// to the replay; a rebuild from 0 produces the same rows again; a rebuild stopped mid-way
/// is reported unfinished until a rebuild completes.
pub async fn projection_resumes_and_rebuilds(store: Arc<dyn EventStore>) {
    let engine = engine(&store);
    random_commands(&engine, 600, 11).await;
    let views_store: Arc<dyn ViewStore> = store
        .clone()
        .into_view_store()
        .expect("the store keeps views");
    let projector =
        Arc::new(Projector::<TabItem>::new(store.clone(), views_store.clone()).with_batch_size(25));
    for _ in 0..3 {
        assert!(projector.run_once().await.unwrap() > 0);
    }
    let lag = projector.lag().await.unwrap();
    // Three batches of 25: the checkpoint is the 75th event's position.
    let first = store.read_all(0, 75).await.unwrap();
    assert_eq!(lag.checkpoint, first[74].position);
    assert!(lag.behind() > 0);
    // A runner killed at an arbitrary point: whatever batch it was in is either committed
    // with its checkpoint or not at all.
    let runner = {
        let projector = projector.clone();
        tokio::spawn(async move { projector.catch_up(|_| {}).await })
    };
    tokio::task::yield_now().await;
    runner.abort();
    let _ = runner.await;
    let resumed = Projector::<TabItem>::new(store.clone(), views_store.clone()).with_batch_size(40);
    let mut reports = 0;
    resumed.catch_up(|_| reports += 1).await.unwrap();
    assert_eq!(resumed.lag().await.unwrap().behind(), 0);
    let expected = replay::<TabItem>(&*store).await;
    assert!(!expected.is_empty());
    let projected = all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await;
    assert_eq!(projected, expected);

    // New events after catch-up are picked up too.
    engine
        .update(
            "tab-00",
            &TabCommand::Add {
                name: "late".into(),
                price: 1,
            },
            &CqrsContext::new(),
        )
        .await
        .ok();
    resumed.catch_up(|_| {}).await.unwrap();
    assert_eq!(
        all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await,
        replay::<TabItem>(&*store).await
    );

    let before = all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await;
    let mut progress = Vec::new();
    let read = resumed
        .rebuild(|lag| progress.push(lag.checkpoint))
        .await
        .unwrap();
    let events = store.read_all(0, 1_000_000).await.unwrap().len();
    assert_eq!(read, u64::try_from(events).unwrap());
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress moves forward"
    );
    assert_eq!(
        all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await,
        before
    );
    assert!(!resumed.rebuild_unfinished().await.unwrap());

    // A rebuild killed midway is known afterwards (the view is incomplete and, for a view
    // kept inline, nothing else would complete it); a new rebuild redoes it and clears it.
    // The process dies after the first batch: no code of the rebuild runs after it.
    let rebuild = {
        let projector =
            Projector::<TabItem>::new(store.clone(), views_store.clone()).with_batch_size(25);
        tokio::spawn(async move {
            projector
                .rebuild(|_| panic!("the rebuild's process is killed (simulated)"))
                .await
        })
    };
    assert!(
        rebuild.await.is_err(),
        "the rebuild was killed before it finished"
    );
    assert!(resumed.rebuild_unfinished().await.unwrap());
    assert!(resumed.lag().await.unwrap().behind() > 0);
    resumed.rebuild(|_| {}).await.unwrap();
    assert!(!resumed.rebuild_unfinished().await.unwrap());
    assert_eq!(
        all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await,
        before
    );
    let _ = reports;
}

/// An event the view cannot apply (its payload does not decode) is tried a bounded number of
/// times, then parked (durably, with its position, id and error) and the projection goes on:
/// later events are projected. A rebuild forgets the parked entries and parks the event again.
pub async fn projection_parks_a_poison_event(store: Arc<dyn EventStore>) {
    let engine = engine(&store);
    let ctx = CqrsContext::new();
    engine
        .create_with_id("tab-a", &"Ann".to_owned(), &ctx)
        .await
        .unwrap();
    let poison = factum_core::store::NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "Opened".to_owned(),
        schema_version: 1,
        payload: r#"{"type":"Opened","owner":{"not":"a string"}}"#.to_owned(),
        metadata: "{}".to_owned(),
        recorded_at: chrono::Utc::now(),
    };
    let poison_id = poison.event_id;
    let stored = store
        .append(factum_core::store::AppendRequest::new(
            Tab::TYPE,
            "tab-poison",
            factum_core::ExpectedVersion::NoStream,
            vec![poison],
        ))
        .await
        .unwrap();
    let poison_position = stored[0].position;
    engine
        .create_with_id("tab-b", &"Bob".to_owned(), &ctx)
        .await
        .unwrap();
    let views: Arc<dyn ViewStore> = store.clone().into_view_store().expect("keeps views");
    let projector = Projector::<TabSummary>::new(store.clone(), views.clone())
        .with_batch_size(10)
        .with_max_attempts(3);

    // The batch fails; the good event before the poison one is applied on its own.
    assert_eq!(projector.run_once().await.unwrap(), 1);
    let before_poison = store.read_all(0, 1).await.unwrap();
    assert_eq!(
        projector.lag().await.unwrap().checkpoint,
        before_poison[0].position
    );
    let failed = projector.run_once().await;
    assert!(
        matches!(failed, Err(factum_core::Error::Serialization { .. })),
        "{failed:?}"
    );
    assert!(projector.parked().await.unwrap().is_empty());
    // Third attempt: parked, and the events after it are applied.
    assert_eq!(projector.run_once().await.unwrap(), 2);
    let parked = projector.parked().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    let entry = &parked[0];
    assert_eq!(
        (entry.position, entry.event.event_id, entry.attempts),
        (poison_position, poison_id, 3)
    );
    assert_eq!(
        (
            entry.projection.as_str(),
            entry.event.aggregate_id.as_str(),
            entry.event.version
        ),
        (TabSummary::TYPE, "tab-poison", 1)
    );
    assert!(entry.error.contains("Opened"), "{}", entry.error);
    assert_eq!(projector.lag().await.unwrap().behind(), 0);
    for tab in ["tab-a", "tab-b"] {
        assert!(
            views
                .get_view(TabSummary::TYPE, tab)
                .await
                .unwrap()
                .is_some(),
            "{tab}"
        );
    }
    assert!(
        views
            .get_view(TabSummary::TYPE, "tab-poison")
            .await
            .unwrap()
            .is_none()
    );

    // Later events still project; nothing new is parked.
    engine
        .update(
            "tab-b",
            &TabCommand::Add {
                name: "tea".into(),
                price: 250,
            },
            &ctx,
        )
        .await
        .unwrap();
    projector.catch_up(|_| {}).await.unwrap();
    let record = views
        .get_view(TabSummary::TYPE, "tab-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.version, 2);
    assert_eq!(projector.parked().await.unwrap().len(), 1);

    // Another projector (a restart) sees the same durable entry; a rebuild parks it afresh.
    let restarted = Projector::<TabSummary>::new(store.clone(), views.clone()).with_max_attempts(2);
    assert_eq!(restarted.parked().await.unwrap(), parked);
    restarted.rebuild(|_| {}).await.unwrap();
    let again = restarted.parked().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].position, again[0].attempts), (poison_position, 2));
    assert_eq!(
        all_records(&*views, TabSummary::TYPE, TabSummary::fields())
            .await
            .len(),
        2
    );
}
