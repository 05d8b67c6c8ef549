//! One runner per subscription across nodes: [`Leased`] runs a subscription only on the node
//! that holds its lease, a session advisory lock (`pg_try_advisory_lock`) taken on a
//! connection of its own and held as long as that connection lives.
//!
//! When the holder dies, PostgreSQL ends its session and releases the lock: at once when the
//! process is killed (its sockets close with it), within about four seconds when its machine
//! or network goes (the lease connection asks the server for TCP keepalives every second
//! after two idle ones, and gives up after two unanswered). Another node's next attempt (at
//! each catch-up, so at least every poll interval, and at most every [`RECHECK`]) takes it
//! and goes on from the stored checkpoint. A holder whose connection fails or stops answering
//! within [`CHECK_TIMEOUT`] stops running at its next catch-up. Between the two, a batch may
//! overlap another node's: the checkpoint's compare-and-set refuses one of them, and delivery
//! stays at least once.
//!
//! Replaying parked events ([`RunningSubscription::replay_parked`]) works on any node: it
//! takes a second lock of the subscription's, waiting for it, so that two nodes asked at once
//! replay one after the other and each parked event is handed over once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use factum_core::{
    LeaseStatus, ParkedEvent, ProjectionLag, ReplayReport, RunningSubscription, SubscriptionKind,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::Mutex;

/// How long a lease connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the lease's database may take to answer a check before the connection counts as
/// lost (and the lease with it).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The most often a node asks the database about a lease: between two asks, the last answer
/// stands (a node woken by every commit does not query on every commit).
pub const RECHECK: Duration = Duration::from_millis(200);

/// A subscription that runs only while this node holds its lease. See the module docs.
pub struct Leased {
    inner: Arc<dyn RunningSubscription>,
    url: String,
    node: Option<String>,
    key: String,
    session: Mutex<Session>,
}

/// The lease's connection, whether it holds the lock, and when that was last asked.
#[derive(Default)]
struct Session {
    conn: Option<PgConnection>,
    held: bool,
    checked: Option<Instant>,
}

impl Session {
    /// What a query on the lease connection answered within [`CHECK_TIMEOUT`]; `None`, with
    /// the connection dropped (and the lease counted lost), when it failed or did not answer.
    fn answered<T>(
        &mut self,
        key: &str,
        answer: Result<sqlx::Result<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        let error = match answer {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within the check timeout".to_owned(),
        };
        tracing::warn!(lease = %key, %error, held = self.held, "lease connection lost");
        self.conn = None;
        self.held = false;
        None
    }
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("subscription", &self.inner.name())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Leased {
    /// Runs `inner` under a lease named after `schema` and its name, taken on connections
    /// to `url`.
    pub fn new(inner: Arc<dyn RunningSubscription>, url: &str, schema: &str) -> Self {
        Self {
            key: format!("factum.lease.{schema}.{}", inner.name()),
            inner,
            url: url.to_owned(),
            node: None,
            session: Mutex::new(Session::default()),
        }
    }

    /// Names this node on its lease connections (their `application_name`, at most 63
    /// bytes), so that every node can tell which one holds the lease
    /// ([`RunningSubscription::lease`]).
    #[must_use]
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        let mut node: String = node.into();
        while node.len() > 63 {
            node.pop();
        }
        self.node = Some(node);
        self
    }

    /// Whether this node holds the lease now, taking it if it is free. A failure to reach
    /// the database counts as not holding it.
    pub async fn holds(&self) -> bool {
        let mut session = self.session.lock().await;
        if session
            .checked
            .is_some_and(|at| at.elapsed() < RECHECK && session.conn.is_some())
        {
            return session.held;
        }
        let was_held = session.held;
        let held = self.check(&mut session).await;
        session.held = held;
        session.checked = Some(Instant::now());
        if held && !was_held {
            tracing::info!(lease = %self.key, "this node took the lease and runs the subscription");
        }
        held
    }

