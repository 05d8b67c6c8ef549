//! The subscription runtime: [`Projections`] (also named [`Subscriptions`]) holds a service's
//! asynchronous subscriptions of both kinds, view [`Projector`]s and event-handler
//! [`Subscription`]s, runs each in a task that follows the event log ([`Projections::spawn`]), wakes them as
//! soon as a command commits (through the [`Dispatcher`] of [`Projections::waker`], given to
//! the engine, with a poll as the fallback for events appended by other processes), reports
//! how far behind each is ([`ProjectionStatus`], [`SubscriptionStatus`]), rebuilds the views
//! and replays the handlers' parked events.
//!
//! Every batch a projector applies commits its records with its checkpoint, refused unless
//! the stored checkpoint is the one it started from; so a task stopped anywhere resumes where
//! its last batch committed, and a rebuild (another process resetting the checkpoint to 0)
//! makes a running task's next batch fail and re-read from 0 instead of writing stale rows.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::aggregate::Aggregate;
use crate::engine::Dispatcher;
use crate::envelope::EventEnvelope;
use crate::error::Result;
use crate::projection::{ProjectionLag, Projector};
use crate::running::{RunningSubscription, SubscriptionKind};
use crate::status::{ProjectionStatus, SubscriptionStatus};
use crate::subscription::{ReplayReport, Subscription};
use crate::view::View;

/// The runtime under the name of what it runs: the same type as [`Projections`].
pub type Subscriptions = Projections;

#[derive(Clone)]
struct Entry {
    projection: Arc<dyn RunningSubscription>,
    wake: Arc<Notify>,
}

/// The asynchronous projections of a service. Cheap to clone; clones share the projections:
/// one added (or [wrapped](Self::wrap)) through a clone is seen by every other clone, so an
/// engine's set, the routes that report it and the runner that spawns it stay one set.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::Arc;
/// # use factum_core::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # struct Ping;
/// # impl Event for Ping { fn event_type(&self) -> &'static str { "Ping" } }
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # struct Pinger { id: String }
/// # impl Aggregate for Pinger {
/// #     const TYPE: &'static str = "pinger";
/// #     type Event = Ping;
/// #     type Error = CqrsError;
/// #     fn with_aggregate_id(id: String) -> Self { Self { id } }
/// #     fn aggregate_id(&self) -> &str { &self.id }
/// #     fn apply(&mut self, _: &Ping) {}
/// # }
/// # impl CommandHandler for Pinger {
/// #     type CreateCommand = (); type UpdateCommand = (); type Services = ();
/// #     async fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<Ping>, CqrsError> { Ok(vec![Ping]) }
/// #     async fn handle_update(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<Ping>, CqrsError> { Ok(vec![Ping]) }
/// # }
/// # #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
/// # struct PingCount { pings: u64 }
/// # impl View for PingCount {
/// #     const TYPE: &'static str = "ping_counts";
/// #     const KIND: ViewKind = ViewKind::PerAggregate;
/// #     type Aggregate = Pinger;
/// #     fn update(&self, _: &EventEnvelope<Ping>) -> Option<Self> { Some(Self { pings: self.pings + 1 }) }
/// # }
/// use std::time::Duration;
/// use factum_core::Projections;
///
/// let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
/// let projections = Projections::new().with(Projector::<PingCount>::for_store(store.clone()).unwrap());
/// // The engine wakes the projections after each commit.
/// let engine = CqrsCommandEngine::<Pinger>::builder(store.clone())
///     .dispatcher(projections.waker::<Pinger>())
///     .build()
///     .unwrap();
/// let tasks = projections.spawn(Duration::from_secs(1));
///
/// engine.create_with_id("p-1", &(), &CqrsContext::new()).await.unwrap();
/// while projections.statuses().await.unwrap()[0].behind > 0 {
///     tokio::time::sleep(Duration::from_millis(5)).await;
/// }
/// let record = store.as_view_store().unwrap().get_view("ping_counts", "p-1").await.unwrap();
/// assert_eq!(record.unwrap().decode::<PingCount>().unwrap(), PingCount { pings: 1 });
/// tasks.stop().await;
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Projections {
    /// Shared with the clones and with the wakers already handed out, so a subscription
    /// added after an engine was built is woken by its commits.
    entries: SharedEntries,
}

type SharedEntries = Arc<std::sync::RwLock<Vec<Entry>>>;

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.snapshot()
                    .iter()
                    .map(|e| e.projection.name().to_owned()),
            )
            .finish()
    }
}

impl Projections {
    /// No projections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a projection.
    #[must_use]
    pub fn with<V: View>(self, projector: Projector<V>) -> Self {
        self.with_running(Arc::new(projector))
    }

