//! Hot-aggregate batching on the in-memory store (the shared suite of `factum-testing`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use factum_core::InMemoryEventStore;
use factum_testing::batching;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_aggregate_end_exact_in_fewer_appends() {
    batching::hot_aggregate(Arc::new(InMemoryEventStore::new()), 16, 50, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_command_in_a_batch_refuses_only_itself() {
    batching::hot_aggregate(Arc::new(InMemoryEventStore::new()), 16, 40, 5).await;
}

#[tokio::test(flavor = "current_thread")]
async fn batching_works_on_one_thread() {
    batching::hot_aggregate(Arc::new(InMemoryEventStore::new()), 8, 30, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_sharing_a_store_retry_by_time_and_none_gives_up() {
    let store: Arc<dyn factum_core::EventStore> = Arc::new(InMemoryEventStore::new());
    let stores = vec![store; 4];
    batching::engines_share_one_aggregate(stores, 4, 50, Duration::from_secs(30)).await;
}
