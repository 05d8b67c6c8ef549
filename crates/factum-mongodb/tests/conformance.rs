//! The shared event-store conformance suites from `factum-testing` (events, views,
//! subscriptions, idempotency) on MongoDB, each case in a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::EventStore;
use factum_mongodb::MongoEventStore;

/// Drops its database when the case ends.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let url = self.0.clone();
        // On a thread and a runtime of its own, with a client of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = mongodb::Client::with_uri_str(&url).await.unwrap();
                if let Some(database) = client.default_database() {
                    database.drop().await.unwrap();
                }
            })
        })
        .join();
    }
}

async fn new_store() -> (Arc<dyn EventStore>, DropDatabase) {
    let url = factum_testing::mongo::database_url("conformance");
    let store = MongoEventStore::connect(&url).await.unwrap();
    let guard = DropDatabase(url);
    (Arc::new(store), guard)
}

factum_testing::event_store_conformance_tests!(new_store);
