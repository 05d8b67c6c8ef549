//! The crate's error type and its mapping onto the core error.

use sqlx::error::ErrorKind;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong opening or using the PostgreSQL event store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The schema name is not a plain lower-case identifier (`[a-z_][a-z0-9_]{0,62}`, not
    /// starting with `pg_`). Schema names are the only text ever spliced into SQL, so anything
    /// else is refused before a connection is made.
    #[error(
        "invalid schema name {0:?}: expected 1 to 63 characters of [a-z0-9_], not starting with a digit or \"pg_\""
    )]
    InvalidSchemaName(String),
    /// The database or the connection failed (connecting, a query, the pool).
    #[error("PostgreSQL error: {0}")]
    Database(#[from] sqlx::Error),
    /// An embedded migration failed; nothing of it was applied.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version.
        version: i32,
        /// The migration's name.
        name: &'static str,
        /// The underlying failure.
        #[source]
        source: sqlx::Error,
    },
    /// The schema was migrated by a newer release than this one; this release refuses to
    /// write to tables whose rules it does not know.
    #[error("schema {schema:?} is at migration {found}, newer than this release's {known}")]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The newest migration recorded in the schema.
        found: i32,
        /// The newest migration this release knows.
        known: i32,
    },
    /// The store was opened outside a tokio runtime; it needs one to run its writer task.
    #[error("the PostgreSQL store must be opened inside a tokio runtime")]
    NoRuntime,
    /// A stored row holds a value this release cannot read (a negative version, metadata that
    /// is not a metadata object, ...).
    #[error("unreadable stored row: {0}")]
    CorruptRow(String),
}

impl From<Error> for factum_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidSchemaName(_) => Self::Validation(error.to_string()),
            Error::Database(source) => database_error(source),
            other => Self::store(other),
        }
    }
}

/// Maps a driver error onto the core error by its kind, never by its message: an unreachable
/// or closed pool (or a server shutting down or starting up) is `Unavailable`, a full disk (SQLSTATE 53100) is `StoreFull`, a value PostgreSQL refuses (SQLSTATE class 22, data
/// exception: a NUL byte in a text, an out-of-range timestamp) is `Validation`, the rest is a
/// `Store` failure. Conflicts are recognized where the append knows its context.
pub(crate) fn database_error(error: sqlx::Error) -> factum_core::Error {
    match &error {
        sqlx::Error::PoolTimedOut => {
            factum_core::Error::Unavailable("no PostgreSQL connection available in time".into())
        }
        sqlx::Error::PoolClosed => {
            factum_core::Error::Unavailable("the PostgreSQL pool is closed".into())
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            factum_core::Error::Unavailable("the PostgreSQL server cannot be reached".into())
        }
        sqlx::Error::Database(db) if is_server_going_away(db.as_ref()) => {
            factum_core::Error::Unavailable(format!("PostgreSQL: {}", db.message()))
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some(DISK_FULL) => {
            factum_core::Error::StoreFull(format!("PostgreSQL: {}", db.message()))
        }
        sqlx::Error::Database(db) if is_data_exception(db.as_ref()) => {
            factum_core::Error::Validation(format!("PostgreSQL refused a value: {}", db.message()))
        }
        _ => factum_core::Error::store(Error::Database(error)),
    }
}

/// SQLSTATE `disk_full`: the server could not extend a file (or its write-ahead log).
const DISK_FULL: &str = "53100";

/// The server is shutting down, restarting or starting up, or dropped the connection:
/// SQLSTATE class 08 (connection exception) and 57P01-57P03 (admin shutdown, crash
/// shutdown, cannot connect now). A retry after a while may succeed.
fn is_server_going_away(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.code().is_some_and(|code| {
        code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
    })
}

/// SQLSTATE class 22 ("data exception").
fn is_data_exception(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.code().is_some_and(|code| code.starts_with("22"))
}

/// Which unique constraint of the events table an insert violated, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UniqueViolation {
    /// `UNIQUE (aggregate_type, aggregate_id, version)`: another append took the version.
    StreamVersion,
    /// `UNIQUE (event_id)`: an event id is stored already (or repeated in the batch).
    EventId,
    /// Some other unique constraint.
    Other,
}

/// Constraint names, fixed by the migrations so errors can be told apart by kind.
pub(crate) const STREAM_VERSION_CONSTRAINT: &str = "events_stream_version_key";
pub(crate) const EVENT_ID_CONSTRAINT: &str = "events_event_id_key";

/// Classifies a unique violation (SQLSTATE 23505) by the constraint it names.
pub(crate) fn unique_violation(error: &sqlx::Error) -> Option<UniqueViolation> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if db.kind() != ErrorKind::UniqueViolation {
        return None;
    }
    Some(match db.constraint() {
        Some(STREAM_VERSION_CONSTRAINT) => UniqueViolation::StreamVersion,
        Some(EVENT_ID_CONSTRAINT) => UniqueViolation::EventId,
        _ => UniqueViolation::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_name_errors_are_validation_errors() {
        let core: factum_core::Error = Error::InvalidSchemaName("Bad-Name".into()).into();
        assert!(matches!(core, factum_core::Error::Validation(ref m) if m.contains("Bad-Name")));
    }

    #[test]
    fn pool_failures_are_unavailable() {
        let core: factum_core::Error = Error::Database(sqlx::Error::PoolTimedOut).into();
        assert!(matches!(core, factum_core::Error::Unavailable(_)));
        assert_eq!(core.status(), 503);
    }

    #[test]
    fn other_failures_are_store_errors_hidden_from_clients() {
        let core: factum_core::Error = Error::CorruptRow("version -1".into()).into();
        assert!(matches!(core, factum_core::Error::Store(_)));
        assert_eq!(core.to_cqrs_error().message, "internal error");
    }

    #[test]
    fn non_database_errors_are_not_unique_violations() {
        assert_eq!(unique_violation(&sqlx::Error::RowNotFound), None);
    }
}
