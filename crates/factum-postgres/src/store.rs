//! The PostgreSQL [`EventStore`](factum_core::EventStore).
//!
//! # How positions are assigned, and why `read_all` never skips an event
//!
//! Every event gets a store-wide position, and a reader that follows `read_all` from a
//! checkpoint must never jump past an event that becomes visible later with a lower position.
//! With a plain sequence this happens: transaction A takes position 7, transaction B takes 8
//! and commits first; a reader sees 8, saves it as its checkpoint, and never looks at 7 when A
//! commits. (A sequence also leaves holes when a transaction rolls back.)
//!
//! This store **serialises position assignment with a row lock held until commit**. The
//! table `event_position` holds one row, the last assigned position. Every append runs in a
//! transaction that first locks that row (`SELECT ... FOR UPDATE`), then checks and inserts,
//! numbering its events from the locked value, advances the row, and commits, which releases
//! the lock. Another append waits for the row until the first one's transaction has ended,
//! then reads the row as the first one left it (committed: advanced; rolled back: unchanged).
//! Hence:
//!
//! - **Commit order.** PostgreSQL makes a committed transaction visible to new snapshots
//!   before it releases its locks. So when an append obtains the lock, every lower position is
//!   already committed and visible, and a reader whose snapshot shows position `p` shows every
//!   position below `p`: following `read_all` in position order skips nothing.
//! - **No gaps.** A failed append (conflict, bad input, crash) rolls back with its counter
//!   update, so positions are exactly 1, 2, 3, ..., as the core contract requires.
//! - **No timeouts, no horizon.** Readers take no lock, never wait, and do not depend on other
//!   transactions in the cluster. (The alternative, storing `pg_current_xact_id()` per event
//!   and returning only events of transactions below `pg_snapshot_xmin`, keeps sequence gaps,
//!   holds every reader back behind any long transaction anywhere in the cluster, and is only
//!   sound if positions are also taken in transaction-id order: a transaction can get its id
//!   before another yet take its positions after it, and be visible below the horizon while
//!   the other, holding a lower position, is still in progress. Ensuring that order needs a
//!   lock again.)
//! - **Exact checks.** Because the lock is taken before anything is checked, and PostgreSQL
//!   (READ COMMITTED) gives each later statement of the transaction a fresh snapshot, the
//!   expected-version and event-id checks see every append committed before, plus the
//!   transaction's own earlier inserts: no append can slip in between check and insert.
//!
//! The price is that appends commit one transaction at a time across all nodes: the lock is
//! held until the commit, including its WAL flush, so the store's commit rate is bounded by
//! the flush latency. Two things make each such transaction count:
//!
//! - **One round trip.** The whole transaction is one call of the PL/pgSQL function
//!   `append_events` (created by the migrations), run in autocommit: lock, checks, multi-row
//!   `INSERT ... SELECT ... FROM unnest(...)` per append, snapshot upserts, counter update,
//!   then the commit. The lock is held for one server-side call, never across client round
//!   trips.
//! - **Group commit.** Each store handle (each node) has one writer task; the appends that
//!   arrive while it is busy are passed to one `append_events` call together, so one
//!   transaction and one WAL flush serve the whole group. Positions stay contiguous and in
//!   commit order. An append whose expectation fails inside a group just stores nothing; if
//!   the group's transaction fails (bad input PostgreSQL refuses, a broken connection), each
//!   of its appends is redone alone by its caller.
//!
//! # Inline view changes
//!
//! An append's [`view_changes`](factum_core::store::AppendRequest::view_changes) travel with it
//! into `append_events`, which writes them right after the append's events, in the same
//! transaction, and only if those events are stored: an append refused inside a group writes
//! neither events nor view changes, while the group's other appends write both. When a
//! group's transaction fails, nothing of it is written, and each append redone alone carries
//! its own view changes again. Changes are reduced, before sending, to the last change of
//! each record, which is what applying them in order comes to; the function then writes an
//! append's upserts in one statement and its deletes in another. Their row locks are taken
//! under the position lock, so appends never deadlock on view records.
//!
//! # Conflicts and retries
//!
//! An append that stores nothing (its expected version does not hold, or one of its event ids
//! is stored already) is resolved by its caller: if its first event id is stored, and all its
//! ids are stored at consecutive versions of the same stream, it is a retry of an append that
//! went through and returns the stored events; otherwise it is a
//! [`factum_core::Error::Conflict`] carrying the stream's current version. The unique
//! constraints (`UNIQUE (aggregate_type, aggregate_id, version)`, `UNIQUE (event_id)`) back
//! this up: a violation, recognised by its error kind (SQLSTATE 23505), never by message text,
//! is resolved the same way.
//!
//! # Durability
//!
//! An append returns after its commit, and [`PostgresEventStore::connect`] sets
//! `synchronous_commit = on` on its connections, so an acknowledged append is flushed to the
//! WAL (with the server's default `fsync = on`).
//!
//! # JSON
//!
//! Payloads, metadata, snapshot states and view records are stored as `jsonb` (sent as text,
//! cast by PostgreSQL): they come back as equal JSON values, as the text of jsonb's normal form
//! (key order, whitespace), not byte for byte. An append returns its events with the stored
//! text too, so what it returns equals what reads return. Metadata is never parsed here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use factum_core::store::{AppendRequest, Snapshot, StoredEvent, rules};
use factum_core::{ExpectedVersion, ViewStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row, SqlStr};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::breaker::Breaker;
use crate::error::{Error, Result, database_error, unique_violation};
use crate::idempotency::{self, RecordArrays, RecordStatements};
use crate::migrations::{self, DEFAULT_SCHEMA, quoted, validate_schema_name};
use crate::sql::trusted;
use crate::views::{ChangeArrays, ViewStatements, prepare_changes, write_changes};

