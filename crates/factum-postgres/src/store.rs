//! The PostgreSQL [`EventStore`].
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
//! table `event_position` holds one row, the last assigned position. Each append is a single
//! statement in its own (implicit) transaction that, in this order, checks the expected
//! version, updates that row (`last_position = last_position + n`, which locks it), inserts
//! its events at positions `old + 1 ..= old + n`, writes the snapshot, and commits. A second
//! append blocks on the row until the first one's transaction ends, then reads the row as the
//! first one left it (committed: advanced; rolled back: unchanged). Hence:
//!
//! - **Commit order.** PostgreSQL makes a transaction visible to new snapshots before it
//!   releases its locks, so when an append obtains positions, every lower position is
//!   already committed and visible. A reader whose snapshot shows position `p` therefore
//!   shows every position below `p`: following `read_all` in position order skips nothing.
//! - **No gaps.** A failed append (conflict, bad input, crash) rolls its counter update back
//!   with its events, so positions are exactly 1, 2, 3, ..., as the core contract requires.
//! - **No timeouts, no horizon.** Readers take no lock and never wait, and do not depend on
//!   other transactions in the cluster. (The alternative, storing `pg_current_xact_id()` per
//!   event and returning only events of transactions below `pg_snapshot_xmin`, keeps sequence
//!   gaps, delays every reader behind any long transaction in the cluster, and is only sound
//!   if positions are also taken in transaction-id order, which needs a lock anyway.)
//!
//! The price is that appends commit one at a time: the lock is held from the counter update
//! to the end of the commit (including its WAL flush), so the store's append rate is bounded
//! by one commit's latency, whatever the number of nodes. To keep that window short, the
//! whole append (version check, counter, multi-row insert via `UNNEST`, snapshot upsert) is
//! one statement, one round trip, run outside an explicit transaction block; the lock is
//! taken late in it, after the version check, and released by the commit that ends it.
//!
//! # Conflicts
//!
//! The version check runs on the statement's snapshot, taken before the lock wait. An append
//! that raced another on the same stream therefore either fails the check (nothing is
//! inserted) or hits `UNIQUE (aggregate_type, aggregate_id, version)`; both are reported as
//! [`factum_core::Error::Conflict`], recognised by the constraint named in the error (SQLSTATE
//! 23505), never by message text. For `Any` and `StreamExists`, which a newer version still
//! satisfies, the append is retried instead. A unique violation on `event_id`, or a refused
//! check, first looks for a retry of an append that went through (same event ids at the same
//! versions), which returns the stored events.
//!
//! # Durability
//!
//! An append returns after its commit, and [`PostgresEventStore::connect`] sets
//! `synchronous_commit = on` on its connections, so an acknowledged append is flushed to the
//! WAL (with the server's default `fsync = on`).
//!
//! # JSON
//!
//! Payloads, metadata and snapshot states are stored as `jsonb`: they come back as equal JSON
//! values, normalised by PostgreSQL (key order, whitespace), not byte for byte.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use factum_core::{AppendRequest, ExpectedVersion, Metadata, Snapshot, StoredEvent};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::error::{Error, Result, UniqueViolation, database_error, unique_violation};
use crate::migrations::{self, DEFAULT_SCHEMA, quoted, validate_schema_name};

type CoreResult<T> = factum_core::Result<T>;

/// How often an append whose expectation a newer version still satisfies (`Any`,
/// `StreamExists`) is retried after losing a race for a version, before giving up with a
/// conflict. Each retry means another append to the same stream committed meanwhile.
const MAX_VERSION_RACE_RETRIES: u32 = 16;

/// Connections a store opened by URL keeps at most.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// An [`EventStore`](factum_core::EventStore) on PostgreSQL, shared safely by many service
/// nodes: all correctness comes from the database (constraints, one row lock), none from
/// in-process locks. See the [module docs](self) for how positions are assigned.
#[derive(Clone)]
pub struct PostgresEventStore {
    pool: PgPool,
    schema: String,
    sql: Statements,
}

