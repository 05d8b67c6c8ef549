//! Wake-ups across nodes: every commit of events, on any node, sends a `NOTIFY` that wakes
//! the subscriptions of every node listening, so they follow commits of other nodes at once
//! instead of at their next poll (the poll stays, as the fallback for a lost connection).
//!
//! The notification comes from a statement-level trigger on `events`
//! ([`install_commit_trigger`], idempotent, run by [`CommitListener::start`]): PostgreSQL
//! delivers a trigger's notification only when its transaction commits, and delivers one per
//! transaction and channel however many appends a group commit held, so the append path
//! itself sends nothing and an aborted append wakes no one. The channel is the schema's own
//! ([`channel`]), so schemas sharing a database do not wake each other.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{Executor, PgPool};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::migrations::validate_schema_name;
use crate::sql::trusted;
use crate::store::PostgresEventStore;

/// The longest channel name PostgreSQL keeps (`NAMEDATALEN - 1`).
const MAX_CHANNEL_LEN: usize = 63;

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The notification channel of `schema`: `<schema>.events`, cut to PostgreSQL's 63 bytes
/// (schema names are ASCII).
pub fn channel(schema: &str) -> String {
    let mut channel = format!("{schema}.events");
    channel.truncate(MAX_CHANNEL_LEN);
    channel
}

/// Creates (or replaces) the trigger that notifies [`channel`] on each commit of events in
/// `schema`. Nodes starting at once are ordered by the same advisory lock as migrations.
pub async fn install_commit_trigger(pool: &PgPool, schema: &str) -> Result<()> {
    validate_schema_name(schema)?;
    let channel = channel(schema);
    // The schema name is validated (`[a-z_][a-z0-9_]*`), so it and the channel built from it
    // need no quoting inside the literal below.
    let sql = format!(
        "SELECT pg_advisory_xact_lock(hashtext('factum.notify.{schema}'));
         CREATE OR REPLACE FUNCTION \"{schema}\".factum_notify_commit() RETURNS trigger
             LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$;
         CREATE OR REPLACE TRIGGER factum_notify_commit
             AFTER INSERT ON \"{schema}\".events
             FOR EACH STATEMENT EXECUTE FUNCTION \"{schema}\".factum_notify_commit();"
    );
    let mut tx = pool.begin().await?;
    tx.execute(sqlx::raw_sql(trusted(sql))).await?;
    tx.commit().await?;
    Ok(())
}

/// A task that listens on a store's channel and calls its `wake` on each notification (and
/// once after each reconnection, for commits it may have missed meanwhile).
#[derive(Debug)]
pub struct CommitListener {
    task: JoinHandle<()>,
}

impl CommitListener {
    /// Installs the trigger, starts listening, and returns once the listener is connected
    /// (so a commit after this returns wakes it).
    pub async fn start(
        store: &PostgresEventStore,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self> {
        Self::on_pool(store.pool().clone(), store.schema(), wake).await
    }

    /// As [`CommitListener::start`], on a small pool of its own to `url`, for a store whose
    /// schema `schema` exists already (a service that holds its store as `dyn EventStore`).
    pub async fn connect(
        url: &str,
        schema: &str,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await?;
        Self::on_pool(pool, schema, wake).await
    }

    async fn on_pool(
        pool: PgPool,
        schema: &str,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self> {
        install_commit_trigger(&pool, schema).await?;
        let channel = channel(schema);
        let listener = listen(&pool, &channel).await?;
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
        let task = tokio::spawn(follow(pool, channel, listener, wake));
        Ok(Self { task })
    }

    /// Stops listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for CommitListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await.map_err(Error::from)?;
    Ok(listener)
}

async fn follow(
    pool: PgPool,
    channel: String,
    mut listener: PgListener,
    wake: Arc<dyn Fn() + Send + Sync>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => wake(),
            // The connection was lost and sqlx reconnected: notifications sent meanwhile
            // are gone, so wake once to catch up.
            Ok(None) => wake(),
            Err(error) => {
                tracing::warn!(%error, %channel, "commit listener lost its connection; reconnecting");
                tokio::time::sleep(RECONNECT_DELAY).await;
                match listen(&pool, &channel).await {
                    Ok(fresh) => {
                        listener = fresh;
                        wake();
                    }
                    Err(error) => {
                        tracing::warn!(%error, %channel, "commit listener cannot reconnect yet");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_per_schema_and_fit_postgres() {
        assert_eq!(channel("factum"), "factum.events");
        let long = "s".repeat(63);
        assert_eq!(channel(&long).len(), MAX_CHANNEL_LEN);
    }
}
