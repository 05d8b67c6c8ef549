//! The conformance suite on the in-memory store.

use std::sync::Arc;

use factum_core::{EventStore, InMemoryEventStore};

async fn new_store() -> (Arc<dyn EventStore>, ()) {
    (Arc::new(InMemoryEventStore::new()), ())
}

factum_testing::event_store_conformance_tests!(new_store);
