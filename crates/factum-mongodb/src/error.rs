//! The crate's error type and its mapping onto the core error.

use mongodb::error::{ErrorKind, WriteFailure};

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// MongoDB's code of a unique index violation (`E11000 duplicate key error`).
const DUPLICATE_KEY: i32 = 11000;

/// What can go wrong opening or using the MongoDB event store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no database (`mongodb://HOST:PORT/DB`), or the database name is not a
    /// plain name (`[A-Za-z0-9_-]`, 1 to 63 characters).
    #[error("invalid MongoDB URL or database name: {0}")]
    InvalidUrl(String),
    /// The server or the connection failed (connecting, a command, a write).
    #[error("MongoDB error: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// The database was set up by a newer release than this one; this release refuses to
    /// write to collections whose rules it does not know.
    #[error(
        "database {database:?} is at schema version {found}, newer than this release's {known}"
    )]
    SchemaTooNew {
        /// The database.
        database: String,
        /// The schema version recorded in the database.
        found: i64,
        /// The schema version this release writes.
        known: i64,
    },
    /// A stored document holds a value this release cannot read.
    #[error("unreadable stored document: {0}")]
    Corrupt(String),
}

impl From<Error> for factum_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidUrl(_) => Self::Validation(error.to_string()),
            Error::Mongo(source) => mongo_error(source),
            other => Self::store(other),
        }
    }
}

/// A driver error as the core error: a server that cannot be reached is `Unavailable`
/// (a 503 a client may retry), anything else a store failure.
pub(crate) fn mongo_error(error: mongodb::error::Error) -> factum_core::Error {
    match *error.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => {
            factum_core::Error::Unavailable(format!("MongoDB is unreachable: {error}"))
        }
        _ => factum_core::Error::store(Error::Mongo(error)),
    }
}

/// Whether `error` is a unique index violation (by its code, never its message).
pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// A stored document that does not read back.
pub(crate) fn corrupt(what: impl Into<String>) -> factum_core::Error {
    factum_core::Error::store(Error::Corrupt(what.into()))
}
