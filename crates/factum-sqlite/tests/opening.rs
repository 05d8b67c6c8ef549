//! Opening the SQLite store: reopening and migrations, a newer schema, two stores on one
//! file, paths and URLs, damaged rows and values SQLite cannot hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use factum_core::store::Snapshot;
use factum_core::{Error, EventStore, ExpectedVersion};
use factum_sqlite::SqliteEventStore;
use factum_testing::conformance;
use factum_testing::sample::event;

use common::*;

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
    let stream = conformance::race_on_one_aggregate(&stores, 8, 10).await;
    let all = stores[0].read_all(0, 1000).await.unwrap();
    assert_eq!(all, stream, "the one stream is all there is");
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
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
        .save_snapshot(snapshot("a", u64::MAX))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Validation(_)), "{error}");
    let mut mismatched = request("a", ExpectedVersion::NoStream, vec![event(1)]);
    mismatched.snapshot = Some(snapshot("other", 1));
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
