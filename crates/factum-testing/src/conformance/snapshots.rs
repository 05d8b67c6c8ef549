//! Snapshots: saved, replaced by newer ones only, written atomically with an append.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::store::Snapshot;

use crate::sample::{at, event};
use factum_core::{EventStore, ExpectedVersion};

use super::requests::*;

fn snapshot(id: &str, version: u64, state: &str) -> Snapshot {
    Snapshot {
        aggregate_type: TYPE.to_owned(),
        aggregate_id: id.to_owned(),
        version,
        state: serde_json::json!({"state": state}).to_string(),
        taken_at: at(0),
    }
}

fn state_of(snapshot: &Snapshot) -> String {
    serde_json::from_str::<serde_json::Value>(&snapshot.state)
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str().map(str::to_owned)))
        .unwrap_or_default()
}

/// Snapshots: saved, replaced by newer ones only, written atomically with an append.
pub async fn snapshots(store: Arc<dyn EventStore>) {
    assert!(store.load_snapshot(TYPE, "a-1").await.unwrap().is_none());
    store
        .save_snapshot(snapshot("a-1", 5, "five"))
        .await
        .unwrap();
    let loaded = store.load_snapshot(TYPE, "a-1").await.unwrap().unwrap();
    assert_eq!((loaded.version, state_of(&loaded)), (5, "five".to_owned()));
    assert_eq!(loaded.taken_at, at(0));
    store
        .save_snapshot(snapshot("a-1", 3, "three"))
        .await
        .unwrap();
    assert_eq!(
        store
            .load_snapshot(TYPE, "a-1")
            .await
            .unwrap()
            .unwrap()
            .version,
        5,
        "an older snapshot never replaces a newer one"
    );
    store
        .save_snapshot(snapshot("a-1", 8, "eight"))
        .await
        .unwrap();
    assert_eq!(
        state_of(&store.load_snapshot(TYPE, "a-1").await.unwrap().unwrap()),
        "eight"
    );

    // In an append: stored with the events...
    let mut with_snapshot = request("b-1", ExpectedVersion::NoStream, vec![event(1), event(2)]);
    with_snapshot.snapshot = Some(snapshot("b-1", 2, "two"));
    store.append(with_snapshot).await.unwrap();
    assert_eq!(
        store
            .load_snapshot(TYPE, "b-1")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // ...and not at all when the append conflicts.
    let mut conflicting = request("b-1", ExpectedVersion::NoStream, vec![event(3)]);
    conflicting.snapshot = Some(snapshot("b-1", 3, "three"));
    assert_conflict(
        store.append(conflicting).await,
        "a conflicting append with a snapshot",
    );
    assert_eq!(
        state_of(&store.load_snapshot(TYPE, "b-1").await.unwrap().unwrap()),
        "two"
    );
}
