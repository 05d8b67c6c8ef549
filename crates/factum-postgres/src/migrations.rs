//! Schema names and the embedded, versioned migrations run when a store opens.
//!
//! Migrations are applied in one transaction that first takes a transaction-scoped advisory
//! lock keyed by the schema name (`pg_advisory_xact_lock`): when many nodes start at once,
//! one applies what is missing and the others wait, then find it applied and do nothing.
//! Each applied migration is recorded in `<schema>.factum_migrations`.

use sqlx::{Executor, PgConnection, PgPool};

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

-- Appends a group of appends in the caller's transaction and returns the stored events of
-- those whose expectation held, by request index (1-based). Why the lock comes first and why
-- positions assigned under it never let a reader skip an event: the `store` module docs.
-- Generic plans: its statements are fixed index lookups, planning them per call costs more
-- than running them.
CREATE FUNCTION {schema}.append_events(
    p_aggregate_types text[],
    p_aggregate_ids text[],
    p_min_versions bigint[],
    p_max_versions bigint[],
    p_event_counts integer[],
    p_snapshot_versions bigint[],
    p_snapshot_states text[],
    p_snapshot_taken_at timestamptz[],
    p_snapshot_taken_at_ns smallint[],
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions bigint[],
    p_payloads text[],
    p_metadata text[],
    p_recorded_at timestamptz[],
    p_recorded_at_ns smallint[]
) RETURNS TABLE (request integer, event_position bigint, event_version bigint, event_payload text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_start bigint;
    v_last bigint;
    v_current bigint;
    v_first integer := 1;
    v_count integer;
    v_until integer;
    v_ids uuid[];
    v_new_ids boolean;
BEGIN
    -- The lock comes first: every statement below runs on a fresh snapshot that shows all
    -- appends committed before it, so version and event-id checks are exact.
    SELECT p.last_position INTO v_start FROM {schema}.event_position AS p FOR UPDATE;
    v_last := v_start;
    FOR v_request IN 1 .. coalesce(array_length(p_aggregate_types, 1), 0) LOOP
        v_count := p_event_counts[v_request];
        v_until := v_first + v_count - 1;
        v_ids := p_event_ids[v_first : v_until];
        -- One statement for all checks: the stream's version, and that the event ids are
        -- new and distinct.
        SELECT (SELECT coalesce(max(e.version), 0) FROM {schema}.events AS e
                WHERE e.aggregate_type = p_aggregate_types[v_request]
                    AND e.aggregate_id = p_aggregate_ids[v_request]),
            NOT EXISTS (SELECT 1 FROM {schema}.events AS e WHERE e.event_id = ANY (v_ids))
                AND (SELECT count(DISTINCT i) FROM unnest(v_ids) AS i) = v_count
        INTO v_current, v_new_ids;
        IF v_new_ids AND v_current BETWEEN p_min_versions[v_request] AND p_max_versions[v_request]
        THEN
            RETURN QUERY
            INSERT INTO {schema}.events AS e (position, aggregate_type, aggregate_id, version,
                event_id, event_type, schema_version, payload, metadata, recorded_at,
                recorded_at_ns)
            SELECT v_last + u.ord, p_aggregate_types[v_request], p_aggregate_ids[v_request],
                v_current + u.ord, u.event_id, u.event_type, u.schema_version,
                u.payload::jsonb, u.metadata::jsonb, u.recorded_at, u.recorded_at_ns
            FROM unnest(v_ids, p_event_types[v_first : v_until],
                    p_schema_versions[v_first : v_until], p_payloads[v_first : v_until],
                    p_metadata[v_first : v_until], p_recorded_at[v_first : v_until],
                    p_recorded_at_ns[v_first : v_until])
                WITH ORDINALITY AS u(event_id, event_type, schema_version, payload, metadata,
                    recorded_at, recorded_at_ns, ord)
            RETURNING v_request, e.position, e.version, e.payload::text;
            v_last := v_last + v_count;
            IF p_snapshot_states[v_request] IS NOT NULL THEN
                INSERT INTO {schema}.snapshots AS s (aggregate_type, aggregate_id, version,
                    state, taken_at, taken_at_ns)
                VALUES (p_aggregate_types[v_request], p_aggregate_ids[v_request],
                    p_snapshot_versions[v_request], p_snapshot_states[v_request]::jsonb,
                    p_snapshot_taken_at[v_request], p_snapshot_taken_at_ns[v_request])
                ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET version = EXCLUDED.version, state = EXCLUDED.state,
                    taken_at = EXCLUDED.taken_at, taken_at_ns = EXCLUDED.taken_at_ns
                WHERE s.version <= EXCLUDED.version;
            END IF;
        END IF;
        v_first := v_until + 1;
    END LOOP;
    IF v_last <> v_start THEN
        UPDATE {schema}.event_position SET last_position = v_last;
    END IF;
END;
$function$;
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
///
/// Multi-statement SQL goes through `Executor::execute` rather than `RawSql::execute`: the
/// latter is an `async fn` generic over the executor, whose future rustc cannot prove `Send`
/// for `&mut PgConnection`, and `connect` must be spawnable.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<()> {
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
    let record = format!("INSERT INTO {q}.factum_migrations (version, name) VALUES ($1, $2)");

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
        conn.execute(sqlx::raw_sql(&create_schema)).await?;
    }
    conn.execute(sqlx::raw_sql(&create_table)).await?;
    let applied: Option<i32> = sqlx::query_scalar(&applied_sql)
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
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let failed = |source| Error::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        let sql = migration.sql.replace("{schema}", &q);
        conn.execute(sqlx::raw_sql(&sql)).await.map_err(failed)?;
        sqlx::query(&record)
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
