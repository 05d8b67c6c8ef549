//! The crate's error type, and how it maps onto the core [`factum_core::Error`].

use std::path::PathBuf;
use std::sync::Arc;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong opening or running a SQLite event store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store URL is not of the form `sqlite://PATH`.
    #[error("invalid SQLite store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The database path cannot hold a store (empty, a folder, `:memory:`, ...).
    #[error("invalid SQLite database path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// Creating the database's folder failed.
    #[error("cannot create folder {path:?}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The group commit of a batch of writes failed; every append (and projection batch) of
    /// the batch fails with the same underlying error, and none of them is stored.
    #[error("group commit failed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    /// A migration failed to apply; the database is left at the previous schema version.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version.
        version: u32,
        /// The migration's name.
        name: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer release of this crate.
    #[error(
        "database schema version {found} is newer than this release supports ({supported}); upgrade factum-sqlite"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: u32,
        /// The newest version this release knows.
        supported: u32,
    },
    /// A stored row holds a value this crate never writes (a malformed event id, a negative
    /// version, an unreadable timestamp): the file was edited or is damaged.
    #[error("corrupt row in {table}: {reason}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A blocking read task panicked or was cancelled.
    #[error("read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Another process serves this store file: it holds the owner lock.
    #[error(
        "the store is in use by another serving process{}: it holds {path:?}; stop it first (read-only commands work beside it)",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The process id the holder recorded, when readable.
        holder: Option<u32>,
    },
    /// The lock file could not be created, read or locked.
    #[error("cannot use the lock file {path:?}: {source}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store is closed: its writer thread has stopped.
    #[error("the SQLite event store is closed")]
    Closed,
}

impl Error {
    /// The SQLite error behind this one, if any.
    pub fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            Self::Sqlite(error) | Self::Migration { source: error, .. } => Some(error),
            Self::Commit(error) => Some(error),
            _ => None,
        }
    }

    pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        Self::CorruptRow {
            table,
            reason: reason.into(),
        }
    }
}

impl From<Error> for factum_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Closed => factum_core::Error::Unavailable(error.to_string()),
            _ if is_disk_full(&error) => factum_core::Error::StoreFull(error.to_string()),
            Error::InvalidUrl { .. } | Error::InvalidPath { .. } => {
                factum_core::Error::Validation(error.to_string())
            }
            other => factum_core::Error::store(other),
        }
    }
}

/// A SQLite failure as the core error a store method returns.
pub(crate) fn sql_error(error: rusqlite::Error) -> factum_core::Error {
    Error::Sqlite(error).into()
}

/// Whether SQLite refused a write for lack of space (`SQLITE_FULL`: the disk is full, or the
/// database reached its size limit). Decided by the error code.
fn is_disk_full(error: &Error) -> bool {
    error
        .sqlite_error()
        .and_then(rusqlite::Error::sqlite_error_code)
        == Some(rusqlite::ErrorCode::DiskFull)
}

/// Whether SQLite refused a write because of a constraint (UNIQUE, PRIMARY KEY, ...). Decided
/// by the error code, never by the message text.
pub(crate) fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_maps_to_unavailable_and_bad_urls_to_validation() {
        assert!(matches!(
            factum_core::Error::from(Error::Closed),
            factum_core::Error::Unavailable(_)
        ));
        let bad = Error::InvalidUrl {
            url: "postgres://x".into(),
            reason: "wrong scheme".into(),
        };
        assert!(matches!(
            factum_core::Error::from(bad),
            factum_core::Error::Validation(_)
        ));
        let corrupt = Error::corrupt("events", "bad id");
        assert!(matches!(
            factum_core::Error::from(corrupt),
            factum_core::Error::Store(_)
        ));
    }

    #[test]
    fn a_full_database_is_store_full() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v BLOB); PRAGMA max_page_count = 2;")
            .unwrap();
        let error = conn
            .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .unwrap_err();
        let core = factum_core::Error::from(Error::Sqlite(error));
        assert!(matches!(core, factum_core::Error::StoreFull(_)), "{core}");
        assert_eq!(core.status(), 507);
    }

    #[test]
    fn constraint_violations_are_recognised_by_code() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER UNIQUE); INSERT INTO t VALUES (1);")
            .unwrap();
        let error = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(is_constraint_violation(&error));
        let other = conn
            .execute("INSERT INTO missing VALUES (1)", [])
            .unwrap_err();
        assert!(!is_constraint_violation(&other));
    }
}
