//! [`EngineBuilder`]: every setting of an engine, checked once in [`EngineBuilder::build`],
//! so that no setting can be lost or changed after the engine is shared.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::aggregate::CommandHandler;
use crate::error::{Error, Result};
use crate::id::{AggregateIdGenerator, UuidIdGenerator};
use crate::keyed_lock::KeyedLock;
use crate::projection::{InlineView, InlineViewOf, Projector};
use crate::projections::Projections;
use crate::store::EventStore;
use crate::upcast::Upcasters;
use crate::view::View;

use super::cache::StateCache;
use super::config::{EngineConfig, SnapshotPolicy};
use super::dispatch::{DispatchErrorHandler, DispatchFailure, Dispatcher};
use super::handle::{CqrsCommandEngine, Inner};
use super::lane::Lanes;

/// Builder state: the services are not given yet (`build` then needs `A::Services: Default`).
#[derive(Debug)]
pub struct NoServices;

/// Builder state: the services are given.
#[derive(Debug)]
pub struct WithServices<T>(T);

/// Builds a [`CqrsCommandEngine`]; start with [`CqrsCommandEngine::builder`].
///
/// ```
/// use std::sync::Arc;
/// use factum_core::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # #[serde(tag = "type")]
/// # enum PingEvent { Pinged }
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # struct Ping { id: String }
/// # impl Aggregate for Ping {
/// #     const TYPE: &'static str = "ping";
/// #     type Event = PingEvent;
/// #     type Error = CqrsError;
/// #     fn with_aggregate_id(id: String) -> Self { Ping { id } }
/// #     fn aggregate_id(&self) -> &str { &self.id }
/// #     fn apply(&mut self, _: &PingEvent) {}
/// # }
/// # impl CommandHandler for Ping {
/// #     type CreateCommand = ();
/// #     type UpdateCommand = ();
/// #     type Services = u32;
/// #     async fn handle_create(&self, _: &(), _: &u32, _: &CqrsContext) -> Result<Vec<PingEvent>, CqrsError> { Ok(vec![PingEvent::Pinged]) }
/// #     async fn handle_update(&self, _: &(), _: &u32, _: &CqrsContext) -> Result<Vec<PingEvent>, CqrsError> { Ok(vec![PingEvent::Pinged]) }
/// # }
/// let store = Arc::new(InMemoryEventStore::new());
/// let engine = CqrsCommandEngine::<Ping>::builder(store.clone())
///     .services(7)
///     .max_attempts(10)
///     .snapshot_policy(SnapshotPolicy::EveryCommand)
///     .cache_capacity(0)
///     .build()
///     .unwrap();
/// assert_eq!(engine.config().max_attempts, 10);
/// assert_eq!(*engine.services(), 7);
///
/// // A setting that cannot work is refused when the engine is built.
/// let refused = CqrsCommandEngine::<Ping>::builder(store).services(7).max_attempts(0).build();
/// assert!(refused.is_err());
/// ```
#[must_use = "an engine builder does nothing until `build` is called"]
pub struct EngineBuilder<A: CommandHandler, S = NoServices> {
    store: Arc<dyn EventStore>,
    services: S,
    config: EngineConfig,
    id_generator: Box<dyn AggregateIdGenerator<A>>,
    upcasters: Upcasters,
    dispatchers: Vec<Arc<dyn Dispatcher<A>>>,
    inline_views: Vec<(&'static str, Box<dyn InlineView<A>>)>,
    inline_projections: Projections,
    projections: Projections,
    on_dispatch_error: Option<DispatchErrorHandler>,
    problems: Vec<String>,
}

impl<A: CommandHandler, S> fmt::Debug for EngineBuilder<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("aggregate_type", &A::TYPE)
            .field("config", &self.config)
            .field("dispatchers", &self.dispatchers.len())
            .field(
                "inline_views",
                &self
                    .inline_views
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>(),
            )
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl<A: CommandHandler> CqrsCommandEngine<A> {
    /// A builder for an engine over `store`: defaults are [`EngineConfig::default`], UUID
    /// ids, no upcasters, no dispatchers, no inline views.
    pub fn builder(store: Arc<dyn EventStore>) -> EngineBuilder<A, NoServices> {
        EngineBuilder {
            store,
            services: NoServices,
            config: EngineConfig::default(),
            id_generator: Box::new(UuidIdGenerator),
            upcasters: Upcasters::new(),
            dispatchers: Vec::new(),
            inline_views: Vec::new(),
            inline_projections: Projections::new(),
            projections: Projections::new(),
            on_dispatch_error: None,
            problems: Vec::new(),
        }
    }

    /// An engine over `store` with these services and every default (the short form of
    /// `builder(store).services(services).build()`, which cannot fail with defaults).
    pub fn new(store: Arc<dyn EventStore>, services: A::Services) -> Self {
        let builder = Self::builder(store);
        builder.assemble(services)
    }
}

impl<A: CommandHandler, S> EngineBuilder<A, S> {
    /// Replaces the whole configuration (attempts, backoff, snapshots, cache).
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// How many times an update is decided before it gives up on conflicts with other
    /// processes (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// Bounds the retries of an update that conflicts with other processes by time: it is
    /// decided again until `limit` has passed since it started, however many attempts that
    /// takes (instead of [`max_attempts`](Self::max_attempts)).
    pub fn retry_for(mut self, limit: Duration) -> Self {
        self.config.retry_for = Some(limit);
        self
    }

