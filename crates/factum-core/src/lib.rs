//! # factum-core
//!
//! The model of an event-sourced system: a user implements [`Aggregate`], [`Event`] and
//! [`CommandHandler`] for their domain, and the [`CqrsCommandEngine`] does the rest: it loads
//! the aggregate (snapshot plus newer events, upcast), checks that it exists (or, for a
//! create, that it does not), decides the command (handlers are `async` and may await their
//! services), appends the events with an expected version, writes the snapshot in the same
//! append, and dispatches the committed events. A command that does not run returns a
//! [`CommandError`] holding the aggregate's own error type. Any [`EventStore`] backend plugs in; [`InMemoryEventStore`] is here.
//!
//! Domain code depends on this crate and serde only: no storage, no HTTP.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use factum_core::*;
//! use serde::{Deserialize, Serialize};
//!
//! define_domain_errors! {
//!     /// Errors of a light switch.
//!     pub enum SwitchError {
//!         domain: "SWITCH",
//!         prefix: 20,
//!         /// Switching to the state it is in.
//!         AlreadyThere { on: bool } = (1, 409, "SWITCH_ALREADY_THERE", "the switch is already {on}"),
//!     }
//! }
//!
//! // Each event is stored under its serde tag.
//! #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type")]
//! enum SwitchEvent { Installed, Flipped { on: bool } }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Switch { id: String, on: bool }
//! impl Aggregate for Switch {
//!     const TYPE: &'static str = "switch";
//!     type Event = SwitchEvent;
//!     type Error = SwitchError;
//!     fn with_aggregate_id(id: String) -> Self { Self { id, on: false } }
//!     fn aggregate_id(&self) -> &str { &self.id }
//!     fn apply(&mut self, event: &SwitchEvent) {
//!         if let SwitchEvent::Flipped { on } = event { self.on = *on; }
//!     }
//! }
//! impl CommandHandler for Switch {
//!     type CreateCommand = ();
//!     type UpdateCommand = bool;
//!     type Services = ();
//!     async fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<SwitchEvent>, SwitchError> {
//!         Ok(vec![SwitchEvent::Installed])
//!     }
//!     async fn handle_update(&self, on: &bool, _: &(), _: &CqrsContext) -> Result<Vec<SwitchEvent>, SwitchError> {
//!         if self.on == *on { return Err(SwitchError::AlreadyThere { on: *on }); }
//!         Ok(vec![SwitchEvent::Flipped { on: *on }])
//!     }
//! }
//!
//! let engine = CqrsCommandEngine::<Switch>::builder(Arc::new(InMemoryEventStore::new()))
//!     .build()
//!     .unwrap();
//! let ctx = CqrsContext::new().with_user("alice");
//! let created = engine.create(&(), &ctx).await.unwrap();
//! let id = created.aggregate_id;
//! engine.update(&id, &true, &ctx).await.unwrap();
//! // Callers match on the aggregate's own error type.
//! match engine.update(&id, &true, &ctx).await {
//!     Err(CommandError::Domain(SwitchError::AlreadyThere { on })) => assert!(on),
//!     other => panic!("expected AlreadyThere, got {other:?}"),
//! }
//! // The engine knows which aggregates exist: no domain code checks it.
//! let missing = engine.update("no-such-switch", &true, &ctx).await.unwrap_err();
//! assert!(matches!(missing, CommandError::NotFound { .. }));
//! assert_eq!((missing.status(), missing.code().as_str()), (404, "NOT_FOUND"));
//!
//! let history = engine.events(&id, 1, None).await.unwrap();
//! assert_eq!(history.len(), 2);
//! assert_eq!(history[1].metadata.user_id.as_deref(), Some("alice"));
//! # });
//! ```

// The derive macros name this crate `::factum_core`, also from inside it.
extern crate self as factum_core;

mod aggregate;
mod authz;
mod command_error;
mod commands;
mod context;
mod engine;
mod envelope;
mod error;
pub mod feed;
mod id;
pub mod idempotency;
pub mod json;
mod keyed_lock;
mod macros;
mod memory;
mod parked;
pub mod process;
mod projection;
mod projections;
mod running;
mod status;
pub mod store;
mod subscription;
mod upcast;
mod view;

pub use aggregate::{Aggregate, CommandHandler, Event};
pub use authz::{Access, AccessPolicy, Authorizer, Denied};
pub use command_error::CommandError;
pub use commands::Commands;
pub use context::{
    Clock, CqrsContext, IdSource, ManualClock, Metadata, RandomIds, SequentialIds, SystemClock,
};
pub use engine::{
    CacheStats, CommandCall, CommandOutcome, CommandResult, CqrsCommandEngine, DispatchFailure,
    Dispatcher, EngineBuilder, EngineConfig, LoadedAggregate, NoServices, Remember,
    ResponseRenderer, SnapshotPolicy, WithServices,
};
pub use envelope::EventEnvelope;
pub use error::{CqrsError, DomainError, Error, Result, standard};
/// `#[derive(Event)]`: event names from serde tags, schema versions from `#[event(version = N)]`.
pub use factum_macros::{Commands, Event};
pub use id::{
    AggregateIdGenerator, FnIdGenerator, MAX_AGGREGATE_ID_LEN, UuidIdGenerator,
    validate_aggregate_id,
};
pub use idempotency::{IdempotencyRecord, MAX_IDEMPOTENCY_KEY_LEN, validate_idempotency_key};
pub use keyed_lock::{KeyedGuard, KeyedLock};
pub use memory::InMemoryEventStore;
pub use parked::{ParkedEvent, is_event_fault};
pub use process::{Process, ProcessManager, StepOutcome, process_subscription};
pub use projection::{
    DEFAULT_PROJECTION_ATTEMPTS, ProjectionLag, Projector, REBUILD_MARKER_PREFIX, view_changes,
};
pub use projections::{ProjectionTasks, Projections, Subscriptions};
pub use running::{
    LeaseStatus, RunningSubscription, RunningSubscription as RunningProjection, SubscriptionKind,
};
pub use status::{ParkedEntry, ProjectionStatus, SubscriptionStatus};
pub use store::{EventRef, EventStore, ExpectedVersion};
pub use subscription::{
    Backoff, EventHandler, HandlerError, ReplayReport, StartFrom, Subscription, SubscriptionFilter,
};
pub use upcast::Upcasters;
pub use view::{
    DEFAULT_MAX_CLAUSES, DEFAULT_MAX_IN_VALUES, FieldKind, Filter, FilterOp, FilterValue,
    MAX_PAGE_SIZE, Page, ProjectionBatch, ProjectionCheckpoint, QueryLimits, SortKey,
    TranslatedQuery, ValueType, View, ViewChange, ViewField, ViewKind, ViewQuery, ViewRecord,
    ViewStore,
};

/// Re-exports for code that implements [`EventStore`] or [`Dispatcher`].
pub use async_trait::async_trait;
