//! Behaviour specific to the SQLite store: group commit, conflicts inside a batch (with their
//! inline view changes and projection batches), readers beside a blocked writer, reopening,
//! migrations, and bad paths and URLs.
//!
//! Several tests hold SQLite's write lock from a second connection (as another process
//! would) to make the writer thread wait, so that appends queue up behind it
//! deterministically instead of depending on how fast the disk syncs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use factum_core::store::{AppendRequest, NewEvent, Snapshot, StoredEvent};
use factum_core::{
    Error, EventStore, ExpectedVersion, ProjectionBatch, ProjectionCheckpoint, ViewChange,
    ViewQuery, ViewRecord, ViewStore,
};
use factum_sqlite::{SqliteEventStore, SqliteOptions};
use factum_testing::sample::event;

const TYPE: &str = "sqlite-test";

fn request(id: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new(TYPE, id, expected, events)
}

async fn fresh() -> (Arc<SqliteEventStore>, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteEventStore::open(&path).await.unwrap();
    (Arc::new(store), path, dir)
}

/// Takes SQLite's write lock from a separate connection; dropping it releases the lock.
fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

/// Long enough for the writer thread to take what is queued and block on the lock.
const SETTLE: Duration = Duration::from_millis(250);

type Pending<'a, T = Vec<StoredEvent>> =
    Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Polls a write once, which puts it in the writer's queue, and returns it: requests queue in
/// the order this is called (spawned tasks would start in any order).
fn started<T>(mut write: Pending<'_, T>) -> Pending<'_, T> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        write.as_mut().poll(&mut cx).is_pending(),
        "the write waits for the writer"
    );
    write
}

/// Starts an append and returns once it sits in the writer's queue.
fn queue(store: &SqliteEventStore, request: AppendRequest) -> Pending<'_> {
    started(store.append(request))
}

const VIEW: &str = "sqlite_test_view";

fn upsert(view_id: &str, data: &str) -> ViewChange {
    ViewChange::Upsert(ViewRecord {
        view_type: VIEW.to_owned(),
        view_id: view_id.to_owned(),
        aggregate_id: "agg".to_owned(),
        version: 1,
        data: data.to_owned(),
    })
}

fn delete(view_id: &str) -> ViewChange {
    ViewChange::Delete {
        view_type: VIEW.to_owned(),
        view_id: view_id.to_owned(),
    }
}

fn with_views(mut request: AppendRequest, changes: Vec<ViewChange>) -> AppendRequest {
    request.view_changes = changes;
    request
}

