//! The PostgreSQL store against the real server: appends, reads, expected versions, retries,
//! snapshots, conflict races between tasks and between nodes, and migrations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::{SchemaGuard, event, open_on, open_store, request, unique_schema};
use factum_core::store::Snapshot;
use factum_core::{Error, EventStore, ExpectedVersion, Metadata};
use factum_postgres::PostgresEventStore;
use serde_json::json;
// SQL built by these tests splices only schema names the tests generated themselves
// (plain identifiers the store validated) and constants.
use sqlx::AssertSqlSafe;

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
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.position, e.version))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 2)]
    );
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
            store
                .append(request(
                    id,
                    ExpectedVersion::Any,
                    vec![event("E", json!({}))],
                ))
                .await
                .unwrap();
        }
    }
    let b = store.read_stream("account", "b", 2, Some(1)).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].version, b[0].position), (2, 5));
    assert_eq!(
        store
            .read_stream("account", "b", 2, None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .read_stream("account", "b", 0, None)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .read_stream("account", "b", 4, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream("account", "b", u64::MAX, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream("account", "b", 1, Some(0))
            .await
            .unwrap()
            .is_empty()
    );

    let page = store.read_all(2, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(store.read_all(6, 10).await.unwrap().is_empty());
    assert!(store.read_all(0, 0).await.unwrap().is_empty());
    assert!(store.read_all(u64::MAX, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expected_versions_are_enforced_and_refusals_change_nothing() {
    let (store, _guard) = open_store().await;
    let one = || vec![event("E", json!({"n": 1}))];
    let refused = store
        .append(request("a", ExpectedVersion::StreamExists, one()))
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
    let refused = store
        .append(request("a", ExpectedVersion::Exact(1), one()))
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
    assert_eq!(
        (stored[0].version, stored[0].position),
        (2, 2),
        "no gap after refusals"
    );
    let stored = store
        .append(request("a", ExpectedVersion::StreamExists, one()))
        .await
        .unwrap();
    assert_eq!((stored[0].version, stored[0].position), (3, 3));
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
    let err = store
        .append(request(
            "nul\0id",
            ExpectedVersion::Any,
            vec![event("E", json!({}))],
        ))
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
    // The next good append gets position 1: the refusals left no gap.
    let stored = store
        .append(request(
            "a",
            ExpectedVersion::Any,
            vec![event("E", json!({}))],
        ))
        .await
        .unwrap();
    assert_eq!(stored[0].position, 1);
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

/// Two appends with the same expected version at once: exactly one wins, the other gets a
/// conflict, whether they share a pool or come from two nodes.
async fn race_one_version(a: Arc<PostgresEventStore>, b: Arc<PostgresEventStore>, rounds: u64) {
    for round in 0..rounds {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round)
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [a.clone(), b.clone()].map(|store| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let req = request("contested", expected, vec![event("E", json!({"r": round}))]);
                barrier.wait().await;
                store.append(req).await
            })
        });
        let mut wins = 0;
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(stored) => {
                    assert_eq!(stored[0].version, round + 1);
                    wins += 1;
                }
                Err(Error::Conflict { actual, .. }) => {
                    assert_eq!(actual, Some(round + 1));
                    conflicts += 1;
                }
                Err(other) => panic!("round {round}: unexpected error {other}"),
            }
        }
        assert_eq!((wins, conflicts), (1, 1), "round {round}");
    }
    let all = a.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len() as u64, rounds);
    assert!(
        all.iter()
            .zip(1..)
            .all(|(e, n)| e.position == n && e.version == n)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_on_one_pool_one_wins_one_conflicts() {
    let (store, _guard) = open_store().await;
    let store = Arc::new(store);
    race_one_version(store.clone(), store, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_from_two_nodes_one_wins_one_conflicts() {
    let (a, guard) = open_store().await;
    let b = open_on(guard.schema()).await;
    race_one_version(Arc::new(a), Arc::new(b), 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_expectation_never_conflicts_under_contention() {
    let (a, guard) = open_store().await;
    let b = Arc::new(open_on(guard.schema()).await);
    let a = Arc::new(a);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for _ in 0..10 {
                    store
                        .append(request(
                            "hot",
                            ExpectedVersion::Any,
                            vec![event("E", json!({}))],
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let all = a.read_stream("account", "hot", 1, None).await.unwrap();
    assert_eq!(all.len(), 80);
    assert!(
        all.iter()
            .zip(1..)
            .all(|(e, n)| e.version == n && e.position == n)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_nodes_opening_one_schema_at_once_migrate_it_once() {
    let schema = unique_schema();
    let _guard = SchemaGuard::new(&schema);
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { open_on(&schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap());
    }
    let versions: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".factum_migrations ORDER BY version"
    )))
    .fetch_all(stores[0].pool())
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
    // And reopening later is a no-op that keeps the data.
    stores[1]
        .append(request(
            "a",
            ExpectedVersion::NoStream,
            vec![event("E", json!({}))],
        ))
        .await
        .unwrap();
    let reopened = open_on(&schema).await;
    assert_eq!(reopened.stream_version("account", "a").await.unwrap(), 1);
    assert_eq!(reopened.schema(), schema);
}

#[tokio::test]
async fn invalid_schema_names_are_rejected_before_connecting() {
    // The URL points nowhere: a name check that came second would fail differently.
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    for name in [
        "",
        "Upper",
        "has-dash",
        "x\"; DROP SCHEMA public; --",
        "pg_temp",
        "9lives",
    ] {
        let err = PostgresEventStore::connect_with_schema(nowhere, name)
            .await
            .unwrap_err();
        assert!(
            matches!(err, factum_postgres::Error::InvalidSchemaName(ref n) if n == name),
            "{name:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_migrated_by_a_newer_release_is_refused() {
    let (store, guard) = open_store().await;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{}\".factum_migrations (version, name) VALUES (999, 'future')",
        guard.schema()
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let err = PostgresEventStore::from_pool(store.pool().clone(), guard.schema())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            factum_postgres::Error::SchemaTooNew {
                found: 999,
                known: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_check_reports_a_closed_pool_as_unavailable() {
    let (store, _guard) = open_store().await;
    store.health_check().await.unwrap();
    store.pool().close().await;
    let err = store.health_check().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}

/// Appends arriving together are committed as one group; one bad or refused append in a
/// group fails alone, and positions stay gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_fail_or_succeed_each_on_their_own() {
    let (store, _guard) = open_store().await;
    let store = Arc::new(store);
    let retried = vec![event("E", json!({"retry": true}))];
    store
        .append(request(
            "retried",
            ExpectedVersion::NoStream,
            retried.clone(),
        ))
        .await
        .unwrap();

    for round in 0..5 {
        let barrier = Arc::new(tokio::sync::Barrier::new(24));
        let mut tasks = Vec::new();
        for k in 0..24 {
            let store = store.clone();
            let barrier = barrier.clone();
            let retried = retried.clone();
            tasks.push(tokio::spawn(async move {
                let req = match k {
                    // jsonb refuses it inside the group's transaction.
                    0 => request(
                        "bad",
                        ExpectedVersion::Any,
                        vec![event("E", json!({"s": "\u{0}"}))],
                    ),
                    1 => request("retried", ExpectedVersion::NoStream, retried),
                    2 | 3 => request(
                        &format!("contested-{round}"),
                        ExpectedVersion::NoStream,
                        vec![event("E", json!({"k": k}))],
                    ),
                    _ => request(
                        &format!("r{round}-k{k}"),
                        ExpectedVersion::NoStream,
                        vec![event("E", json!({})), event("E", json!({}))],
                    ),
                };
                barrier.wait().await;
                (k, store.append(req).await)
            }));
        }
        let mut contested_wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                (0, result) => assert!(matches!(result, Err(Error::Validation(_))), "{result:?}"),
                (1, result) => {
                    let stored = result.unwrap();
                    assert_eq!(
                        (stored[0].position, stored[0].event_id),
                        (1, retried[0].event_id)
                    );
                }
                (2 | 3, Ok(_)) => contested_wins += 1,
                (2 | 3, Err(error)) => assert!(error.is_conflict(), "{error}"),
                (_, result) => assert_eq!(result.unwrap().len(), 2),
            }
        }
        assert_eq!(contested_wins, 1, "round {round}");
    }
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(all.len(), 1 + 5 * (1 + 20 * 2));
    assert!(all.iter().zip(1..).all(|(e, n)| e.position == n), "gapless");
}
