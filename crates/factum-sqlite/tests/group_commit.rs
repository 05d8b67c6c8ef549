//! Group commit in the SQLite store: appends queued during a commit share one transaction, a
//! refused append fails alone, a batch that cannot commit fails whole, and readers never wait
//! for a blocked writer.
//!
//! Several tests hold SQLite's write lock from a second connection (as another process
//! would) to make the writer thread wait, so that appends queue up behind it
//! deterministically instead of depending on how fast the disk syncs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use factum_core::{
    Error, EventStore, ExpectedVersion, ProjectionBatch, ProjectionCheckpoint, ViewStore,
};
use factum_sqlite::{SqliteEventStore, SqliteOptions};
use factum_testing::sample::event;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_queued_during_a_commit_share_one_transaction() {
    let (store, path, _dir) = fresh().await;
    let lock = hold_write_lock(&path);
    // The writer takes the plug and waits for the lock; the 64 appends queue behind it.
    let plug = queue(
        &store,
        request("plug", ExpectedVersion::NoStream, vec![event(0)]),
    );
    tokio::time::sleep(SETTLE).await;
    let appends: Vec<_> = (0..64)
        .map(|i| {
            queue(
                &store,
                request(
                    &format!("agg-{i}"),
                    ExpectedVersion::NoStream,
                    vec![event(1), event(2)],
                ),
            )
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    assert_eq!(store.stats().commits, 0, "the writer is held by the lock");
    drop(lock);

    plug.await.unwrap();
    for append in appends {
        assert_eq!(append.await.unwrap().len(), 2);
    }
    let stats = store.stats();
    assert_eq!(stats.requests, 65);
    assert_eq!(stats.events, 129);
    assert!(
        stats.commits <= 2 && stats.largest_batch >= 64,
        "the 64 queued appends share one transaction: {stats:?}"
    );
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=129).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_group_committed() {
    const WRITERS: u64 = 16;
    const PER_WRITER: u64 = 40;
    let (store, _path, _dir) = fresh().await;
    let started = Instant::now();
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..PER_WRITER {
                    store
                        .append(request(
                            &format!("w-{w}"),
                            ExpectedVersion::Exact(round),
                            vec![event(round)],
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    let appends = WRITERS * PER_WRITER;
    println!(
        "{WRITERS} writers: {appends} appends in {} commits ({:.1} appends per commit, largest batch {}), {:.0} appends/s",
        stats.commits,
        stats.requests as f64 / stats.commits as f64,
        stats.largest_batch,
        appends as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(stats.requests, appends);
    assert_eq!(stats.events, appends);
    // 16 writers each waiting for its own commit: while one fsync runs, the others queue.
    assert!(
        stats.commits * 2 <= appends,
        "expected at least two appends per commit on average: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_append_fails_alone_and_its_neighbours_commit() {
    let (store, path, _dir) = fresh().await;
    let plug_event = event(0);
    let plug = request("plug", ExpectedVersion::NoStream, vec![plug_event.clone()]);
    let held = hold_writer(&store, &path, Some(plug)).await;

    let mut bad_snapshot = request("w", ExpectedVersion::NoStream, vec![event(1)]);
    bad_snapshot.snapshot = Some(snapshot("w", 7));
    let appends: Vec<_> = [
        // Two creations of one stream: the first queued wins, the second conflicts.
        request("x", ExpectedVersion::NoStream, vec![event(1), event(2)]),
        request("x", ExpectedVersion::NoStream, vec![event(3)]),
        request("y", ExpectedVersion::NoStream, vec![event(4)]),
        // An event id already stored under another aggregate: a UNIQUE violation.
        request("z", ExpectedVersion::NoStream, vec![event(5), plug_event]),
        // A snapshot whose version is not the one the append reaches.
        bad_snapshot,
        // Sees the append to "y" before it in the same transaction.
        request("y", ExpectedVersion::Exact(1), vec![event(6)]),
    ]
    .into_iter()
    .map(|request| queue(&store, request))
    .collect();
    let results = held.release(appends).await;
    assert_eq!(results[0].as_ref().unwrap().len(), 2);
    assert!(matches!(
        results[1],
        Err(Error::Conflict {
            actual: Some(2),
            ..
        })
    ));
    assert_eq!(results[2].as_ref().unwrap()[0].version, 1);
    assert!(matches!(results[3], Err(Error::Conflict { .. })));
    assert!(matches!(results[4], Err(Error::Validation(_))));
    assert_eq!(results[5].as_ref().unwrap()[0].version, 2);

    let stats = store.stats();
    assert!(
        stats.commits <= 2 && stats.largest_batch >= 6,
        "all six shared one transaction: {stats:?}"
    );
    assert_eq!(stats.refused, 3);
    let all = store.read_all(0, 100).await.unwrap();
    let ids: Vec<(&str, u64)> = all
        .iter()
        .map(|e| (e.aggregate_id.as_str(), e.version))
        .collect();
    assert_eq!(
        ids,
        [("plug", 1), ("x", 1), ("x", 2), ("y", 1), ("y", 2)],
        "refused appends left nothing, and positions have no gap"
    );
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.stream_version(TYPE, "z").await.unwrap(), 0);
    assert_eq!(store.stream_version(TYPE, "w").await.unwrap(), 0);
    assert!(store.load_snapshot(TYPE, "w").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_in_the_same_batch_as_its_original_returns_the_stored_events() {
    let (store, path, _dir) = fresh().await;
    let held = hold_writer(&store, &path, None).await;
    let events = vec![event(1), event(2)];
    let appends: Vec<_> = (0..3)
        .map(|_| {
            queue(
                &store,
                request("r", ExpectedVersion::NoStream, events.clone()),
            )
        })
        .collect();
    let results: Vec<_> = held
        .release(appends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(store.read_all(0, 10).await.unwrap(), results[0]);
    let stats = store.stats();
    assert_eq!(
        (stats.events, stats.refused),
        (2, 0),
        "stored once: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_do_not_wait_for_a_blocked_writer() {
    let (store, path, _dir) = fresh().await;
    store
        .append(create_with_view("a", 1, "a", "{}"))
        .await
        .unwrap();
    let lock = hold_write_lock(&path);
    let pending = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(request("a", ExpectedVersion::Exact(1), vec![event(2)]))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reads = async {
        (
            store.read_all(0, 10).await.unwrap(),
            store.read_stream(TYPE, "a", 1, None).await.unwrap(),
            store.stream_version(TYPE, "a").await.unwrap(),
            store.load_snapshot(TYPE, "a").await.unwrap(),
            store.head_position().await.unwrap(),
            view_data(&store).await,
            store.projection_checkpoint("p").await.unwrap().position,
        )
    };
    let (all, stream, version, snapshot, head, views, checkpoint) =
        tokio::time::timeout(Duration::from_secs(2), reads)
            .await
            .expect("reads finish while the writer waits for the lock");
    assert_eq!((all.len(), stream.len(), version, head), (1, 1, 1, 1));
    assert_eq!((views, checkpoint), (pairs(&[("a", "{}")]), 0));
    assert!(snapshot.is_none());
    store.health_check().await.unwrap();
    assert!(!pending.is_finished(), "the append is still waiting");
    drop(lock);
    assert_eq!(pending.await.unwrap().unwrap()[0].position, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_batch_cannot_commit_every_append_in_it_fails_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let options = SqliteOptions::default().with_busy_timeout(Duration::from_millis(100));
    let store = Arc::new(SqliteEventStore::open_with(&path, options).await.unwrap());
    // Held longer than the busy timeout: the writer's BEGIN IMMEDIATE gives up.
    let lock = hold_write_lock(&path);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(create_with_view(
                        &format!("f-{i}"),
                        i,
                        &format!("f-{i}"),
                        "{}",
                    ))
                    .await
                    .map(drop)
            })
        })
        .chain([tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .apply_projection(ProjectionBatch {
                        projection: "p".to_owned(),
                        expected: ProjectionCheckpoint::at(0),
                        checkpoint: 1,
                        changes: vec![upsert("projected", "{}")],
                    })
                    .await
            }
        })])
        .collect();
    for handle in handles {
        let result = handle.await.unwrap();
        assert!(matches!(result, Err(Error::Store(_))), "{result:?}");
    }
    drop(lock);
    assert!(
        view_data(&store).await.is_empty(),
        "no view change survived"
    );
    assert_eq!(store.projection_checkpoint("p").await.unwrap().position, 0);
    assert!(store.stats().failed_commits >= 1);
    assert_eq!(store.stats().commits, 0);
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
    let stored = store
        .append(request("f-0", ExpectedVersion::NoStream, vec![event(9)]))
        .await
        .unwrap();
    assert_eq!(stored[0].position, 1, "the failed batch left no trace");
}
