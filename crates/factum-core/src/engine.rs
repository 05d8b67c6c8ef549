//! The command engine: load an aggregate, decide a command, append its events with an
//! expected version, write the snapshot, dispatch the committed events.
//!
//! Concurrency has two layers. Within one process, commands on one aggregate are serialized
//! by a keyed lock, so they never conflict with each other and different aggregates never
//! wait on each other. Between processes sharing a store, the store's expected-version check
//! is what keeps updates from being lost: on a conflict the engine re-loads, re-decides and
//! re-appends, up to [`EngineConfig::max_attempts`] times with jittered backoff.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::aggregate::{Aggregate, CommandHandler, Event};
use crate::context::CqrsContext;
use crate::envelope::{EventEnvelope, NewEvent, Snapshot, StoredEvent};
use crate::error::{Error, Result};
use crate::id::{AggregateIdGenerator, UuidIdGenerator, validate_aggregate_id};
use crate::idempotency::IdempotencyRecord;
use crate::json;
use crate::keyed_lock::KeyedLock;
use crate::projection::{InlineView, InlineViewOf};
use crate::store::{AppendRequest, EventStore, ExpectedVersion};
use crate::upcast::Upcasters;
use crate::view::View;

/// When the engine writes a snapshot (in the same transaction as the command's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// After every command: loading is one snapshot read, and the snapshot doubles as the
    /// aggregate's primary read model.
    EveryCommand,
    /// Whenever the version crosses a multiple of N.
    EveryNEvents(NonZeroU64),
    /// Never: state is always rebuilt from events.
    Never,
}

/// How the engine behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How many times an update is decided before giving up on conflicts (at least 1).
    pub max_attempts: u32,
    /// The first retry's backoff; doubled on every further retry, with full jitter.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// When to write snapshots.
    pub snapshot_policy: SnapshotPolicy,
    /// How many aggregates' latest state the engine keeps in memory between commands
    /// (0 disables it). A stale entry is harmless: its append conflicts and is re-decided.
    pub state_cache_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_attempts: 100,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(50),
            snapshot_policy: SnapshotPolicy::EveryNEvents(NonZeroU64::MIN.saturating_add(99)),
            state_cache_capacity: 10_000,
        }
    }
}

impl EngineConfig {
    /// Sets the number of attempts.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Sets the snapshot policy.
    #[must_use]
    pub fn with_snapshot_policy(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshot_policy = policy;
        self
    }

    /// Sets the backoff range.
    #[must_use]
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// Sets the state cache capacity (0 disables it).
    #[must_use]
    pub fn with_state_cache_capacity(mut self, capacity: usize) -> Self {
        self.state_cache_capacity = capacity;
        self
    }
}

/// An aggregate's state at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedAggregate<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied (0 for none).
    pub version: u64,
}

/// What a successful command produced.
#[derive(Debug, Clone)]
pub struct CommandOutcome<A: Aggregate> {
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The state after the command.
    pub state: A,
    /// The version after the command.
    pub version: u64,
    /// The events the command recorded (empty if it decided nothing needed to change).
    pub events: Vec<EventEnvelope<A::Event>>,
    /// How many times the command was decided (more than 1 after conflicts).
    pub attempts: u32,
}

/// A command for [`CqrsCommandEngine::execute`].
#[derive(Debug)]
pub enum CommandCall<'a, A: CommandHandler> {
    /// A create command, with this id or (`None`) one from the id generator.
    Create {
        /// The new aggregate's id.
        id: Option<&'a str>,
        /// The command.
        command: &'a A::CreateCommand,
    },
    /// An update command, at any version or (`Some`) only at this one.
    Update {
        /// The aggregate's id.
        id: &'a str,
        /// The command.
        command: &'a A::UpdateCommand,
        /// Run only at this version (else a [`Error::Conflict`], not retried).
        expected_version: Option<u64>,
    },
}

/// Renders a command's response from the aggregate id, the new state and the new version:
/// `(status, response text)`.
pub type ResponseRenderer<'a, A> =
    Box<dyn Fn(&str, &A, u64) -> Result<(u16, String)> + Send + Sync + 'a>;

