//! # Factum
//!
//! Event sourcing and CQRS for Rust. This facade re-exports the model of
//! [`factum-core`](factum_core) (aggregates, commands, events, the engine, the in-memory
//! store) and, behind features, the storage backends and the HTTP layer:
//!
//! | feature | default | what it brings |
//! |---|---|---|
//! | `sqlite` | yes | [`sqlite`]: the embedded, durable store with group commit |
//! | `postgres` | no | `postgres`: one store shared by many service nodes |
//! | `http` | no | `http`: axum routers with OpenAPI |
//!
//! [`open_store`] opens any of them from a URL, as a service's `--store` flag would:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}", dir.path().join("events.db").display());
//! let store = factum::open_store(&url).await.unwrap();
//! assert_eq!(store.stream_version("account", "acc-1").await.unwrap(), 0);
//!
//! let memory = factum::open_store("memory").await.unwrap();
//! assert!(memory.read_all(0, 10).await.unwrap().is_empty());
//! assert!(factum::open_store("ftp://nowhere").await.is_err());
//! # });
//! ```

use std::sync::Arc;

pub use factum_core::*;

#[cfg(feature = "http")]
pub use factum_http as http;
#[cfg(feature = "postgres")]
pub use factum_postgres as postgres;
#[cfg(feature = "sqlite")]
pub use factum_sqlite as sqlite;

/// Why [`open_store`] could not open a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenStoreError {
    /// The URL names no store this crate knows.
    #[error("unsupported store URL '{0}': use memory, sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The URL names a store whose feature is not enabled in this build.
    #[error("store URL scheme '{scheme}' needs the '{feature}' feature of factum")]
    FeatureDisabled {
        /// The URL's scheme.
        scheme: &'static str,
        /// The feature to enable.
        feature: &'static str,
    },
    /// The SQLite store failed to open.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Sqlite(#[from] factum_sqlite::Error),
    /// The PostgreSQL store failed to open.
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] factum_postgres::Error),
}

impl OpenStoreError {
    /// Whether the store is in use by another serving process ([`claim_store`] failed).
    pub fn is_in_use(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(factum_sqlite::Error::Locked { .. }) => true,
            _ => false,
        }
    }
}

/// A serving process's claim on its store, held until dropped: see [`claim_store`].
#[derive(Debug)]
pub struct StoreClaim {
    #[cfg(feature = "sqlite")]
    _sqlite: Option<factum_sqlite::OwnerLock>,
}

/// Claims the store a URL names for this process, before serving from it: for
/// `sqlite://PATH`, an exclusive lock on `PATH.lock` ([`sqlite::OwnerLock`]), so that a
/// second serving process is refused at start ([`OpenStoreError::is_in_use`]) instead of
/// sharing the file. PostgreSQL is made to be shared by many nodes and memory by nobody:
/// their claims hold nothing. Commands that only read do not claim.
pub fn claim_store(url: &str) -> Result<StoreClaim, OpenStoreError> {
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        return Ok(StoreClaim {
            _sqlite: Some(factum_sqlite::OwnerLock::acquire_url(url)?),
        });
    }
    let _ = url;
    Ok(StoreClaim {
        #[cfg(feature = "sqlite")]
        _sqlite: None,
    })
}

/// Opens an event store from a URL: `memory`, `sqlite://PATH` or `postgres://...`.
pub async fn open_store(url: &str) -> Result<Arc<dyn EventStore>, OpenStoreError> {
    if url == "memory" || url == "memory://" {
        return Ok(Arc::new(InMemoryEventStore::new()));
    }
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(
            factum_sqlite::SqliteEventStore::open_url(url).await?,
        ));
        #[cfg(not(feature = "sqlite"))]
        return Err(OpenStoreError::FeatureDisabled {
            scheme: "sqlite",
            feature: "sqlite",
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(
            factum_postgres::PostgresEventStore::connect(url).await?,
        ));
        #[cfg(not(feature = "postgres"))]
        return Err(OpenStoreError::FeatureDisabled {
            scheme: "postgres",
            feature: "postgres",
        });
    }
    Err(OpenStoreError::UnsupportedUrl(url.to_owned()))
}

/// The README's Rust example, compiled and run as a doctest so it cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
