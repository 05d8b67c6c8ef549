//! The writer of the event store: the state its handles and its writer task share, the task
//! that commits the appends queued meanwhile as one group in one `append_events` call, and
//! what a caller does when its append stored nothing (a retry, or a conflict) or its group
//! failed (redo it alone). See the [`store`](crate::store) module for why this is correct.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use factum_core::ExpectedVersion;
use factum_core::store::{AppendRequest, Snapshot, StoredEvent, rules};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::breaker::Breaker;
use crate::error::{database_error, unique_violation};
use crate::feed_sql::EVENTS_PER_TRANSACTION;
use crate::idempotency::{self, RecordArrays, RecordStatements};
use crate::rows::{
    appended, clamp_i64, clamp_usize, split_nanos, stream_event, to_u64, validate, validate_json,
};
use crate::statements::Statements;
use crate::view_records::{ChangeArrays, ViewStatements, prepare_changes, write_changes};

type CoreResult<T> = factum_core::Result<T>;

/// Appends committed together in one transaction at most.
const MAX_GROUP: usize = 64;

/// What the store's handles and its writer task share.
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) schema: String,
    /// Whether the last append failed for lack of disk space (until one succeeds): what
    /// readiness reports, since a `SELECT` still works on a full disk.
    pub(crate) full: AtomicBool,
    /// Fails calls at once while the server is known unreachable (see [`crate::breaker`]).
    pub(crate) breaker: Breaker,
    pub(crate) sql: Statements,
    pub(crate) views_sql: ViewStatements,
    pub(crate) idem_sql: RecordStatements,
}

/// One append, prepared by its caller for the writer.
pub(crate) struct Append {
    /// The request, its view changes checked and reduced to the last change of each record.
    pub(crate) request: AppendRequest,
    /// The stream versions the expectation accepts, inclusive.
    pub(crate) accepted: (i64, i64),
}

/// An append queued for the writer, with where to send what became of it.
pub(crate) struct Job {
    pub(crate) append: Append,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// What the writer did with an append. Follow-up work (finding out why an append stored
/// nothing, redoing it alone) is left to the caller, so the writer moves on.
pub(crate) enum Reply {
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

/// Writer tasks per store handle. Appends no longer wait for each other across
/// transactions (see the [`store`](crate::store) module), so a node keeps several groups in
/// flight: an append that arrives while one group commits goes out at once with the next
/// writer, and the server shares WAL flushes between the transactions.
pub(crate) const WRITERS: usize = 4;

/// The queue the writers share: each takes what is queued when it is free.
pub(crate) type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>;

/// A store's writer: takes the appends queued meanwhile and commits them together.
/// It stops when every handle to the store is dropped.
///
/// When a group found no connection in time, the appends queued meanwhile fail at once
/// with `Unavailable` rather than each waiting out another acquire timeout behind it: during
/// an outage no append waits much longer than one timeout.
pub(crate) async fn write_loop(inner: Arc<Inner>, jobs: Queue) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        let taken = jobs.lock().await.recv_many(&mut group, MAX_GROUP).await;
        if taken == 0 {
            return;
        }
        for part in split_by_events(std::mem::take(&mut group)) {
            if inner.commit_group(part).await == Reached::No {
                let mut jobs = jobs.lock().await;
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
}

/// Splits the appends taken together into groups of at most [`EVENTS_PER_TRANSACTION`]
/// events each (one append alone never has more: [`Append::new`] refuses it), in order.
fn split_by_events(group: Vec<Job>) -> Vec<Vec<Job>> {
    let mut parts: Vec<Vec<Job>> = Vec::with_capacity(1);
    let mut events = 0;
    for job in group {
        let len = job.append.request.events.len();
        match parts.last_mut() {
            Some(part) if events + len <= EVENTS_PER_TRANSACTION => part.push(job),
            _ => {
                events = 0;
                parts.push(vec![job]);
            }
        }
        events += len;
    }
    parts
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
    pub(crate) async fn append_alone(&self, append: &Append) -> CoreResult<Vec<StoredEvent>> {
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
    pub(crate) async fn refused(&self, request: &AppendRequest) -> CoreResult<Vec<StoredEvent>> {
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

    pub(crate) async fn current_version(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<u64> {
        let version: i64 = sqlx::query_scalar(self.sql.stream_version.clone())
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_one(&self.pool)
            .await
            .map_err(database_error)?;
        to_u64(version, "stream version").map_err(Into::into)
    }

    /// An append without events: checks the expectation and writes the snapshot, if any.
    pub(crate) async fn append_no_events(
        &self,
        request: AppendRequest,
    ) -> CoreResult<Vec<StoredEvent>> {
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
    /// by an append of that stream, so it takes the stream's lock (and its key's), as appends
    /// do.
    async fn view_changes_without_events(
        &self,
        request: AppendRequest,
    ) -> CoreResult<Vec<StoredEvent>> {
        let changes = prepare_changes(request.view_changes.clone())?;
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        let record = request.idempotency.as_ref();
        sqlx::query(self.sql.lock_streams.clone())
            .bind(vec![request.aggregate_type.as_str()])
            .bind(vec![request.aggregate_id.as_str()])
            .bind(vec![record.map(|r| r.scope.as_str())])
            .bind(vec![record.map(|r| r.key.as_str())])
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
            self.snapshot_query(snapshot)
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

    pub(crate) async fn read_stream_from(
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
            .map(|row| stream_event(row, aggregate_type, aggregate_id).map_err(Into::into))
            .collect()
    }

    /// The statement that stores `snapshot` unless a newer one is stored already.
    fn snapshot_query<'q>(
        &self,
        snapshot: &'q Snapshot,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let (taken_at, taken_at_ns) = split_nanos(snapshot.taken_at);
        sqlx::query(self.sql.save_snapshot.clone())
            .bind(&snapshot.aggregate_type)
            .bind(&snapshot.aggregate_id)
            .bind(clamp_i64(snapshot.version))
            .bind(&snapshot.state)
            .bind(taken_at)
            .bind(taken_at_ns)
    }

    pub(crate) async fn save_snapshot(&self, snapshot: Snapshot) -> CoreResult<()> {
        validate_json(&snapshot.state, || "the snapshot state".to_owned())?;
        self.snapshot_query(&snapshot)
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
    pub(crate) fn new(mut request: AppendRequest) -> CoreResult<Self> {
        validate(&request)?;
        if request.events.len() > EVENTS_PER_TRANSACTION {
            return Err(factum_core::Error::Validation(format!(
                "an append of {} events: PostgreSQL stores at most {EVENTS_PER_TRANSACTION} \
                 in one append",
                request.events.len()
            )));
        }
        request.view_changes = prepare_changes(std::mem::take(&mut request.view_changes))?;
        Ok(Self {
            accepted: accepted_versions(request.expected),
            request,
        })
    }
}
