//! The schema, as an ordered list of embedded migrations applied when a store opens.
//!
//! Each migration runs once, in its own `BEGIN IMMEDIATE` transaction together with the row
//! that records it in `factum_schema_migrations`, so a crash mid-migration leaves the previous
//! version intact, and two processes opening the same file at once do not both apply it.
//! Never edit a released migration: append a new one (as the view tables were).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Versions start at 1 and increase by one.
    pub(crate) version: u32,
    /// A short name, recorded with the version.
    pub(crate) name: &'static str,
    /// The SQL, run as one batch.
    pub(crate) sql: &'static str,
}

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events and snapshots",
        // `position INTEGER PRIMARY KEY` aliases the rowid without AUTOINCREMENT: a new row gets
        // max(position) + 1, so an append rolled back to its savepoint leaves no gap.
        // `recorded_at` and `taken_at` are RFC 3339 UTC text with nanoseconds: exact round trips,
        // readable in the sqlite3 shell, and ordered as text.
        sql: r#"
        CREATE TABLE events (
            position        INTEGER PRIMARY KEY,
            aggregate_type  TEXT    NOT NULL,
            aggregate_id    TEXT    NOT NULL,
            version         INTEGER NOT NULL CHECK (version >= 1),
            event_id        TEXT    NOT NULL UNIQUE,
            event_type      TEXT    NOT NULL,
            schema_version  INTEGER NOT NULL CHECK (schema_version >= 0),
            payload         TEXT    NOT NULL,
            metadata        TEXT    NOT NULL,
            recorded_at     TEXT    NOT NULL,
            UNIQUE (aggregate_type, aggregate_id, version)
        );
        CREATE TABLE snapshots (
            aggregate_type  TEXT    NOT NULL,
            aggregate_id    TEXT    NOT NULL,
            version         INTEGER NOT NULL CHECK (version >= 0),
            state           TEXT    NOT NULL,
            taken_at        TEXT    NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id)
        ) WITHOUT ROWID;
    "#,
    },
    Migration {
        version: 2,
        name: "views and projection checkpoints",
        // One table for every view type's records, the record's JSON in `data`. The CHECK
        // keeps unparsable text out, so a query's json_extract never fails on a stored row.
        // The aggregate index lists a parent's children in id order without a sort.
        sql: r#"
        CREATE TABLE views (
            view_type     TEXT    NOT NULL,
            view_id       TEXT    NOT NULL,
            aggregate_id  TEXT    NOT NULL,
            version       INTEGER NOT NULL CHECK (version >= 0),
            data          TEXT    NOT NULL CHECK (json_valid(data)),
            PRIMARY KEY (view_type, view_id)
        );
        CREATE INDEX views_by_aggregate ON views (view_type, aggregate_id, view_id);
        CREATE TABLE projection_checkpoints (
            projection  TEXT    NOT NULL PRIMARY KEY,
            position    INTEGER NOT NULL CHECK (position >= 0),
            generation  INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0)
        ) WITHOUT ROWID;
    "#,
    },
    Migration {
        version: 3,
        name: "parked events",
        // Events a projection could not apply, written with the checkpoint that moves past
        // them; a rebuild of the projection deletes its rows.
        sql: r#"
        CREATE TABLE parked_events (
            projection      TEXT    NOT NULL,
            position        INTEGER NOT NULL CHECK (position >= 1),
            event_id        TEXT    NOT NULL,
            aggregate_type  TEXT    NOT NULL,
            aggregate_id    TEXT    NOT NULL,
            version         INTEGER NOT NULL,
            event_type      TEXT    NOT NULL,
            error           TEXT    NOT NULL,
            attempts        INTEGER NOT NULL,
            parked_at       TEXT    NOT NULL,
            PRIMARY KEY (projection, position)
        ) WITHOUT ROWID;
    "#,
    },
    Migration {
        version: 4,
        name: "idempotency records",
        // Written with an append's events, in its savepoint (see the `idempotency` module).
        // Times are RFC 3339 text of fixed width: `expires_at > ?` compares them as text.
        sql: r#"
        CREATE TABLE idempotency (
            scope         TEXT    NOT NULL,
            idem_key      TEXT    NOT NULL,
            request_hash  TEXT    NOT NULL,
            status        INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
            response      TEXT    NOT NULL,
            created_at    TEXT    NOT NULL,
            expires_at    TEXT    NOT NULL,
            PRIMARY KEY (scope, idem_key)
        ) WITHOUT ROWID;
        CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
    "#,
    },
];