impl fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEventStore")
            .field("schema", &self.schema)
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
            .connect_with(options)
            .await?;
        Self::from_pool(pool, schema).await
    }

    /// Uses an existing pool, with tables in `schema` (created if missing), and applies
    /// missing migrations. Durability follows the pool's settings (`synchronous_commit`).
    pub async fn from_pool(pool: PgPool, schema: &str) -> Result<Self> {
        validate_schema_name(schema)?;
        migrations::migrate(&pool, schema).await?;
        Ok(Self {
            sql: Statements::new(&quoted(schema)),
            pool,
            schema: schema.to_owned(),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The fast path: the whole append as one statement. `Ok` with no rows means the expected
    /// version did not hold.
    async fn try_append(
        &self,
        request: &AppendRequest,
        batch: &Batch,
        bounds: (i64, i64),
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        let snapshot = request.snapshot.as_ref();
        let snapshot_at = snapshot.map(|s| split_nanos(s.taken_at));
        sqlx::query(&self.sql.append)
            .bind(&request.aggregate_type)
            .bind(&request.aggregate_id)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(&batch.event_ids)
            .bind(&batch.event_types)
            .bind(&batch.schema_versions)
            .bind(&batch.payloads)
            .bind(&batch.metadata)
            .bind(&batch.recorded_at)
            .bind(&batch.recorded_at_ns)
            .bind(batch.len())
            .bind(snapshot.map(|s| clamp_i64(s.version)))
            .bind(snapshot.map(|s| s.state.as_str()))
            .bind(snapshot_at.map(|(at, _)| at))
            .bind(snapshot_at.map(|(_, ns)| ns))
            .fetch_all(&self.pool)
            .await
    }

    /// Works out why an append was refused: a retry of an append that went through (returns
    /// its stored events), a race to retry, or a conflict.
    async fn resolve_refusal(
        &self,
        request: &AppendRequest,
        violation: Option<UniqueViolation>,
    ) -> CoreResult<Refusal> {
        if let Some(first) = request.events.first() {
            let stored: Option<(String, String, i64)> = sqlx::query_as(&self.sql.find_event)
                .bind(first.event_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(database_error)?;
            if let Some((aggregate_type, aggregate_id, version)) = stored {
                if aggregate_type != request.aggregate_type
                    || aggregate_id != request.aggregate_id
                {
                    return self.conflict(request).await.map(Refusal::Conflict);
                }
                let stored = self
                    .read_stream_from(
                        &request.aggregate_type,
                        &request.aggregate_id,
                        version,
                        Some(request.events.len()),
                    )
                    .await?;
                let same = stored.len() == request.events.len()
                    && stored
                        .iter()
                        .zip(&request.events)
                        .all(|(stored, new)| stored.event_id == new.event_id);
                return if same {
                    Ok(Refusal::Replayed(stored))
                } else {
                    self.conflict(request).await.map(Refusal::Conflict)
                };
            }
        }
        let satisfied_by_newer = matches!(
            request.expected,
            ExpectedVersion::Any | ExpectedVersion::StreamExists
        );
        if violation == Some(UniqueViolation::StreamVersion) && satisfied_by_newer {
            return Ok(Refusal::Retry);
        }
        self.conflict(request).await.map(Refusal::Conflict)
    }

    /// The conflict error for `request`, with the stream's current version.
    async fn conflict(&self, request: &AppendRequest) -> CoreResult<factum_core::Error> {
        let actual = self
            .current_version(&request.aggregate_type, &request.aggregate_id)
            .await?;
        Ok(conflict_error(request, Some(actual)))
    }

    async fn current_version(&self, aggregate_type: &str, aggregate_id: &str) -> CoreResult<u64> {
        let version: i64 = sqlx::query_scalar(&self.sql.stream_version)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_one(&self.pool)
            .await
            .map_err(database_error)?;
        to_u64(version, "stream version").map_err(Into::into)
    }

    /// An append without events: checks the expectation and writes the snapshot, if any.
    async fn append_no_events(&self, request: AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        let current = self
            .current_version(&request.aggregate_type, &request.aggregate_id)
            .await?;
        if !request.expected.is_satisfied_by(current) {
            return Err(conflict_error(&request, Some(current)));
        }
        if let Some(snapshot) = request.snapshot {
            factum_core::EventStore::save_snapshot(self, snapshot).await?;
        }
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
        let rows = sqlx::query(&self.sql.read_stream)
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
}

/// Why an append's fast path was refused.
enum Refusal {
    /// It is a retry of an append that went through: these are its stored events.
    Replayed(Vec<StoredEvent>),
    /// It lost a race for a version its expectation still allows: try again.
    Retry,
    /// A real conflict.
    Conflict(factum_core::Error),
}

#[async_trait]
impl factum_core::EventStore for PostgresEventStore {
    async fn append(&self, request: AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        validate(&request)?;
        if request.events.is_empty() {
            return self.append_no_events(request).await;
        }
        let batch = Batch::new(&request)?;
        let bounds = match request.expected {
            ExpectedVersion::Any => (0, i64::MAX),
            ExpectedVersion::NoStream => (0, 0),
            ExpectedVersion::StreamExists => (1, i64::MAX),
            ExpectedVersion::Exact(version) => match i64::try_from(version) {
                Ok(version) => (version, version),
                // No stream can be that long: it is a conflict, unless this is a retry.
                Err(_) => (1, 0),
            },
        };
        let mut retries = 0;
        loop {
            let violation = match self.try_append(&request, &batch, bounds).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => return appended(&request, &rows),
                Err(error) => match unique_violation(&error) {
                    Some(violation) => Some(violation),
                    None => return Err(database_error(error)),
                },
            };
            match self.resolve_refusal(&request, violation).await? {
                Refusal::Replayed(events) => return Ok(events),
                Refusal::Retry if retries < MAX_VERSION_RACE_RETRIES => retries += 1,
                Refusal::Retry => return Err(self.conflict(&request).await?),
                Refusal::Conflict(error) => return Err(error),
            }
        }
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> CoreResult<Vec<StoredEvent>> {
        let Ok(from_version) = i64::try_from(from_version) else {
            return Ok(Vec::new());
        };
        self.read_stream_from(aggregate_type, aggregate_id, from_version, limit)
            .await
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> CoreResult<Vec<StoredEvent>> {
        let Ok(after_position) = i64::try_from(after_position) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.sql.read_all)
            .bind(after_position)
            .bind(clamp_usize(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(database_error)?;
        rows.iter()
            .map(|row| stored_event(row).map_err(Into::into))
            .collect()
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> CoreResult<u64> {
        self.current_version(aggregate_type, aggregate_id).await
    }

    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<Option<Snapshot>> {
        let row = sqlx::query(&self.sql.load_snapshot)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(database_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let snapshot = (|| -> std::result::Result<Snapshot, sqlx::Error> {
            Ok(Snapshot {
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: to_u64(row.try_get("version")?, "snapshot version")
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                state: row.try_get("state")?,
                taken_at: join_nanos(row.try_get("taken_at")?, row.try_get("taken_at_ns")?),
            })
        })();
        snapshot.map(Some).map_err(database_error)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> CoreResult<()> {
        validate_json(&snapshot.state, || "the snapshot state".to_owned())?;
        let (taken_at, taken_at_ns) = split_nanos(snapshot.taken_at);
        sqlx::query(&self.sql.save_snapshot)
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

    async fn health_check(&self) -> CoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
}

/// Checks what PostgreSQL would otherwise refuse with a less helpful message, before anything
/// is sent: bad input changes nothing.
fn validate(request: &AppendRequest) -> CoreResult<()> {
    for (index, event) in request.events.iter().enumerate() {
        validate_json(&event.payload, || {
            format!("the payload of event {index} ({})", event.event_type)
        })?;
    }
    if let Some(snapshot) = &request.snapshot {
        if snapshot.aggregate_type != request.aggregate_type
            || snapshot.aggregate_id != request.aggregate_id
        {
            return Err(factum_core::Error::Validation(format!(
                "the snapshot is of {} '{}', the append of {} '{}'",
                snapshot.aggregate_type,
                snapshot.aggregate_id,
                request.aggregate_type,
                request.aggregate_id
            )));
        }
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

fn conflict_error(request: &AppendRequest, actual: Option<u64>) -> factum_core::Error {
    factum_core::Error::Conflict {
        aggregate_type: request.aggregate_type.clone(),
        aggregate_id: request.aggregate_id.clone(),
        expected: request.expected,
        actual,
    }
}

/// An append's events as one array per column, for `UNNEST`.
struct Batch {
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i64>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    recorded_at_ns: Vec<i16>,
}

impl Batch {
    fn new(request: &AppendRequest) -> CoreResult<Self> {
        let n = request.events.len();
        let mut batch = Self {
            event_ids: Vec::with_capacity(n),
            event_types: Vec::with_capacity(n),
            schema_versions: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            recorded_at: Vec::with_capacity(n),
            recorded_at_ns: Vec::with_capacity(n),
        };
        for event in &request.events {
            let metadata = serde_json::to_string(&event.metadata).map_err(|source| {
                factum_core::Error::Serialization {
                    what: format!("the metadata of event {}", event.event_id),
                    source,
                }
            })?;
            let (at, ns) = split_nanos(event.recorded_at);
            batch.event_ids.push(event.event_id);
            batch.event_types.push(event.event_type.clone());
            batch.schema_versions.push(i64::from(event.schema_version));
            batch.payloads.push(event.payload.clone());
            batch.metadata.push(metadata);
            batch.recorded_at.push(at);
            batch.recorded_at_ns.push(ns);
        }
        Ok(batch)
    }

    fn len(&self) -> i64 {
        clamp_usize(self.event_ids.len())
    }
}

/// The stored events of a successful fast path, from the request and the returned rows.
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
            Ok(StoredEvent {
                position: to_u64(position, "position")?,
                event_id: event.event_id,
                aggregate_type: request.aggregate_type.clone(),
                aggregate_id: request.aggregate_id.clone(),
                version: to_u64(version, "version")?,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload,
                metadata: event.metadata.clone(),
                recorded_at: event.recorded_at,
            })
        })
        .collect()
}

/// Decodes a row of the events table (columns as in [`EVENT_COLUMNS`]).
fn stored_event(row: &PgRow) -> Result<StoredEvent> {
    let metadata: String = row.try_get("metadata")?;
    let metadata: Metadata = serde_json::from_str(&metadata)
        .map_err(|e| Error::CorruptRow(format!("event metadata: {e}")))?;
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
        metadata,
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
    append: String,
    find_event: String,
    read_stream: String,
    read_all: String,
    stream_version: String,
    load_snapshot: String,
    save_snapshot: String,
}

impl Statements {
    fn new(s: &str) -> Self {
        Self {
            // $1 type, $2 id, $3..$4 allowed current versions, $5..$11 event columns,
            // $12 event count, $13..$16 snapshot (all NULL without one).
            append: format!(
                "WITH current AS (
                    SELECT coalesce(max(version), 0) AS version FROM {s}.events
                    WHERE aggregate_type = $1 AND aggregate_id = $2
                ), counter AS (
                    UPDATE {s}.event_position SET last_position = last_position + $12
                    FROM current WHERE current.version BETWEEN $3 AND $4
                    RETURNING last_position - $12 AS base, current.version AS version
                ), inserted AS (
                    INSERT INTO {s}.events (position, aggregate_type, aggregate_id, version,
                        event_id, event_type, schema_version, payload, metadata, recorded_at,
                        recorded_at_ns)
                    SELECT counter.base + e.ord, $1, $2, counter.version + e.ord,
                        e.event_id, e.event_type, e.schema_version, e.payload::jsonb,
                        e.metadata::jsonb, e.recorded_at, e.recorded_at_ns
                    FROM counter, UNNEST($5::uuid[], $6::text[], $7::bigint[], $8::text[],
                        $9::text[], $10::timestamptz[], $11::smallint[])
                        WITH ORDINALITY AS e(event_id, event_type, schema_version, payload,
                            metadata, recorded_at, recorded_at_ns, ord)
                    RETURNING position, version, payload::text AS payload
                ), snapshot AS (
                    INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, version, state,
                        taken_at, taken_at_ns)
                    SELECT $1, $2, $13, $14::jsonb, $15, $16 FROM counter
                    WHERE $14::text IS NOT NULL
                    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                    SET version = EXCLUDED.version, state = EXCLUDED.state,
                        taken_at = EXCLUDED.taken_at, taken_at_ns = EXCLUDED.taken_at_ns
                    WHERE snapshots.version <= EXCLUDED.version
                )
                SELECT position, version, payload FROM inserted ORDER BY position"
            ),
            find_event: format!(
                "SELECT aggregate_type, aggregate_id, version FROM {s}.events WHERE event_id = $1"
            ),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events
                WHERE aggregate_type = $1 AND aggregate_id = $2 AND version >= $3
                ORDER BY version LIMIT $4"
            ),
            read_all: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position > $1
                ORDER BY position LIMIT $2"
            ),
            stream_version: format!(
                "SELECT coalesce(max(version), 0) FROM {s}.events
                WHERE aggregate_type = $1 AND aggregate_id = $2"
            ),
            load_snapshot: format!(
                "SELECT version, state::text AS state, taken_at, taken_at_ns FROM {s}.snapshots
                WHERE aggregate_type = $1 AND aggregate_id = $2"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, version, state,
                    taken_at, taken_at_ns)
                VALUES ($1, $2, $3, $4::jsonb, $5, $6)
                ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET version = EXCLUDED.version, state = EXCLUDED.state,
                    taken_at = EXCLUDED.taken_at, taken_at_ns = EXCLUDED.taken_at_ns
                WHERE snapshots.version <= EXCLUDED.version"
            ),
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
        for statement in [&sql.append, &sql.read_all, &sql.save_snapshot] {
            assert!(statement.contains("\"bank\"."));
            assert!(!statement.contains('\''), "no literals: {statement}");
        }
    }
}