type CoreResult<T> = factum_core::Result<T>;

/// Connections a store opened by URL keeps at most.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long a call waits for a connection before failing with `Unavailable`. Short, so that a
/// PostgreSQL outage is a prompt 503 instead of a request hanging until its timeout; it
/// also caps the pool's back-off between connection attempts (a fifth of this), so work
/// resumes within a fraction of a second of the server accepting connections again.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Appends committed together in one transaction at most.
const MAX_GROUP: usize = 64;

/// Appends waiting for the writer at most; further callers wait for room.
const QUEUE_CAPACITY: usize = 1024;

/// An [`EventStore`](factum_core::EventStore) on PostgreSQL, shared safely by many service
/// nodes: all correctness comes from the database (one row lock, constraints), none from
/// in-process locks. See the [module docs](self) for how positions are assigned.
///
/// Cloning is cheap and shares the pool and the writer. The store must be opened inside a
/// tokio runtime, which runs its writer task.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
    writer: mpsc::Sender<Job>,
}

impl fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEventStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresEventStore {
    /// Connects to `url` (`postgres://user@host:port/db`), with tables in the schema
    /// `factum`, and applies missing migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_schema(url, DEFAULT_SCHEMA).await
    }

    /// Connects to `url` with tables in `schema` (created if missing), and applies missing
    /// migrations. The schema name must match `[a-z_][a-z0-9_]{0,62}`.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        validate_schema_name(schema)?;
        // Acknowledged appends must be flushed, whatever the server's default.
        let options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            // A connection the server dropped (a restart) is found out before use and
            // replaced, instead of failing the request that drew it.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        Self::from_pool(pool, schema).await
    }

    /// Uses an existing pool, with tables in `schema` (created if missing), and applies
    /// missing migrations. Durability follows the pool's settings (`synchronous_commit`).
    pub async fn from_pool(pool: PgPool, schema: &str) -> Result<Self> {
        validate_schema_name(schema)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        migrations::migrate(&pool, schema).await?;
        let inner = Arc::new(Inner {
            sql: Statements::new(&quoted(schema)),
            views_sql: ViewStatements::new(&quoted(schema)),
            idem_sql: RecordStatements::new(&quoted(schema)),
            pool,
            schema: schema.to_owned(),
            full: AtomicBool::new(false),
            breaker: Breaker::default(),
        });
        let (writer, jobs) = mpsc::channel(QUEUE_CAPACITY);
        runtime.spawn(write_loop(inner.clone(), jobs));
        Ok(Self { inner, writer })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// What the store's handles and its writer task share.
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    schema: String,
    /// Whether the last append failed for lack of disk space (until one succeeds): what
    /// readiness reports, since a `SELECT` still works on a full disk.
    full: AtomicBool,
    /// Fails calls at once while the server is known unreachable (see [`crate::breaker`]).
    pub(crate) breaker: Breaker,
    sql: Statements,
    pub(crate) views_sql: ViewStatements,
    idem_sql: RecordStatements,
}

/// One append, prepared by its caller for the writer.
struct Append {
    /// The request, its view changes checked and reduced to the last change of each record.
    request: AppendRequest,
    /// The stream versions the expectation accepts, inclusive.
    accepted: (i64, i64),
}

/// An append queued for the writer, with where to send what became of it.
struct Job {
    append: Append,
    reply: oneshot::Sender<Reply>,
}

/// What the writer did with an append. Follow-up work (finding out why an append stored
/// nothing, redoing it alone) is left to the caller, so the writer moves on.
enum Reply {
    /// Stored, or failed for good.
    Done(CoreResult<Vec<StoredEvent>>),
    /// It stored nothing: its expectation failed, or an event id is stored already.
    Refused(Append),
    /// Its group's transaction failed: nothing of the group was stored, or the outcome is
    /// unknown (the connection broke during the commit). Redone alone, an append that did
    /// commit is recognised by its event ids, and one with input PostgreSQL refuses gets its
    /// own error without failing the others.
    Alone(Append),
}

