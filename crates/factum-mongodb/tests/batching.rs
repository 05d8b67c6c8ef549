//! Hot-aggregate batching and fair retries on MongoDB (the shared suite of
//! `factum-testing`), each case in a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use factum_core::EventStore;
use factum_mongodb::MongoEventStore;
use factum_testing::batching;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_aggregate_end_exact_and_a_refusal_refuses_only_itself() {
    let url = factum_testing::mongo::database_url("batching");
    let store = MongoEventStore::connect(&url).await.unwrap();
    batching::hot_aggregate(Arc::new(store.clone()), 16, 25, 5).await;
    store.database().drop().await.unwrap();
}

/// Four stores (four clients) on one database stand for four processes: 4 engines × 400
/// deposits on one account, retries bounded by time; none gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_by_four_hundred_on_one_account_none_gives_up() {
    let url = factum_testing::mongo::database_url("engines");
    let mut stores: Vec<Arc<dyn EventStore>> = Vec::new();
    let mut first = None;
    for _ in 0..4 {
        let store = MongoEventStore::connect(&url).await.unwrap();
        first.get_or_insert_with(|| store.database());
        stores.push(Arc::new(store));
    }
    let conflicts =
        batching::engines_share_one_aggregate(stores, 4, 100, Duration::from_secs(120)).await;
    println!("4 engines x 400 deposits: {conflicts} conflicting appends, 0 gave up");
    first.unwrap().drop().await.unwrap();
}
