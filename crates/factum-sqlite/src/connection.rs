//! Connections to the database file: the URL and path checks, the writer's and the readers'
//! settings (WAL, `synchronous=FULL`, cache, size limit), and the pool of read-only
//! connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Each connection's page cache, in KiB (SQLite reads a negative `cache_size` as KiB).
const CACHE_KIB: i64 = 16 * 1024;
/// The size the write-ahead log is truncated back to after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Read-only connections, opened on demand and kept for reuse.
pub(crate) struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    /// A pool of at most `readers` connections to `path`, starting with `first`.
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        first: Connection,
        readers: usize,
    ) -> Self {
        Self {
            path,
            busy_timeout,
            idle: Mutex::new(vec![first]),
            permits: Arc::new(Semaphore::new(readers.max(1))),
        }
    }

    /// Runs `query` on an idle connection (or a new one), off the async runtime.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&Connection) -> factum_core::Result<T> + Send + 'static,
    ) -> factum_core::Result<T> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_reader(&pool.path, pool.busy_timeout)?,
            };
            let result = query(&conn);
            pool.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(Error::Task)?
    }
}

/// Refuses paths that cannot hold a durable, shared store.
pub(crate) fn checked_path(path: &Path) -> Result<PathBuf> {
    let invalid = |reason: &str| Error::InvalidPath {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    if path.as_os_str().is_empty() {
        return Err(invalid("the path is empty"));
    }
    if path.as_os_str() == ":memory:" {
        return Err(invalid(
            "an in-memory database is neither durable nor shared between connections; use factum_core::InMemoryEventStore",
        ));
    }
    if path.is_dir() {
        return Err(invalid("it is a folder; name a file inside it"));
    }
    Ok(path.to_path_buf())
}

/// The path of a `sqlite://PATH` or `sqlite:PATH` URL.
pub(crate) fn path_from_url(url: &str) -> Result<PathBuf> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("sqlite:") => &url[7..],
        _ => return Err(invalid("expected sqlite://PATH")),
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains(['?', '#']) {
        return Err(invalid(
            "query parameters and fragments are not supported; the store sets its own options",
        ));
    }
    if path.is_empty() {
        return Err(invalid("no path after sqlite://"));
    }
    Ok(PathBuf::from(path))
}

/// The only write connection: WAL, `synchronous=FULL`, and the size limit if any.
pub(crate) fn open_writer(
    path: &Path,
    busy_timeout: Duration,
    max_size: Option<u64>,
) -> Result<Connection> {
    // No URI flag: the path is a file name, never parsed as `file:` options.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: format!("SQLite cannot use write-ahead logging there (journal mode {mode})"),
        });
    }
    // FULL: with WAL, every commit fsyncs the log, so an acknowledged append survives a
    // power cut, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if let Some(max_size) = max_size {
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        let pages = max_size / u64::try_from(page_size.max(1)).unwrap_or(4096);
        conn.pragma_update(
            None,
            "max_page_count",
            i64::try_from(pages.max(1)).unwrap_or(i64::MAX),
        )?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// A read-only connection.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_relative_and_absolute_paths() {
        assert_eq!(
            path_from_url("sqlite://data/bank.db").unwrap(),
            PathBuf::from("data/bank.db")
        );
        assert_eq!(
            path_from_url("sqlite:///var/lib/bank.db").unwrap(),
            PathBuf::from("/var/lib/bank.db")
        );
        assert_eq!(
            path_from_url("SQLite:bank.db").unwrap(),
            PathBuf::from("bank.db")
        );
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for url in [
            "",
            "sqlite",
            "sqlite://",
            "sqlite:",
            "postgres://localhost/db",
            "sqlite://bank.db?mode=ro",
            "sqlite://bank.db#x",
            "sqlité://x",
        ] {
            assert!(
                matches!(path_from_url(url), Err(Error::InvalidUrl { .. })),
                "{url:?}"
            );
        }
    }

    #[test]
    fn paths_that_cannot_hold_a_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for path in [Path::new(""), Path::new(":memory:"), dir.path()] {
            assert!(
                matches!(checked_path(path), Err(Error::InvalidPath { .. })),
                "{path:?}"
            );
        }
        assert!(checked_path(&dir.path().join("x.db")).is_ok());
    }
}