    /// The backoff between retries: `base` first, doubled each retry up to `max`, jittered.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff_base = base;
        self.config.backoff_max = max;
        self
    }

    /// When snapshots are written.
    pub fn snapshot_policy(mut self, policy: SnapshotPolicy) -> Self {
        self.config.snapshot_policy = policy;
        self
    }

    /// How many aggregates' latest state are kept in memory (0 disables the cache).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.config.state_cache_capacity = capacity;
        self
    }

    /// The most bytes the cached states may take, counted as their JSON (states are evicted
    /// least recently used first to stay within it, as they are for the entry capacity).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.config.state_cache_bytes = bytes;
        self
    }

    /// The id generator of create commands without an id.
    pub fn id_generator(mut self, generator: impl AggregateIdGenerator<A>) -> Self {
        self.id_generator = Box::new(generator);
        self
    }

    /// The upcasters applied when events are read.
    pub fn upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Adds a dispatcher, told of the events of every command after their commit.
    pub fn dispatcher(mut self, dispatcher: Arc<dyn Dispatcher<A>>) -> Self {
        self.dispatchers.push(dispatcher);
        self
    }

    /// Keeps view `V` up to date inline: its record changes are computed from each
    /// command's events and written in the same transaction as the events, so the view can
    /// never miss or double-apply one. The store must keep views (else `build` fails).
    ///
    /// Inline views see every field of the envelope but the global `position` (0: it is
    /// assigned by the store at commit); a view that needs positions belongs in a
    /// [`Projector`](crate::Projector). A view added to a store that already has events
    /// starts empty: rebuild it first.
    pub fn inline_view<V: View<Aggregate = A>>(mut self) -> Self {
        if self.store.as_view_store().is_none() {
            self.problems.push(format!(
                "inline view {} needs a store that keeps views",
                V::TYPE
            ));
        }
        if self.inline_views.iter().any(|(name, _)| *name == V::TYPE) {
            self.problems
                .push(format!("inline view {} is added twice", V::TYPE));
        }
        // The same view as a projector, for rebuilds (only while no command runs).
        if let Ok(projector) = Projector::<V>::for_store(self.store.clone()) {
            self.inline_projections = std::mem::take(&mut self.inline_projections).with(projector);
        }
        self.inline_views
            .push((V::TYPE, Box::new(InlineViewOf::<V>::new())));
        self
    }

    /// Keeps view `V` as an asynchronous projection: it follows the event log from its own
    /// checkpoint (run it with [`Projections::spawn`] on
    /// [`CqrsCommandEngine::projections`]), and this engine wakes it after each commit. The
    /// store must keep views (else `build` fails).
    pub fn projection<V: View>(mut self) -> Self {
        if self.projections.names().iter().any(|n| n == V::TYPE) {
            self.problems
                .push(format!("projection {} is added twice", V::TYPE));
        }
        match Projector::<V>::for_store(self.store.clone()) {
            Ok(projector) => {
                self.projections = std::mem::take(&mut self.projections).with(projector);
            }
            Err(error) => self.problems.push(error.to_string()),
        }
        self
    }

    /// Sets the handler told of every dispatcher failure.
    pub fn on_dispatch_error(
        mut self,
        handler: impl Fn(&DispatchFailure) + Send + Sync + 'static,
    ) -> Self {
        self.on_dispatch_error = Some(Arc::new(handler));
        self
    }

    fn check(&self) -> Result<()> {
        let mut problems = self.problems.clone();
        if self.config.max_attempts == 0 {
            problems.push("max_attempts must be at least 1".to_owned());
        }
        if self.config.backoff_max < self.config.backoff_base {
            problems.push(format!(
                "backoff max {:?} is below its base {:?}",
                self.config.backoff_max, self.config.backoff_base
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(format!(
                "engine of {}: {}",
                A::TYPE,
                problems.join("; ")
            )))
        }
    }

    /// The same settings with another services slot, and the slot it had.
    fn swap_services<T>(self, services: T) -> (S, EngineBuilder<A, T>) {
        let builder = EngineBuilder {
            store: self.store,
            services,
            config: self.config,
            id_generator: self.id_generator,
            upcasters: self.upcasters,
            dispatchers: self.dispatchers,
            inline_views: self.inline_views,
            inline_projections: self.inline_projections,
            projections: self.projections,
            on_dispatch_error: self.on_dispatch_error,
            problems: self.problems,
        };
        (self.services, builder)
    }

    fn assemble(self, services: A::Services) -> CqrsCommandEngine<A> {
        let mut dispatchers = self.dispatchers;
        if !self.projections.is_empty() {
            dispatchers.push(self.projections.waker::<A>());
        }
        let cache = StateCache::new(
            self.config.state_cache_capacity,
            self.config.state_cache_bytes,
        );
        CqrsCommandEngine {
            inner: Arc::new(Inner {
                store: self.store,
                services,
                config: self.config,
                id_generator: self.id_generator,
                upcasters: self.upcasters,
                dispatchers,
                inline_views: self.inline_views.into_iter().map(|(_, v)| v).collect(),
                inline_projections: self.inline_projections,
                projections: self.projections,
                on_dispatch_error: self.on_dispatch_error,
                dispatch_failures: AtomicU64::new(0),
                conflicts: AtomicU64::new(0),
                locks: KeyedLock::default(),
                lanes: Lanes::default(),
                cache: Mutex::new(cache),
            }),
        }
    }
}

impl<A: CommandHandler> EngineBuilder<A, NoServices> {
    /// The services the handlers are given.
    pub fn services(self, services: A::Services) -> EngineBuilder<A, WithServices<A::Services>> {
        self.swap_services(WithServices(services)).1
    }

    /// The engine, with `A::Services::default()` as its services; a setting that cannot
    /// work is an [`Error::Validation`] naming every problem.
    pub fn build(self) -> Result<CqrsCommandEngine<A>>
    where
        A::Services: Default,
    {
        self.check()?;
        Ok(self.assemble(A::Services::default()))
    }
}

impl<A: CommandHandler> EngineBuilder<A, WithServices<A::Services>> {
    /// The engine; a setting that cannot work is an [`Error::Validation`] naming every
    /// problem.
    pub fn build(self) -> Result<CqrsCommandEngine<A>> {
        self.check()?;
        let (WithServices(services), builder) = self.swap_services(NoServices);
        Ok(builder.assemble(services))
    }
}
