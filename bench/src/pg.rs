//! PostgreSQL plumbing: a fresh schema per run for each side, on the same server, dropped
//! afterwards.

use std::str::FromStr;

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Connections each side's pool may open (Factum's store opens 16 by URL; the peer gets the
/// same, rather than its helper's 10).
pub const POOL_SIZE: u32 = 16;

/// A small pool for creating and dropping schemas.
pub async fn admin(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))
}

/// A schema name that is new for this process: `bench_<side>_<pid>_<n>`.
pub fn schema_name(side: &str, n: usize) -> String {
    format!("bench_{side}_{}_{n}", std::process::id())
}

fn checked(name: &str) -> anyhow::Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("bad schema name {name:?}");
    }
    Ok(name)
}

/// Creates the schema (dropping a leftover of the same name first).
pub async fn create_schema(admin: &PgPool, name: &str) -> anyhow::Result<()> {
    let name = checked(name)?;
    // Identifiers cannot be bound parameters; `checked` allows only [a-z0-9_].
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .execute(admin)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(admin)
        .await?;
    Ok(())
}

/// Drops the schema and everything in it.
pub async fn drop_schema(admin: &PgPool, name: &str) -> anyhow::Result<()> {
    let name = checked(name)?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .execute(admin)
        .await?;
    Ok(())
}

/// A pool whose connections see `schema` first, with `synchronous_commit = on` (as Factum's
/// store sets it), for the peer.
pub async fn peer_pool(url: &str, schema: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.options([
        ("search_path", checked(schema)?),
        ("synchronous_commit", "on"),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await?)
}

/// The peer's tables, as in postgres-es 0.5's `db/init.sql`, in the pool's schema.
pub async fn create_peer_tables(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE events (
            aggregate_type text NOT NULL,
            aggregate_id text NOT NULL,
            sequence bigint CHECK (sequence >= 0) NOT NULL,
            event_type text NOT NULL,
            event_version text NOT NULL,
            payload json NOT NULL,
            metadata json NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE TABLE snapshots (
            aggregate_type text NOT NULL,
            aggregate_id text NOT NULL,
            last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
            current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
            payload json NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(checked(&schema_name("peer", 3)).is_ok());
        assert!(checked("x; DROP TABLE y").is_err());
        assert!(checked("").is_err());
    }
}
