//! One runner per subscription across nodes: [`Leased`] runs a subscription only on the node
//! that holds its lease, a session advisory lock (`pg_try_advisory_lock`) taken on a
//! connection of its own and held as long as that connection lives.
//!
//! When the holder dies (killed, its machine gone), PostgreSQL ends its session and releases
//! the lock; another node's next attempt (each catch-up, so at least every poll interval)
//! takes it and goes on from the stored checkpoint. A holder that loses its connection stops
//! running at its next catch-up. Between the two, a batch may overlap another node's: the
//! checkpoint's compare-and-set refuses one of them, and delivery stays at least once.

use std::time::Duration;

use async_trait::async_trait;
use factum_core::{
    ParkedEvent, ProjectionLag, ReplayReport, RunningSubscription, SubscriptionKind,
};
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use tokio::sync::Mutex;

/// How long a lease connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A subscription that runs only while this node holds its lease. See the module docs.
pub struct Leased {
    inner: Arc<dyn RunningSubscription>,
    url: String,
    key: String,
    /// The lease's connection, and whether it holds the lock.
    session: Mutex<Option<(PgConnection, bool)>>,
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
            session: Mutex::new(None),
        }
    }

    /// Whether this node holds the lease now, taking it if it is free. A failure to reach
    /// the database counts as not holding it.
    pub async fn holds(&self) -> bool {
        let mut session = self.session.lock().await;
        if let Some((conn, held)) = session.as_mut() {
            let answer = if *held {
                // Still the same session? Then the lock is still ours.
                sqlx::query("SELECT 1")
                    .execute(&mut *conn)
                    .await
                    .map(|_| true)
            } else {
                try_lock(conn, &self.key).await
            };
            match answer {
                Ok(now) => {
                    *held = now;
                    return now;
                }
                Err(error) => {
                    tracing::warn!(lease = %self.key, %error, "lease connection lost");
                    *session = None;
                    return false;
                }
            }
        }
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&self.url)).await;
        let Ok(Ok(mut conn)) = opened else {
            return false;
        };
        let held = try_lock(&mut conn, &self.key).await.unwrap_or(false);
        *session = Some((conn, held));
        held
    }

    /// Gives the lease up (closing its connection), for a clean stop.
    pub async fn release(&self) {
        if let Some((conn, _)) = self.session.lock().await.take() {
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

    async fn replay_parked(&self) -> factum_core::Result<ReplayReport> {
        self.inner.replay_parked().await
    }
}
