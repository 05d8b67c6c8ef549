//! The idempotency cases of the store conformance suite (run by
//! [`event_store_conformance_tests!`](crate::event_store_conformance_tests)): records commit
//! with their append's events or not at all, a key is held by its first writer, and expired
//! records count as absent.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use factum_core::store::AppendRequest;
use factum_core::{Error, EventStore, ExpectedVersion, IdempotencyRecord};

use crate::sample::event;

const TYPE: &str = "conformance";

/// A timestamp with microsecond precision (the finest every backend keeps).
fn at(second: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000 + second, 654_321_000).unwrap_or_default()
}

/// A record of `key` in scope `alice`, made at `made`, living 100 s.
fn record(key: &str, hash: &str, made: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: "alice".to_owned(),
        key: key.to_owned(),
        request_hash: hash.to_owned(),
        status: 201,
        response: format!(r#"{{"body":"{hash}"}}"#),
        created_at: at(made),
        expires_at: at(made) + Duration::seconds(100),
    }
}

/// An append of `n` that creates stream `id`, carrying `record`.
fn with_record(id: &str, n: u64, record: IdempotencyRecord) -> AppendRequest {
    let mut request = AppendRequest::new(TYPE, id, ExpectedVersion::NoStream, vec![event(n)]);
    request.idempotency = Some(record);
    request
}

/// Appends [`with_record`], which must succeed.
async fn append_with(store: &dyn EventStore, id: &str, n: u64, record: IdempotencyRecord) {
    store.append(with_record(id, n, record)).await.unwrap();
}

/// Remembers `record` without events, which must succeed; returns what the store keeps.
async fn remember(store: &dyn EventStore, record: IdempotencyRecord) -> IdempotencyRecord {
    store.remember_idempotency(record).await.unwrap()
}

/// The live record of `key` in [`record`]'s scope at second `second`.
async fn find(store: &dyn EventStore, key: &str, second: i64) -> Option<IdempotencyRecord> {
    store
        .find_idempotency("alice", key, at(second))
        .await
        .unwrap()
}

/// Asserts that an append of `n` to the new stream `id` carrying `record` is refused: its key
/// is taken.
async fn assert_append_taken(
    store: &dyn EventStore,
    id: &str,
    n: u64,
    record: IdempotencyRecord,
    what: &str,
) {
    let request = with_record(id, n, record);
    assert_taken(store.append(request).await, what);
}

fn assert_taken<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(
        matches!(&result, Err(Error::IdempotencyKeyTaken { key, .. }) if key == "k-1"),
        "{what}: expected IdempotencyKeyTaken, got {result:?}"
    );
}

/// A record appended with events is stored with them and found by scope and key.
pub async fn idempotency_record_commits_with_events(store: Arc<dyn EventStore>) {
    let mine = record("k-1", "h-1", 0);
    append_with(&*store, "a-1", 1, mine.clone()).await;
    assert_eq!(store.stream_version(TYPE, "a-1").await.unwrap(), 1);
    let found = find(&*store, "k-1", 1).await;
    assert_eq!(found, Some(mine), "the record reads back as written");
    assert_eq!(
        store.find_idempotency("bob", "k-1", at(1)).await.unwrap(),
        None,
        "keys of another scope never meet"
    );
    assert_eq!(find(&*store, "k-2", 1).await, None);
}

/// An append refused for its expected version stores neither its events nor its record.
pub async fn idempotency_conflicting_append_stores_nothing(store: Arc<dyn EventStore>) {
    store
        .append(AppendRequest::new(
            TYPE,
            "a-1",
            ExpectedVersion::NoStream,
            vec![event(1)],
        ))
        .await
        .unwrap();
    let refused = store
        .append(with_record("a-1", 2, record("k-1", "h-1", 0)))
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict { .. })),
        "expected a Conflict, got {refused:?}"
    );
    assert_eq!(store.stream_version(TYPE, "a-1").await.unwrap(), 1);
    assert_eq!(
        find(&*store, "k-1", 1).await,
        None,
        "a refused append leaves no record"
    );
}

