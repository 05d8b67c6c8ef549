//! Schema names and the embedded, versioned migrations run when a store opens.
//!
//! Migrations are applied in one transaction that first takes a transaction-scoped advisory
//! lock keyed by the schema name (`pg_advisory_xact_lock`): when many nodes start at once,
//! one applies what is missing and the others wait, then find it applied and do nothing.
//! Each applied migration is recorded in `<schema>.factum_migrations`.

use sqlx::{Executor, PgConnection, PgPool};

use crate::append_sql::{
    append_declare, append_insert_events, append_loop_head, append_params, append_snapshot,
    append_tail, append_view_changes, plpgsql_head, returns_with_metadata, view_params,
};
use crate::error::{Error, Result};
use crate::sql::trusted;

/// One schema change, applied once per schema. `{schema}` in the SQL stands for the quoted,
/// validated schema name.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// The migrations, in version order. Never edit a released one: append a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, positions and snapshots",
        sql: concat!(
            r#"
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

-- Appends a group of appends in the caller's transaction and returns the stored events of
-- those whose expectation held, by request index (1-based). Why the lock comes first and why
-- positions assigned under it never let a reader skip an event: the `store` module docs.
-- Generic plans: its statements are fixed index lookups, planning them per call costs more
-- than running them.
CREATE FUNCTION {schema}.append_events(
"#,
            append_params!(),
            r#"    p_recorded_at_ns smallint[]
) RETURNS TABLE (request integer, event_position bigint, event_version bigint, event_payload text)
"#,
            plpgsql_head!(),
            append_declare!(),
            r#"BEGIN
"#,
            append_loop_head!(),
            append_insert_events!(),
            r#"            RETURNING v_request, e.position, e.version, e.payload::text;
"#,
            append_snapshot!(),
            r#"        END IF;
        v_first := v_until + 1;
    END LOOP;
"#,
            append_tail!(),
        ),
    },
    Migration {
        version: 2,
        name: "views, projection checkpoints, inline view changes in appends",
        sql: concat!(
            r#"
-- View records. Ids and types compare bytewise (COLLATE "C"), as the core's reference query
-- semantics do, whatever the database's collation.
CREATE TABLE {schema}.views (
    view_type       text COLLATE "C"    NOT NULL,
    view_id         text COLLATE "C"    NOT NULL,
    aggregate_id    text COLLATE "C"    NOT NULL,
    version         bigint              NOT NULL CHECK (version >= 0),
    data            jsonb               NOT NULL,
    PRIMARY KEY (view_type, view_id)
);
-- The children of an aggregate, already in view id order.
CREATE INDEX views_aggregate_idx ON {schema}.views (view_type, aggregate_id, view_id);

CREATE TABLE {schema}.projection_checkpoints (
    projection      text COLLATE "C"    NOT NULL PRIMARY KEY,
    position        bigint              NOT NULL CHECK (position >= 0),
    generation      bigint              NOT NULL DEFAULT 0 CHECK (generation >= 0)
);

-- The append function gains inline view changes (written with an append's events, only if
-- they are stored) and returns the stored metadata. The old signature is dropped rather than
-- kept beside it: a node of an older release still running against this schema fails loudly
-- instead of appending events without the view changes that belong to them.
DROP FUNCTION {schema}.append_events(text[], text[], bigint[], bigint[], integer[], bigint[],
    text[], timestamptz[], smallint[], uuid[], text[], bigint[], text[], text[], timestamptz[],
    smallint[]);

-- As migration 1's version, plus: per request, `p_view_counts` changes in the flat
-- `p_view_*` arrays, each a delete or an upsert, at most one per (view type, view id) within
-- a request (the caller keeps the last change of each record).
CREATE FUNCTION {schema}.append_events(
"#,
            append_params!(),
            r#"    p_recorded_at_ns smallint[],
"#,
            view_params!(),
            r#"    p_view_data text[]
"#,
            returns_with_metadata!(),
            plpgsql_head!(),
            append_declare!(),
            r#"    v_view_first integer := 1;
    v_view_count integer;
    v_view_until integer;
BEGIN
"#,
            append_loop_head!(),
            r#"        v_view_count := coalesce(p_view_counts[v_request], 0);
        v_view_until := v_view_first + v_view_count - 1;
"#,
            append_insert_events!(),
            r#"            RETURNING v_request, e.position, e.version, e.payload::text, e.metadata::text;
"#,
            append_snapshot!(),
            append_view_changes!(),
            append_tail!(),
        ),
    },
    Migration {
        version: 3,
        name: "parked events",
        sql: r#"
-- Events a projection could not apply, written with the checkpoint that moves past them; a
-- rebuild of the projection deletes its rows.
CREATE TABLE {schema}.parked_events (
    projection      text COLLATE "C"    NOT NULL,
    position        bigint              NOT NULL CHECK (position >= 1),
    event_id        uuid                NOT NULL,
    aggregate_type  text                NOT NULL,
    aggregate_id    text                NOT NULL,
    version         bigint              NOT NULL,
    event_type      text                NOT NULL,
    error           text                NOT NULL,
    attempts        integer             NOT NULL,
    parked_at       timestamptz         NOT NULL,
    PRIMARY KEY (projection, position)
);
"#,
    },
    Migration {
        version: 4,
        name: "idempotency records, written with an append's events",
        sql: crate::idempotency::MIGRATION_SQL,
    },
    Migration {
        version: 5,
        name: "positions from transaction ids: appends commit in parallel",
        sql: crate::feed_sql::MIGRATION_SQL,
    },
];

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
///
/// Multi-statement SQL goes through `Executor::execute` rather than `RawSql::execute`: the
/// latter is an `async fn` generic over the executor, whose future rustc cannot prove `Send`
/// for `&mut PgConnection`, and `connect` must be spawnable.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<()> {
    migrate_to(pool, schema, latest()).await
}