/// The `data` of every record of [`VIEW`], by id.
async fn view_data(store: &SqliteEventStore) -> Vec<(String, String)> {
    let page = store
        .query_views(VIEW, &ViewQuery::default(), &[])
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|r| (r.view_id, r.data))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(id, data)| ((*id).to_owned(), (*data).to_owned()))
        .collect()
}

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
    let lock = hold_write_lock(&path);
    let plug_event = event(0);
    let plug = queue(
        &store,
        request("plug", ExpectedVersion::NoStream, vec![plug_event.clone()]),
    );
    tokio::time::sleep(SETTLE).await;

    let mut bad_snapshot = request("w", ExpectedVersion::NoStream, vec![event(1)]);
    bad_snapshot.snapshot = Some(Snapshot {
        aggregate_type: TYPE.to_owned(),
        aggregate_id: "w".to_owned(),
        version: 7,
        state: "{}".to_owned(),
        taken_at: chrono::Utc::now(),
    });
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
    tokio::time::sleep(SETTLE).await;
    drop(lock);

    plug.await.unwrap();
    let mut results = Vec::new();
    for append in appends {
        results.push(append.await);
    }
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
    let lock = hold_write_lock(&path);
    let events = vec![event(1), event(2)];
    let appends: Vec<_> = (0..3)
        .map(|_| {
            queue(
                &store,
                request("r", ExpectedVersion::NoStream, events.clone()),
            )
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    drop(lock);
    let mut results = Vec::new();
    for append in appends {
        results.push(append.await.unwrap());
    }
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
        .append(with_views(
            request("a", ExpectedVersion::NoStream, vec![event(1)]),
            vec![upsert("a", "{}")],
        ))
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
                    .append(with_views(
                        request(&format!("f-{i}"), ExpectedVersion::NoStream, vec![event(i)]),
                        vec![upsert(&format!("f-{i}"), "{}")],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reopened_store_finds_everything_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folders/events.db");
    let store = SqliteEventStore::open(&path).await.unwrap();
    let mut with_snapshot = request("a", ExpectedVersion::NoStream, vec![event(1), event(2)]);
    with_snapshot.snapshot = Some(Snapshot {
        aggregate_type: TYPE.to_owned(),
        aggregate_id: "a".to_owned(),
        version: 2,
        state: r#"{"n":2}"#.to_owned(),
        taken_at: chrono::DateTime::from_timestamp(1_700_000_000, 987_654_321).unwrap(),
    });
    store.append(with_snapshot.clone()).await.unwrap();
    store
        .append(request("b", ExpectedVersion::NoStream, vec![event(3)]))
        .await
        .unwrap();
    let before = store.read_all(0, 100).await.unwrap();
    assert_eq!(store.path(), path);
    let wal = path.with_extension("db-wal");
    assert!(wal.exists(), "the write-ahead log is in use");
    store.close().await;
    // SQLite checkpoints and removes the log when the last connection closes cleanly.
    assert!(
        !wal.exists(),
        "close stopped the writer and closed every connection"
    );

    for _ in 0..3 {
        let store = SqliteEventStore::open(&path).await.unwrap();
        assert_eq!(store.read_all(0, 100).await.unwrap(), before);
        let snapshot = store.load_snapshot(TYPE, "a").await.unwrap().unwrap();
        assert_eq!(Some(snapshot), with_snapshot.snapshot);
        assert_eq!(store.stream_version(TYPE, "a").await.unwrap(), 2);
        store.close().await;
    }

    let store = SqliteEventStore::open(&path).await.unwrap();
    let next = store
        .append(request("a", ExpectedVersion::Exact(2), vec![event(4)]))
        .await
        .unwrap();
    assert_eq!((next[0].position, next[0].version), (4, 3));
    // Dropping (rather than closing) stops the writer too, without waiting for it.
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(5);
    while wal.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!wal.exists(), "the writer thread stopped after the drop");

    let raw = rusqlite::Connection::open(&path).unwrap();
    let migrations: Vec<u32> = raw
        .prepare("SELECT version FROM factum_schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(migrations, [1, 2, 3, 4], "each migration recorded once");
    let (journal, events): (String, i64) = raw
        .query_row(
            "SELECT (SELECT journal_mode FROM pragma_journal_mode), (SELECT COUNT(*) FROM events)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((journal.as_str(), events), ("wal", 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_from_a_newer_release_is_refused() {
    let (store, path, _dir) = fresh().await;
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO factum_schema_migrations VALUES (99, 'from the future', 'x')",
            [],
        )
        .unwrap();
    let error = SqliteEventStore::open(&path).await.unwrap_err();
    assert!(
        matches!(error, factum_sqlite::Error::SchemaTooNew { found: 99, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_keep_versions_and_positions_whole() {
    let (first, path, _dir) = fresh().await;
    let second = Arc::new(SqliteEventStore::open(&path).await.unwrap());
    let stores: [Arc<dyn EventStore>; 2] = [first, second];
    let mut handles = Vec::new();
    for task in 0..8u64 {
        let store = stores[(task % 2) as usize].clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 10 {
                let version = store.stream_version(TYPE, "shared").await.unwrap();
                match store
                    .append(request(
                        "shared",
                        ExpectedVersion::Exact(version),
                        vec![event(task * 100 + done)],
                    ))
                    .await
                {
                    Ok(_) => done += 1,
                    Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("{other}"),
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let all = stores[0].read_all(0, 1000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<_>>()
    );
    assert_eq!(
        all.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_urls_open_relative_and_absolute_paths() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("abs/events.db");
    let store = SqliteEventStore::open_url(&format!("sqlite://{}", absolute.display()))
        .await
        .unwrap();
    assert_eq!(store.path(), absolute);
    store.close().await;
    assert!(absolute.is_file());

    // The same file through a path relative to the working directory.
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count().saturating_sub(1));
    let relative = format!(
        "{up}{}",
        absolute.strip_prefix("/").unwrap().to_str().unwrap()
    );
    assert!(Path::new(&relative).is_relative());
    let store = SqliteEventStore::open_url(&format!("sqlite://{relative}"))
        .await
        .unwrap();
    store
        .append(request("a", ExpectedVersion::NoStream, vec![event(1)]))
        .await
        .unwrap();
    store.close().await;
    let store = SqliteEventStore::open_url(&format!("sqlite:{}", absolute.display()))
        .await
        .unwrap();
    assert_eq!(store.stream_version(TYPE, "a").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_paths_and_urls_give_clean_errors_and_change_nothing() {
    use factum_sqlite::Error as E;
    let dir = tempfile::tempdir().unwrap();

    let error = SqliteEventStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(error, E::InvalidPath { .. }), "{error}");

    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "not a folder").unwrap();
    let error = SqliteEventStore::open(file.join("events.db"))
        .await
        .unwrap_err();
    assert!(matches!(error, E::CreateDir { .. }), "{error}");

    let garbage = b"this is not a SQLite database, and it must stay as it is".repeat(100);
    std::fs::write(&file, &garbage).unwrap();
    let error = SqliteEventStore::open(&file).await.unwrap_err();
    assert!(
        matches!(
            error
                .sqlite_error()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::NotADatabase)
        ),
        "{error}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), garbage);

    for url in [
        "postgres://localhost/db",
        "sqlite://",
        "sqlite://:memory:",
        "sqlite://x.db?mode=ro",
        "events.db",
    ] {
        let error = SqliteEventStore::open_url(url).await.unwrap_err();
        assert!(
            matches!(error, E::InvalidUrl { .. } | E::InvalidPath { .. }),
            "{url}: {error}"
        );
        // Through the core error type, a bad URL is the caller's mistake.
        assert!(matches!(
            factum_core::Error::from(error),
            factum_core::Error::Validation(_)
        ));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_row_is_an_error_not_a_panic() {
    let (store, path, _dir) = fresh().await;
    store
        .append(request("a", ExpectedVersion::NoStream, vec![event(1)]))
        .await
        .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE events SET event_id = 'not-a-uuid'", [])
        .unwrap();
    let error = store.read_all(0, 10).await.unwrap_err();
    assert!(matches!(error, Error::Store(_)), "{error}");
    assert_eq!(error.to_cqrs_error().message, "internal error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn values_sqlite_cannot_hold_are_refused_before_writing() {
    let (store, _path, _dir) = fresh().await;
    let mut far_future = event(1);
    far_future.recorded_at = chrono::DateTime::from_timestamp(400_000_000_000, 0).unwrap();
    let error = store
        .append(request("a", ExpectedVersion::NoStream, vec![far_future]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Validation(_)), "{error}");
    let error = store
        .save_snapshot(Snapshot {
            aggregate_type: TYPE.to_owned(),
            aggregate_id: "a".to_owned(),
            version: u64::MAX,
            state: "{}".to_owned(),
            taken_at: chrono::Utc::now(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Validation(_)), "{error}");
    let mut mismatched = request("a", ExpectedVersion::NoStream, vec![event(1)]);
    mismatched.snapshot = Some(Snapshot {
        aggregate_type: TYPE.to_owned(),
        aggregate_id: "other".to_owned(),
        version: 1,
        state: "{}".to_owned(),
        taken_at: chrono::Utc::now(),
    });
    let error = store.append(mismatched).await.unwrap_err();
    assert!(matches!(error, Error::Validation(_)), "{error}");
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.stats().commits,
        0,
        "refused before reaching the writer"
    );
    // Reading past what SQLite can number is simply empty.
    assert!(store.read_all(u64::MAX, 10).await.unwrap().is_empty());
    assert!(
        store
            .read_stream(TYPE, "a", u64::MAX, Some(usize::MAX))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inline_view_changes_of_a_refused_append_roll_back_alone_in_a_group_commit() {
    let (store, path, _dir) = fresh().await;
    store
        .append(with_views(
            request("keep", ExpectedVersion::NoStream, vec![event(0)]),
            vec![upsert("kept", r#"{"v":0}"#)],
        ))
        .await
        .unwrap();
    let lock = hold_write_lock(&path);
    let plug = queue(
        &store,
        request("plug", ExpectedVersion::NoStream, vec![event(1)]),
    );
    tokio::time::sleep(SETTLE).await;
    let appends: Vec<_> = [
        with_views(
            request("x", ExpectedVersion::NoStream, vec![event(2)]),
            vec![upsert("x", r#"{"v":"first"}"#)],
        ),
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
        with_views(
            request("y", ExpectedVersion::NoStream, vec![event(4)]),
            vec![upsert("y", r#"{"v":1}"#)],
        ),
        // A view record that is not JSON refuses the whole append, events included.
        with_views(
            request("z", ExpectedVersion::NoStream, vec![event(5)]),
            vec![upsert("z", "{not json")],
        ),
        // Sees the changes of the append to "y" before it in the same transaction.
        with_views(
            request("y", ExpectedVersion::Exact(1), vec![event(6)]),
            vec![upsert("y", r#"{"v":2}"#), upsert("y-2", "[]")],
        ),
    ]
    .into_iter()
    .map(|request| queue(&store, request))
    .collect();
    tokio::time::sleep(SETTLE).await;
    drop(lock);

    plug.await.unwrap();
    let mut results = Vec::new();
    for append in appends {
        results.push(append.await);
    }
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
    let stats = store.stats();
    assert!(
        stats.largest_batch >= 5 && stats.refused == 2,
        "the five appends shared one transaction: {stats:?}"
    );

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
    let lock = hold_write_lock(&path);
    let plug = queue(
        &store,
        request("plug", ExpectedVersion::NoStream, vec![event(1)]),
    );
    tokio::time::sleep(SETTLE).await;
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
    tokio::time::sleep(SETTLE).await;
    drop(lock);
    plug.await.unwrap();
    let mut results = Vec::new();
    for write in writes {
        results.push(write.await);
    }
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
    let stats = store.stats();
    assert!(
        stats.largest_batch >= 4 && stats.refused == 2,
        "the four batches shared one transaction: {stats:?}"
    );

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
        .append(with_views(
            request("a", ExpectedVersion::NoStream, vec![event(1)]),
            vec![upsert("a", r#"{"n":1}"#)],
        ))
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
