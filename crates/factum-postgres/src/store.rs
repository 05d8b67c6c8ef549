//! The PostgreSQL [`EventStore`](factum_core::EventStore).
//!
//! # How positions are assigned, and why `read_all` never skips an event
//!
//! Every event gets a store-wide position, and a reader that follows `read_all` from a
//! checkpoint must never jump past an event that becomes visible later with a lower position.
//! With a plain sequence this happens: transaction A takes position 7, transaction B takes 8
//! and commits first; a reader sees 8, saves it as its checkpoint, and never looks at 7 when A
//! commits.
//!
//! This store **derives positions from transaction ids and reads only below the oldest
//! transaction still running**, so appends take no store-wide lock:
//!
//! - **Positions.** An append transaction numbers its events from its own id
//!   (`pg_current_xact_id()`): the n-th event of transaction `xid` gets
//!   `base + ((xid - origin) << 20) + n` (`origin` and `base` are fixed by migration 5:
//!   positions of older releases stay as they were, below `base`). So the feed's order is
//!   (transaction id, order within the transaction), and a position is a `u64` that grows
//!   strictly along it. It is **not dense**: consecutive events of two transactions differ
//!   by about 2^20 times the transaction ids between them (ids are shared by the whole
//!   cluster). At most 2^20 - 1 events fit in one transaction; the writer splits groups to
//!   stay below that, and refuses a single append above it.
//! - **The horizon.** `pg_snapshot_xmin(pg_current_snapshot())` is the oldest transaction
//!   id still running when a statement's snapshot is taken: every transaction with a lower id
//!   has ended, and every transaction that ends later has an id at or above it (ids handed
//!   out later are higher still). So the set of committed events with positions below
//!   `base + ((xmin - origin) << 20)` is final: no event can ever appear there again. `read_all`
//!   returns only those, in position order; a reader whose checkpoint is below the horizon
//!   misses nothing. This holds because the order *is* the transaction id; with positions
//!   from a sequence, a transaction could take its id before another yet its positions after,
//!   and the horizon would not protect them.
//! - **Reading your writes.** A read that finds fewer events than asked looks whether events
//!   committed before it wait above the horizon (an older transaction, anywhere in the
//!   cluster, still running) and waits, up to a second, for the horizon to pass them; then an
//!   append that returned before a read began is in the read. `head_position` is the last
//!   position below the horizon, after the same wait, so a projection's lag (`head -
//!   checkpoint`) is 0 exactly when it has read everything `read_all` shows; it is a distance
//!   in positions, not a count of events. A long transaction that wrote anything holds every
//!   reader of every store in the cluster back until it ends (readers of the events already
//!   below the horizon are not held back).
//! - **Exact checks without a global lock.** Each append transaction first takes the
//!   transaction-scoped advisory locks of the streams it appends to (and of its idempotency
//!   keys), all in one statement in key order (`lock_streams`), so two appends never wait for
//!   each other in opposite orders. PostgreSQL makes a committed transaction visible before it
//!   releases its locks, and (READ COMMITTED) gives each later statement a fresh snapshot:
//!   the expected-version and event-id checks see every append of those streams committed
//!   before, and no append of them can slip in between check and insert. Appends to
//!   different streams never wait for each other and commit in parallel, sharing WAL flushes.
//!   A failed append rolls back and leaves a gap, which is fine: positions are not dense
//!   anyway.
//!
//! Every append is still one round trip:
//!
//! - **One call.** The whole transaction is one call of the PL/pgSQL function
//!   `append_events` (created by the migrations), run in autocommit: locks, checks, multi-row
//!   `INSERT ... SELECT ... FROM unnest(...)` per append, snapshot upserts, then the commit.
//! - **Group commit.** Each store handle (each node) has a few writer tasks
//!   (4) sharing one queue; a free writer passes every
//!   append queued to one `append_events` call, so one transaction and one WAL flush serve the
//!   whole group, and the groups of several writers are in flight at once. An append whose expectation fails
//!   inside a group just stores nothing; if the group's transaction fails (bad input
//!   PostgreSQL refuses, a broken connection, a deadlock between view records), each of its
//!   appends is redone alone by its caller.
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
//! append's upserts in one statement and its deletes in another. Two groups that write the
//! same two view records in opposite orders can deadlock; PostgreSQL then fails one of them
//! (after `deadlock_timeout`), and its appends are redone alone.
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
use crate::rows::{join_nanos, to_u64, validate};
use crate::statements::Statements;
use crate::view_records::ViewStatements;
use crate::writer::{Append, Inner, Job, Queue, Reply, WRITERS, write_loop};

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
/// nodes: all correctness comes from the database (per-stream locks, constraints), none from
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
        let jobs: Queue = Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..WRITERS {
            runtime.spawn(write_loop(inner.clone(), jobs.clone()));
        }
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
                self.inner.read_all(after_position, limit).await
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
                // The last position `read_all` shows: below the read horizon.
                self.inner.head().await
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
            assert_eq!(applied, [1, 2, 3, 4, 5]);
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
            // The old event keeps its position; new ones come after it.
            assert_eq!(stored[0].version, 2);
            assert!(stored[0].position > 1);
            let all = store.read_all(0, 10).await?;
            assert_eq!(
                all.iter().map(|e| e.position).collect::<Vec<_>>(),
                [1, stored[0].position]
            );
            assert_eq!(store.head_position().await?, stored[0].position);
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
