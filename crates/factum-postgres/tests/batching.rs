//! Hot-aggregate batching and fair retries on the real PostgreSQL server (the shared suite
//! of `factum-testing`), each case in its own schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use factum_core::EventStore;
use factum_testing::batching;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_aggregate_end_exact_and_a_refusal_refuses_only_itself() {
    let (store, _guard) = common::new_dyn_store().await;
    batching::hot_aggregate(store, 16, 25, 5).await;
}

/// Four stores (four pools) on one schema stand for four processes: 4 engines × 400
/// deposits on one account, retries bounded by time; none gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_by_four_hundred_on_one_account_none_gives_up() {
    let (first, guard) = common::open_store().await;
    let mut stores: Vec<Arc<dyn EventStore>> = vec![Arc::new(first)];
    for _ in 1..4 {
        stores.push(Arc::new(common::open_on(guard.schema()).await));
    }
    let conflicts =
        batching::engines_share_one_aggregate(stores, 4, 100, Duration::from_secs(60)).await;
    println!("4 engines x 400 deposits: {conflicts} conflicting appends, 0 gave up");
}
