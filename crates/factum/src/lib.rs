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
//! | `mongodb` | no | `mongodb`: the same on MongoDB (`mongodb://HOST:PORT/DB`) |
//! | `http` | no | `http`: axum routers with OpenAPI |
//! | `service` | no | `service`: a service binary's options, serving and view rebuilds (with `http`) |
//! | `nats` | no | `--publish nats://...`: the NATS JetStream outbox |
//! | `all` | no | all of the above |
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
#[cfg(feature = "mongodb")]
pub use factum_mongodb as mongodb;
#[cfg(feature = "postgres")]
pub use factum_postgres as postgres;
#[cfg(feature = "sqlite")]
pub use factum_sqlite as sqlite;

#[cfg(feature = "service")]
pub mod service;

/// Why a store could not be opened ([`open_store`], [`claim_store`]) or, with the `service`
/// feature, why a `factum::service` could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The URL names no store this crate knows.
    #[error(
        "unsupported store URL '{0}': use memory, sqlite://PATH, postgres://... or mongodb://HOST:PORT/DB"
    )]
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
    /// The MongoDB store failed to open.
    #[cfg(feature = "mongodb")]
    #[error(transparent)]
    Mongo(#[from] factum_mongodb::Error),
    /// A service is configured wrongly (a [`service::Service`] setting, or options that
    /// contradict each other).
    #[cfg(feature = "service")]
    #[error("{0}")]
    Config(String),
    /// Serving refused: a rebuild of inline views started and did not finish, so they are
    /// incomplete.
    #[cfg(feature = "service")]
    #[error(
        "the rebuild of the inline view(s) {} was interrupted, so they are incomplete: \
         run `{service} rebuild-views --include-inline` again (it redoes the rebuild) before serving",
        views.join(", ")
    )]
    UnfinishedRebuild {
        /// The service's name.
        service: String,
        /// The views whose rebuild did not finish.
        views: Vec<String>,
    },
    /// A step of a service failed: what it was doing, and why.
    #[cfg(feature = "service")]
    #[error("{context}")]
    Failed {
        /// What the service was doing.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ServiceError {
    /// Whether the store is in use by another serving process ([`claim_store`] failed).
    pub fn is_in_use(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(factum_sqlite::Error::Locked { .. }) => true,
            _ => false,
        }
    }

    /// The exit code a service binary ends with on this error: 3 when the store is in use
    /// by another serving process ([`is_in_use`](Self::is_in_use)), 4 when an inline
    /// rebuild is unfinished, 1 otherwise. Causes are looked through, so a wrapped error
    /// keeps its code.
    pub fn exit_code(&self) -> u8 {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            match error.downcast_ref::<Self>() {
                Some(error) if error.is_in_use() => return 3,
                #[cfg(feature = "service")]
                Some(Self::UnfinishedRebuild { .. }) => return 4,
                _ => {}
            }
            cause = error.source();
        }
        1
    }

    /// A failed step: what was being done, and why.
    #[cfg(feature = "service")]
    pub(crate) fn failed(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Failed {
            context: context.into(),
            source: source.into(),
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
/// second serving process is refused at start ([`ServiceError::is_in_use`]) instead of
/// sharing the file. PostgreSQL is made to be shared by many nodes and memory by nobody:
/// their claims hold nothing. Commands that only read do not claim.
pub fn claim_store(url: &str) -> Result<StoreClaim, ServiceError> {
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

/// The kinds of store a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Memory,
    Sqlite,
    Postgres,
    Mongo,
}

/// The kind of store `url` names, if this build can open it.
fn store_kind(url: &str) -> Result<StoreKind, ServiceError> {
    let kind = if url == "memory" || url == "memory://" {
        StoreKind::Memory
    } else if url.starts_with("sqlite:") {
        StoreKind::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        StoreKind::Postgres
    } else if url.starts_with("mongodb://") {
        StoreKind::Mongo
    } else {
        return Err(ServiceError::UnsupportedUrl(url.to_owned()));
    };
    let disabled = |name| ServiceError::FeatureDisabled {
        scheme: name,
        feature: name,
    };
    match kind {
        StoreKind::Sqlite if !cfg!(feature = "sqlite") => Err(disabled("sqlite")),
        StoreKind::Postgres if !cfg!(feature = "postgres") => Err(disabled("postgres")),
        StoreKind::Mongo if !cfg!(feature = "mongodb") => Err(disabled("mongodb")),
        kind => Ok(kind),
    }
}

/// Opens an event store from a URL: `memory`, `sqlite://PATH`, `postgres://...` or
/// `mongodb://HOST:PORT/DB`.
pub async fn open_store(url: &str) -> Result<Arc<dyn EventStore>, ServiceError> {
    match store_kind(url)? {
        StoreKind::Memory => Ok(Arc::new(InMemoryEventStore::new())),
        #[cfg(feature = "sqlite")]
        StoreKind::Sqlite => Ok(Arc::new(
            factum_sqlite::SqliteEventStore::open_url(url).await?,
        )),
        #[cfg(feature = "postgres")]
        StoreKind::Postgres => Ok(Arc::new(
            factum_postgres::PostgresEventStore::connect(url).await?,
        )),
        #[cfg(feature = "mongodb")]
        StoreKind::Mongo => Ok(Arc::new(
            factum_mongodb::MongoEventStore::connect(url).await?,
        )),
        #[allow(unreachable_patterns)]
        _ => Err(ServiceError::UnsupportedUrl(url.to_owned())),
    }
}

/// The README's Rust example, compiled and run as a doctest so it cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
