//! The shared event-store conformance suite from `factum-testing`, against the real
//! PostgreSQL server, each case in its own schema (dropped at the end).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::SchemaGuard;
use factum_core::EventStore;

async fn new_store() -> (Arc<dyn EventStore>, SchemaGuard) {
    common::new_dyn_store().await
}

factum_testing::event_store_conformance_tests!(new_store);
