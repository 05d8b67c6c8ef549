//! # factum-mongodb
//!
//! A MongoDB [`EventStore`](factum_core::EventStore) and
//! [`ViewStore`](factum_core::ViewStore) for Factum, on the official `mongodb` driver: one
//! database shared by many service nodes. It relies on what every MongoDB deployment has,
//! a standalone server included: the atomic write of one document and unique indexes.
//! Multi-document transactions are not needed. An append is one document (events,
//! snapshot, inline view changes); expected versions and dense global positions are kept
//! by unique indexes, and `read_all` never passes an event that shows up later. The
//! [`store`] module gives the argument.
//!
//! Opening a store creates its indexes (idempotently) and records, or checks, the schema
//! version. View queries become filter documents built from values ([`view_query`]
//! explains how records are kept queryable); no query text is ever spliced together.
//!
//! The tests run against `nx-27017`, a MongoDB wire-protocol server on SQLite, through
//! `factum_testing::mongo` (or any server named by `MONGODB_URL`).
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use factum_core::store::{AppendRequest, NewEvent};
//! use factum_core::{EventStore, ExpectedVersion, Metadata, ViewChange, ViewRecord, ViewStore};
//! use factum_mongodb::MongoEventStore;
//!
//! let url = factum_testing::mongo::database_url("doctest");
//! let store = MongoEventStore::connect(&url).await.unwrap();
//! let deposit = NewEvent {
//!     event_id: uuid::Uuid::new_v4(),
//!     event_type: "Deposited".to_owned(),
//!     schema_version: 1,
//!     payload: r#"{"amount":100}"#.to_owned(),
//!     metadata: serde_json::to_string(&Metadata::default()).unwrap(),
//!     recorded_at: chrono::Utc::now(),
//! };
//! // The events and a view record derived from them are one document.
//! let mut append = AppendRequest::new("account", "a-1", ExpectedVersion::NoStream, vec![deposit]);
//! append.view_changes = vec![ViewChange::Upsert(ViewRecord {
//!     view_type: "balances".to_owned(),
//!     view_id: "a-1".to_owned(),
//!     aggregate_id: "a-1".to_owned(),
//!     version: 1,
//!     data: r#"{"balance":100}"#.to_owned(),
//! })];
//! let stored = store.append(append).await.unwrap();
//! assert_eq!((stored[0].version, stored[0].position), (1, 1));
//! assert_eq!(store.read_all(0, 10).await.unwrap(), stored);
//! let balance = store.get_view("balances", "a-1").await.unwrap().unwrap();
//! assert_eq!(balance.data, r#"{"balance":100}"#);
//! store.database().drop().await.unwrap();
//!
//! // A URL must name its database.
//! assert!(MongoEventStore::connect("mongodb://127.0.0.1:1").await.is_err());
//! # });
//! ```

mod append;
mod codec;
mod error;
pub mod idempotency;
mod schema;
pub mod store;
pub mod view_query;
mod view_records;
pub mod views;

/// The driver release this crate is built on ([`MongoEventStore::database`] is one of its
/// handles).
pub use mongodb;

pub use error::{Error, Result};
pub use schema::SCHEMA_VERSION;
pub use store::{MongoEventStore, validate_database_name};