    /// Adds an event-handler subscription.
    #[must_use]
    pub fn with_subscription(self, subscription: Subscription) -> Self {
        self.with_running(Arc::new(subscription))
    }

    /// Adds a subscription of your own kind.
    #[must_use]
    pub fn with_running(self, projection: Arc<dyn RunningSubscription>) -> Self {
        let wake = Arc::new(Notify::new());
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Entry { projection, wake });
        self
    }

    /// Replaces each subscription by what `wrap` makes of it (a lease around it, say), in
    /// this value and its clones. Tasks already [spawned](Self::spawn) keep running the old
    /// ones: wrap before spawning.
    pub fn wrap(
        &self,
        mut wrap: impl FnMut(Arc<dyn RunningSubscription>) -> Arc<dyn RunningSubscription>,
    ) {
        for entry in self
            .entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            entry.projection = wrap(entry.projection.clone());
        }
    }

    /// The entries now (the lock is not held while they run).
    fn snapshot(&self) -> Vec<Entry> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The names of the view projections.
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|p| p.name().to_owned()).collect()
    }

    /// The view projections, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = Arc<dyn RunningSubscription>> {
        self.all()
            .filter(|p| p.kind() == SubscriptionKind::Projection)
    }

    /// Every subscription (projections and handlers), in the order they were added.
    pub fn all(&self) -> impl Iterator<Item = Arc<dyn RunningSubscription>> {
        self.snapshot().into_iter().map(|e| e.projection)
    }

    /// The names of every subscription.
    pub fn subscription_names(&self) -> Vec<String> {
        self.all().map(|p| p.name().to_owned()).collect()
    }

    /// How each subscription is doing.
    pub async fn subscription_statuses(&self) -> Result<Vec<SubscriptionStatus>> {
        let mut statuses = Vec::new();
        for subscription in self.all() {
            statuses.push(SubscriptionStatus::of(&*subscription).await?);
        }
        Ok(statuses)
    }

    /// Replays the parked events of the subscription named `name`, or `None` if there is
    /// none so named.
    pub async fn replay_parked(&self, name: &str) -> Result<Option<ReplayReport>> {
        match self.all().find(|p| p.name() == name) {
            Some(subscription) => Ok(Some(subscription.replay_parked().await?)),
            None => Ok(None),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// A dispatcher for an engine that wakes every subscription (those added later to this
    /// value or its clones too) after each commit, so they follow commands at once instead
    /// of at a poll interval.
    pub fn waker<A: Aggregate>(&self) -> Arc<dyn Dispatcher<A>> {
        Arc::new(Waker {
            entries: self.entries.clone(),
        })
    }

    /// Wakes every subscription now, as a commit of this process does (for wake-ups from
    /// elsewhere: another node's commit, seen through the store's notifications).
    pub fn wake(&self) {
        for entry in self.snapshot() {
            entry.wake.notify_one();
        }
    }

    /// Brings every projection up to the log's head, once. Returns the events read.
    pub async fn catch_up(&self) -> Result<u64> {
        let mut read = 0;
        for entry in self.snapshot() {
            read += entry.projection.catch_up().await?;
        }
        Ok(read)
    }

    /// Rebuilds every projection from position 0, one after the other: `progress` is called
    /// with the projection's name and lag after each batch. Returns each one's name and the
    /// number of events it read.
    ///
    /// Safe while a service runs them (see the module docs); for views kept *inline* by an
    /// engine it is not, as their records are also written by every command: rebuild those
    /// with the writers stopped.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(&str, ProjectionLag) + Send,
    ) -> Result<Vec<(String, u64)>> {
        let mut done = Vec::new();
        for projection in self.iter() {
            let name = projection.name().to_owned();
            let mut report = |lag: ProjectionLag| progress(&name, lag);
            let read = projection.rebuild(&mut report).await?;
            done.push((name, read));
        }
        Ok(done)
    }

    /// The names of the projections whose last rebuild started and did not finish. For
    /// views kept inline this means an incomplete view that nothing else will complete: a
    /// service should refuse to start on it until the rebuild is run again.
    pub async fn unfinished_rebuilds(&self) -> Result<Vec<String>> {
        let mut unfinished = Vec::new();
        for projection in self.iter() {
            if projection.rebuild_unfinished().await? {
                unfinished.push(projection.name().to_owned());
            }
        }
        Ok(unfinished)
    }

    /// How far behind the projection named `name` is, or `None` if there is none so named.
    pub async fn status(&self, name: &str) -> Result<Option<ProjectionStatus>> {
        match self.iter().find(|p| p.name() == name) {
            Some(projection) => Ok(Some(ProjectionStatus::of(&*projection).await?)),
            None => Ok(None),
        }
    }

    /// How far behind each projection is.
    pub async fn statuses(&self) -> Result<Vec<ProjectionStatus>> {
        let mut statuses = Vec::new();
        for projection in self.iter() {
            statuses.push(ProjectionStatus::of(&*projection).await?);
        }
        Ok(statuses)
    }

    /// Runs every projection in a task of its own until [`ProjectionTasks::stop`]: each
    /// catches up, then waits for a commit of this process (see [`waker`](Self::waker)) or
    /// `poll_interval` (for events other processes append), and catches up again. A failed
    /// batch is logged and retried after the interval.
    pub fn spawn(&self, poll_interval: Duration) -> ProjectionTasks {
        let (stop, stopped) = watch::channel(false);
        let handles = self
            .snapshot()
            .into_iter()
            .map(|entry| {
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let shutdown = async move {
                        // An error means the sender is gone: stop too.
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    follow(entry, poll_interval, shutdown).await;
                })
            })
            .collect();
        ProjectionTasks { stop, handles }
    }
}

