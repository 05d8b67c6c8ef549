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

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factum_core::ViewStore;
use factum_core::store::{AppendRequest, Snapshot, StoredEvent, rules};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::breaker::Breaker;
use crate::error::{Error, Result, database_error};
use crate::idempotency::{self, RecordStatements};
use crate::migrations::{self, DEFAULT_SCHEMA, quoted, validate_schema_name};
use crate::rows::{clamp_usize, join_nanos, stored_event, to_u64, validate};
use crate::statements::Statements;
use crate::view_records::ViewStatements;
use crate::writer::{Append, Inner, Job, Reply, write_loop};

type CoreResult<T> = factum_core::Result<T>;

/// Connections a store opened by URL keeps at most.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long a call waits for a connection before failing with `Unavailable`. Short, so that a
/// PostgreSQL outage is a prompt 503 instead of a request hanging until its timeout; it
/// also caps the pool's back-off between connection attempts (a fifth of this), so work
/// resumes within a fraction of a second of the server accepting connections again.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::migrate_to;

    /// A schema a release before views created, with events in it, is upgraded in place when
    /// a newer release opens it: the events stay, and appends write view changes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schema_at_migration_1_is_upgraded_in_place() {
        use factum_core::ViewStore;
        use factum_core::store::AppendRequest;
        use factum_core::{EventStore, ExpectedVersion, ViewChange, ViewRecord};

        let url = std::env::var("FACTUM_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let pool = sqlx::PgPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required at {url}: {e}"));
        let schema = format!("factum_test_{}", uuid::Uuid::new_v4().simple());
        migrate_to(&pool, &schema, 1).await.unwrap();
        let q = quoted(&schema);
        // An event as release 1 stored it.
        sqlx::raw_sql(crate::sql::trusted(format!(
            "INSERT INTO {q}.events (position, aggregate_type, aggregate_id, version, event_id,
                event_type, schema_version, payload, metadata, recorded_at)
            VALUES (1, 'account', 'a', 1, gen_random_uuid(), 'Opened', 1, '{{}}', '{{}}', now());
            UPDATE {q}.event_position SET last_position = 1;"
        )))
        .execute(&pool)
        .await
        .unwrap();

        let outcome = async {
            let store = PostgresEventStore::from_pool(pool.clone(), &schema).await?;
            let applied: Vec<i32> = sqlx::query_scalar(crate::sql::trusted(format!(
                "SELECT version FROM {q}.factum_migrations ORDER BY version"
            )))
            .fetch_all(&pool)
            .await?;
            assert_eq!(applied, [1, 2, 3, 4]);
            assert_eq!(store.head_position().await?, 1);
            let mut append = AppendRequest::new(
                "account",
                "a",
                ExpectedVersion::Exact(1),
                vec![factum_core::store::NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "Deposited".into(),
                    schema_version: 1,
                    payload: "{}".into(),
                    metadata: "{}".into(),
                    recorded_at: chrono::Utc::now(),
                }],
            );
            append.view_changes = vec![ViewChange::Upsert(ViewRecord {
                view_type: "accounts".into(),
                view_id: "a".into(),
                aggregate_id: "a".into(),
                version: 2,
                data: "{}".into(),
            })];
            let stored = store.append(append).await?;
            assert_eq!((stored[0].position, stored[0].version), (2, 2));
            assert_eq!(
                store.get_view("accounts", "a").await?.map(|r| r.version),
                Some(2)
            );
            Ok::<_, Box<dyn std::error::Error>>(())
        }
        .await;
        sqlx::raw_sql(crate::sql::trusted(format!("DROP SCHEMA {q} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
        outcome.unwrap();
    }
}
