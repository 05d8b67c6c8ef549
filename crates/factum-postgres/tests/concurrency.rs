//! Concurrency in the PostgreSQL store against the real server: conflict races between tasks
//! and between nodes, and group commit where each append fails or succeeds on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{append_one, assert_numbered_from_one, event, open_on, open_store, request};
use factum_core::{Error, EventStore, ExpectedVersion};
use factum_postgres::PostgresEventStore;
use serde_json::json;
// SQL built by these tests splices only schema names the tests generated themselves
// (plain identifiers the store validated) and constants.

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
    assert_numbered_from_one(&all);
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
                    append_one(&store, "hot", ExpectedVersion::Any, "E", json!({}))
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
    // One stream's versions and positions grow together.
    assert_numbered_from_one(&all);
    assert_eq!(a.read_all(0, 1000).await.unwrap(), all);
}

/// Appends arriving together are committed as one group; one bad or refused append in a
/// group fails alone, and the feed holds exactly the stored events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_fail_or_succeed_each_on_their_own() {
    let (store, _guard) = open_store().await;
    let store = Arc::new(store);
    let retried = vec![event("E", json!({"retry": true}))];
    let first = store
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
                    assert_eq!(stored, first);
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
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
}