    async fn check(&self, session: &mut Session) -> bool {
        if session.conn.is_none() {
            session.held = false;
            match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok(conn)) => session.conn = Some(conn),
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.key, %error, "cannot open a lease connection");
                    return false;
                }
                Err(_) => return false,
            }
        }
        let held = session.held;
        let Some(conn) = session.conn.as_mut() else {
            return false;
        };
        let answer = tokio::time::timeout(CHECK_TIMEOUT, async {
            if held {
                // Still the same session? Then the lock is still ours.
                sqlx::query("SELECT 1")
                    .execute(&mut *conn)
                    .await
                    .map(|_| true)
            } else {
                try_lock(conn, &self.key).await
            }
        })
        .await;
        session.answered(&self.key, answer).unwrap_or(false)
    }

    /// A connection of the lease's: this node's name, and keepalives that make the server
    /// end the session (and release the lock) soon after this machine stops answering.
    async fn connect(&self) -> sqlx::Result<PgConnection> {
        let mut options = PgConnectOptions::from_str(&self.url)?.options([
            ("tcp_keepalives_idle", "2"),
            ("tcp_keepalives_interval", "1"),
            ("tcp_keepalives_count", "2"),
        ]);
        if let Some(node) = &self.node {
            options = options.application_name(node);
        }
        options.connect().await
    }

    /// Gives the lease up (closing its connection), for a clean stop.
    pub async fn release(&self) {
        let mut session = self.session.lock().await;
        session.held = false;
        if let Some(conn) = session.conn.take() {
            let _ = conn.close().await;
        }
    }
}

async fn try_lock(conn: &mut PgConnection, key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(key)
        .fetch_one(conn)
        .await
}

/// The `application_name` (or the process id) of the session that holds the lock `key`.
async fn holder(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<String>> {
    // A bigint advisory lock shows in pg_locks as its high and low 32 bits.
    sqlx::query_scalar(
        "SELECT COALESCE(NULLIF(a.application_name, ''), 'pid ' || a.pid) \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid::bigint = (hashtextextended($1, 0) >> 32) & 4294967295 \
         AND l.objid::bigint = hashtextextended($1, 0) & 4294967295",
    )
    .bind(key)
    .fetch_optional(conn)
    .await
}

#[async_trait]
impl RunningSubscription for Leased {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn lag(&self) -> factum_core::Result<ProjectionLag> {
        self.inner.lag().await
    }

    /// Catches up when this node holds the lease; otherwise reads nothing.
    async fn catch_up(&self) -> factum_core::Result<u64> {
        if self.holds().await {
            self.inner.catch_up().await
        } else {
            Ok(0)
        }
    }

    async fn parked(&self) -> factum_core::Result<Vec<ParkedEvent>> {
        self.inner.parked().await
    }

    async fn rebuild(
        &self,
        progress: &mut (dyn FnMut(ProjectionLag) + Send),
    ) -> factum_core::Result<u64> {
        self.inner.rebuild(progress).await
    }

    async fn rebuild_unfinished(&self) -> factum_core::Result<bool> {
        self.inner.rebuild_unfinished().await
    }

    async fn is_empty(&self) -> factum_core::Result<bool> {
        self.inner.is_empty().await
    }

    fn kind(&self) -> SubscriptionKind {
        self.inner.kind()
    }

    fn retries(&self) -> u64 {
        self.inner.retries()
    }

    fn last_error(&self) -> Option<String> {
        self.inner.last_error()
    }

    /// Whether this node holds the lease (as of its last check) and who does, read from
    /// `pg_locks` on the lease connection.
    async fn lease(&self) -> Option<LeaseStatus> {
        let mut session = self.session.lock().await;
        let held_here = session.held && session.conn.is_some();
        let Some(conn) = session.conn.as_mut() else {
            return Some(LeaseStatus {
                held_here,
                holder: None,
            });
        };
        let answer = tokio::time::timeout(CHECK_TIMEOUT, holder(conn, &self.key)).await;
        let holder = session.answered(&self.key, answer).flatten();
        Some(LeaseStatus { held_here, holder })
    }

    /// Replays under the subscription's replay lock, on a connection of its own (released
    /// with it, also when this process dies meanwhile), whichever node holds the lease.
    async fn replay_parked(&self) -> factum_core::Result<ReplayReport> {
        let unavailable = |e: &dyn std::fmt::Display| {
            factum_core::Error::Unavailable(format!("the replay lock of {}: {e}", self.name()))
        };
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|e| unavailable(&e))?
            .map_err(|e| unavailable(&e))?;
        // How long a replay waits for another node's replay of the same subscription.
        sqlx::query("SET lock_timeout = '60s'")
            .execute(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(format!("{}.replay", self.key))
            .execute(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let report = self.inner.replay_parked().await;
        let _ = conn.close().await;
        report
    }
}
