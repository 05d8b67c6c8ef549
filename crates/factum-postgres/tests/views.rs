//! Views on PostgreSQL beyond the shared suite (whose `views_query_odd_values` checks the
//! query translation on odd values): hostile names and values, inline view changes inside
//! group commits, projection batches racing from two nodes, and a reset racing a runner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{event, open_on, open_store, request};
use factum_core::{
    Error, EventStore, ExpectedVersion, Filter, FilterOp, FilterValue, ProjectionBatch,
    ProjectionCheckpoint, SortKey, ViewChange, ViewField, ViewQuery, ViewRecord, ViewStore,
};
use factum_postgres::PostgresEventStore;
use factum_testing::conformance::ODD_FIELDS;
use serde_json::json;

const VIEW: &str = "odd";

/// The shared suite's odd-value fields (text, number, boolean, a dotted name).
const FIELDS: &[ViewField] = ODD_FIELDS;

fn record(id: &str, aggregate: &str, data: serde_json::Value) -> ViewRecord {
    ViewRecord {
        view_type: VIEW.to_owned(),
        view_id: id.to_owned(),
        aggregate_id: aggregate.to_owned(),
        version: 1,
        data: data.to_string(),
    }
}

fn upsert(id: &str, aggregate: &str, data: serde_json::Value) -> ViewChange {
    ViewChange::Upsert(record(id, aggregate, data))
}

async fn seed(store: &PostgresEventStore, records: Vec<ViewRecord>) {
    store
        .apply_projection(ProjectionBatch {
            projection: "seed".to_owned(),
            expected: ProjectionCheckpoint::at(0),
            checkpoint: 1,
            changes: records.into_iter().map(ViewChange::Upsert).collect(),
        })
        .await
        .unwrap();
}

