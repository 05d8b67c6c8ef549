//! # factum-postgres
//!
//! A PostgreSQL [`EventStore`](factum_core::EventStore) for Factum: one store shared by many
//! stateless service nodes, through sqlx's PostgreSQL driver and a connection pool. All
//! correctness comes from the database, none from in-process locks: expected versions are
//! checked, and store-wide positions handed out, under one row lock held until commit, so
//! positions are gapless and in commit order and a reader following `read_all` never skips
//! an event; unique constraints back the checks up, and a violated expectation is the core
//! `Conflict`. Appends that arrive together on one node share one transaction (group
//! commit). The [`store`] module explains the design and why it is sound.
//!
//! Opening a store creates its schema and applies the embedded, versioned migrations;
//! nothing is run by hand, and nodes starting at once are safe (an advisory lock orders
//! them). The schema name is validated (`[a-z_][a-z0-9_]{0,62}`) and is the only text ever
//! spliced into SQL; every value is a bound parameter. A store is opened inside a tokio
//! runtime, which runs its writer task.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use factum_core::{AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent};
//! use factum_postgres::PostgresEventStore;
//!
//! let url = std::env::var("FACTUM_TEST_DATABASE_URL")
//!     .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
//! let schema = format!("doctest_{}", uuid::Uuid::new_v4().simple());
//! let store = PostgresEventStore::connect_with_schema(&url, &schema).await.unwrap();
//!
//! let deposit = NewEvent {
//!     event_id: uuid::Uuid::new_v4(),
//!     event_type: "Deposited".to_owned(),
//!     schema_version: 1,
//!     payload: r#"{"amount":100}"#.to_owned(),
//!     metadata: Metadata::default(),
//!     recorded_at: chrono::Utc::now(),
//! };
//! let stored = store
//!     .append(AppendRequest {
//!         aggregate_type: "account".to_owned(),
//!         aggregate_id: "a-1".to_owned(),
//!         expected: ExpectedVersion::NoStream,
//!         events: vec![deposit],
//!         snapshot: None,
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!((stored[0].position, stored[0].version), (1, 1));
//! assert_eq!(store.read_all(0, 10).await.unwrap(), stored);
//! assert_eq!(store.stream_version("account", "a-1").await.unwrap(), 1);
//!
//! // Bad schema names never reach the database.
//! let err = PostgresEventStore::connect_with_schema(&url, "x; DROP TABLE y").await.unwrap_err();
//! assert!(matches!(err, factum_postgres::Error::InvalidSchemaName(_)));
//!
//! sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
//!     .execute(store.pool())
//!     .await
//!     .unwrap();
//! # });
//! ```

mod error;
mod migrations;
pub mod store;

pub use error::{Error, Result};
pub use migrations::{DEFAULT_SCHEMA, validate_schema_name};
pub use store::PostgresEventStore;