/// [`migrate`], up to migration `target` only (tests build older schemas with it).
pub(crate) async fn migrate_to(pool: &PgPool, schema: &str, target: i32) -> Result<()> {
    validate_schema_name(schema)?;
    let q = quoted(schema);
    // Statements are owned locals rather than temporaries: a temporary borrowed across an
    // await makes the future not provably `Send`, and callers spawn `connect`.
    let lock_key = format!("factum-postgres migrations of schema {schema}");
    let create_schema = format!("CREATE SCHEMA {q}");
    let create_table = format!(
        "CREATE TABLE IF NOT EXISTS {q}.factum_migrations (
            version    integer     NOT NULL PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )"
    );
    let applied_sql = format!("SELECT max(version) FROM {q}.factum_migrations");
    let record = trusted(format!(
        "INSERT INTO {q}.factum_migrations (version, name) VALUES ($1, $2)"
    ));

    let mut tx = pool.begin().await?;
    let conn: &mut PgConnection = &mut tx;
    // Held until commit; concurrent openers of the same schema queue here.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&lock_key)
        .execute(&mut *conn)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        conn.execute(sqlx::raw_sql(trusted(create_schema))).await?;
    }
    conn.execute(sqlx::raw_sql(trusted(create_table))).await?;
    let applied: Option<i32> = sqlx::query_scalar(trusted(applied_sql))
        .fetch_one(&mut *conn)
        .await?;
    let applied = applied.unwrap_or(0);
    if applied > latest() {
        return Err(Error::SchemaTooNew {
            schema: schema.to_owned(),
            found: applied,
            known: latest(),
        });
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > applied && m.version <= target)
    {
        let failed = |source| Error::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        // The migrations' own constant text, with the quoted schema for `{schema}`.
        let sql = trusted(migration.sql.replace("{schema}", &q));
        conn.execute(sqlx::raw_sql(sql)).await.map_err(failed)?;
        sqlx::query(record.clone())
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        tracing::info!(
            schema,
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_accepted() {
        for name in [
            "factum",
            "_x",
            "a",
            "bank_events_2",
            "user",
            &"a".repeat(63),
        ] {
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
