//! Streams: appends read back whole, by version and limit, isolated by type and id, and long.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::store::{AppendRequest, NewEvent};

use crate::sample::event;
use factum_core::{EventStore, ExpectedVersion, Metadata};

use super::requests::*;

/// Appended events come back from `read_stream` as stored, with versions 1.. and every field.
pub async fn append_and_read_stream(store: Arc<dyn EventStore>) {
    let events: Vec<NewEvent> = (1..=3).map(event).collect();
    let stored = append_events(&*store, "a-1", ExpectedVersion::NoStream, events.clone()).await;
    assert_eq!(stored.len(), 3);
    let read = stream(&*store, "a-1", 1, None).await;
    assert_eq!(read, stored, "read_stream returns what append returned");
    for (i, (new, stored)) in events.iter().zip(&read).enumerate() {
        assert_eq!(stored.version, i as u64 + 1);
        assert_eq!(stored.event_id, new.event_id);
        assert_eq!(stored.aggregate_type, TYPE);
        assert_eq!(stored.aggregate_id, "a-1");
        assert_eq!(stored.event_type, new.event_type);
        assert_eq!(stored.schema_version, new.schema_version);
        let (got, want): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&stored.payload).unwrap(),
            serde_json::from_str(&new.payload).unwrap(),
        );
        assert_eq!(got, want, "payload round-trips as the same JSON");
        assert_eq!(
            stored.parse_metadata().unwrap(),
            serde_json::from_str::<Metadata>(&new.metadata).unwrap(),
            "metadata round-trips"
        );
        assert_eq!(
            stored.recorded_at, new.recorded_at,
            "recorded_at keeps microseconds"
        );
    }
    assert_eq!(store.stream_version(TYPE, "a-1").await.unwrap(), 3);
    assert_eq!(store.stream_version(TYPE, "nobody").await.unwrap(), 0);
    assert!(stream(&*store, "nobody", 1, None).await.is_empty());
}

/// `read_stream` honours `from_version` and `limit`.
pub async fn read_stream_from_version_with_limit(store: Arc<dyn EventStore>) {
    appended(&*store, "a-1", ExpectedVersion::NoStream, 10).await;
    let tail = stream(&*store, "a-1", 4, None).await;
    assert_eq!(
        tail.iter().map(|e| e.version).collect::<Vec<_>>(),
        (4..=10).collect::<Vec<_>>()
    );
    let page = stream(&*store, "a-1", 4, Some(3)).await;
    assert_eq!(
        page.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert!(stream(&*store, "a-1", 11, None).await.is_empty());
    assert_eq!(stream(&*store, "a-1", 0, Some(1)).await[0].version, 1);
}

/// Streams are keyed by aggregate type and id together.
pub async fn streams_are_isolated_by_type_and_id(store: Arc<dyn EventStore>) {
    appended(&*store, "same", ExpectedVersion::NoStream, 2).await;
    let other_type = store
        .append(AppendRequest {
            aggregate_type: "other".to_owned(),
            ..request("same", ExpectedVersion::NoStream, vec![event(1)])
        })
        .await
        .unwrap();
    assert_eq!(other_type[0].version, 1);
    appended(&*store, "else", ExpectedVersion::NoStream, 1).await;
    assert_eq!(store.stream_version(TYPE, "same").await.unwrap(), 2);
    assert_eq!(store.stream_version("other", "same").await.unwrap(), 1);
    assert_eq!(store.stream_version(TYPE, "else").await.unwrap(), 1);
}

/// A stream of 10,000 events appends and reads back whole and in order.
pub async fn large_stream(store: Arc<dyn EventStore>) {
    const TOTAL: u64 = 10_000;
    const BATCH: u64 = 500;
    for batch in 0..TOTAL / BATCH {
        let events = (0..BATCH).map(|i| event(batch * BATCH + i)).collect();
        append_events(
            &*store,
            "big",
            ExpectedVersion::Exact(batch * BATCH),
            events,
        )
        .await;
    }
    let all = stream(&*store, "big", 1, None).await;
    assert_eq!(all.len() as u64, TOTAL);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1 && payload_n(e) == i as u64)
    );
    assert_eq!(store.stream_version(TYPE, "big").await.unwrap(), TOTAL);
    let tail = stream(&*store, "big", TOTAL - 9, None).await;
    assert_eq!(tail.len(), 10);
    assert_eq!(all_after(&*store, 0, usize::MAX).await.len() as u64, TOTAL);
}
