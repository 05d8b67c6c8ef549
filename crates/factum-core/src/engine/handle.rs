//! The engine value itself: [`CqrsCommandEngine`], what it holds, and its state cache. The
//! operations are in the sibling modules (`command`, `commit`, `load`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::aggregate::CommandHandler;
use crate::id::AggregateIdGenerator;
use crate::keyed_lock::KeyedLock;
use crate::projection::InlineView;
use crate::projections::Projections;
use crate::store::EventStore;
use crate::upcast::Upcasters;

use super::cache::{CacheStats, StateCache};
use super::config::EngineConfig;
use super::dispatch::{DispatchErrorHandler, Dispatcher};
use super::lane::Lanes;
use super::outcome::LoadedAggregate;

/// Everything an engine and its clones share; built once by the
/// [`EngineBuilder`](super::EngineBuilder), never changed after.
pub(super) struct Inner<A: CommandHandler> {
    pub(super) store: Arc<dyn EventStore>,
    pub(super) services: A::Services,
    pub(super) config: EngineConfig,
    pub(super) id_generator: Box<dyn AggregateIdGenerator<A>>,
    pub(super) upcasters: Upcasters,
    pub(super) dispatchers: Vec<Arc<dyn Dispatcher<A>>>,
    pub(super) inline_views: Vec<Box<dyn InlineView<A>>>,
    pub(super) inline_projections: Projections,
    pub(super) projections: Projections,
    pub(super) on_dispatch_error: Option<DispatchErrorHandler>,
    pub(super) dispatch_failures: AtomicU64,
    pub(super) conflicts: AtomicU64,
    /// Serializes the creates of one id.
    pub(super) locks: KeyedLock,
    /// The lanes of the aggregates updates are running on (hot-aggregate batching).
    pub(super) lanes: Lanes<A>,
    pub(super) cache: Mutex<StateCache<A>>,
}

/// The command engine for one aggregate type. Cheap to clone; clones share everything.
///
/// Built with [`CqrsCommandEngine::builder`] (or [`CqrsCommandEngine::new`] for the
/// defaults), so its configuration is fixed before anything can share it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use factum_core::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
/// #[serde(tag = "type")]
/// enum CounterEvent { Incremented { by: u32 } }
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
///     async fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
///         Ok(vec![CounterEvent::Incremented { by: 0 }])
///     }
///     async fn handle_update(&self, by: &u32, _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
///         Ok(vec![CounterEvent::Incremented { by: *by }])
///     }
/// }
///
/// let engine = CqrsCommandEngine::<Counter>::builder(Arc::new(InMemoryEventStore::new()))
///     .snapshot_policy(SnapshotPolicy::Never)
///     .build()
///     .unwrap();
/// let ctx = CqrsContext::new();
/// let created = engine.create_with_id("c-1", &(), &ctx).await.unwrap();
/// let updated = engine.update("c-1", &5, &ctx).await.unwrap();
/// assert_eq!((updated.state.value, updated.version), (5, 2));
/// assert_eq!(created.version, 1);
/// # });
/// ```
pub struct CqrsCommandEngine<A: CommandHandler> {
    pub(super) inner: Arc<Inner<A>>,
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

    /// The services the handlers are given.
    pub fn services(&self) -> &A::Services {
        &self.inner.services
    }

    /// The asynchronous projections added with
    /// [`EngineBuilder::projection`](super::EngineBuilder::projection), which this engine
    /// wakes after each commit: spawn them, report their lag, rebuild them.
    pub fn projections(&self) -> &Projections {
        &self.inner.projections
    }

    /// The inline views, as projectors over the same store: for a rebuild from the log,
    /// which must run while no command does (a command writes them from their current
    /// records).
    pub fn inline_projections(&self) -> &Projections {
        &self.inner.inline_projections
    }

    /// How many dispatcher calls have failed since the engine was built.
    pub fn dispatch_failures(&self) -> u64 {
        self.inner.dispatch_failures.load(Ordering::Relaxed)
    }

    /// How many appends conflicted (and were retried or reported) since the engine was built.
    pub fn conflicts(&self) -> u64 {
        self.inner.conflicts.load(Ordering::Relaxed)
    }

    pub(super) fn count_conflict(&self) {
        self.inner.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// What the state cache holds and how often it served.
    pub fn cache_stats(&self) -> CacheStats {
        self.state_cache().stats()
    }

    fn state_cache(&self) -> std::sync::MutexGuard<'_, StateCache<A>> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the latest state this process knows of, for the next command or read.
    pub(super) fn remember(&self, aggregate_id: &str, state: &A, version: u64) {
        if self.inner.config.state_cache_capacity > 0 {
            self.state_cache().put(aggregate_id, state, version);
        }
    }

    /// Keeps a state read from the store unless a newer one is cached (a command of this
    /// process may have committed while it was read).
    pub(super) fn remember_newer(&self, aggregate_id: &str, state: &A, version: u64) {
        if self.inner.config.state_cache_capacity > 0 {
            self.state_cache().put_newer(aggregate_id, state, version);
        }
    }

    /// Drops the cached state (after a conflict or a failure: trust the store).
    pub(super) fn forget(&self, aggregate_id: &str) {
        if self.inner.config.state_cache_capacity > 0 {
            self.state_cache().remove(aggregate_id);
        }
    }

    pub(super) fn cached(&self, aggregate_id: &str) -> Option<LoadedAggregate<A>> {
        if self.inner.config.state_cache_capacity == 0 {
            return None;
        }
        self.state_cache().get(aggregate_id)
    }
}
