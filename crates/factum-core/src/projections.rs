//! The projection runtime: [`Projections`] holds a service's asynchronous [`Projector`]s,
//! runs each in a task that follows the event log ([`Projections::spawn`]), wakes them as
//! soon as a command commits (through the [`Dispatcher`] of [`Projections::waker`], given to
//! the engine, with a poll as the fallback for events appended by other processes), reports
//! how far behind each is ([`ProjectionStatus`]), and rebuilds them.
//!
//! Every batch a projector applies commits its records with its checkpoint, refused unless
//! the stored checkpoint is the one it started from; so a task stopped anywhere resumes where
//! its last batch committed, and a rebuild (another process resetting the checkpoint to 0)
//! makes a running task's next batch fail and re-read from 0 instead of writing stale rows.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::aggregate::Aggregate;
use crate::engine::Dispatcher;
use crate::envelope::EventEnvelope;
use crate::error::Result;
use crate::parked::ParkedEvent;
use crate::projection::{ProjectionLag, Projector};
use crate::view::View;

/// A projection as the service sees it: a name, a lag, and a way to catch up.
#[async_trait]
pub trait RunningProjection: Send + Sync + 'static {
    /// The projection's name (its checkpoint key).
    fn name(&self) -> &str;

    /// Its checkpoint and the log's head.
    async fn lag(&self) -> Result<ProjectionLag>;

    /// Applies batches until it reaches the head; returns the number of events read.
    async fn catch_up(&self) -> Result<u64>;

    /// The events it has parked (could not apply after its attempts), by position.
    async fn parked(&self) -> Result<Vec<ParkedEvent>>;

    /// Deletes the records, resets the checkpoint to 0 and replays the whole log, calling
    /// `progress` after each batch; returns the number of events read.
    async fn rebuild(&self, progress: &mut (dyn FnMut(ProjectionLag) + Send)) -> Result<u64>;

    /// Whether a rebuild started and did not finish (see [`Projector::rebuild`]).
    async fn rebuild_unfinished(&self) -> Result<bool>;

    /// Whether its view holds no record at all (see [`Projector::is_empty`]).
    async fn is_empty(&self) -> Result<bool>;
}

#[async_trait]
impl<V: View> RunningProjection for Projector<V> {
    fn name(&self) -> &str {
        Projector::name(self)
    }

    async fn lag(&self) -> Result<ProjectionLag> {
        Projector::lag(self).await
    }

    async fn catch_up(&self) -> Result<u64> {
        Projector::catch_up(self, |_| {}).await
    }

    async fn parked(&self) -> Result<Vec<ParkedEvent>> {
        Projector::parked(self).await
    }

    async fn rebuild(&self, progress: &mut (dyn FnMut(ProjectionLag) + Send)) -> Result<u64> {
        Projector::rebuild(self, &mut *progress).await
    }

    async fn rebuild_unfinished(&self) -> Result<bool> {
        Projector::rebuild_unfinished(self).await
    }

    async fn is_empty(&self) -> Result<bool> {
        Projector::is_empty(self).await
    }
}

/// How far one projection is behind: the body of `GET /projections/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// The position of the last event it has applied.
    pub checkpoint: u64,
    /// The position of the last stored event.
    pub head: u64,
    /// Events stored but not applied yet.
    pub behind: u64,
    /// How many events it parked: events it could not apply after its attempts, set aside
    /// so that it goes on (they need a fix and a rebuild).
    #[serde(default)]
    pub parked: u64,
    /// The parked events, by position.
    #[serde(default)]
    pub parked_events: Vec<ParkedEntry>,
}

/// An event a projection parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEntry {
    /// The event's global position.
    pub position: u64,
    /// The event's id.
    pub event_id: String,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The event's aggregate version.
    pub version: u64,
    /// The event type.
    pub event_type: String,
    /// Why it could not be applied.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
}

impl From<ParkedEvent> for ParkedEntry {
    fn from(parked: ParkedEvent) -> Self {
        Self {
            position: parked.position,
            event_id: parked.event_id.to_string(),
            aggregate_type: parked.aggregate_type,
            aggregate_id: parked.aggregate_id,
            version: parked.version,
            event_type: parked.event_type,
            error: parked.error,
            attempts: parked.attempts,
            parked_at: parked.parked_at.to_rfc3339(),
        }
    }
}

impl ProjectionStatus {
    /// The status of `projection` now.
    pub async fn of(projection: &dyn RunningProjection) -> Result<Self> {
        let lag = projection.lag().await?;
        let parked: Vec<ParkedEntry> = projection
            .parked()
            .await?
            .into_iter()
            .map(ParkedEntry::from)
            .collect();
        Ok(Self {
            name: projection.name().to_owned(),
            checkpoint: lag.checkpoint,
            head: lag.head,
            behind: lag.behind(),
            parked: parked.len() as u64,
            parked_events: parked,
        })
    }
}

#[derive(Clone)]
struct Entry {
    projection: Arc<dyn RunningProjection>,
    wake: Arc<Notify>,
}

/// The asynchronous projections of a service. Cheap to clone; clones share the projections.
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
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.projection.name()))
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

    /// Adds a projection of your own kind.
    #[must_use]
    pub fn with_running(mut self, projection: Arc<dyn RunningProjection>) -> Self {
        self.entries.push(Entry {
            projection,
            wake: Arc::new(Notify::new()),
        });
        self
    }

    /// The names of the projections.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.projection.name()).collect()
    }

    /// The projections, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn RunningProjection>> {
        self.entries.iter().map(|e| &e.projection)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A dispatcher for an engine that wakes every projection (added so far) after each
    /// commit, so views follow commands within a batch instead of a poll interval.
    pub fn waker<A: Aggregate>(&self) -> Arc<dyn Dispatcher<A>> {
        Arc::new(Waker {
            wakes: self.entries.iter().map(|e| e.wake.clone()).collect(),
        })
    }

    /// Brings every projection up to the log's head, once. Returns the events read.
    pub async fn catch_up(&self) -> Result<u64> {
        let mut read = 0;
        for entry in &self.entries {
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
        let mut done = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let projection = &entry.projection;
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
        for entry in &self.entries {
            if entry.projection.rebuild_unfinished().await? {
                unfinished.push(entry.projection.name().to_owned());
            }
        }
        Ok(unfinished)
    }

    /// How far behind the projection named `name` is, or `None` if there is none so named.
    pub async fn status(&self, name: &str) -> Result<Option<ProjectionStatus>> {
        match self.iter().find(|p| p.name() == name) {
            Some(projection) => Ok(Some(ProjectionStatus::of(&**projection).await?)),
            None => Ok(None),
        }
    }

    /// How far behind each projection is.
    pub async fn statuses(&self) -> Result<Vec<ProjectionStatus>> {
        let mut statuses = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            statuses.push(ProjectionStatus::of(&*entry.projection).await?);
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
            .entries
            .iter()
            .cloned()
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
        tokio::select! {
            // Stopping mid-batch loses nothing: a batch commits with its checkpoint or not at all.
            () = &mut shutdown => return,
            result = entry.projection.catch_up() => {
                if let Err(error) = result {
                    tracing::error!(projection = entry.projection.name(), %error, "projection failed; retrying");
                }
            }
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
    wakes: Vec<Arc<Notify>>,
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
        for wake in &self.wakes {
            // Stores a permit when the task is busy, so a commit during a batch is not missed.
            wake.notify_one();
        }
        Ok(())
    }
}
