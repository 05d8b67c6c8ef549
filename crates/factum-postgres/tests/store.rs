//! The PostgreSQL store against the real server: appends, reads, expected versions, retries,
//! snapshots and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use common::{append_one, event, open_store, request};
use factum_core::store::Snapshot;
use factum_core::{Error, EventStore, ExpectedVersion, Metadata};
use serde_json::json;
// SQL built by these tests splices only schema names the tests generated themselves
// (plain identifiers the store validated) and constants.

fn snapshot(id: &str, version: u64, state: serde_json::Value) -> Snapshot {
    Snapshot {
        aggregate_type: "account".to_owned(),
        aggregate_id: id.to_owned(),
        version,
        state: state.to_string(),
        taken_at: Utc::now(),
    }
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// jsonb keeps JSON values, not their text (key order, spaces): compare states as values.
fn assert_same_snapshot(loaded: Option<Snapshot>, expected: &Snapshot) {
    let loaded = loaded.expect("a snapshot");
    assert_eq!(json_of(&loaded.state), json_of(&expected.state));
    assert_eq!(
        Snapshot {
            state: expected.state.clone(),
            ..loaded
        },
        *expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_and_reads_back_everything_it_stored() {
    let (store, _guard) = open_store().await;
    let recorded_at: DateTime<Utc> = "2024-05-06T07:08:09.123456789Z".parse().unwrap();
    let mut first = event(
        "Opened",
        json!({"owner": "alice", "limits": {"b": 2, "a": 1}}),
    );
    first.schema_version = u32::MAX;
    first.recorded_at = recorded_at;
    let mut metadata = Metadata {
        user_id: Some("alice".into()),
        request_id: Some("req-1".into()),
        ..Metadata::default()
    };
    metadata.extra.insert("ip".into(), json!("10.0.0.1"));
    first.metadata = serde_json::to_string(&metadata).unwrap();
    let second = event("Deposited", json!({"amount": 100}));

    let stored = store
        .append(request(
            "a-1",
            ExpectedVersion::NoStream,
            vec![first.clone(), second.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
    // One transaction's events sit next to each other in the feed.
    assert_eq!(stored[1].position, stored[0].position + 1);
    assert_eq!(stored[0].event_id, first.event_id);
    assert_eq!(stored[0].schema_version, u32::MAX);
    assert_eq!(stored[0].parse_metadata().unwrap(), metadata);
    assert_eq!(stored[0].recorded_at, recorded_at, "nanoseconds survive");
    assert_eq!(json_of(&stored[0].payload), json_of(&first.payload));

    assert_eq!(
        store.read_stream("account", "a-1", 1, None).await.unwrap(),
        stored
    );
    assert_eq!(store.read_all(0, 100).await.unwrap(), stored);
    assert_eq!(store.stream_version("account", "a-1").await.unwrap(), 2);
    assert_eq!(store.stream_version("account", "nobody").await.unwrap(), 0);
    assert_eq!(store.stream_version("other-type", "a-1").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_page_by_version_and_position() {
    let (store, _guard) = open_store().await;
    for id in ["a", "b"] {
        for _ in 0..3 {
            append_one(&store, id, ExpectedVersion::Any, "E", json!({}))
                .await
                .unwrap();
        }
    }
    let all = store.read_all(0, 100).await.unwrap();
    let b = store.read_stream("account", "b", 2, Some(1)).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0], all[4], "b's second event is the feed's fifth");
    // From a version, at most a number: how many of b's events read back.
    for (from, limit, expected) in [
        (2, None, 2),
        (0, None, 3),
        (4, None, 0),
        (u64::MAX, None, 0),
        (1, Some(0), 0),
    ] {
        let read = store
            .read_stream("account", "b", from, limit)
            .await
            .unwrap();
        assert_eq!(read.len(), expected, "from {from}, limit {limit:?}");
    }

    let page = store.read_all(all[1].position, 3).await.unwrap();
    assert_eq!(page, all[2..5]);
    assert!(
        store
            .read_all(all[5].position, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.read_all(0, 0).await.unwrap().is_empty());
    assert!(store.read_all(u64::MAX, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expected_versions_are_enforced_and_refusals_change_nothing() {
    let (store, _guard) = open_store().await;
    let one = || vec![event("E", json!({"n": 1}))];
    for expected in [ExpectedVersion::StreamExists, ExpectedVersion::Exact(1)] {
        let refused = store
            .append(request("a", expected, one()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Conflict {
                    actual: Some(0),
                    ..
                }
            ),
            "{refused}"
        );
    }

    store
        .append(request("a", ExpectedVersion::Exact(0), one()))
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(u64::MAX),
    ] {
        let refused = store
            .append(request("a", expected, one()))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::Conflict { expected: e, actual: Some(1), .. } if e == expected),
            "{expected}: {refused}"
        );
    }
    let stored = store
        .append(request("a", ExpectedVersion::Exact(1), one()))
        .await
        .unwrap();
    assert_eq!(stored[0].version, 2, "no version gap after refusals");
    let second = stored[0].position;
    let stored = store
        .append(request("a", ExpectedVersion::StreamExists, one()))
        .await
        .unwrap();
    assert_eq!(stored[0].version, 3);
    assert!(stored[0].position > second);
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn re_appending_the_same_event_ids_returns_the_stored_events() {
    let (store, _guard) = open_store().await;
    let events = vec![event("A", json!({"x": 1})), event("B", json!({"x": 2}))];
    let first = store
        .append(request("a", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    // The same append again (a client retry after a lost reply), with any expectation.
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(0),
    ] {
        let again = store
            .append(request("a", expected, events.clone()))
            .await
            .unwrap();
        assert_eq!(again, first, "{expected}");
    }
    assert_eq!(
        store.read_all(0, 10).await.unwrap(),
        first,
        "nothing stored twice"
    );

    // Same first id, different rest: a conflict.
    let mut changed = events.clone();
    changed[1] = event("B", json!({"x": 2}));
    let err = store
        .append(request("a", ExpectedVersion::Any, changed))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    // The ids under another aggregate: a conflict.
    let err = store
        .append(request("b", ExpectedVersion::Any, events.clone()))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    // A later id already stored, or repeated in the batch: a conflict, nothing stored.
    let err = store
        .append(request(
            "a",
            ExpectedVersion::Any,
            vec![event("C", json!({})), events[1].clone()],
        ))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let twice = event("D", json!({}));
    let err = store
        .append(request(
            "c",
            ExpectedVersion::Any,
            vec![twice.clone(), twice],
        ))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(store.read_all(0, 10).await.unwrap(), first);
    assert_eq!(store.stream_version("account", "b").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_are_written_with_appends_and_only_replace_older_ones() {
    let (store, _guard) = open_store().await;
    assert_eq!(store.load_snapshot("account", "a").await.unwrap(), None);
    let mut req = request("a", ExpectedVersion::NoStream, vec![event("E", json!({}))]);
    let mut snap = snapshot("a", 1, json!({"balance": 1}));
    snap.taken_at = "2024-01-02T03:04:05.000000123Z".parse().unwrap();
    req.snapshot = Some(snap.clone());
    store.append(req).await.unwrap();
    assert_same_snapshot(store.load_snapshot("account", "a").await.unwrap(), &snap);

    let newer = snapshot("a", 5, json!({"balance": 5}));
    store.save_snapshot(newer.clone()).await.unwrap();
    store
        .save_snapshot(snapshot("a", 3, json!({"balance": 3})))
        .await
        .unwrap();
    assert_same_snapshot(store.load_snapshot("account", "a").await.unwrap(), &newer);

    // An append carrying an older snapshot stores its events but keeps the newer snapshot.
    let mut req = request("a", ExpectedVersion::Exact(1), vec![event("E", json!({}))]);
    req.snapshot = Some(snapshot("a", 2, json!({"balance": 2})));
    store.append(req).await.unwrap();
    assert_same_snapshot(store.load_snapshot("account", "a").await.unwrap(), &newer);

    // A refused append writes no snapshot.
    let mut req = request("b", ExpectedVersion::Exact(3), vec![event("E", json!({}))]);
    req.snapshot = Some(snapshot("b", 4, json!({})));
    assert!(store.append(req).await.unwrap_err().is_conflict());
    assert_eq!(store.load_snapshot("account", "b").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let (store, _guard) = open_store().await;
    let mut bad = event("E", json!({}));
    bad.payload = "{not json".to_owned();
    let err = store
        .append(request(
            "a",
            ExpectedVersion::Any,
            vec![event("E", json!({})), bad],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Serialization { ref what, .. } if what.contains("payload of event 1")),
        "{err}"
    );

    // PostgreSQL text cannot hold NUL: a validation error, not a broken store.
    let err = append_one(&store, "nul\0id", ExpectedVersion::Any, "E", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");
    // Valid JSON that jsonb refuses, and a time before PostgreSQL's calendar: PostgreSQL's
    // data exceptions (SQLSTATE class 22) are validation errors too.
    let err = store
        .append(request(
            "a",
            ExpectedVersion::Any,
            vec![event("E", json!({"s": "\u{0}"}))],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");
    let mut ancient = event("E", json!({}));
    ancient.recorded_at = "-99999-01-01T00:00:00Z".parse().unwrap();
    let err = store
        .append(request("a", ExpectedVersion::Any, vec![ancient]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");

    let mut req = request("a", ExpectedVersion::Any, vec![event("E", json!({}))]);
    req.snapshot = Some(snapshot("other", 1, json!({})));
    let err = store.append(req).await.unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");

    assert!(store.read_all(0, 10).await.unwrap().is_empty());
    assert_eq!(store.load_snapshot("account", "other").await.unwrap(), None);
    // The next good append is the feed's first event and its stream's first version.
    let stored = append_one(&store, "a", ExpectedVersion::Any, "E", json!({}))
        .await
        .unwrap();
    assert_eq!(stored[0].version, 1);
    assert_eq!(store.read_all(0, 10).await.unwrap(), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_without_events_checks_its_expectation() {
    let (store, _guard) = open_store().await;
    let err = store
        .append(request("a", ExpectedVersion::StreamExists, Vec::new()))
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(
        store
            .append(request("a", ExpectedVersion::NoStream, Vec::new()))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
}