/// A second append with a live key is refused with its own error and stores nothing; a
/// retry of the first append (same event ids) still succeeds.
pub async fn idempotency_duplicate_key_is_refused(store: Arc<dyn EventStore>) {
    let first = with_record("a-1", 1, record("k-1", "h-1", 0));
    let stored = store.append(first.clone()).await.unwrap();
    assert_append_taken(
        &*store,
        "a-2",
        2,
        record("k-1", "h-2", 1),
        "another append with the same key",
    )
    .await;
    assert_eq!(store.stream_version(TYPE, "a-2").await.unwrap(), 0);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1);
    let found = find(&*store, "k-1", 2).await;
    assert_eq!(
        found.map(|r| r.request_hash).as_deref(),
        Some("h-1"),
        "the first writer keeps the key"
    );
    assert_eq!(
        store.append(first).await.unwrap(),
        stored,
        "a retry of the append that went through"
    );
    let mut other_scope = with_record("a-3", 3, record("k-1", "h", 0));
    if let Some(r) = other_scope.idempotency.as_mut() {
        r.scope = "bob".to_owned();
    }
    store.append(other_scope).await.unwrap();
}

/// A record remembered without events: the first one holds, later ones get it back, and an
/// append with its key is refused.
pub async fn idempotency_remember_without_events(store: Arc<dyn EventStore>) {
    let first = record("k-1", "h-1", 0);
    assert_eq!(remember(&*store, first.clone()).await, first);
    assert_eq!(
        remember(&*store, record("k-1", "h-2", 1)).await,
        first,
        "the record that was there first"
    );
    assert_append_taken(
        &*store,
        "a-1",
        1,
        record("k-1", "h-3", 2),
        "an append with a remembered key",
    )
    .await;
    assert_eq!(store.head_position().await.unwrap(), 0);
}

/// An expired record counts as absent: lookups skip it, an append or a remembered record
/// replaces it, and a purge deletes it.
pub async fn idempotency_expiry(store: Arc<dyn EventStore>) {
    let old = record("k-1", "h-1", 0);
    append_with(&*store, "a-1", 1, old.clone()).await;
    assert!(find(&*store, "k-1", 99).await.is_some());
    assert_eq!(
        find(&*store, "k-1", 100).await,
        None,
        "expired at expires_at"
    );
    let renewed = record("k-1", "h-2", 100);
    append_with(&*store, "a-2", 2, renewed.clone()).await;
    assert_eq!(find(&*store, "k-1", 101).await, Some(renewed));
    let later = record("k-1", "h-3", 200);
    assert_eq!(
        remember(&*store, later.clone()).await,
        later,
        "a remembered record replaces an expired one"
    );
    remember(&*store, record("k-2", "h", 0)).await;
    remember(&*store, record("k-3", "h", 250)).await;
    // Expired at 300: k-1 (made at 200) and k-2 (made at 0); k-3 lives until 350.
    assert_eq!(store.purge_idempotency(at(300)).await.unwrap(), 2);
    assert_eq!(store.purge_idempotency(at(300)).await.unwrap(), 0);
    assert!(find(&*store, "k-3", 300).await.is_some());
    assert_eq!(
        store.read_all(0, 100).await.unwrap().len(),
        2,
        "events stay"
    );
}

/// Appends racing with one key to different aggregates: exactly one stores its events.
pub async fn idempotency_concurrent_same_key(store: Arc<dyn EventStore>) {
    let requests =
        (0..8u64).map(|n| with_record(&format!("a-{n}"), n, record("k-1", &format!("h-{n}"), 0)));
    let tasks: Vec<_> = requests
        .map(|request| {
            let store = store.clone();
            tokio::spawn(async move { store.append(request).await })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(events) => {
                assert_eq!(events.len(), 1);
                stored += 1;
            }
            other => assert_taken(other, "a racing append with the same key"),
        }
    }
    assert_eq!(stored, 1, "exactly one append holds the key");
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1);
}
