//! [`SqliteEventStore`]: opening, the reader pool, and the [`EventStore`] implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use factum_core::store::{AppendRequest, Snapshot, StoredEvent, rules};
use factum_core::{EventStore, ViewStore, async_trait};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{ReaderPool, checked_path, open_reader, open_writer, path_from_url};
use crate::error::{Error, Result, sql_error};
use crate::known::KnownVersions;
use crate::rows::{
    clamp_to_sql, decode_snapshot, encode_time, query_events, snapshot_from_row, sql_limit,
};
use crate::writer::{self, Counters, EncodedAppend, EncodedEvent, EncodedSnapshot, WriteRequest};

/// The most rows a read reserves room for up front: enough for typical pages and streams,
/// small enough that a large `limit` on a short result wastes little.
const PRESIZE: usize = 1024;

/// Tuning of a [`SqliteEventStore`]; the defaults suit most uses.
///
/// ```
/// use std::time::Duration;
/// let options = factum_sqlite::SqliteOptions::default()
///     .with_busy_timeout(Duration::from_secs(1))
///     .with_readers(8);
/// assert_eq!(options.readers, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a connection waits for a lock another process holds before failing
    /// (default 5 s). Only another process (or a second store on the same file) ever holds
    /// the write lock, since one writer thread does all of this store's writes.
    pub busy_timeout: Duration,
    /// How many read connections run at once (default 4, at least 1).
    pub readers: usize,
    /// The most appends one group commit takes (default 256, at least 1). Bounds how long an
    /// append waits behind others and how much memory a batch holds.
    pub max_batch: usize,
    /// The largest the database may grow, in bytes (default `None`: as far as the disk
    /// allows). A write that would pass it fails as on a full disk (`StoreFull`, a 507 over
    /// HTTP) and stores nothing; reads go on. Rounded down to whole pages.
    pub max_size: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            max_batch: 256,
            max_size: None,
        }
    }
}

impl SqliteOptions {
    factum_core::setters! {
        /// Sets the busy timeout.
        pub fn with_busy_timeout(timeout: Duration) => busy_timeout = timeout;
        /// Sets the number of read connections (at least 1).
        pub fn with_readers(readers: usize) => readers = readers.max(1);
        /// Caps the database's size, in bytes.
        pub fn with_max_size(bytes: u64) => max_size = Some(bytes);
        /// Sets the largest group-commit batch (at least 1).
        pub fn with_max_batch(max_batch: usize) => max_batch = max_batch.max(1);
    }
}

/// Counters of the writer's work, for tests and metrics.
///
/// `requests / commits` is the mean group-commit batch size: the number of appends that
/// shared one transaction and one fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Transactions committed (one fsync each).
    pub commits: u64,
    /// Write requests (appends, snapshot saves, projection batches and resets) in committed
    /// transactions, refused ones included.
    pub requests: u64,
    /// Events inserted.
    pub events: u64,
    /// Requests refused inside a committed transaction (conflicts, moved projection
    /// checkpoints, invalid snapshots or view records).
    pub refused: u64,
    /// Transactions whose commit failed (every request in them failed).
    pub failed_commits: u64,
    /// The most requests one transaction held.
    pub largest_batch: u64,
}

/// A durable [`EventStore`] and [`ViewStore`] in one SQLite file, with group commit.
///
/// One writer thread owns the only write connection and commits whatever appends are queued
/// together (see the crate docs); reads run on a small pool of read-only connections and never
/// wait for writes (WAL mode).
///
/// Dropping the store stops the writer once the requests already queued are committed;
/// [`close`](Self::close) does the same and waits for it.
pub struct SqliteEventStore {
    // Fields drop in order: the read-only connections close before the writer is told to
    // stop, so the writer's connection closes last and SQLite checkpoints and removes the
    // write-ahead log (a read-only connection cannot).
    readers: Arc<ReaderPool>,
    writer: mpsc::Sender<WriteRequest>,
    thread: std::thread::JoinHandle<()>,
    counters: Arc<Counters>,
    path: PathBuf,
    known: KnownVersions,
}

factum_core::debug_fields! { SqliteEventStore { path, .. } }

