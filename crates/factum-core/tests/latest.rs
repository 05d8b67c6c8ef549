//! Reads of the current state from the engine's cache: served without a load when the store
//! confirms the version, never older than a command of another engine that has returned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{CqrsCommandEngine, CqrsContext, EventStore, InMemoryEventStore};
use factum_testing::counter::{Counter, CounterCommand};

#[tokio::test]
async fn the_current_state_comes_from_the_cache_and_follows_other_writers() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let reader = CqrsCommandEngine::<Counter>::builder(store.clone())
        .build()
        .unwrap();
    let writer = CqrsCommandEngine::<Counter>::builder(store.clone())
        .build()
        .unwrap();
    let ctx = CqrsContext::new();
    reader.create_with_id("c", &(), &ctx).await.unwrap();
    reader
        .update("c", &CounterCommand::Add(2), &ctx)
        .await
        .unwrap();
    let before = reader.cache_stats();
    let latest = reader.load_latest("c").await.unwrap().unwrap();
    assert_eq!((latest.state.total, latest.version), (2, 2));
    assert_eq!(
        reader.cache_stats().hits,
        before.hits + 1,
        "served from the cache"
    );

    // Another engine (another process's stand-in) moves the aggregate on.
    writer
        .update("c", &CounterCommand::Add(5), &ctx)
        .await
        .unwrap();
    let latest = reader.load_latest("c").await.unwrap().unwrap();
    assert_eq!((latest.state.total, latest.version), (7, 3));
    // Loaded once, then cached again.
    let hits = reader.cache_stats().hits;
    reader.load_latest("c").await.unwrap().unwrap();
    assert_eq!(reader.cache_stats().hits, hits + 1);
    assert!(reader.load_latest("missing").await.unwrap().is_none());
    let stats = reader.cache_stats();
    assert_eq!(stats.entries, 1);
    assert!(stats.bytes > 0 && stats.misses >= 1);
}
