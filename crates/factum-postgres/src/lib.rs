//! # factum-postgres
//!
//! A PostgreSQL [`EventStore`](factum_core::EventStore) for Factum: one store shared by many
//! stateless service nodes, through sqlx's PostgreSQL driver and a connection pool. All
//! correctness comes from the database, none from in-process locks: expected versions are
//! checked under per-stream locks held until commit, and positions come from transaction
//! ids, read only below the oldest transaction still running, so appends from many nodes
//! commit in parallel and a reader following `read_all` never skips an event (positions grow
//! along the feed but are not dense); unique constraints back the checks up, and a violated
//! expectation is the core `Conflict`. Appends that arrive together on one node share one transaction (group
//! commit). The [`store`] module explains the design and why it is sound.
//!
//! The store also keeps read models ([`ViewStore`](factum_core::ViewStore)): view records as
//! `jsonb`, written inline in the same transaction as the events they derive from, or by
//! checkpointed projections whose checkpoint moves with a compare-and-set; queries are
//! translated to SQL with bound parameters only (the [`views`] module).
//!
//! Opening a store creates its schema and applies the embedded, versioned migrations;
//! nothing is run by hand, and nodes starting at once are safe (an advisory lock orders
//! them). The schema name is validated (`[a-z_][a-z0-9_]{0,62}`) and is the only text ever
//! spliced into SQL; every value is a bound parameter. A store is opened inside a tokio
//! runtime, which runs its writer task.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use factum_core::store::{AppendRequest, NewEvent};
//! use factum_core::{EventStore, ExpectedVersion, Metadata, ViewChange, ViewRecord, ViewStore};
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
//!     metadata: serde_json::to_string(&Metadata::default()).unwrap(),
//!     recorded_at: chrono::Utc::now(),
//! };
//! // The events and a view record derived from them commit in one transaction.
//! let mut append = AppendRequest::new("account", "a-1", ExpectedVersion::NoStream, vec![deposit]);
//! append.view_changes = vec![ViewChange::Upsert(ViewRecord {
//!     view_type: "balances".to_owned(),
//!     view_id: "a-1".to_owned(),
//!     aggregate_id: "a-1".to_owned(),
//!     version: 1,
//!     data: r#"{"balance":100}"#.to_owned(),
//! })];
//! let stored = store.append(append).await.unwrap();
//! assert_eq!(stored[0].version, 1);
//! assert_eq!(store.read_all(0, 10).await.unwrap(), stored);
//! assert_eq!(store.stream_version("account", "a-1").await.unwrap(), 1);
//! // Positions grow along the feed, but are not dense (see the `store` module).
//! assert_eq!(store.head_position().await.unwrap(), stored[0].position);
//! let balance = store.get_view("balances", "a-1").await.unwrap().unwrap();
//! assert_eq!(balance.data, r#"{"balance": 100}"#); // jsonb's normal form
//!
//! // Bad schema names never reach the database.
//! let err = PostgresEventStore::connect_with_schema(&url, "x; DROP TABLE y").await.unwrap_err();
//! assert!(matches!(err, factum_postgres::Error::InvalidSchemaName(_)));
//!
//! // The schema name is this test's own plain identifier.
//! sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
//!     .execute(store.pool())
//!     .await
//!     .unwrap();
//! # });
//! ```

mod append_sql;
mod breaker;
mod error;
mod feed;
mod feed_sql;
mod idempotency;
pub mod lease;
mod migrations;
pub mod notify;
mod parked;
mod rows;
mod sql;
mod statements;
pub mod store;
mod view_query;
mod view_records;
pub mod views;
mod writer;

/// The sqlx release this crate is built on: [`PostgresEventStore::pool`] is one of its
/// pools, so code that runs its own SQL on it uses this re-export and cannot pick up an
/// incompatible sqlx.
pub use sqlx;

pub use error::{Error, Result};
pub use lease::Leased;
pub use migrations::{DEFAULT_SCHEMA, validate_schema_name};
pub use notify::CommitListener;
pub use store::PostgresEventStore;
