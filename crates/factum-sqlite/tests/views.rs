//! Views in the SQLite store: inline view changes and projection batches inside a group
//! commit (a refused one rolls back alone), and view records across reopening and retries.
//!
//! Several tests hold SQLite's write lock from a second connection (as another process
//! would) to make the writer thread wait, so that appends queue up behind it
//! deterministically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use factum_core::{
    Error, EventStore, ExpectedVersion, ProjectionBatch, ProjectionCheckpoint, ViewStore,
};
use factum_sqlite::SqliteEventStore;
use factum_testing::sample::event;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inline_view_changes_of_a_refused_append_roll_back_alone_in_a_group_commit() {
    let (store, path, _dir) = fresh().await;
    store
        .append(create_with_view("keep", 0, "kept", r#"{"v":0}"#))
        .await
        .unwrap();
    let plug = request("plug", ExpectedVersion::NoStream, vec![event(1)]);
    let held = hold_writer(&store, &path, Some(plug)).await;
    let appends: Vec<_> = [
        create_with_view("x", 2, "x", r#"{"v":"first"}"#),
        // Conflicts with the append before it: none of its view changes may land, the
        // delete of a record committed earlier included.
        with_views(
            request("x", ExpectedVersion::NoStream, vec![event(3)]),
            vec![
                upsert("x", r#"{"v":"second"}"#),
                upsert("only-second", "{}"),
                delete("kept"),
            ],
        ),
        create_with_view("y", 4, "y", r#"{"v":1}"#),
        // A view record that is not JSON refuses the whole append, events included.
        create_with_view("z", 5, "z", "{not json"),
        // Sees the changes of the append to "y" before it in the same transaction.
        with_views(
            request("y", ExpectedVersion::Exact(1), vec![event(6)]),
            vec![upsert("y", r#"{"v":2}"#), upsert("y-2", "[]")],
        ),
    ]
    .into_iter()
    .map(|request| queue(&store, request))
    .collect();
    let results = held.release(appends).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(Error::Conflict { .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(
        matches!(results[3], Err(Error::Validation(_))),
        "{:?}",
        results[3]
    );
    assert!(results[4].is_ok(), "{:?}", results[4]);
    // The five appends shared one transaction.
    assert_one_transaction(&store, 5, 2);

    assert_eq!(
        view_data(&store).await,
        pairs(&[
            ("kept", r#"{"v":0}"#),
            ("x", r#"{"v":"first"}"#),
            ("y", r#"{"v":2}"#),
            ("y-2", "[]"),
        ])
    );
    assert_eq!(store.stream_version(TYPE, "x").await.unwrap(), 1);
    assert_eq!(store.stream_version(TYPE, "z").await.unwrap(), 0);
    assert_eq!(store.head_position().await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_batch_whose_checkpoint_moved_writes_nothing_and_its_neighbours_commit() {
    let (store, path, _dir) = fresh().await;
    let batch = |projection: &str, expected, checkpoint, changes| ProjectionBatch {
        projection: projection.to_owned(),
        expected: ProjectionCheckpoint::at(expected),
        checkpoint,
        changes,
    };
    store
        .apply_projection(batch("p", 0, 5, vec![upsert("p-1", r#"{"at":5}"#)]))
        .await
        .unwrap();
    let plug = request("plug", ExpectedVersion::NoStream, vec![event(1)]);
    let held = hold_writer(&store, &path, Some(plug)).await;
    let writes: Vec<Pending<'_, ()>> = vec![
        // A runner still on checkpoint 0: refused, with none of its changes.
        started(store.apply_projection(batch(
            "p",
            0,
            9,
            vec![upsert("p-stale", "{}"), delete("p-1")],
        ))),
        started(store.apply_projection(batch("q", 0, 3, vec![upsert("q-1", "{}")]))),
        started(store.apply_projection(batch(
            "p",
            5,
            8,
            vec![upsert("p-1", r#"{"at":8}"#), upsert("p-2", "{}")],
        ))),
        // Not valid JSON: refused whole, its checkpoint unmoved.
        started(store.apply_projection(batch("r", 0, 4, vec![upsert("r-1", "nope")]))),
    ];
    let results = held.release(writes).await;
    assert!(
        matches!(
            results[0],
            Err(Error::Conflict {
                actual: Some(5),
                expected: ExpectedVersion::Exact(0),
                ..
            })
        ),
        "{:?}",
        results[0]
    );
    assert!(results[1].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(results[3], Err(Error::Validation(_))),
        "{:?}",
        results[3]
    );
    // The four batches shared one transaction.
    assert_one_transaction(&store, 4, 2);

    assert_eq!(
        view_data(&store).await,
        pairs(&[("p-1", r#"{"at":8}"#), ("p-2", "{}"), ("q-1", "{}")])
    );
    assert_eq!(store.projection_checkpoint("p").await.unwrap().position, 8);
    assert_eq!(store.projection_checkpoint("q").await.unwrap().position, 3);
    assert_eq!(store.projection_checkpoint("r").await.unwrap().position, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn view_writes_persist_across_reopening() {
    let (store, path, _dir) = fresh().await;
    store
        .append(create_with_view("a", 1, "a", r#"{"n":1}"#))
        .await
        .unwrap();
    store
        .apply_projection(ProjectionBatch {
            projection: "p".to_owned(),
            expected: ProjectionCheckpoint::at(0),
            checkpoint: 1,
            changes: vec![upsert("b", r#"{"n":2}"#)],
        })
        .await
        .unwrap();
    Arc::into_inner(store).unwrap().close().await;
    let store = SqliteEventStore::open(&path).await.unwrap();
    assert_eq!(
        view_data(&store).await,
        pairs(&[("a", r#"{"n":1}"#), ("b", r#"{"n":2}"#)])
    );
    assert_eq!(store.projection_checkpoint("p").await.unwrap().position, 1);
    let record = store.get_view(VIEW, "a").await.unwrap().unwrap();
    assert_eq!((record.aggregate_id.as_str(), record.version), ("agg", 1));
    let error = store
        .apply_projection(ProjectionBatch {
            projection: "p".to_owned(),
            expected: ProjectionCheckpoint::at(1),
            checkpoint: u64::MAX,
            changes: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Validation(_)), "{error}");
    assert_eq!(store.projection_checkpoint("p").await.unwrap().position, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_append_does_not_write_its_view_changes_again() {
    let (store, _path, _dir) = fresh().await;
    let events = vec![event(1), event(2)];
    let first = store
        .append(with_views(
            request("r", ExpectedVersion::NoStream, events.clone()),
            vec![upsert("r", r#"{"applied":1}"#)],
        ))
        .await
        .unwrap();
    // The caller never heard back and retries, its view changes computed anew.
    let retried = store
        .append(with_views(
            request("r", ExpectedVersion::NoStream, events),
            vec![upsert("r", r#"{"applied":2}"#), upsert("extra", "{}")],
        ))
        .await
        .unwrap();
    assert_eq!(retried, first);
    assert_eq!(view_data(&store).await, pairs(&[("r", r#"{"applied":1}"#)]));
}
