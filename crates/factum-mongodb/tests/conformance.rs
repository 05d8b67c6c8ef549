//! The shared event-store conformance suites from `factum-testing` (events, views,
//! subscriptions, idempotency) on MongoDB, each case in a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::EventStore;
use factum_mongodb::MongoEventStore;

/// Drops its database when the case ends (the cases run on a multi-threaded runtime, which
/// may block one of its threads on it).
struct DropDatabase(mongodb::Database);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let dropped = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.0.drop().into_future())
        });
        if let Err(error) = dropped
            && !std::thread::panicking()
        {
            panic!("could not drop the test database: {error}");
        }
    }
}

async fn new_store() -> (Arc<dyn EventStore>, DropDatabase) {
    let url = factum_testing::mongo::database_url("conformance");
    let store = MongoEventStore::connect(&url).await.unwrap();
    let guard = DropDatabase(store.database());
    (Arc::new(store), guard)
}

factum_testing::event_store_conformance_tests!(new_store);