/// Asks the engine to write an idempotency record in the same transaction as a command's
/// events (see [`crate::idempotency`]).
///
/// The response must be in the record before the commit, so the engine renders it from the
/// state and version it is about to commit. A command that stores no events (it failed, or
/// decided nothing needed to change) writes no record: the caller remembers it alone with
/// [`EventStore::remember_idempotency`](crate::EventStore::remember_idempotency).
pub struct Remember<'a, A> {
    /// The record to write; `render` fills in its status and response.
    pub record: IdempotencyRecord,
    /// Renders the response.
    pub render: ResponseRenderer<'a, A>,
}

impl<A> fmt::Debug for Remember<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remember")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Reacts to committed events (views, publishers, notifications).
///
/// Runs after the append, so a failure cannot undo the command; it is logged, counted and
/// handed to the engine's dispatch error handler.
#[async_trait]
pub trait Dispatcher<A: Aggregate>: Send + Sync + 'static {
    /// A name for logs and failure reports.
    fn name(&self) -> &str;

    /// Handles the events one command committed, in version order.
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<A::Event>]) -> Result<()>;
}

/// A dispatcher that failed, as reported to the dispatch error handler.
#[derive(Debug)]
pub struct DispatchFailure {
    /// The dispatcher's name.
    pub dispatcher: String,
    /// The aggregate type.
    pub aggregate_type: &'static str,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The versions of the events it was given.
    pub versions: std::ops::RangeInclusive<u64>,
    /// What went wrong.
    pub error: Error,
}

type DispatchErrorHandler = Arc<dyn Fn(&DispatchFailure) + Send + Sync>;

struct Inner<A: CommandHandler> {
    store: Arc<dyn EventStore>,
    services: A::Services,
    config: EngineConfig,
    id_generator: Box<dyn AggregateIdGenerator<A>>,
    upcasters: Upcasters,
    dispatchers: Vec<Arc<dyn Dispatcher<A>>>,
    inline_views: Vec<Box<dyn InlineView<A>>>,
    on_dispatch_error: Option<DispatchErrorHandler>,
    dispatch_failures: AtomicU64,
    conflicts: AtomicU64,
    locks: KeyedLock,
    cache: Mutex<HashMap<String, LoadedAggregate<A>>>,
}

/// The command engine for one aggregate type. Cheap to clone; clones share everything.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use factum_core::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// #[serde(tag = "type")]
/// enum CounterEvent { Incremented { by: u32 } }
/// impl Event for CounterEvent {
///     fn event_type(&self) -> &'static str { "Incremented" }
/// }
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Counter { id: String, value: u64 }
/// impl Aggregate for Counter {
///     const TYPE: &'static str = "counter";
///     type Event = CounterEvent;
///     type Error = CqrsError;
///     fn with_aggregate_id(id: String) -> Self { Counter { id, value: 0 } }
///     fn aggregate_id(&self) -> &str { &self.id }
///     fn apply(&mut self, CounterEvent::Incremented { by }: &CounterEvent) {
///         self.value += u64::from(*by);
///     }
/// }
/// impl CommandHandler for Counter {
///     type CreateCommand = ();
///     type UpdateCommand = u32;
///     type Services = ();
///     fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
///         Ok(vec![CounterEvent::Incremented { by: 0 }])
///     }
///     fn handle_update(&self, by: &u32, _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
///         Ok(vec![CounterEvent::Incremented { by: *by }])
///     }
/// }
///
/// let engine = CqrsCommandEngine::<Counter>::new(Arc::new(InMemoryEventStore::new()), ());
/// let ctx = CqrsContext::new();
/// let created = engine.create_with_id("c-1", &(), &ctx).await.unwrap();
/// let updated = engine.update("c-1", &5, &ctx).await.unwrap();
/// assert_eq!((updated.state.value, updated.version), (5, 2));
/// assert_eq!(created.version, 1);
/// # });
/// ```
pub struct CqrsCommandEngine<A: CommandHandler> {
    inner: Arc<Inner<A>>,
}

