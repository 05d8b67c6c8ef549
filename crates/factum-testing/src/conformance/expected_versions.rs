//! Expected versions: `NoStream`, `Exact`, `StreamExists` and `Any`.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{EventStore, ExpectedVersion};

use super::requests::*;

/// `NoStream`: succeeds on an empty stream only.
pub async fn expected_no_stream(store: Arc<dyn EventStore>) {
    appended(&*store, "a-1", ExpectedVersion::NoStream, 1).await;
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::NoStream, 1).await,
        "NoStream on an existing stream",
    );
    assert_eq!(
        store.stream_version(TYPE, "a-1").await.unwrap(),
        1,
        "a conflict stores nothing"
    );
    let zero = appended(&*store, "a-2", ExpectedVersion::Exact(0), 1).await;
    assert_eq!(zero[0].version, 1, "Exact(0) is NoStream");
}

/// `Exact(n)`: succeeds only at exactly n.
pub async fn expected_exact(store: Arc<dyn EventStore>) {
    appended(&*store, "a-1", ExpectedVersion::NoStream, 2).await;
    for (id, exact, what) in [
        ("a-1", 1, "Exact below the version"),
        ("a-1", 3, "Exact above the version"),
        ("a-1", 0, "Exact(0) on an existing stream"),
        ("a-9", 1, "Exact(1) on no stream"),
    ] {
        let refused = append(&*store, id, ExpectedVersion::Exact(exact), 1).await;
        assert_conflict(refused, what);
    }
    let ok = appended(&*store, "a-1", ExpectedVersion::Exact(2), 2).await;
    assert_eq!(ok.iter().map(|e| e.version).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(store.stream_version(TYPE, "a-1").await.unwrap(), 4);
    assert_eq!(store.stream_version(TYPE, "a-9").await.unwrap(), 0);
}

/// `StreamExists`: fails on an empty stream.
pub async fn expected_stream_exists(store: Arc<dyn EventStore>) {
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::StreamExists, 1).await,
        "StreamExists on no stream",
    );
    appended(&*store, "a-1", ExpectedVersion::NoStream, 1).await;
    let ok = appended(&*store, "a-1", ExpectedVersion::StreamExists, 1).await;
    assert_eq!(ok[0].version, 2);
}

/// `Any`: always succeeds.
pub async fn expected_any(store: Arc<dyn EventStore>) {
    let first = appended(&*store, "a-1", ExpectedVersion::Any, 2).await;
    let second = appended(&*store, "a-1", ExpectedVersion::Any, 1).await;
    assert_eq!(first.last().map(|e| e.version), Some(2));
    assert_eq!(second[0].version, 3);
}
