//! The writer thread: the only connection that writes, and group commit.
//!
//! The thread blocks for one request, then takes every request already queued (up to a
//! configured maximum) and runs them all in one `BEGIN IMMEDIATE` transaction, each inside its own
//! savepoint. A request that is refused (expected version violated, an event id already used,
//! a retry that does not match) is rolled back to its savepoint and fails alone; the others
//! go on. Then one `COMMIT`, which with WAL and `synchronous=FULL` is one fsync of the log, and
//! only after it do the callers hear back. If the commit fails, every request of the batch
//! fails with it and nothing of the batch is stored.
//!
//! Projection batches and resets go through the same queue: a batch's record changes and its
//! checkpoint (checked and moved inside the transaction) commit together or not at all, and
//! never interleave with an append's view changes.
//!
//! Because one thread assigns positions (`INTEGER PRIMARY KEY`, max + 1) and commits in order,
//! positions are contiguous and in commit order, and a rolled-back savepoint leaves no gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use factum_core::ExpectedVersion;
use factum_core::store::{NewEvent, Snapshot, StoredEvent, rules};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, is_constraint_violation};
use crate::idempotency::{self, EncodedRecord};
use crate::rows::{query_events, stream_event_columns};
use crate::view_records::{self, EncodedProjection, EncodedViewChange, ProjectionReset};

/// An event ready to insert: the caller's event plus its encoded columns.
pub(crate) struct EncodedEvent {
    pub(crate) event: NewEvent,
    pub(crate) event_id: String,
    pub(crate) recorded_at: String,
}

/// A snapshot ready to write.
pub(crate) struct EncodedSnapshot {
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    pub(crate) version: i64,
    pub(crate) state: String,
    pub(crate) taken_at: String,
}

/// An append, validated and encoded by the caller so the writer thread only does SQL.
pub(crate) struct EncodedAppend {
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<EncodedEvent>,
    pub(crate) snapshot: Option<EncodedSnapshot>,
    /// Inline view changes, written in the append's savepoint after its events.
    pub(crate) view_changes: Vec<EncodedViewChange>,
    /// An idempotency record, checked before and written after the events, in the same
    /// savepoint.
    pub(crate) idempotency: Option<Box<EncodedRecord>>,
}

type Reply<T> = oneshot::Sender<factum_core::Result<T>>;

/// What the writer thread is asked to do.
pub(crate) enum WriteRequest {
    Append(EncodedAppend, Reply<Vec<StoredEvent>>),
    SaveSnapshot(EncodedSnapshot, Reply<()>),
    ApplyProjection(EncodedProjection, Reply<()>),
    ResetProjection(ProjectionReset, Reply<()>),
    RememberIdempotency(EncodedRecord, Reply<factum_core::IdempotencyRecord>),
    PurgeIdempotency(chrono::DateTime<chrono::Utc>, Reply<u64>),
    /// Forgets one parked event (projection, position); replies how many rows went.
    Unpark((String, i64), Reply<u64>),
}

/// Counters the writer keeps; read through `SqliteEventStore::stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) largest_batch: AtomicU64,
    /// Whether the last batch failed for lack of space (until one commits): what the health
    /// check reports, since reads still work on a full disk.
    pub(crate) full: AtomicBool,
}

/// The writer thread's loop: ends when every sender is gone and the queue is empty.
pub(crate) fn run(
    mut conn: Connection,
    mut queue: mpsc::Receiver<WriteRequest>,
    counters: Arc<Counters>,
    max_batch: usize,
) {
    tracing::debug!("writer thread started");
    while let Some(first) = queue.blocking_recv() {
        let mut batch = Vec::with_capacity(max_batch.min(64));
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, batch, &counters);
    }
    tracing::debug!("writer thread stopped");
}

/// The outcome of one request, held until the batch commits.
enum Pending {
    Append(
        Reply<Vec<StoredEvent>>,
        factum_core::Result<Vec<StoredEvent>>,
    ),
    /// Every other request: a snapshot save, a projection batch or reset.
    Done(Reply<()>, factum_core::Result<()>),
    Remembered(
        Reply<factum_core::IdempotencyRecord>,
        factum_core::Result<factum_core::IdempotencyRecord>,
    ),
    Purged(Reply<u64>, factum_core::Result<u64>),
}