/// Brings the database up to the latest version. Returns how many migrations were applied.
pub(crate) fn migrate(conn: &mut Connection) -> Result<usize> {
    apply(conn, MIGRATIONS)
}

fn apply(conn: &mut Connection, migrations: &[Migration]) -> Result<usize> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS factum_schema_migrations (
            version     INTEGER PRIMARY KEY,
            name        TEXT NOT NULL,
            applied_at  TEXT NOT NULL
        )",
    )?;
    let supported = migrations.last().map_or(0, |m| m.version);
    let mut applied = 0;
    for migration in migrations {
        // IMMEDIATE takes the write lock before reading the current version, so a second
        // process opening the file at the same time waits and then sees the migration done.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: u32 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM factum_schema_migrations",
            [],
            |row| row.get(0),
        )?;
        if current > supported {
            return Err(Error::SchemaTooNew {
                found: current,
                supported,
            });
        }
        let done = tx
            .query_row(
                "SELECT 1 FROM factum_schema_migrations WHERE version = ?1",
                [migration.version],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if done {
            continue;
        }
        let failed = |source| Error::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO factum_schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                migration.version,
                migration.name,
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1);
        }
    }

    #[test]
    fn migrating_twice_applies_nothing_the_second_time() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'
                 AND name IN ('events', 'snapshots', 'views', 'projection_checkpoints')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 4);
    }

    #[test]
    fn a_later_migration_applies_on_top_and_a_failing_one_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let next = MIGRATIONS.len() as u32 + 1;
        let mut more = MIGRATIONS.to_vec();
        more.push(Migration {
            version: next,
            name: "a view table",
            sql: "CREATE TABLE view_balances (id TEXT PRIMARY KEY, balance INTEGER NOT NULL);",
        });
        assert_eq!(apply(&mut conn, &more).unwrap(), 1);

        more.push(Migration {
            version: next + 1,
            name: "broken",
            sql: "CREATE TABLE half_done (x INTEGER); THIS IS NOT SQL;",
        });
        let error = apply(&mut conn, &more).unwrap_err();
        assert!(matches!(error, Error::Migration { version, .. } if version == next + 1));
        let half_done: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(half_done, 0, "a failed migration is rolled back whole");
        let version: u32 = conn
            .query_row(
                "SELECT MAX(version) FROM factum_schema_migrations",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(version, next);
    }

    #[test]
    fn a_database_of_the_first_release_gains_the_view_tables_and_keeps_its_events() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut conn, &MIGRATIONS[..1]).unwrap(), 1);
        conn.execute(
            "INSERT INTO events (aggregate_type, aggregate_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at)
             VALUES ('t', 'a', 1, 'id-1', 'E', 1, '{}', '{}', '2024-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() - 1);
        let (events, views, checkpoints): (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM views),
                        (SELECT COUNT(*) FROM projection_checkpoints)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!((events, views, checkpoints), (1, 0, 0));
    }

    #[test]
    fn a_database_from_a_newer_release_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO factum_schema_migrations VALUES (99, 'future', 'x')",
            [],
        )
        .unwrap();
        let error = migrate(&mut conn).unwrap_err();
        assert!(matches!(error, Error::SchemaTooNew { found: 99, .. }));
    }
}