async fn follow(entry: Entry, poll_interval: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let failed = tokio::select! {
            // Stopping mid-batch loses nothing: a batch commits with its checkpoint or not at
            // all, and a handler's event is handed over again (at least once).
            () = &mut shutdown => return,
            result = entry.projection.catch_up() => match result {
                Ok(_) => false,
                Err(error) => {
                    tracing::error!(subscription = entry.projection.name(), %error, "subscription failed; retrying");
                    true
                }
            },
        };
        if failed {
            // Whatever failed (a store, a broker) is given the interval, not hammered on
            // every commit.
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(poll_interval) => {}
            }
            continue;
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = entry.wake.notified() => {}
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
}

/// The tasks of [`Projections::spawn`].
#[derive(Debug)]
pub struct ProjectionTasks {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl ProjectionTasks {
    /// Stops the tasks and waits for them to end.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for handle in self.handles {
            if let Err(error) = handle.await {
                tracing::error!(%error, "a projection task panicked");
            }
        }
    }
}

struct Waker {
    entries: SharedEntries,
}

#[async_trait]
impl<A: Aggregate> Dispatcher<A> for Waker {
    fn name(&self) -> &str {
        "projection waker"
    }

    async fn dispatch(
        &self,
        _aggregate_id: &str,
        _events: &[EventEnvelope<A::Event>],
    ) -> Result<()> {
        for entry in self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            // Stores a permit when the task is busy, so a commit during a batch is not missed.
            entry.wake.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryEventStore;
    use crate::store::{EventStore, StoredEvent};
    use crate::subscription::{EventHandler, HandlerError};

    struct Ignore;

    #[async_trait]
    impl EventHandler for Ignore {
        async fn handle(&self, _: &StoredEvent) -> std::result::Result<(), HandlerError> {
            Ok(())
        }
    }

    /// Reports itself under another name, to see the wrapping.
    struct Renamed(Arc<dyn RunningSubscription>);

    #[async_trait]
    impl RunningSubscription for Renamed {
        fn name(&self) -> &str {
            "renamed"
        }
        fn kind(&self) -> SubscriptionKind {
            self.0.kind()
        }
        async fn lag(&self) -> Result<ProjectionLag> {
            self.0.lag().await
        }
        async fn catch_up(&self) -> Result<u64> {
            self.0.catch_up().await
        }
        async fn parked(&self) -> Result<Vec<crate::parked::ParkedEvent>> {
            self.0.parked().await
        }
        async fn rebuild(&self, p: &mut (dyn FnMut(ProjectionLag) + Send)) -> Result<u64> {
            self.0.rebuild(p).await
        }
        async fn rebuild_unfinished(&self) -> Result<bool> {
            self.0.rebuild_unfinished().await
        }
        async fn is_empty(&self) -> Result<bool> {
            self.0.is_empty().await
        }
    }

    #[test]
    fn clones_share_what_is_added_and_wrapped_later() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let subscription =
            |name: &str| Subscription::new(name, store.clone(), Arc::new(Ignore)).unwrap();
        let engine_s = Projections::new().with_subscription(subscription("first"));
        let runner_s = engine_s.clone().with_subscription(subscription("second"));
        assert_eq!(engine_s.subscription_names(), ["first", "second"]);
        runner_s.wrap(|inner| {
            if inner.name() == "second" {
                Arc::new(Renamed(inner))
            } else {
                inner
            }
        });
        assert_eq!(engine_s.subscription_names(), ["first", "renamed"]);
        assert!(
            engine_s.names().is_empty(),
            "handlers are no view projections"
        );
    }
}
