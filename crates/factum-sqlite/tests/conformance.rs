//! The store conformance suite of `factum-testing`, on a fresh SQLite file per case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::EventStore;
use factum_sqlite::SqliteEventStore;

async fn new_store() -> (Arc<dyn EventStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

factum_testing::event_store_conformance_tests!(new_store);
