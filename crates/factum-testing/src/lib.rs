//! # factum-testing
//!
//! Tools for testing event-sourced code built on `factum-core`:
//!
//! - [`AggregateTestFixture`]: given past events, when a command, then the events it records
//!   or the error it returns. Pure: no store, no engine.
//! - [`conformance`]: the one suite every event store runs, wired into a test crate with
//!   [`event_store_conformance_tests!`].
//! - The sample domains every crate's tests share instead of a private copy each:
//!   [`counter`], a small aggregate for engine and store tests that need any aggregate, and
//!   the bar tabs of [`views`] (typed errors, a versioned event, two views) that the view
//!   cases and the engine's own tests run on.
//! - [`faulty`]: an in-memory store that fails as told (broken, unreachable, full, hanging),
//!   or any store wrapped with its appends held and counted.
//! - [`jwt`]: bearer tokens signed with fixed test keys, and their JWKS.
//! - [`server`]: a service binary started on a free port for end-to-end tests, killed
//!   (SIGKILL) when done; with the `postgres` feature, `database::TestDatabase`, a
//!   PostgreSQL database per test; with `nats`, `nats::TestStream`, a JetStream stream per
//!   test; with `mongodb`, `mongo`, a MongoDB database per test (on a started `nx-27017`
//!   server unless `MONGODB_URL` is set).
//!
//! ```
//! use factum_core::{Aggregate, CommandHandler, CqrsContext, CqrsError, Event, standard::StandardError, DomainError};
//! use factum_testing::AggregateTestFixture;
//! use serde::{Deserialize, Serialize};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type")]
//! enum DoorEvent { Built, Opened }
//! impl Event for DoorEvent {
//!     fn event_type(&self) -> &'static str {
//!         match self { Self::Built => "Built", Self::Opened => "Opened" }
//!     }
//! }
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Door { id: String, open: bool }
//! impl Aggregate for Door {
//!     const TYPE: &'static str = "door";
//!     type Event = DoorEvent;
//!     type Error = CqrsError;
//!     fn with_aggregate_id(id: String) -> Self { Self { id, open: false } }
//!     fn aggregate_id(&self) -> &str { &self.id }
//!     fn apply(&mut self, e: &DoorEvent) { if *e == DoorEvent::Opened { self.open = true } }
//! }
//! impl CommandHandler for Door {
//!     type CreateCommand = ();
//!     type UpdateCommand = ();
//!     type Services = ();
//!     async fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<DoorEvent>, CqrsError> {
//!         Ok(vec![DoorEvent::Built])
//!     }
//!     async fn handle_update(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<DoorEvent>, CqrsError> {
//!         if self.open {
//!             return Err(CqrsError::standard(StandardError::Conflict, "already open"));
//!         }
//!         Ok(vec![DoorEvent::Opened])
//!     }
//! }
//!
//! AggregateTestFixture::<Door>::new(())
//!     .given(vec![DoorEvent::Built])
//!     .when_update(())
//!     .await
//!     .then_expect_events(vec![DoorEvent::Opened]);
//! AggregateTestFixture::<Door>::new(())
//!     .given(vec![DoorEvent::Built, DoorEvent::Opened])
//!     .when_update(())
//!     .await
//!     .then_expect_error_code("CONFLICT");
//! # });
//! ```

pub mod batching;
pub mod cluster;
pub mod conformance;
pub mod counter;
#[cfg(feature = "postgres")]
pub mod database;
pub mod detached;
pub mod faulty;
mod fixture;
#[cfg(feature = "http")]
pub mod http;
pub mod idempotency;
pub mod jwt;
#[cfg(feature = "mongodb")]
pub mod mongo;
#[cfg(feature = "nats")]
pub mod nats;
pub mod processes;
pub mod sample;
pub mod server;
pub mod subscriptions;
pub mod views;

pub use fixture::{
    AggregateResultValidator, AggregateTestExecutor, AggregateTestFixture, TEST_AGGREGATE_ID,
};