impl Pending {
    fn succeeded(&self) -> bool {
        match self {
            Self::Append(_, result) => result.is_ok(),
            Self::Done(_, result) => result.is_ok(),
            Self::Remembered(_, result) => result.is_ok(),
            Self::Purged(_, result) => result.is_ok(),
        }
    }

    /// Whether the request failed for lack of space.
    fn is_full(&self) -> bool {
        matches!(
            self,
            Self::Append(_, Err(factum_core::Error::StoreFull(_)))
                | Self::Done(_, Err(factum_core::Error::StoreFull(_)))
        )
    }

    fn send(self) {
        // A caller that stopped waiting (its future was dropped) is no error: its write is
        // committed all the same, as with any database.
        match self {
            Self::Append(reply, result) => {
                let _ = reply.send(result);
            }
            Self::Done(reply, result) => {
                let _ = reply.send(result);
            }
            Self::Remembered(reply, result) => {
                let _ = reply.send(result);
            }
            Self::Purged(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }

    /// A request the batch failed before running it.
    fn from_unrun(request: WriteRequest) -> Self {
        match request {
            WriteRequest::Append(_, reply) => Self::Append(reply, Ok(Vec::new())),
            WriteRequest::SaveSnapshot(_, reply)
            | WriteRequest::ApplyProjection(_, reply)
            | WriteRequest::ResetProjection(_, reply) => Self::Done(reply, Ok(())),
            WriteRequest::RememberIdempotency(encoded, reply) => {
                Self::Remembered(reply, Ok(encoded.record))
            }
            WriteRequest::PurgeIdempotency(_, reply) | WriteRequest::Unpark(_, reply) => {
                Self::Purged(reply, Ok(0))
            }
        }
    }

    fn fail(self, error: &Arc<rusqlite::Error>) {
        let error = || factum_core::Error::from(Error::Commit(error.clone()));
        match self {
            Self::Append(reply, _) => {
                let _ = reply.send(Err(error()));
            }
            Self::Done(reply, _) => {
                let _ = reply.send(Err(error()));
            }
            Self::Remembered(reply, _) => {
                let _ = reply.send(Err(error()));
            }
            Self::Purged(reply, _) => {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

fn commit_batch(conn: &mut Connection, batch: Vec<WriteRequest>, counters: &Counters) {
    let size = batch.len();
    let mut requests = batch.into_iter();
    let mut pending = Vec::with_capacity(size);
    let mut new_events = 0u64;
    match run_batch(conn, &mut requests, &mut pending, &mut new_events) {
        Ok(()) => {
            let refused = pending.iter().filter(|p| !p.succeeded()).count() as u64;
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.requests.fetch_add(size as u64, Ordering::Relaxed);
            counters.refused.fetch_add(refused, Ordering::Relaxed);
            counters.events.fetch_add(new_events, Ordering::Relaxed);
            counters
                .largest_batch
                .fetch_max(size as u64, Ordering::Relaxed);
            let full = pending.iter().any(Pending::is_full);
            counters.full.store(full, Ordering::Relaxed);
            tracing::trace!(size, refused, "batch committed");
            for done in pending {
                done.send();
            }
        }
        Err(error) => {
            counters.failed_commits.fetch_add(1, Ordering::Relaxed);
            let full = error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull);
            counters.full.store(full, Ordering::Relaxed);
            tracing::error!(size, %error, "group commit failed; every append of the batch fails");
            let error = Arc::new(error);
            for done in pending {
                done.fail(&error);
            }
            // Requests the batch had not reached yet fail the same way: nothing is stored.
            for request in requests {
                Pending::from_unrun(request).fail(&error);
            }
        }
    }
}

/// Runs the requests in one transaction, each in its own savepoint, and commits. Every
/// request taken from `requests` leaves its outcome in `pending`, so that on an `Err` the
/// caller can fail them all.
fn run_batch(
    conn: &mut Connection,
    requests: &mut std::vec::IntoIter<WriteRequest>,
    pending: &mut Vec<Pending>,
    new_events: &mut u64,
) -> rusqlite::Result<()> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for request in requests.by_ref() {
        let mut savepoint = match tx.savepoint() {
            Ok(savepoint) => savepoint,
            Err(error) => {
                pending.push(Pending::from_unrun(request));
                return Err(error);
            }
        };
        let done = match request {
            WriteRequest::Append(append, reply) => {
                let result = append_one(&savepoint, &append).map(|(events, inserted)| {
                    *new_events += inserted;
                    events
                });
                Pending::Append(reply, result)
            }
            WriteRequest::SaveSnapshot(snapshot, reply) => Pending::Done(
                reply,
                save_snapshot(&savepoint, &snapshot).map_err(sql_error),
            ),
            WriteRequest::ApplyProjection(batch, reply) => {
                Pending::Done(reply, view_records::apply_projection(&savepoint, &batch))
            }
            WriteRequest::ResetProjection(reset, reply) => {
                Pending::Done(reply, view_records::reset_projection(&savepoint, &reset))
            }
            WriteRequest::RememberIdempotency(record, reply) => {
                Pending::Remembered(reply, idempotency::remember(&savepoint, &record))
            }
            WriteRequest::PurgeIdempotency(now, reply) => {
                Pending::Purged(reply, idempotency::purge(&savepoint, &now))
            }
            WriteRequest::Unpark((projection, position), reply) => Pending::Purged(
                reply,
                crate::parked::delete_one(&savepoint, &projection, position),
            ),
        };
        let succeeded = done.succeeded();
        let full = done.is_full();
        pending.push(done);
        if succeeded {
            savepoint.commit()?;
        } else {
            // A failure SQLite cannot confine to a savepoint (disk full, I/O error) may end
            // the whole transaction, savepoint included; then nothing of the batch holds.
            let ended = savepoint.is_autocommit();
            if !ended {
                savepoint.rollback()?;
                savepoint.commit()?;
            } else {
                drop(savepoint);
            }
            if ended || tx.is_autocommit() {
                // The batch fails with the cause, so a full disk is told apart from a fault.
                let code = if full {
                    rusqlite::ffi::SQLITE_FULL
                } else {
                    rusqlite::ffi::SQLITE_ABORT
                };
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(code),
                    Some("SQLite rolled back the batch's transaction".to_owned()),
                ));
            }
        }
    }
    // With WAL and synchronous=FULL, this is the batch's one fsync.
    tx.commit()
}

fn sql_error(error: rusqlite::Error) -> factum_core::Error {
    Error::Sqlite(error).into()
}

fn conflict(append: &EncodedAppend, actual: u64) -> factum_core::Error {
    rules::stream_conflict(
        &append.aggregate_type,
        &append.aggregate_id,
        append.expected,
        Some(actual),
    )
}

pub(crate) fn stream_version(
    conn: &Connection,
    aggregate_type: &str,
    aggregate_id: &str,
) -> factum_core::Result<u64> {
    let version: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2",
        )
        .and_then(|mut stmt| stmt.query_row(params![aggregate_type, aggregate_id], |row| row.get(0)))
        .map_err(sql_error)?;
    u64::try_from(version)
        .map_err(|_| Error::corrupt("events", format!("negative version {version}")).into())
}

/// One append, inside its savepoint: the events as stored, and how many of them were
/// inserted (none for a matched retry). An `Err` is rolled back by the caller.
fn append_one(
    conn: &Connection,
    append: &EncodedAppend,
) -> factum_core::Result<(Vec<StoredEvent>, u64)> {
    if let Some(first) = append.events.first() {
        let owner: Option<(String, String, i64)> = conn
            .prepare_cached(
                "SELECT aggregate_type, aggregate_id, version FROM events WHERE event_id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([&first.event_id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
            })
            .map_err(sql_error)?;
        if let Some((aggregate_type, aggregate_id, first_version)) = owner {
            // The first event is stored already: a retry of an append that went through
            // (the caller never heard back), or a clash.
            if aggregate_type == append.aggregate_type
                && aggregate_id == append.aggregate_id
                && let Some(stored) = matching_retry(conn, append, first_version)?
            {
                // Nothing is written, view changes included: the original wrote them,
                // and applying them again could count its events twice.
                return Ok((stored, 0));
            }
            let current = stream_version(conn, &append.aggregate_type, &append.aggregate_id)?;
            return Err(conflict(append, current));
        }
    }

