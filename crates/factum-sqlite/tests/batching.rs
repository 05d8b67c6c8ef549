//! Hot-aggregate batching on a SQLite file (the shared suite of `factum-testing`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_sqlite::SqliteEventStore;
use factum_testing::batching;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_aggregate_end_exact_and_a_refusal_refuses_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .unwrap();
    batching::hot_aggregate(Arc::new(store), 16, 40, 5).await;
}