impl<A: CommandHandler> Clone for CqrsCommandEngine<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A: CommandHandler> fmt::Debug for CqrsCommandEngine<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CqrsCommandEngine")
            .field("aggregate_type", &A::TYPE)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<A: CommandHandler> CqrsCommandEngine<A> {
    /// An engine over `store` with default configuration and UUID ids.
    pub fn new(store: Arc<dyn EventStore>, services: A::Services) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                services,
                config: EngineConfig::default(),
                id_generator: Box::new(UuidIdGenerator),
                upcasters: Upcasters::new(),
                dispatchers: Vec::new(),
                inline_views: Vec::new(),
                on_dispatch_error: None,
                dispatch_failures: AtomicU64::new(0),
                conflicts: AtomicU64::new(0),
                locks: KeyedLock::default(),
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn configure(mut self, change: impl FnOnce(&mut Inner<A>)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => change(inner),
            None => tracing::warn!("engine configured after being cloned; change ignored"),
        }
        self
    }

    /// Replaces the configuration. Call before cloning the engine.
    #[must_use]
    pub fn with_config(self, config: EngineConfig) -> Self {
        self.configure(|inner| inner.config = config)
    }

    /// Replaces the id generator of create commands. Call before cloning the engine.
    #[must_use]
    pub fn with_id_generator(self, generator: impl AggregateIdGenerator<A>) -> Self {
        self.configure(|inner| inner.id_generator = Box::new(generator))
    }

    /// Sets the upcasters applied when reading events. Call before cloning the engine.
    #[must_use]
    pub fn with_upcasters(self, upcasters: Upcasters) -> Self {
        self.configure(|inner| inner.upcasters = upcasters)
    }

    /// Adds a dispatcher. Call before cloning the engine.
    #[must_use]
    pub fn with_dispatcher(self, dispatcher: Arc<dyn Dispatcher<A>>) -> Self {
        self.configure(|inner| inner.dispatchers.push(dispatcher))
    }

    /// Keeps view `V` up to date inline: its record changes are computed from each command's
    /// events and written in the same transaction as the events, so the view can never miss
    /// or double-apply one. Fails if the store keeps no views. Call before cloning the engine.
    ///
    /// Inline views see every field of the envelope but the global `position` (0: it is
    /// assigned by the store at commit); a view that needs positions belongs in a
    /// [`Projector`](crate::Projector). A view added to a store that already has events
    /// starts empty: rebuild it first.
    pub fn with_inline_view<V: View<Aggregate = A>>(self) -> Result<Self> {
        if self.inner.store.as_view_store().is_none() {
            return Err(Error::Validation(format!(
                "inline view {} needs a store that keeps views",
                V::TYPE
            )));
        }
        Ok(self.configure(|inner| inner.inline_views.push(Box::new(InlineViewOf::<V>::new()))))
    }

    /// Sets the handler told of every dispatcher failure. Call before cloning the engine.
    #[must_use]
    pub fn on_dispatch_error(
        self,
        handler: impl Fn(&DispatchFailure) + Send + Sync + 'static,
    ) -> Self {
        self.configure(|inner| inner.on_dispatch_error = Some(Arc::new(handler)))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The upcasters.
    pub fn upcasters(&self) -> &Upcasters {
        &self.inner.upcasters
    }

    /// How many dispatcher calls have failed since the engine was built.
    pub fn dispatch_failures(&self) -> u64 {
        self.inner.dispatch_failures.load(Ordering::Relaxed)
    }

    /// How many appends conflicted (and were retried or reported) since the engine was built.
    pub fn conflicts(&self) -> u64 {
        self.inner.conflicts.load(Ordering::Relaxed)
    }

    /// Creates an aggregate with an id from the engine's id generator.
    pub async fn create(
        &self,
        command: &A::CreateCommand,
        ctx: &CqrsContext,
    ) -> Result<CommandOutcome<A>> {
        let aggregate_id = self.inner.id_generator.generate(command, ctx)?;
        self.create_with_id(&aggregate_id, command, ctx).await
    }

    /// Creates an aggregate with the given id. The stream must not exist yet.
    pub async fn create_with_id(
        &self,
        aggregate_id: &str,
        command: &A::CreateCommand,
        ctx: &CqrsContext,
    ) -> Result<CommandOutcome<A>> {
        self.create_inner(aggregate_id, command, ctx, None).await
    }

    /// Runs a create or an update command; with `remember`, the command's idempotency
    /// record is written in the same transaction as its events (if it stores any: see
    /// [`Remember`]).
    pub async fn execute(
        &self,
        call: CommandCall<'_, A>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<CommandOutcome<A>> {
        match call {
            CommandCall::Create {
                id: Some(id),
                command,
            } => self.create_inner(id, command, ctx, remember).await,
            CommandCall::Create { id: None, command } => {
                let id = self.inner.id_generator.generate(command, ctx)?;
                self.create_inner(&id, command, ctx, remember).await
            }
            CommandCall::Update {
                id,
                command,
                expected_version,
            } => {
                self.update_inner(id, command, expected_version, ctx, remember)
                    .await
            }
        }
    }

    async fn create_inner(
        &self,
        aggregate_id: &str,
        command: &A::CreateCommand,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<CommandOutcome<A>> {
        validate_aggregate_id(aggregate_id)?;
        let _guard = self.inner.locks.lock(aggregate_id).await;
        let empty = LoadedAggregate {
            state: A::with_aggregate_id(aggregate_id.to_owned()),
            version: 0,
        };
        let events = empty
            .state
            .handle_create(command, &self.inner.services, ctx)
            .map_err(Error::domain)?;
        match self
            .commit(
                aggregate_id,
                empty,
                events,
                ExpectedVersion::NoStream,
                ctx,
                remember,
            )
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(Error::Conflict { .. }) => {
                self.inner.conflicts.fetch_add(1, Ordering::Relaxed);
                Err(match A::already_exists_error(aggregate_id) {
                    Some(error) => Error::domain(error),
                    None => Error::AggregateAlreadyExists {
                        aggregate_type: A::TYPE.to_owned(),
                        aggregate_id: aggregate_id.to_owned(),
                    },
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Runs an update command, re-deciding it on conflicts.
    pub async fn update(
        &self,
        aggregate_id: &str,
        command: &A::UpdateCommand,
        ctx: &CqrsContext,
    ) -> Result<CommandOutcome<A>> {
        self.update_inner(aggregate_id, command, None, ctx, None)
            .await
    }

    /// Runs an update command only if the aggregate is at `expected_version` (an HTTP
    /// `If-Match`). A mismatch is a [`Error::Conflict`] and is not retried.
    pub async fn update_at_version(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        command: &A::UpdateCommand,
        ctx: &CqrsContext,
    ) -> Result<CommandOutcome<A>> {
        self.update_inner(aggregate_id, command, Some(expected_version), ctx, None)
            .await
    }

    async fn update_inner(
        &self,
        aggregate_id: &str,
        command: &A::UpdateCommand,
        expected_version: Option<u64>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<CommandOutcome<A>> {
        validate_aggregate_id(aggregate_id)?;
        let _guard = self.inner.locks.lock(aggregate_id).await;
        let max_attempts = self.inner.config.max_attempts.max(1);
        let mut attempt = 0;
        // After a conflict: the state the losing attempt decided on. Only the events appended
        // since are read, which keeps the window between load and append short, so a process
        // that lost a race is not starved by one that keeps winning.
        let mut stale: Option<LoadedAggregate<A>> = None;
        loop {
            attempt += 1;
            let loaded = match stale.take() {
                Some(stale) => self.catch_up(aggregate_id, stale).await?,
                None => self.cached_or_load(aggregate_id).await?,
            };
            let Some(loaded) = loaded else {
                return Err(self.not_found(aggregate_id));
            };
            if let Some(expected) = expected_version
                && loaded.version != expected
            {
                return Err(Error::Conflict {
                    aggregate_type: A::TYPE.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    expected: ExpectedVersion::Exact(expected),
                    actual: Some(loaded.version),
                });
            }
            let events = loaded
                .state
                .handle_update(command, &self.inner.services, ctx)
                .map_err(Error::domain)?;
            let expected = ExpectedVersion::Exact(loaded.version);
            let base = (expected_version.is_none() && !events.is_empty()).then(|| loaded.clone());
            match self
                .commit(aggregate_id, loaded, events, expected, ctx, remember)
                .await
            {
                Ok(mut outcome) => {
                    outcome.attempts = attempt;
                    return Ok(outcome);
                }
                Err(Error::Conflict { actual, .. }) => {
                    self.inner.conflicts.fetch_add(1, Ordering::Relaxed);
                    self.forget(aggregate_id);
                    if let Some(expected) = expected_version {
                        return Err(Error::Conflict {
                            aggregate_type: A::TYPE.to_owned(),
                            aggregate_id: aggregate_id.to_owned(),
                            expected: ExpectedVersion::Exact(expected),
                            actual,
                        });
                    }
                    if attempt >= max_attempts {
                        return Err(Error::TooManyConflicts {
                            aggregate_type: A::TYPE.to_owned(),
                            aggregate_id: aggregate_id.to_owned(),
                            attempts: attempt,
                        });
                    }
                    stale = base;
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(error) => {
                    self.forget(aggregate_id);
                    return Err(error);
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let exp = config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(config.backoff_max);
        let micros = u64::try_from(exp.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }

    fn not_found(&self, aggregate_id: &str) -> Error {
        match A::not_found_error(aggregate_id) {
            Some(error) => Error::domain(error),
            None => Error::AggregateNotFound {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
            },
        }
    }

    /// Applies, appends (with the snapshot the policy asks for), caches and dispatches.
    async fn commit(
        &self,
        aggregate_id: &str,
        loaded: LoadedAggregate<A>,
        events: Vec<A::Event>,
        expected: ExpectedVersion,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<CommandOutcome<A>> {
        let LoadedAggregate {
            mut state,
            version: old_version,
        } = loaded;
        if events.is_empty() {
            return Ok(CommandOutcome {
                aggregate_id: aggregate_id.to_owned(),
                state,
                version: old_version,
                events: Vec::new(),
                attempts: 1,
            });
        }
        let metadata = ctx.to_metadata();
        let metadata_json =
            serde_json::to_string(&metadata).map_err(|e| Error::serialization("metadata", e))?;
        let recorded_at = ctx.now();
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            state.apply(event);
            let payload = serde_json::to_string(event)
                .map_err(|e| Error::serialization(event.event_type(), e))?;
            json::check_value_reads_back(event, &payload).map_err(|mismatch| {
                unrepresentable(format!("{} event", event.event_type()), mismatch)
            })?;
            new_events.push(NewEvent {
                event_id: ctx.new_id(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                payload,
                metadata: metadata_json.clone(),
                recorded_at,
            });
        }
        let new_version = old_version + events.len() as u64;
        let snapshot = if self.should_snapshot(old_version, new_version) {
            let text = serde_json::to_string(&state)
                .map_err(|e| Error::serialization(format!("{} snapshot", A::TYPE), e))?;
            reads_back::<A>(&text, || format!("{} snapshot", A::TYPE))?;
            Some(Snapshot {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: new_version,
                state: text,
                taken_at: recorded_at,
            })
        } else {
            None
        };
        let view_changes = self
            .inline_view_changes(aggregate_id, old_version, &new_events, &events, &metadata)
            .await?;
        let idempotency = match remember {
            Some(remember) => {
                let (status, response) = (remember.render)(aggregate_id, &state, new_version)?;
                Some(IdempotencyRecord {
                    status,
                    response,
                    ..remember.record.clone()
                })
            }
            None => None,
        };
        let stored = self
            .inner
            .store
            .append(AppendRequest {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                expected,
                events: new_events,
                snapshot,
                view_changes,
                idempotency,
            })
            .await?;
        let envelopes: Vec<EventEnvelope<A::Event>> = stored
            .into_iter()
            .zip(events)
            .map(|(stored, payload)| envelope(stored, metadata.clone(), payload))
            .collect();
        let version = envelopes.last().map_or(new_version, |e| e.version);
        self.remember(aggregate_id, &state, version);
        self.dispatch(aggregate_id, &envelopes).await;
        Ok(CommandOutcome {
            aggregate_id: aggregate_id.to_owned(),
            state,
            version,
            events: envelopes,
            attempts: 1,
        })
    }

    async fn inline_view_changes(
        &self,
        aggregate_id: &str,
        old_version: u64,
        new_events: &[NewEvent],
        events: &[A::Event],
        metadata: &crate::context::Metadata,
    ) -> Result<Vec<crate::view::ViewChange>> {
        let Some(views) = self.inner.store.as_view_store() else {
            return Ok(Vec::new());
        };
        if self.inner.inline_views.is_empty() {
            return Ok(Vec::new());
        }
        let pending: Vec<EventEnvelope<A::Event>> = new_events
            .iter()
            .zip(events)
            .enumerate()
            .map(|(offset, (new, payload))| EventEnvelope {
                event_id: new.event_id,
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: old_version + offset as u64 + 1,
                position: 0,
                recorded_at: new.recorded_at,
                event_type: new.event_type.clone(),
                metadata: metadata.clone(),
                payload: payload.clone(),
            })
            .collect();
        let mut changes = Vec::new();
        for view in &self.inner.inline_views {
            changes.extend(view.changes(views, &pending).await?);
        }
        Ok(changes)
    }

    fn should_snapshot(&self, old_version: u64, new_version: u64) -> bool {
        match self.inner.config.snapshot_policy {
            SnapshotPolicy::EveryCommand => true,
            SnapshotPolicy::EveryNEvents(n) => old_version / n.get() != new_version / n.get(),
            SnapshotPolicy::Never => false,
        }
    }

    async fn dispatch(&self, aggregate_id: &str, envelopes: &[EventEnvelope<A::Event>]) {
        let (Some(first), Some(last)) = (envelopes.first(), envelopes.last()) else {
            return;
        };
        for dispatcher in &self.inner.dispatchers {
            if let Err(error) = dispatcher.dispatch(aggregate_id, envelopes).await {
                self.inner.dispatch_failures.fetch_add(1, Ordering::Relaxed);
                let failure = DispatchFailure {
                    dispatcher: dispatcher.name().to_owned(),
                    aggregate_type: A::TYPE,
                    aggregate_id: aggregate_id.to_owned(),
                    versions: first.version..=last.version,
                    error,
                };
                tracing::error!(
                    dispatcher = %failure.dispatcher,
                    aggregate_type = A::TYPE,
                    aggregate_id,
                    from_version = first.version,
                    to_version = last.version,
                    error = %failure.error,
                    "dispatcher failed after commit"
                );
                if let Some(handler) = &self.inner.on_dispatch_error {
                    handler(&failure);
                }
            }
        }
    }

    fn remember(&self, aggregate_id: &str, state: &A, version: u64) {
        let capacity = self.inner.config.state_cache_capacity;
        if capacity == 0 {
            return;
        }
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= capacity && !cache.contains_key(aggregate_id) {
            // Evict an arbitrary entry: a miss only costs a load from the store.
            if let Some(victim) = cache.keys().next().cloned() {
                cache.remove(&victim);
            }
        }
        cache.insert(
            aggregate_id.to_owned(),
            LoadedAggregate {
                state: state.clone(),
                version,
            },
        );
    }

    fn forget(&self, aggregate_id: &str) {
        if self.inner.config.state_cache_capacity > 0 {
            self.inner
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(aggregate_id);
        }
    }

    /// Applies the events stored after `stale.version`; a full load if there are none (the
    /// conflict then came from something else than a newer event, so trust nothing cached).
    async fn catch_up(
        &self,
        aggregate_id: &str,
        stale: LoadedAggregate<A>,
    ) -> Result<Option<LoadedAggregate<A>>> {
        let LoadedAggregate {
            mut state,
            mut version,
        } = stale;
        let newer = self
            .inner
            .store
            .read_stream(A::TYPE, aggregate_id, version + 1, None)
            .await?;
        if newer.is_empty() {
            return self.load(aggregate_id).await;
        }
        for event in &newer {
            state.apply(&self.inner.upcasters.decode_payload::<A::Event>(event)?);
            version = event.version;
        }
        Ok(Some(LoadedAggregate { state, version }))
    }

    async fn cached_or_load(&self, aggregate_id: &str) -> Result<Option<LoadedAggregate<A>>> {
        if self.inner.config.state_cache_capacity > 0 {
            let cached = self
                .inner
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(aggregate_id)
                .cloned();
            if cached.is_some() {
                return Ok(cached);
            }
        }
        self.load(aggregate_id).await
    }

    /// The state this process last committed for the aggregate (its state cache), else the
    /// current state from the store. Cheaper than [`load`](Self::load) but possibly behind
    /// commands of other processes: for checks on facts that commands do not change (who
    /// created the aggregate), such as an authorization rule.
    pub async fn load_cached(&self, aggregate_id: &str) -> Result<Option<LoadedAggregate<A>>> {
        validate_aggregate_id(aggregate_id)?;
        self.cached_or_load(aggregate_id).await
    }

    /// Loads the current state from the store: the snapshot (if any) plus newer events.
    /// `None` if the aggregate has no events.
    pub async fn load(&self, aggregate_id: &str) -> Result<Option<LoadedAggregate<A>>> {
        validate_aggregate_id(aggregate_id)?;
        let (mut state, mut version) = match self.snapshot_state(aggregate_id, None).await? {
            Some(loaded) => (loaded.state, loaded.version),
            None => (A::with_aggregate_id(aggregate_id.to_owned()), 0),
        };
        let stored = self
            .inner
            .store
            .read_stream(A::TYPE, aggregate_id, version + 1, None)
            .await?;
        for event in &stored {
            state.apply(&self.inner.upcasters.decode_payload::<A::Event>(event)?);
            version = event.version;
        }
        Ok((version > 0).then_some(LoadedAggregate { state, version }))
    }

    /// The state after the first `version` events (time travel).
    pub async fn load_at_version(
        &self,
        aggregate_id: &str,
        version: u64,
    ) -> Result<LoadedAggregate<A>> {
        validate_aggregate_id(aggregate_id)?;
        if version == 0 {
            return Err(Error::Validation("version must be at least 1".to_owned()));
        }
        let (mut state, mut reached) =
            match self.snapshot_state(aggregate_id, Some(version)).await? {
                Some(loaded) => (loaded.state, loaded.version),
                None => (A::with_aggregate_id(aggregate_id.to_owned()), 0),
            };
        let wanted = usize::try_from(version - reached).unwrap_or(usize::MAX);
        let stored = self
            .inner
            .store
            .read_stream(A::TYPE, aggregate_id, reached + 1, Some(wanted))
            .await?;
        for event in &stored {
            state.apply(&self.inner.upcasters.decode_payload::<A::Event>(event)?);
            reached = event.version;
        }
        if reached == version {
            return Ok(LoadedAggregate { state, version });
        }
        let current = self
            .inner
            .store
            .stream_version(A::TYPE, aggregate_id)
            .await?;
        if current == 0 {
            return Err(self.not_found(aggregate_id));
        }
        Err(Error::VersionNotFound {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            requested: version,
            current,
        })
    }

    /// The stored snapshot's state, if the policy uses snapshots, one exists, it is not past
    /// `at_most`, and it still deserializes (a snapshot of an older state shape is skipped
    /// and the state rebuilt from events).
    async fn snapshot_state(
        &self,
        aggregate_id: &str,
        at_most: Option<u64>,
    ) -> Result<Option<LoadedAggregate<A>>> {
        if self.inner.config.snapshot_policy == SnapshotPolicy::Never {
            return Ok(None);
        }
        let Some(snapshot) = self
            .inner
            .store
            .load_snapshot(A::TYPE, aggregate_id)
            .await?
        else {
            return Ok(None);
        };
        if at_most.is_some_and(|limit| snapshot.version > limit) {
            return Ok(None);
        }
        match json::from_str::<A>(&snapshot.state) {
            Ok(state) => Ok(Some(LoadedAggregate {
                state,
                version: snapshot.version,
            })),
            Err(error) => {
                tracing::warn!(aggregate_type = A::TYPE, aggregate_id, %error, "snapshot unreadable; replaying events");
                Ok(None)
            }
        }
    }

    /// One aggregate's events with version `>= from_version`, typed and upcast.
    pub async fn events(
        &self,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> Result<Vec<EventEnvelope<A::Event>>> {
        validate_aggregate_id(aggregate_id)?;
        self.inner
            .store
            .read_stream(A::TYPE, aggregate_id, from_version.max(1), limit)
            .await?
            .iter()
            .map(|stored| self.inner.upcasters.decode(stored))
            .collect()
    }
}

/// Refuses to store `text` unless it decodes as `T` into a value that serializes back to
/// the same JSON: what is stored always reads back (see [`json::check_reads_back`]).
pub(crate) fn reads_back<T: serde::Serialize + serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<()> {
    json::check_reads_back::<T>(text).map_err(|mismatch| unrepresentable(what(), mismatch))
}

pub(crate) fn unrepresentable(what: String, mismatch: json::Mismatch) -> Error {
    Error::Unrepresentable {
        what,
        path: mismatch.path,
        problem: mismatch.problem,
    }
}

fn envelope<E: Event>(
    stored: StoredEvent,
    metadata: crate::context::Metadata,
    payload: E,
) -> EventEnvelope<E> {
    EventEnvelope {
        event_id: stored.event_id,
        aggregate_type: stored.aggregate_type,
        aggregate_id: stored.aggregate_id,
        version: stored.version,
        position: stored.position,
        recorded_at: stored.recorded_at,
        event_type: stored.event_type,
        metadata,
        payload,
    }
}