/// The store's writer: takes the appends queued meanwhile and commits them together.
/// It stops when every handle to the store is dropped.
///
/// When a group found no connection in time, the appends queued meanwhile fail at once
/// with `Unavailable` rather than each waiting out another acquire timeout behind it: during
/// an outage no append waits much longer than one timeout.
async fn write_loop(inner: Arc<Inner>, mut jobs: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
        if inner.commit_group(std::mem::take(&mut group)).await == Reached::No {
            while let Ok(job) = jobs.try_recv() {
                let _ = job
                    .reply
                    .send(Reply::Done(Err(factum_core::Error::Unavailable(
                        "no PostgreSQL connection available in time".into(),
                    ))));
            }
        }
    }
}

/// Whether a group's transaction got a connection.
#[derive(Debug, PartialEq, Eq)]
enum Reached {
    Yes,
    No,
}

impl Inner {
    /// Commits a group of appends in one transaction and tells each caller what became of
    /// its append. A caller that went away does not matter: its append stands either way.
    async fn commit_group(&self, group: Vec<Job>) -> Reached {
        let appends: Vec<&Append> = group.iter().map(|job| &job.append).collect();
        let outcome = self.append_events(&appends).await;
        drop(appends);
        if let Err(error @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)) = &outcome {
            // No transaction began: nothing of the group is stored, and redoing each append
            // alone would only wait for a connection again.
            for job in group {
                let _ = job.reply.send(Reply::Done(Err(database_error(match error {
                    sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
                    _ => sqlx::Error::PoolTimedOut,
                }))));
            }
            return Reached::No;
        }
        match outcome {
            Ok(stored) => {
                for (job, rows) in group.into_iter().zip(stored) {
                    let reply = if rows.is_empty() {
                        Reply::Refused(job.append)
                    } else {
                        Reply::Done(appended(&job.append.request, &rows))
                    };
                    let _ = job.reply.send(reply);
                }
            }
            Err(error) if group.len() > 1 => {
                tracing::debug!(%error, appends = group.len(), "group append failed; redoing each alone");
                for job in group {
                    let _ = job.reply.send(Reply::Alone(job.append));
                }
            }
            Err(error) => {
                // A group of one: `error` is its own.
                if let Some(job) = group.into_iter().next() {
                    let reply = if unique_violation(&error).is_some() {
                        Reply::Refused(job.append)
                    } else {
                        Reply::Done(Err(database_error(error)))
                    };
                    let _ = job.reply.send(reply);
                }
            }
        }
        Reached::Yes
    }

    /// Runs appends in one transaction: one call of `append_events`, in autocommit. Returns
    /// each append's stored rows, in order; none for an append whose expectation failed or
    /// whose event ids are stored already.
    async fn append_events(
        &self,
        appends: &[&Append],
    ) -> std::result::Result<Vec<Vec<PgRow>>, sqlx::Error> {
        let args = GroupArgs::new(appends);
        // Appends with idempotency records go through the function that checks and writes
        // them; the others keep the plain one.
        let with_records = appends.iter().any(|a| a.request.idempotency.is_some());
        let statement = if with_records {
            self.sql.append_events_idempotent.clone()
        } else {
            self.sql.append_events.clone()
        };
        let mut records = RecordArrays::default();
        if with_records {
            for append in appends {
                records.push(append.request.idempotency.as_ref());
            }
        }
        let query = sqlx::query(statement)
            .bind(&args.aggregate_types)
            .bind(&args.aggregate_ids)
            .bind(&args.min_versions)
            .bind(&args.max_versions)
            .bind(&args.event_counts)
            .bind(&args.snapshot_versions)
            .bind(&args.snapshot_states)
            .bind(&args.snapshot_taken_at)
            .bind(&args.snapshot_taken_at_ns)
            .bind(&args.event_ids)
            .bind(&args.event_types)
            .bind(&args.schema_versions)
            .bind(&args.payloads)
            .bind(&args.metadata)
            .bind(&args.recorded_at)
            .bind(&args.recorded_at_ns)
            .bind(&args.view_counts)
            .bind(&args.views.deletes)
            .bind(&args.views.view_types)
            .bind(&args.views.view_ids)
            .bind(&args.views.aggregate_ids)
            .bind(&args.views.versions)
            .bind(&args.views.data);
        let query = if with_records {
            query
                .bind(&records.scopes)
                .bind(&records.keys)
                .bind(&records.hashes)
                .bind(&records.statuses)
                .bind(&records.responses)
                .bind(&records.created_at)
                .bind(&records.expires_at)
        } else {
            query
        };
        let rows = query.fetch_all(&self.pool).await?;
        let mut by_request: BTreeMap<usize, Vec<PgRow>> = BTreeMap::new();
        for row in rows {
            let request: i32 = row.try_get("request")?;
            let index = usize::try_from(request)
                .ok()
                .and_then(|r| r.checked_sub(1))
                .filter(|&i| i < appends.len())
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!("append_events returned request {request}"))
                })?;
            by_request.entry(index).or_default().push(row);
        }
        Ok((0..appends.len())
            .map(|index| by_request.remove(&index).unwrap_or_default())
            .collect())
    }

    /// One append in its own transaction, for a caller whose group failed.
    async fn append_alone(&self, append: &Append) -> CoreResult<Vec<StoredEvent>> {
        match self.append_events(&[append]).await {
            Ok(mut stored) => match stored.pop() {
                Some(rows) if !rows.is_empty() => appended(&append.request, &rows),
                _ => self.refused(&append.request).await,
            },
            Err(error) if unique_violation(&error).is_some() => self.refused(&append.request).await,
            Err(error) => Err(database_error(error)),
        }
    }

    /// Works out why an append stored nothing: a retry of an append that went through
    /// (returns its stored events), or a conflict.
    async fn refused(&self, request: &AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        if let Some(first) = request.events.first() {
            let stored: Option<(String, String, i64)> = sqlx::query_as(self.sql.find_event.clone())
                .bind(first.event_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(database_error)?;
            if let Some((aggregate_type, aggregate_id, version)) = stored
                && aggregate_type == request.aggregate_type
                && aggregate_id == request.aggregate_id
            {
                let stored = self
                    .read_stream_from(
                        &request.aggregate_type,
                        &request.aggregate_id,
                        version,
                        Some(request.events.len()),
                    )
                    .await?;
                if let Some(stored) = rules::retry_of(request, stored) {
                    return Ok(stored);
                }
            }
        }
        if let Some(taken) = idempotency::taken(&self.idem_sql, &self.pool, request).await? {
            return Err(taken);
        }
        Err(self.conflict(request).await?)
    }

    /// The conflict error for `request`, with the stream's current version.
    async fn conflict(&self, request: &AppendRequest) -> CoreResult<factum_core::Error> {
        let actual = self
            .current_version(&request.aggregate_type, &request.aggregate_id)
            .await?;
        // Conflicts are normal between nodes (the engine retries them); at debug level they
        // show how often nodes contend.
        tracing::debug!(
            aggregate_type = %request.aggregate_type,
            aggregate_id = %request.aggregate_id,
            expected = %request.expected,
            actual,
            "append conflict"
        );
        Ok(rules::conflict(request, Some(actual)))
    }

    async fn current_version(&self, aggregate_type: &str, aggregate_id: &str) -> CoreResult<u64> {
        let version: i64 = sqlx::query_scalar(self.sql.stream_version.clone())
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_one(&self.pool)
            .await
            .map_err(database_error)?;
        to_u64(version, "stream version").map_err(Into::into)
    }

    /// An append without events: checks the expectation and writes the snapshot, if any.
    async fn append_no_events(&self, request: AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        if !request.view_changes.is_empty() || request.idempotency.is_some() {
            return self.view_changes_without_events(request).await;
        }
        let current = self
            .current_version(&request.aggregate_type, &request.aggregate_id)
            .await?;
        rules::check_expected(&request, current)?;
        rules::check_snapshot_version(&request, current)?;
        if let Some(snapshot) = request.snapshot {
            self.save_snapshot(snapshot).await?;
        }
        Ok(Vec::new())
    }

    /// An append of view changes without events. Its check and its writes must not be split
    /// by an append of that stream, so it takes the position lock, as appends do.
    async fn view_changes_without_events(
        &self,
        request: AppendRequest,
    ) -> CoreResult<Vec<StoredEvent>> {
        let changes = prepare_changes(request.view_changes.clone())?;
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        sqlx::query(self.sql.lock_positions.clone())
            .execute(&mut *tx)
            .await
            .map_err(database_error)?;
        let current: i64 = sqlx::query_scalar(self.sql.stream_version.clone())
            .bind(&request.aggregate_type)
            .bind(&request.aggregate_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(database_error)?;
        let current = to_u64(current, "stream version")?;
        if let Some(record) = &request.idempotency {
            let holder = idempotency::find(
                &self.idem_sql,
                &mut *tx,
                &record.scope,
                &record.key,
                record.created_at,
            )
            .await?;
            if holder.is_some() {
                return Err(rules::key_taken(record));
            }
        }
        rules::check_expected(&request, current)?;
        rules::check_snapshot_version(&request, current)?;
        if let Some(record) = &request.idempotency {
            idempotency::write(&self.idem_sql, &mut tx, record).await?;
        }
        if let Some(snapshot) = &request.snapshot {
            let (taken_at, taken_at_ns) = split_nanos(snapshot.taken_at);
            sqlx::query(self.sql.save_snapshot.clone())
                .bind(&snapshot.aggregate_type)
                .bind(&snapshot.aggregate_id)
                .bind(clamp_i64(snapshot.version))
                .bind(&snapshot.state)
                .bind(taken_at)
                .bind(taken_at_ns)
                .execute(&mut *tx)
                .await
                .map_err(database_error)?;
        }
        write_changes(&mut tx, &self.views_sql, &changes)
            .await
            .map_err(database_error)?;
        tx.commit().await.map_err(database_error)?;
        Ok(Vec::new())
    }

    async fn read_stream_from(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: i64,
        limit: Option<usize>,
    ) -> CoreResult<Vec<StoredEvent>> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(self.sql.read_stream.clone())
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(from_version)
            .bind(limit.map(clamp_usize))
            .fetch_all(&self.pool)
            .await
            .map_err(database_error)?;
        rows.iter()
            .map(|row| stored_event(row).map_err(Into::into))
            .collect()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> CoreResult<()> {
        validate_json(&snapshot.state, || "the snapshot state".to_owned())?;
        let (taken_at, taken_at_ns) = split_nanos(snapshot.taken_at);
        sqlx::query(self.sql.save_snapshot.clone())
            .bind(&snapshot.aggregate_type)
            .bind(&snapshot.aggregate_id)
            .bind(clamp_i64(snapshot.version))
            .bind(&snapshot.state)
            .bind(taken_at)
            .bind(taken_at_ns)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
}

/// The stream versions an expectation accepts, inclusive.
fn accepted_versions(expected: ExpectedVersion) -> (i64, i64) {
    match expected {
        ExpectedVersion::Any => (0, i64::MAX),
        ExpectedVersion::NoStream => (0, 0),
        ExpectedVersion::StreamExists => (1, i64::MAX),
        ExpectedVersion::Exact(version) => match i64::try_from(version) {
            Ok(version) => (version, version),
            // No stream can be that long: a conflict, unless the append is a retry.
            Err(_) => (1, 0),
        },
    }
}

/// The arguments of one `append_events` call: one array element per append, and one per
/// event of all the appends in order. Text is borrowed from the appends, not copied.
struct GroupArgs<'a> {
    aggregate_types: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    min_versions: Vec<i64>,
    max_versions: Vec<i64>,
    event_counts: Vec<i32>,
    snapshot_versions: Vec<Option<i64>>,
    snapshot_states: Vec<Option<&'a str>>,
    snapshot_taken_at: Vec<Option<DateTime<Utc>>>,
    snapshot_taken_at_ns: Vec<Option<i16>>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i64>,
    payloads: Vec<&'a str>,
    metadata: Vec<&'a str>,
    recorded_at: Vec<DateTime<Utc>>,
    recorded_at_ns: Vec<i16>,
    /// How many of `views` belong to each append.
    view_counts: Vec<i32>,
    views: ChangeArrays<'a>,
}

impl<'a> GroupArgs<'a> {
    fn new(appends: &[&'a Append]) -> Self {
        let requests = appends.len();
        let events = appends.iter().map(|a| a.request.events.len()).sum();
        let mut args = Self {
            aggregate_types: Vec::with_capacity(requests),
            aggregate_ids: Vec::with_capacity(requests),
            min_versions: Vec::with_capacity(requests),
            max_versions: Vec::with_capacity(requests),
            event_counts: Vec::with_capacity(requests),
            snapshot_versions: Vec::with_capacity(requests),
            snapshot_states: Vec::with_capacity(requests),
            snapshot_taken_at: Vec::with_capacity(requests),
            snapshot_taken_at_ns: Vec::with_capacity(requests),
            event_ids: Vec::with_capacity(events),
            event_types: Vec::with_capacity(events),
            schema_versions: Vec::with_capacity(events),
            payloads: Vec::with_capacity(events),
            metadata: Vec::with_capacity(events),
            recorded_at: Vec::with_capacity(events),
            recorded_at_ns: Vec::with_capacity(events),
            view_counts: Vec::with_capacity(requests),
            views: ChangeArrays::default(),
        };
        for append in appends {
            let request = &append.request;
            args.aggregate_types.push(&request.aggregate_type);
            args.aggregate_ids.push(&request.aggregate_id);
            args.min_versions.push(append.accepted.0);
            args.max_versions.push(append.accepted.1);
            // `rules::validate` refuses more events than fit.
            args.event_counts
                .push(i32::try_from(request.events.len()).unwrap_or(i32::MAX));
            let snapshot = request.snapshot.as_ref();
            let taken_at = snapshot.map(|s| split_nanos(s.taken_at));
            args.snapshot_versions
                .push(snapshot.map(|s| clamp_i64(s.version)));
            args.snapshot_states
                .push(snapshot.map(|s| s.state.as_str()));
            args.snapshot_taken_at.push(taken_at.map(|(at, _)| at));
            args.snapshot_taken_at_ns.push(taken_at.map(|(_, ns)| ns));
            for event in &request.events {
                let (at, ns) = split_nanos(event.recorded_at);
                args.event_ids.push(event.event_id);
                args.event_types.push(&event.event_type);
                args.schema_versions.push(i64::from(event.schema_version));
                args.payloads.push(&event.payload);
                args.metadata.push(&event.metadata);
                args.recorded_at.push(at);
                args.recorded_at_ns.push(ns);
            }
            // `rules::validate` refuses more changes than fit.
            args.view_counts
                .push(i32::try_from(request.view_changes.len()).unwrap_or(i32::MAX));
            args.views.push_all(&request.view_changes);
        }
        args
    }
}

impl Append {
    /// Checks `request` and prepares what the writer needs.
    fn new(mut request: AppendRequest) -> CoreResult<Self> {
        validate(&request)?;
        request.view_changes = prepare_changes(std::mem::take(&mut request.view_changes))?;
        Ok(Self {
            accepted: accepted_versions(request.expected),
            request,
        })
    }
}

#[async_trait]
impl factum_core::EventStore for PostgresEventStore {
    async fn append(&self, request: AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        self.inner()
            .breaker
            .call(async move {
                if request.events.is_empty() {
                    validate(&request)?;
                    return self.inner.append_no_events(request).await;
                }
                // `append_events` does not check the snapshot's version: when the
                // expectation pins the version, check it here, after the expectation (a
                // conflict comes first, as in every store).
                if let Some(pinned) = rules::pinned_version(&request)
                    && rules::check_snapshot_version(&request, pinned).is_err()
                {
                    validate(&request)?;
                    let current = self
                        .inner
                        .current_version(&request.aggregate_type, &request.aggregate_id)
                        .await?;
                    rules::check_expected(&request, current)?;
                    rules::check_snapshot_version(&request, current)?;
                }
                let append = Append::new(request)?;
                let (reply, answer) = oneshot::channel();
                let stopped =
                    || factum_core::Error::Unavailable("the store's writer has stopped".into());
                self.writer
                    .send(Job { append, reply })
                    .await
                    .map_err(|_| stopped())?;
                let result = match answer.await.map_err(|_| stopped())? {
                    Reply::Done(result) => result,
                    Reply::Refused(append) => self.inner.refused(&append.request).await,
                    Reply::Alone(append) => self.inner.append_alone(&append).await,
                };
                match &result {
                    Ok(_) => self.inner.full.store(false, Ordering::Relaxed),
                    Err(factum_core::Error::StoreFull(_)) => {
                        self.inner.full.store(true, Ordering::Relaxed)
                    }
                    Err(_) => {}
                }
                result
            })
            .await
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> CoreResult<Vec<StoredEvent>> {
        self.inner()
            .breaker
            .call(async move {
                let Ok(from_version) = i64::try_from(from_version) else {
                    return Ok(Vec::new());
                };
                self.inner
                    .read_stream_from(aggregate_type, aggregate_id, from_version, limit)
                    .await
            })
            .await
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> CoreResult<Vec<StoredEvent>> {
        self.inner()
            .breaker
            .call(async move {
                let Ok(after_position) = i64::try_from(after_position) else {
                    return Ok(Vec::new());
                };
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(self.inner.sql.read_all.clone())
                    .bind(after_position)
                    .bind(clamp_usize(limit))
                    .fetch_all(&self.inner.pool)
                    .await
                    .map_err(database_error)?;
                rows.iter()
                    .map(|row| stored_event(row).map_err(Into::into))
                    .collect()
            })
            .await
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> CoreResult<u64> {
        self.inner()
            .breaker
            .call(async move {
                self.inner
                    .current_version(aggregate_type, aggregate_id)
                    .await
            })
            .await
    }

    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<Option<Snapshot>> {
        self.inner()
            .breaker
            .call(async move {
                let row = sqlx::query(self.inner.sql.load_snapshot.clone())
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .fetch_optional(&self.inner.pool)
                    .await
                    .map_err(database_error)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let snapshot = (|| -> Result<Snapshot> {
                    Ok(Snapshot {
                        aggregate_type: aggregate_type.to_owned(),
                        aggregate_id: aggregate_id.to_owned(),
                        version: to_u64(row.try_get("version")?, "snapshot version")?,
                        state: row.try_get("state")?,
                        taken_at: join_nanos(row.try_get("taken_at")?, row.try_get("taken_at_ns")?),
                    })
                })();
                snapshot.map(Some).map_err(Into::into)
            })
            .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> CoreResult<()> {
        self.inner()
            .breaker
            .call(async move { self.inner.save_snapshot(snapshot).await })
            .await
    }

    async fn head_position(&self) -> CoreResult<u64> {
        self.inner()
            .breaker
            .call(async move {
                // Positions are gapless, so the last assigned one is the head; reading the counter
                // takes no lock (an append in flight holds it, and is not visible yet).
                let head: i64 = sqlx::query_scalar(self.inner.sql.head_position.clone())
                    .fetch_one(&self.inner.pool)
                    .await
                    .map_err(database_error)?;
                to_u64(head, "head position").map_err(Into::into)
            })
            .await
    }

    async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<factum_core::IdempotencyRecord>> {
        idempotency::find(&self.inner.idem_sql, &self.inner.pool, scope, key, now).await
    }

    async fn remember_idempotency(
        &self,
        record: factum_core::IdempotencyRecord,
    ) -> CoreResult<factum_core::IdempotencyRecord> {
        if record.scope.contains('\0') || record.key.contains('\0') {
            return Err(factum_core::Error::Validation(
                "an idempotency key or scope with a NUL character cannot be stored".to_owned(),
            ));
        }
        idempotency::remember(&self.inner.idem_sql, &self.inner.pool, record).await
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> CoreResult<u64> {
        idempotency::purge(&self.inner.idem_sql, &self.inner.pool, now).await
    }

    async fn health_check(&self) -> CoreResult<()> {
        self.inner()
            .breaker
            .call(async move {
                sqlx::query("SELECT 1")
                    .execute(&self.inner.pool)
                    .await
                    .map_err(database_error)?;
                if self.inner.full.load(Ordering::Relaxed) {
                    return Err(factum_core::Error::StoreFull(
                        "the last append failed for lack of disk space".into(),
                    ));
                }
                Ok(())
            })
            .await
    }

    fn as_view_store(&self) -> Option<&dyn ViewStore> {
        Some(self)
    }

    fn into_view_store(self: Arc<Self>) -> Option<Arc<dyn ViewStore>> {
        Some(self)
    }
}

/// Checks the request by the core's rules, then what PostgreSQL would otherwise refuse with a
/// less helpful message, before anything is sent: bad input changes nothing.
fn validate(request: &AppendRequest) -> CoreResult<()> {
    rules::validate(request)?;
    // PostgreSQL text cannot hold NUL characters.
    let texts = [&request.aggregate_type, &request.aggregate_id]
        .into_iter()
        .chain(request.events.iter().map(|e| &e.event_type))
        .chain(
            request
                .idempotency
                .iter()
                .flat_map(|r| [&r.scope, &r.key, &r.request_hash, &r.response]),
        );
    for text in texts {
        if text.contains('\0') {
            return Err(factum_core::Error::Validation(format!(
                "{text:?} contains a NUL character, which PostgreSQL text cannot hold"
            )));
        }
    }
    for (index, event) in request.events.iter().enumerate() {
        validate_json(&event.payload, || {
            format!("the payload of event {index} ({})", event.event_type)
        })?;
    }
    if let Some(snapshot) = &request.snapshot {
        validate_json(&snapshot.state, || "the snapshot state".to_owned())?;
    }
    Ok(())
}

fn validate_json(text: &str, what: impl FnOnce() -> String) -> CoreResult<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|source| factum_core::Error::Serialization {
            what: what(),
            source,
        })
}

/// The stored events of an append, from its request and the rows `append_events` returned
/// for it, in position order (which is the order of its events).
fn appended(request: &AppendRequest, rows: &[PgRow]) -> CoreResult<Vec<StoredEvent>> {
    if rows.len() != request.events.len() {
        return Err(Error::CorruptRow(format!(
            "an append of {} events stored {}",
            request.events.len(),
            rows.len()
        ))
        .into());
    }
    rows.iter()
        .zip(&request.events)
        .map(|(row, event)| {
            let position: i64 = row.try_get("position").map_err(database_error)?;
            let version: i64 = row.try_get("version").map_err(database_error)?;
            let payload: String = row.try_get("payload").map_err(database_error)?;
            // As stored: jsonb's normal form, the same text reads return.
            let metadata: String = row.try_get("metadata").map_err(database_error)?;
            Ok(StoredEvent {
                position: to_u64(position, "position")?,
                event_id: event.event_id,
                aggregate_type: request.aggregate_type.clone(),
                aggregate_id: request.aggregate_id.clone(),
                version: to_u64(version, "version")?,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload,
                metadata,
                recorded_at: event.recorded_at,
            })
        })
        .collect()
}

/// Decodes a row of the events table (columns as in [`EVENT_COLUMNS`]).
fn stored_event(row: &PgRow) -> Result<StoredEvent> {
    let schema_version: i64 = row.try_get("schema_version")?;
    Ok(StoredEvent {
        position: to_u64(row.try_get("position")?, "position")?,
        event_id: row.try_get("event_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: to_u64(row.try_get("version")?, "version")?,
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| Error::CorruptRow(format!("schema version {schema_version}")))?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: join_nanos(row.try_get("recorded_at")?, row.try_get("recorded_at_ns")?),
    })
}

fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::CorruptRow(format!("{what} {value}")))
}

/// Versions and limits beyond `i64::MAX` cannot occur in a table; clamping keeps comparisons
/// right without an error path.
fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn clamp_usize(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Splits a timestamp into the whole microseconds `timestamptz` keeps and the nanoseconds
/// below them, so it round-trips exactly.
fn split_nanos(at: DateTime<Utc>) -> (DateTime<Utc>, i16) {
    let nanos = at.nanosecond();
    let below_micro = nanos % 1_000;
    let truncated = at.with_nanosecond(nanos - below_micro).unwrap_or(at);
    // `below_micro` < 1000, so it fits.
    (truncated, i16::try_from(below_micro).unwrap_or(0))
}

fn join_nanos(at: DateTime<Utc>, nanos: i16) -> DateTime<Utc> {
    at + chrono::Duration::nanoseconds(i64::from(nanos))
}

/// The columns every event read returns, in the names [`stored_event`] decodes.
const EVENT_COLUMNS: &str = "position, event_id, aggregate_type, aggregate_id, version, \
    event_type, schema_version, payload::text AS payload, metadata::text AS metadata, \
    recorded_at, recorded_at_ns";

/// The SQL of a store, built once with its validated, quoted schema name (the only text
/// spliced in; every value is a bound parameter).
#[derive(Clone)]
struct Statements {
    append_events: SqlStr,
    append_events_idempotent: SqlStr,
    find_event: SqlStr,
    read_stream: SqlStr,
    read_all: SqlStr,
    stream_version: SqlStr,
    load_snapshot: SqlStr,
    save_snapshot: SqlStr,
    head_position: SqlStr,
    lock_positions: SqlStr,
}

impl Statements {
    fn new(s: &str) -> Self {
        Self {
            append_events: trusted(format!(
                "SELECT request, event_position AS position, event_version AS version,
                    event_payload AS payload, event_metadata AS metadata
                FROM {s}.append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                    $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
                ORDER BY event_position"
            )),
            append_events_idempotent: trusted(format!(
                "SELECT request, event_position AS position, event_version AS version,
                    event_payload AS payload, event_metadata AS metadata
                FROM {s}.append_events_idempotent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25,
                    $26, $27, $28, $29, $30)
                ORDER BY event_position"
            )),
            find_event: trusted(format!(
                "SELECT aggregate_type, aggregate_id, version FROM {s}.events WHERE event_id = $1"
            )),
            read_stream: trusted(format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events
                WHERE aggregate_type = $1 AND aggregate_id = $2 AND version >= $3
                ORDER BY version LIMIT $4"
            )),
            read_all: trusted(format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position > $1
                ORDER BY position LIMIT $2"
            )),
            stream_version: trusted(format!(
                "SELECT coalesce(max(version), 0) FROM {s}.events
                WHERE aggregate_type = $1 AND aggregate_id = $2"
            )),
            load_snapshot: trusted(format!(
                "SELECT version, state::text AS state, taken_at, taken_at_ns FROM {s}.snapshots
                WHERE aggregate_type = $1 AND aggregate_id = $2"
            )),
            save_snapshot: trusted(format!(
                "INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, version, state,
                    taken_at, taken_at_ns)
                VALUES ($1, $2, $3, $4::jsonb, $5, $6)
                ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET version = EXCLUDED.version, state = EXCLUDED.state,
                    taken_at = EXCLUDED.taken_at, taken_at_ns = EXCLUDED.taken_at_ns
                WHERE snapshots.version <= EXCLUDED.version"
            )),
            head_position: trusted(format!("SELECT last_position FROM {s}.event_position")),
            lock_positions: trusted(format!(
                "SELECT last_position FROM {s}.event_position FOR UPDATE"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_and_join_exactly() {
        let at = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123456789Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let (micros, ns) = split_nanos(at);
        assert_eq!(micros.nanosecond(), 123_456_000);
        assert_eq!(ns, 789);
        assert_eq!(join_nanos(micros, ns), at);
    }

    #[test]
    fn timestamps_before_2000_split_the_same_way() {
        let at = DateTime::parse_from_rfc3339("1999-12-31T23:59:59.999999999Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let (micros, ns) = split_nanos(at);
        assert_eq!(ns, 999);
        assert_eq!(join_nanos(micros, ns), at);
    }

    #[test]
    fn huge_values_clamp_instead_of_wrapping() {
        assert_eq!(clamp_i64(u64::MAX), i64::MAX);
        assert_eq!(clamp_i64(7), 7);
        assert!(matches!(to_u64(-1, "version"), Err(Error::CorruptRow(_))));
    }

    #[test]
    fn invalid_json_is_refused_before_sending() {
        assert!(validate_json("{\"a\":1}", String::new).is_ok());
        assert!(matches!(
            validate_json("{not json", || "the payload".into()),
            Err(factum_core::Error::Serialization { ref what, .. }) if what == "the payload"
        ));
    }

    #[test]
    fn the_schema_is_the_only_text_spliced_into_sql() {
        let sql = Statements::new("\"bank\"");
        for statement in [&sql.append_events, &sql.read_all, &sql.save_snapshot] {
            let statement = statement.as_str();
            assert!(statement.contains("\"bank\"."));
            assert!(!statement.contains('\''), "no literals: {statement}");
        }
    }
}
