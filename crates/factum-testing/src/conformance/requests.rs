//! Requests and appends the cases build, and the checks they share.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_core::store::{AppendRequest, NewEvent, StoredEvent};

use crate::sample::event;
use factum_core::{Error, EventStore, ExpectedVersion};

pub(super) const TYPE: &str = "conformance";

pub(super) fn request(id: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new(TYPE, id, expected, events)
}

pub(super) async fn append(
    store: &dyn EventStore,
    id: &str,
    expected: ExpectedVersion,
    count: u64,
) -> Result<Vec<StoredEvent>, Error> {
    store
        .append(request(id, expected, (1..=count).map(event).collect()))
        .await
}

/// [`append`], which must succeed.
pub(super) async fn appended(
    store: &dyn EventStore,
    id: &str,
    expected: ExpectedVersion,
    count: u64,
) -> Vec<StoredEvent> {
    append(store, id, expected, count).await.unwrap()
}

/// Appends `events` to stream `id` of [`TYPE`], which must succeed.
pub(super) async fn append_events(
    store: &dyn EventStore,
    id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Vec<StoredEvent> {
    store.append(request(id, expected, events)).await.unwrap()
}

/// Stream `id` of [`TYPE`] from version `from`, at most `limit` events.
pub(super) async fn stream(
    store: &dyn EventStore,
    id: &str,
    from: u64,
    limit: Option<usize>,
) -> Vec<StoredEvent> {
    store.read_stream(TYPE, id, from, limit).await.unwrap()
}

/// Every event after position `after`, at most `limit`.
pub(super) async fn all_after(
    store: &dyn EventStore,
    after: u64,
    limit: usize,
) -> Vec<StoredEvent> {
    store.read_all(after, limit).await.unwrap()
}

pub(super) fn payload_n(stored: &StoredEvent) -> u64 {
    serde_json::from_str::<serde_json::Value>(&stored.payload)
        .ok()
        .and_then(|v| v.get("n").and_then(serde_json::Value::as_u64))
        .unwrap_or(u64::MAX)
}

pub(super) fn assert_conflict(result: Result<Vec<StoredEvent>, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::Conflict { .. })),
        "{what}: expected a Conflict, got {result:?}"
    );
}