fn ids(records: &[ViewRecord]) -> Vec<&str> {
    records.iter().map(|r| r.view_id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_names_and_values_stay_data() {
    let (store, _guard) = open_store().await;
    let hostile = "x'); DROP TABLE views; --";
    seed(
        &store,
        vec![record(hostile, hostile, json!({"name": hostile, "n": 1}))],
    )
    .await;
    let query = ViewQuery {
        filters: vec![Filter {
            field: "name".into(),
            op: FilterOp::Eq,
            value: FilterValue::Text(hostile.into()),
        }],
        sort: vec![SortKey {
            field: "n".into(),
            descending: true,
        }],
        ..ViewQuery::default()
    };
    let page = store.query_views(hostile, &query, FIELDS).await.unwrap();
    assert_eq!(page.total, 0, "another view type");
    let page = store.query_views(VIEW, &query, FIELDS).await.unwrap();
    assert_eq!(ids(&page.items), [hostile]);
    assert_eq!(
        store.list_views_of(VIEW, hostile).await.unwrap().len(),
        1,
        "the table is still there"
    );
    // A field the view does not declare never reaches SQL, even in a hand-built query.
    let undeclared = ViewQuery {
        filters: vec![Filter {
            field: "note".into(),
            op: FilterOp::Eq,
            value: FilterValue::Text("x".into()),
        }],
        ..ViewQuery::default()
    };
    let result = store.query_views(VIEW, &undeclared, FIELDS).await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
    // PostgreSQL text cannot hold NUL: a validation error, never a 500.
    let query = ViewQuery::parse(Some("name:eq:a\0b"), None, None, None, FIELDS).unwrap();
    let result = store.query_views(VIEW, &query, FIELDS).await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
}

/// Concurrent appends, committed in groups: each accepted append writes its view changes,
/// each refused or bad one writes none, and the others in its group are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn view_changes_follow_their_append_through_group_commits() {
    let (store, _guard) = open_store().await;
    let store = Arc::new(store);
    for round in 0..5 {
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|k| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let id = match k {
                        // Two appends race for the same new stream: one is refused.
                        0 | 1 => format!("contested-{round}"),
                        _ => format!("r{round}-k{k}"),
                    };
                    let payload = if k == 2 {
                        // jsonb refuses it inside the group's transaction: the group fails
                        // and every append in it is redone alone, with its view changes.
                        json!({"s": "\u{0}"})
                    } else {
                        json!({"k": k})
                    };
                    let mut req =
                        request(&id, ExpectedVersion::NoStream, vec![event("E", payload)]);
                    req.view_changes = vec![
                        upsert(&id, &id, json!({"k": k, "first": true})),
                        upsert(&format!("{id}-{k}"), &id, json!({"k": k})),
                        // Only the last change of a record counts.
                        upsert(&id, &id, json!({"k": k})),
                    ];
                    barrier.wait().await;
                    (k, id, store.append(req).await)
                })
            })
            .collect();
        let mut contested_winner = None;
        for task in tasks {
            let (k, id, result) = task.await.unwrap();
            let own = store.get_view(VIEW, &format!("{id}-{k}")).await.unwrap();
            match (k, result) {
                (2, result) => {
                    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
                    assert!(own.is_none());
                    assert!(store.get_view(VIEW, &id).await.unwrap().is_none());
                }
                (0 | 1, Ok(_)) => {
                    assert!(contested_winner.replace(k).is_none(), "one winner");
                    assert!(own.is_some());
                }
                (0 | 1, Err(error)) => {
                    assert!(error.is_conflict(), "{error}");
                    assert!(own.is_none(), "a refused append writes no view changes");
                }
                (_, result) => {
                    assert_eq!(result.unwrap().len(), 1);
                    let main = store.get_view(VIEW, &id).await.unwrap().unwrap();
                    assert_eq!(
                        serde_json::from_str::<serde_json::Value>(&main.data).unwrap(),
                        json!({"k": k})
                    );
                    assert!(own.is_some());
                }
            }
        }
        let winner = contested_winner.expect("one contested append wins");
        let contested = store
            .get_view(VIEW, &format!("contested-{round}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&contested.data).unwrap(),
            json!({"k": winner})
        );
    }
    // 5 rounds of 18 stored appends, and one record per accepted append plus its main one.
    assert_eq!(store.read_all(0, 1000).await.unwrap().len(), 5 * 18);
    let all = ViewQuery {
        page_size: 1000,
        ..ViewQuery::default()
    };
    assert_eq!(
        store.query_views(VIEW, &all, FIELDS).await.unwrap().total,
        5 * 18 * 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_without_events_writes_its_view_changes_only_if_expected() {
    let (store, _guard) = open_store().await;
    let mut refused = request("a", ExpectedVersion::StreamExists, Vec::new());
    refused.view_changes = vec![upsert("a", "a", json!({"n": 1}))];
    assert!(store.append(refused).await.unwrap_err().is_conflict());
    assert!(store.get_view(VIEW, "a").await.unwrap().is_none());

    let mut accepted = request("a", ExpectedVersion::NoStream, Vec::new());
    accepted.view_changes = vec![upsert("a", "a", json!({"n": 2}))];
    assert!(store.append(accepted).await.unwrap().is_empty());
    assert!(store.get_view(VIEW, "a").await.unwrap().is_some());
    assert_eq!(store.head_position().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_view_records_are_refused_and_change_nothing() {
    let (store, _guard) = open_store().await;
    for data in ["{not json", r#"{"n": 1e400}"#] {
        let mut req = request("a", ExpectedVersion::NoStream, vec![event("E", json!({}))]);
        req.view_changes = vec![ViewChange::Upsert(ViewRecord {
            data: data.to_owned(),
            ..record("a", "a", json!({}))
        })];
        let err = store.append(req).await.unwrap_err();
        assert!(matches!(err, Error::Serialization { .. }), "{err}");
    }
    // Valid JSON that jsonb refuses.
    let mut req = request("a", ExpectedVersion::NoStream, vec![event("E", json!({}))]);
    req.view_changes = vec![upsert("a", "a", json!({"s": "\u{0}"}))];
    let err = store.append(req).await.unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");
    let batch = ProjectionBatch {
        projection: "p".to_owned(),
        expected: ProjectionCheckpoint::at(0),
        checkpoint: 1,
        changes: vec![
            upsert("good", "a", json!({})),
            upsert("bad", "a", json!({"s": "\u{0}"})),
        ],
    };
    let err = store.apply_projection(batch).await.unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");

    assert_eq!(store.head_position().await.unwrap(), 0);
    assert_eq!(store.projection_checkpoint("p").await.unwrap().position, 0);
    assert!(store.get_view(VIEW, "good").await.unwrap().is_none());
    assert!(store.get_view(VIEW, "a").await.unwrap().is_none());
}

/// Runners on two nodes apply batches from the same checkpoint at once: exactly one batch
/// of each round commits, and the loser's records are not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_projection_batches_from_two_nodes_commit_once() {
    let (a, guard) = open_store().await;
    let b = open_on(guard.schema()).await;
    let nodes = [Arc::new(a), Arc::new(b)];
    for round in 0..20u64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(node, store)| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let batch = ProjectionBatch {
                        projection: "p".to_owned(),
                        expected: ProjectionCheckpoint::at(round * 10),
                        checkpoint: round * 10 + 10,
                        changes: vec![upsert(
                            &format!("r{round}-n{node}"),
                            "agg",
                            json!({"n": round}),
                        )],
                    };
                    barrier.wait().await;
                    (node, store.apply_projection(batch).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (node, result) = task.await.unwrap();
            match result {
                Ok(()) => winners.push(node),
                Err(Error::Conflict { actual, .. }) => assert_eq!(actual, Some(round * 10 + 10)),
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let loser = 1 - winners[0];
        assert!(
            nodes[0]
                .get_view(VIEW, &format!("r{round}-n{loser}"))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        nodes[1].projection_checkpoint("p").await.unwrap().position,
        200
    );
    assert_eq!(nodes[0].list_views_of(VIEW, "agg").await.unwrap().len(), 20);
}

/// A reset racing a runner's batch: either the batch commits first and the reset wipes it,
/// or the reset commits first and the batch is refused. Never a stale record after a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_racing_a_batch_leaves_no_stale_records() {
    let (store, _guard) = open_store().await;
    let store = Arc::new(store);
    for round in 0..20u64 {
        // Each reset starts a new generation: read it, as a runner would.
        let start = store.projection_checkpoint("p").await.unwrap();
        assert_eq!(
            start,
            ProjectionCheckpoint {
                position: 0,
                generation: round
            }
        );
        store
            .apply_projection(ProjectionBatch {
                projection: "p".to_owned(),
                expected: start,
                checkpoint: 5,
                changes: vec![upsert("base", "agg", json!({}))],
            })
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let batch = {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .apply_projection(ProjectionBatch {
                        projection: "p".to_owned(),
                        expected: ProjectionCheckpoint {
                            position: 5,
                            generation: start.generation,
                        },
                        checkpoint: 9,
                        changes: vec![upsert("stale", "agg", json!({"round": round}))],
                    })
                    .await
            })
        };
        let reset = {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.reset_projection("p", &[VIEW]).await
            })
        };
        reset.await.unwrap().unwrap();
        let batch = batch.await.unwrap();
        assert!(
            batch.is_ok()
                || matches!(
                    batch,
                    Err(Error::Conflict {
                        actual: Some(0),
                        ..
                    })
                ),
            "{batch:?}"
        );
        assert_eq!(store.projection_checkpoint("p").await.unwrap().position, 0);
        assert!(store.list_views_of(VIEW, "agg").await.unwrap().is_empty());
    }
}
