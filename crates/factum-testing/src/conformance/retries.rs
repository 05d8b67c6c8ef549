//! Retries and atomicity: re-appending stored event ids, and a failed append storing nothing.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::store::NewEvent;

use crate::sample::event;
use factum_core::{EventStore, ExpectedVersion};

use super::requests::*;

/// Re-appending the same event ids is a successful no-op returning the stored events.
pub async fn idempotent_append(store: Arc<dyn EventStore>) {
    let events: Vec<NewEvent> = (1..=2).map(event).collect();
    let first = append_events(&*store, "a-1", ExpectedVersion::NoStream, events.clone()).await;
    // A retry after a lost reply: same ids, same (now stale) expectation.
    let again = append_events(&*store, "a-1", ExpectedVersion::NoStream, events.clone()).await;
    assert_eq!(again, first, "the retry returns the stored events");
    assert_eq!(
        store.stream_version(TYPE, "a-1").await.unwrap(),
        2,
        "nothing stored twice"
    );
    assert_eq!(all_after(&*store, 0, 100).await.len(), 2);

    // The same first id with a different tail is not a retry.
    let mut mixed = events.clone();
    mixed[1] = event(9);
    assert_conflict(
        store
            .append(request("a-1", ExpectedVersion::Any, mixed))
            .await,
        "reused id with a new tail",
    );
    // An id stored under another aggregate is a conflict, and stores nothing.
    assert_conflict(
        store
            .append(request(
                "a-2",
                ExpectedVersion::NoStream,
                vec![events[0].clone()],
            ))
            .await,
        "an event id of another aggregate",
    );
    assert_eq!(store.stream_version(TYPE, "a-2").await.unwrap(), 0);
    // A duplicate id inside one batch is refused.
    let twin = event(5);
    assert_conflict(
        store
            .append(request(
                "a-3",
                ExpectedVersion::NoStream,
                vec![twin.clone(), twin],
            ))
            .await,
        "a duplicate id within one append",
    );
    assert_eq!(store.stream_version(TYPE, "a-3").await.unwrap(), 0);
}

/// An append that fails stores none of its events (here: its last event's id is taken).
pub async fn failed_append_is_atomic(store: Arc<dyn EventStore>) {
    let taken = appended(&*store, "a-1", ExpectedVersion::NoStream, 1).await;
    let mut clash = event(7);
    clash.event_id = taken[0].event_id;
    let result = store
        .append(request(
            "a-2",
            ExpectedVersion::NoStream,
            vec![event(1), event(2), clash],
        ))
        .await;
    assert!(result.is_err(), "an append with a taken event id fails");
    assert_eq!(store.stream_version(TYPE, "a-2").await.unwrap(), 0);
    assert_eq!(
        all_after(&*store, 0, 100).await.len(),
        1,
        "no partial append is visible"
    );
    let next = appended(&*store, "a-2", ExpectedVersion::NoStream, 1).await;
    assert!(
        next[0].position > taken[0].position,
        "the next append comes after the stored event"
    );
    assert_eq!(all_after(&*store, 0, 100).await.len(), 2);
}