impl SqliteEventStore {
    /// Opens the store in the file at `path`, creating the file and its folders if needed
    /// and bringing its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the store a URL names: `sqlite://PATH` with a relative or absolute path
    /// (`sqlite://data/bank.db`, `sqlite:///var/lib/bank.db`). `sqlite:PATH` works too.
    pub async fn open_url(url: &str) -> Result<Self> {
        Self::open(path_from_url(url)?).await
    }

    /// [`open`](Self::open) with options.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = checked_path(path.as_ref())?;
        let busy_timeout = options.busy_timeout;
        let max_size = options.max_size;
        let max_batch = options.max_batch.max(1);
        let opened_path = path.clone();
        let (conn, reader) = tokio::task::spawn_blocking(move || -> Result<_> {
            if let Some(parent) = opened_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let mut conn = open_writer(&opened_path, busy_timeout, max_size)?;
            let applied = crate::schema::migrate(&mut conn)?;
            tracing::debug!(path = %opened_path.display(), applied, "opened SQLite event store");
            // Opening one reader now reports an unreadable file at open, not at first read.
            let reader = open_reader(&opened_path, busy_timeout)?;
            Ok((conn, reader))
        })
        .await??;

        // Bounded: when the writer falls far behind, appends wait here instead of piling up.
        let (sender, queue) = mpsc::channel(4 * max_batch);
        let counters = Arc::new(Counters::default());
        let thread = std::thread::Builder::new()
            .name("factum-sqlite-writer".to_owned())
            .spawn({
                let counters = counters.clone();
                move || writer::run(conn, queue, counters, max_batch)
            })
            .map_err(Error::Thread)?;
        let known = KnownVersions::open(&path);
        Ok(Self {
            readers: Arc::new(ReaderPool::new(
                path.clone(),
                busy_timeout,
                reader,
                options.readers,
            )),
            path,
            writer: sender,
            thread,
            counters,
            known,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters of the writer's work so far.
    pub fn stats(&self) -> StoreStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        StoreStats {
            commits: c.commits.load(Relaxed),
            requests: c.requests.load(Relaxed),
            events: c.events.load(Relaxed),
            refused: c.refused.load(Relaxed),
            failed_commits: c.failed_commits.load(Relaxed),
            largest_batch: c.largest_batch.load(Relaxed),
        }
    }

    /// Stops the writer after the requests already queued are committed, and waits for it.
    pub async fn close(self) {
        let Self {
            readers,
            writer,
            thread,
            ..
        } = self;
        drop(readers);
        drop(writer);
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("the SQLite writer thread panicked"),
            Err(error) => tracing::error!(%error, "waiting for the SQLite writer thread failed"),
        }
    }

    pub(crate) async fn write<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<factum_core::Result<T>>) -> WriteRequest,
    ) -> factum_core::Result<T> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(request(reply))
            .await
            .map_err(|_| Error::Closed)?;
        // The writer drops the reply only if it stopped (it panicked): report it closed.
        answer.await.map_err(|_| Error::Closed)?
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> factum_core::Result<T> + Send + 'static,
    ) -> factum_core::Result<T> {
        self.readers.run(query).await
    }
}

