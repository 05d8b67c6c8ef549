//! # factum-sqlite
//!
//! The embedded, durable default [`EventStore`](factum_core::EventStore) of Factum: one SQLite
//! file, no server.
//!
//! - **Durable**: WAL mode with `synchronous=FULL`; when `append` returns, its events have
//!   been fsynced and survive a process kill or a power cut.
//! - **Group commit**: one writer thread owns the only write connection. Appends that arrive
//!   while a commit is in flight are written together in the next transaction, with one
//!   fsync, each inside its own savepoint: a conflict fails that append alone, never its
//!   neighbours. [`SqliteEventStore::stats`] counts commits and batched requests.
//! - **Reads never wait for writes**: they run on a small pool of read-only connections.
//! - **Positions** are assigned by the single writer in commit order, 1, 2, 3, ... with no
//!   gaps, so `read_all` from a checkpoint never misses an event.
//! - **Views**: it is also a [`ViewStore`](factum_core::ViewStore). Inline view changes are
//!   written in their append's savepoint, so they commit with its events or not at all;
//!   projection batches go through the same writer, their checkpoint checked and moved in
//!   the same transaction. Queries run on the readers, translated to SQL over the records'
//!   JSON with bound parameters only, and agree with the reference semantics of
//!   [`ViewQuery::apply_to`](factum_core::ViewQuery::apply_to).
//! - **Schema** comes from embedded, versioned migrations applied when the store opens.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use factum_core::*;
//! use factum_sqlite::SqliteEventStore;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type")]
//! enum CounterEvent { Added { by: u32 } }
//! impl Event for CounterEvent {
//!     fn event_type(&self) -> &'static str { "Added" }
//! }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Counter { id: String, total: u64 }
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "counter";
//!     type Event = CounterEvent;
//!     type Error = CqrsError;
//!     fn with_aggregate_id(id: String) -> Self { Counter { id, total: 0 } }
//!     fn aggregate_id(&self) -> &str { &self.id }
//!     fn apply(&mut self, CounterEvent::Added { by }: &CounterEvent) {
//!         self.total += u64::from(*by);
//!     }
//! }
//! impl CommandHandler for Counter {
//!     type CreateCommand = ();
//!     type UpdateCommand = u32;
//!     type Services = ();
//!     async fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
//!         Ok(vec![CounterEvent::Added { by: 0 }])
//!     }
//!     async fn handle_update(&self, by: &u32, _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
//!         Ok(vec![CounterEvent::Added { by: *by }])
//!     }
//! }
//!
//! /// Each counter's total, kept inline and queryable by it.
//! #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
//! struct CounterTotal { total: u64 }
//! impl View for CounterTotal {
//!     const TYPE: &'static str = "counter_totals";
//!     const KIND: ViewKind = ViewKind::PerAggregate;
//!     type Aggregate = Counter;
//!     fn fields() -> &'static [ViewField] {
//!         const FIELDS: &[ViewField] = &[ViewField::new("total", FieldKind::Number)];
//!         FIELDS
//!     }
//!     fn update(&self, envelope: &EventEnvelope<CounterEvent>) -> Option<Self> {
//!         let CounterEvent::Added { by } = envelope.payload;
//!         Some(Self { total: self.total + u64::from(by) })
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}", dir.path().join("data/counters.db").display());
//! let store = Arc::new(SqliteEventStore::open_url(&url).await.unwrap());
//! let engine = CqrsCommandEngine::<Counter>::builder(store.clone())
//!     .inline_view::<CounterTotal>()
//!     .build()
//!     .unwrap();
//! let ctx = CqrsContext::new().with_user("alice");
//! engine.create_with_id("c-1", &(), &ctx).await.unwrap();
//! engine.create_with_id("c-2", &(), &ctx).await.unwrap();
//! let outcome = engine.update("c-1", &5, &ctx).await.unwrap();
//! assert_eq!((outcome.state.total, outcome.version), (5, 2));
//!
//! // The view committed with the events; query it like the HTTP layer does.
//! let fields = CounterTotal::fields();
//! let query = ViewQuery::parse(Some("total:gte:1"), Some("-total"), None, None, fields).unwrap();
//! let page = store.query_views(CounterTotal::TYPE, &query, fields).await.unwrap();
//! assert_eq!(page.total, 1);
//! assert_eq!(page.items[0].decode::<CounterTotal>().unwrap(), CounterTotal { total: 5 });
//!
//! // Every event is in the file, in commit order.
//! let all = store.read_all(0, 100).await.unwrap();
//! assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3]);
//! assert_eq!(all[2].parse_metadata().unwrap().user_id.as_deref(), Some("alice"));
//! assert!(store.stats().commits >= 2);
//! drop(engine);
//!
//! // Reopened, the store finds everything again.
//! Arc::into_inner(store).unwrap().close().await;
//! let store = SqliteEventStore::open_url(&url).await.unwrap();
//! assert_eq!(store.stream_version("counter", "c-1").await.unwrap(), 2);
//! # });
//! ```

mod connection;
mod error;
mod idempotency;
mod known;
mod owner;
mod parked;
mod rows;
mod schema;
mod store;
mod view_query;
mod view_records;
mod views;
mod writer;

pub use error::{Error, Result};
pub use owner::OwnerLock;
pub use store::{SqliteEventStore, SqliteOptions, StoreStats};