    if let Some(record) = &append.idempotency {
        idempotency::check_free(conn, record)?;
    }
    let current = stream_version(conn, &append.aggregate_type, &append.aggregate_id)?;
    if !append.expected.is_satisfied_by(current) {
        return Err(conflict(append, current));
    }
    let reached = current + append.events.len() as u64;
    if let Some(snapshot) = &append.snapshot
        && u64::try_from(snapshot.version).ok() != Some(reached)
    {
        return Err(rules::snapshot_version_error(snapshot.version, reached));
    }

    let mut stored = Vec::with_capacity(append.events.len());
    {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO events (aggregate_type, aggregate_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(sql_error)?;
        for (offset, encoded) in append.events.iter().enumerate() {
            let version = current + offset as u64 + 1;
            let event = &encoded.event;
            let inserted = insert.execute(params![
                append.aggregate_type,
                append.aggregate_id,
                crate::rows::clamp_to_sql(version),
                encoded.event_id,
                event.event_type,
                i64::from(event.schema_version),
                event.payload,
                event.metadata,
                encoded.recorded_at,
            ]);
            match inserted {
                Ok(_) => {}
                // An event id used before (here or earlier in this append), or the version
                // taken: both mean another write got there first. Decided by SQLite's error
                // code, never by its message.
                Err(error) if is_constraint_violation(&error) => {
                    return Err(conflict(append, current));
                }
                Err(error) => return Err(sql_error(error)),
            }
            let position = u64::try_from(conn.last_insert_rowid())
                .map_err(|_| Error::corrupt("events", "negative position"))?;
            stored.push(StoredEvent {
                position,
                event_id: event.event_id,
                aggregate_type: append.aggregate_type.clone(),
                aggregate_id: append.aggregate_id.clone(),
                version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
                recorded_at: event.recorded_at,
            });
        }
    }
    if let Some(snapshot) = &append.snapshot {
        save_snapshot(conn, snapshot).map_err(sql_error)?;
    }
    // In the append's savepoint: refused or rolled back with its events, committed with them.
    view_records::write_changes(conn, &append.view_changes)?;
    if let Some(record) = &append.idempotency {
        idempotency::write(conn, record)?;
    }
    let inserted = stored.len() as u64;
    Ok((stored, inserted))
}

/// The stored events a retried append names, if every one of its ids is stored at the
/// matching version of the same stream.
fn matching_retry(
    conn: &Connection,
    append: &EncodedAppend,
    first_version: i64,
) -> factum_core::Result<Option<Vec<StoredEvent>>> {
    let wanted = append.events.len();
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            stream_event_columns!(),
            " FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version >= ?3
             ORDER BY version LIMIT ?4"
        ))
        .map_err(sql_error)?;
    let stored = query_events(
        &mut stmt,
        params![
            append.aggregate_type,
            append.aggregate_id,
            first_version,
            crate::rows::sql_limit(Some(wanted))
        ],
        Some((&append.aggregate_type, &append.aggregate_id)),
        wanted,
    )?;
    let ids = append.events.iter().map(|encoded| encoded.event.event_id);
    let matches = rules::is_retry(&append.aggregate_type, &append.aggregate_id, ids, &stored);
    Ok(matches.then_some(stored))
}

/// Writes a snapshot unless a newer one is stored.
fn save_snapshot(conn: &Connection, snapshot: &EncodedSnapshot) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO snapshots (aggregate_type, aggregate_id, version, state, taken_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
         SET version = excluded.version, state = excluded.state, taken_at = excluded.taken_at
         WHERE excluded.version >= snapshots.version",
    )?
    .execute(params![
        snapshot.aggregate_type,
        snapshot.aggregate_id,
        snapshot.version,
        snapshot.state,
        snapshot.taken_at,
    ])?;
    Ok(())
}

impl EncodedSnapshot {
    pub(crate) fn encode(snapshot: &Snapshot) -> factum_core::Result<Self> {
        Ok(Self {
            aggregate_type: snapshot.aggregate_type.clone(),
            aggregate_id: snapshot.aggregate_id.clone(),
            version: crate::rows::to_sql_int(snapshot.version, "snapshot version")?,
            state: snapshot.state.clone(),
            taken_at: crate::rows::encode_time(&snapshot.taken_at, "snapshot taken_at")?,
        })
    }
}
