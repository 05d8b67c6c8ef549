//! Schema names and the embedded, versioned migrations run when a store opens.
//!
//! Migrations are applied in one transaction that first takes a transaction-scoped advisory
//! lock keyed by the schema name (`pg_advisory_xact_lock`): when many nodes start at once,
//! one applies what is missing and the others wait, then find it applied and do nothing.
//! Each applied migration is recorded in `<schema>.factum_migrations`.

use sqlx::PgPool;

use crate::error::{Error, Result};

/// One schema change, applied once per schema. `{schema}` in the SQL stands for the quoted,
/// validated schema name.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// The migrations, in version order. Never edit a released one: append a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events, positions and snapshots",
    sql: r#"
CREATE TABLE {schema}.events (
    position        bigint      NOT NULL PRIMARY KEY CHECK (position > 0),
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  bigint      NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- timestamptz keeps microseconds; the nanoseconds below them, so timestamps round-trip.
    recorded_at_ns  smallint    NOT NULL DEFAULT 0 CHECK (recorded_at_ns BETWEEN 0 AND 999),
    CONSTRAINT events_stream_version_key UNIQUE (aggregate_type, aggregate_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

-- The last assigned position. Appends lock this single row until they commit: see the
-- `store` module of factum-postgres for why.
CREATE TABLE {schema}.event_position (
    id              boolean     NOT NULL PRIMARY KEY DEFAULT true CHECK (id),
    last_position   bigint      NOT NULL CHECK (last_position >= 0)
);
INSERT INTO {schema}.event_position (id, last_position) VALUES (true, 0);

CREATE TABLE {schema}.snapshots (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 0),
    state           jsonb       NOT NULL,
    taken_at        timestamptz NOT NULL,
    taken_at_ns     smallint    NOT NULL DEFAULT 0 CHECK (taken_at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
"#,
}];

/// The schema tables go into when none is named.
pub const DEFAULT_SCHEMA: &str = "factum";

/// Checks that `schema` is a plain lower-case identifier, `[a-z_][a-z0-9_]{0,62}`, and not
/// one of the `pg_` names PostgreSQL reserves. It is the only text ever spliced into SQL.
pub fn validate_schema_name(schema: &str) -> Result<()> {
    let bytes = schema.as_bytes();
    let valid = matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !schema.starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName(schema.to_owned()))
    }
}

/// The schema name as a quoted identifier. Quoting keeps reserved words (`user`, `order`)
/// usable; validation already excludes quotes, so nothing can break out.
pub(crate) fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// The newest migration this release knows.
fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates the schema if needed and applies the missing migrations, safely against other
/// nodes doing the same at the same moment.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<()> {
    validate_schema_name(schema)?;
    let q = quoted(schema);
    let mut tx = pool.begin().await?;
    // Held until commit; concurrent openers of the same schema queue here.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("factum-postgres migrations of schema {schema}"))
        .execute(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        sqlx::raw_sql(&format!("CREATE SCHEMA {q}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS {q}.factum_migrations (
            version    integer     NOT NULL PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )"
    ))
    .execute(&mut *tx)
    .await?;
    let applied: Option<i32> =
        sqlx::query_scalar(&format!("SELECT max(version) FROM {q}.factum_migrations"))
            .fetch_one(&mut *tx)
            .await?;
    let applied = applied.unwrap_or(0);
    if applied > latest() {
        return Err(Error::SchemaTooNew {
            schema: schema.to_owned(),
            found: applied,
            known: latest(),
        });
    }
    let record = format!("INSERT INTO {q}.factum_migrations (version, name) VALUES ($1, $2)");
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let failed = |source| Error::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        sqlx::raw_sql(&migration.sql.replace("{schema}", &q))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(&record)
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tracing::info!(schema, version = migration.version, name = migration.name, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_accepted() {
        for name in ["factum", "_x", "a", "bank_events_2", "user", &"a".repeat(63)] {
            assert!(validate_schema_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn anything_else_is_rejected() {
        for name in [
            "",
            "1abc",
            "Factum",
            "bank-events",
            "a b",
            "x\"; DROP TABLE t; --",
            "sch\u{e9}ma",
            "pg_catalog",
            "pg_x",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_schema_name(name), Err(Error::InvalidSchemaName(ref n)) if n == name),
                "{name:?}"
            );
        }
    }

    #[test]
    fn migrations_are_in_strictly_increasing_order() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
    }
}
