//! Helpers shared by the SQLite store's own tests: fresh stores, holding SQLite's write lock
//! from a second connection (as another process would) so that appends queue up behind it
//! deterministically, and inline view changes.
// Each test binary uses a part of these.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use factum_core::store::{AppendRequest, NewEvent, Snapshot, StoredEvent};
use factum_core::{
    Error, EventStore, ExpectedVersion, ViewChange, ViewQuery, ViewRecord, ViewStore,
};
use factum_sqlite::SqliteEventStore;
use factum_testing::sample::event;

pub const TYPE: &str = "sqlite-test";

pub fn request(id: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new(TYPE, id, expected, events)
}

/// A snapshot of stream `id` of [`TYPE`] at `version` holding `{}`, taken now.
pub fn snapshot(id: &str, version: u64) -> Snapshot {
    Snapshot {
        aggregate_type: TYPE.to_owned(),
        aggregate_id: id.to_owned(),
        version,
        state: "{}".to_owned(),
        taken_at: chrono::Utc::now(),
    }
}

pub async fn fresh() -> (Arc<SqliteEventStore>, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteEventStore::open(&path).await.unwrap();
    (Arc::new(store), path, dir)
}

/// Takes SQLite's write lock from a separate connection; dropping it releases the lock.
pub fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

/// Long enough for the writer thread to take what is queued and block on the lock.
pub const SETTLE: Duration = Duration::from_millis(250);

pub type Pending<'a, T = Vec<StoredEvent>> =
    Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Polls a write once, which puts it in the writer's queue, and returns it: requests queue in
/// the order this is called (spawned tasks would start in any order).
pub fn started<T>(mut write: Pending<'_, T>) -> Pending<'_, T> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        write.as_mut().poll(&mut cx).is_pending(),
        "the write waits for the writer"
    );
    write
}

/// Starts an append and returns once it sits in the writer's queue.
pub fn queue(store: &SqliteEventStore, request: AppendRequest) -> Pending<'_> {
    started(store.append(request))
}

pub const VIEW: &str = "sqlite_test_view";

pub fn upsert(view_id: &str, data: &str) -> ViewChange {
    ViewChange::Upsert(ViewRecord {
        view_type: VIEW.to_owned(),
        view_id: view_id.to_owned(),
        aggregate_id: "agg".to_owned(),
        version: 1,
        data: data.to_owned(),
    })
}

pub fn delete(view_id: &str) -> ViewChange {
    ViewChange::Delete {
        view_type: VIEW.to_owned(),
        view_id: view_id.to_owned(),
    }
}

/// The append that creates stream `id` with `event(n)` and upserts record `view_id` of
/// [`VIEW`] with `data`.
pub fn create_with_view(id: &str, n: u64, view_id: &str, data: &str) -> AppendRequest {
    with_views(
        request(id, ExpectedVersion::NoStream, vec![event(n)]),
        vec![upsert(view_id, data)],
    )
}

pub fn with_views(mut request: AppendRequest, changes: Vec<ViewChange>) -> AppendRequest {
    request.view_changes = changes;
    request
}

/// The `data` of every record of [`VIEW`], by id.
pub async fn view_data(store: &SqliteEventStore) -> Vec<(String, String)> {
    let page = store
        .query_views(VIEW, &ViewQuery::default(), &[])
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|r| (r.view_id, r.data))
        .collect()
}

/// Asserts that the writer committed `writes` writes together in one transaction and has
/// refused `refused` writes in all.
pub fn assert_one_transaction(store: &SqliteEventStore, writes: u64, refused: u64) {
    let stats = store.stats();
    assert!(
        stats.largest_batch >= writes && stats.refused == refused,
        "{writes} writes shared one transaction, {refused} refused: {stats:?}"
    );
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(id, data)| ((*id).to_owned(), (*data).to_owned()))
        .collect()
}

/// The writer held up: a second connection holds SQLite's write lock, and the plug, if any,
/// is the write the writer took and waits with, so whatever is queued next waits behind it.
pub struct Held<'a> {
    lock: rusqlite::Connection,
    plug: Option<Pending<'a>>,
}

/// Holds the writer of `store` (whose file is `path`), with `plug` queued first.
pub async fn hold_writer<'a>(
    store: &'a SqliteEventStore,
    path: &Path,
    plug: Option<AppendRequest>,
) -> Held<'a> {
    let lock = hold_write_lock(path);
    let plug = plug.map(|request| queue(store, request));
    if plug.is_some() {
        tokio::time::sleep(SETTLE).await;
    }
    Held { lock, plug }
}

impl<'a> Held<'a> {
    /// Lets the writer go once `writes` sit in its queue, and returns their results in order
    /// (the plug must succeed).
    pub async fn release<T>(self, writes: Vec<Pending<'a, T>>) -> Vec<Result<T, Error>> {
        tokio::time::sleep(SETTLE).await;
        drop(self.lock);
        if let Some(plug) = self.plug {
            plug.await.unwrap();
        }
        let mut results = Vec::new();
        for write in writes {
            results.push(write.await);
        }
        results
    }
}