fn encode_append(request: AppendRequest) -> factum_core::Result<EncodedAppend> {
    rules::validate(&request)?;
    let snapshot = request
        .snapshot
        .as_ref()
        .map(EncodedSnapshot::encode)
        .transpose()?;
    let events = request
        .events
        .into_iter()
        .map(|event| {
            Ok(EncodedEvent {
                event_id: event.event_id.hyphenated().to_string(),
                recorded_at: encode_time(&event.recorded_at, "recorded_at")?,
                event,
            })
        })
        .collect::<factum_core::Result<Vec<_>>>()?;
    Ok(EncodedAppend {
        aggregate_type: request.aggregate_type,
        aggregate_id: request.aggregate_id,
        expected: request.expected,
        events,
        snapshot,
        view_changes: crate::view_records::encode_changes(request.view_changes)?,
        idempotency: request
            .idempotency
            .map(|record| crate::idempotency::EncodedRecord::encode(record).map(Box::new))
            .transpose()?,
    })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, request: AppendRequest) -> factum_core::Result<Vec<StoredEvent>> {
        let encoded = encode_append(request)?;
        let stored = self
            .write(|reply| WriteRequest::Append(encoded, reply))
            .await?;
        if let Some(last) = stored.last() {
            self.known
                .record(&last.aggregate_type, &last.aggregate_id, last.version);
        }
        Ok(stored)
    }

    fn known_stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Option<u64> {
        self.known.get(aggregate_type, aggregate_id)
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> factum_core::Result<Vec<StoredEvent>> {
        let (aggregate_type, aggregate_id) = (aggregate_type.to_owned(), aggregate_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    crate::rows::stream_event_columns!(),
                    " FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version >= ?3
                     ORDER BY version LIMIT ?4"
                ))
                .map_err(sql_error)?;
            query_events(
                &mut stmt,
                params![
                    aggregate_type,
                    aggregate_id,
                    clamp_to_sql(from_version),
                    sql_limit(limit)
                ],
                Some((&aggregate_type, &aggregate_id)),
                limit.unwrap_or(0).min(PRESIZE),
            )
        })
        .await
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> factum_core::Result<Vec<StoredEvent>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    crate::rows::event_columns!(),
                    " FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
                ))
                .map_err(sql_error)?;
            query_events(
                &mut stmt,
                params![clamp_to_sql(after_position), sql_limit(Some(limit))],
                None,
                limit.min(PRESIZE),
            )
        })
        .await
    }

    async fn stream_version(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> factum_core::Result<u64> {
        let (aggregate_type, aggregate_id) = (aggregate_type.to_owned(), aggregate_id.to_owned());
        self.read(move |conn| writer::stream_version(conn, &aggregate_type, &aggregate_id))
            .await
    }

    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> factum_core::Result<Option<Snapshot>> {
        let (aggregate_type, aggregate_id) = (aggregate_type.to_owned(), aggregate_id.to_owned());
        self.read(move |conn| {
            let raw = conn
                .prepare_cached(
                    "SELECT aggregate_type, aggregate_id, version, state, taken_at
                     FROM snapshots WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![aggregate_type, aggregate_id], snapshot_from_row)
                        .optional()
                })
                .map_err(sql_error)?;
            Ok(raw.map(decode_snapshot).transpose()?)
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> factum_core::Result<()> {
        let encoded = EncodedSnapshot::encode(&snapshot)?;
        self.write(|reply| WriteRequest::SaveSnapshot(encoded, reply))
            .await
    }

    async fn head_position(&self) -> factum_core::Result<u64> {
        self.read(|conn| {
            // `position` is the rowid: SQLite answers max() from the end of the table's b-tree.
            let head: i64 = conn
                .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .map_err(sql_error)?;
            Ok(u64::try_from(head)
                .map_err(|_| Error::corrupt("events", format!("negative position {head}")))?)
        })
        .await
    }

    async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> factum_core::Result<Option<factum_core::IdempotencyRecord>> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        let now = encode_time(&now, "lookup time")?;
        self.read(move |conn| crate::idempotency::find(conn, &scope, &key, &now))
            .await
    }

    async fn remember_idempotency(
        &self,
        record: factum_core::IdempotencyRecord,
    ) -> factum_core::Result<factum_core::IdempotencyRecord> {
        let encoded = crate::idempotency::EncodedRecord::encode(record)?;
        self.write(|reply| WriteRequest::RememberIdempotency(encoded, reply))
            .await
    }

    async fn purge_idempotency(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> factum_core::Result<u64> {
        self.write(|reply| WriteRequest::PurgeIdempotency(now, reply))
            .await
    }

    async fn health_check(&self) -> factum_core::Result<()> {
        if self.writer.is_closed() {
            return Err(Error::Closed.into());
        }
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM factum_schema_migrations", [], |row| {
                row.get::<_, i64>(0)
            })
            .map_err(sql_error)?;
            Ok(())
        })
        .await?;
        if self
            .counters
            .full
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(factum_core::Error::StoreFull(
                "the last write failed for lack of space".into(),
            ));
        }
        Ok(())
    }

    fn as_view_store(&self) -> Option<&dyn ViewStore> {
        Some(self)
    }

    fn into_view_store(self: Arc<Self>) -> Option<Arc<dyn ViewStore>> {
        Some(self)
    }
}
