//! Keeping views up to date: the shared fold of events into record changes, used inline by
//! the engine and asynchronously by the [`Projector`].
//!
//! The projector follows `read_all` from its checkpoint. Each batch's record changes and its
//! new checkpoint are committed together, and the store accepts the batch only if the stored
//! checkpoint is still the one the batch started from. So a projector killed mid-way resumes
//! exactly where its last batch committed, two runners never apply a batch twice, and a
//! rebuild (which resets the checkpoint to 0) makes any runner still on the old checkpoint
//! re-read instead of writing stale records.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::aggregate::Aggregate;
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::parked::{ParkedEvent, is_event_fault};
use crate::store::EventStore;
use crate::store::StoredEvent;
use crate::upcast::Upcasters;
use crate::view::{
    ProjectionBatch, ProjectionCheckpoint, View, ViewChange, ViewQuery, ViewRecord, ViewStore,
};

/// How many times a projection tries an event before parking it, unless configured.
pub const DEFAULT_PROJECTION_ATTEMPTS: u32 = 5;

type EventOf<V> = <<V as View>::Aggregate as Aggregate>::Event;

/// Folds events into the record changes of view `V`. Records are read from `views` the first
/// time an id comes up, then kept in memory for the rest of the batch.
pub async fn view_changes<V: View>(
    views: &dyn ViewStore,
    events: &[EventEnvelope<EventOf<V>>],
) -> Result<Vec<ViewChange>> {
    // Per id: the aggregate, the version of the last event applied, and the record (None
    // while it does not exist).
    let mut touched: HashMap<String, (String, u64, Option<V>, bool)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for envelope in events {
        let view_id = V::view_id(envelope);
        if !touched.contains_key(&view_id) {
            let current = match views.get_view(V::TYPE, &view_id).await? {
                Some(record) => Some(record.decode::<V>()?),
                None => None,
            };
            touched.insert(
                view_id.clone(),
                (envelope.aggregate_id.clone(), 0, current, false),
            );
            order.push(view_id.clone());
        }
        if let Some((_, version, record, changed)) = touched.get_mut(&view_id) {
            let base = record.clone().unwrap_or_default();
            if let Some(updated) = base.update(envelope) {
                *record = (!updated.is_deleted()).then_some(updated);
                *version = envelope.version;
                *changed = true;
            }
        }
    }
    let mut changes = Vec::new();
    for view_id in order {
        let Some((aggregate_id, version, record, changed)) = touched.remove(&view_id) else {
            continue;
        };
        if !changed {
            continue;
        }
        changes.push(match record {
            Some(record) => {
                let data = serde_json::to_string(&record)
                    .map_err(|e| Error::serialization(format!("{} view record", V::TYPE), e))?;
                crate::json::check_value_reads_back(&record, &data).map_err(|mismatch| {
                    Error::unrepresentable(format!("{} view record {view_id:?}", V::TYPE), mismatch)
                })?;
                ViewChange::Upsert(ViewRecord {
                    view_type: V::TYPE.to_owned(),
                    view_id,
                    aggregate_id,
                    version,
                    data,
                })
            }
            None => ViewChange::Delete {
                view_type: V::TYPE.to_owned(),
                view_id,
            },
        });
    }
    Ok(changes)
}

/// A view the engine keeps up to date inside each command's append.
#[async_trait]
pub(crate) trait InlineView<A: Aggregate>: Send + Sync + 'static {
    async fn changes(
        &self,
        views: &dyn ViewStore,
        events: &[EventEnvelope<A::Event>],
    ) -> Result<Vec<ViewChange>>;
}

pub(crate) struct InlineViewOf<V>(PhantomData<fn() -> V>);

impl<V> InlineViewOf<V> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

#[async_trait]
impl<V: View> InlineView<V::Aggregate> for InlineViewOf<V> {
    async fn changes(
        &self,
        views: &dyn ViewStore,
        events: &[EventEnvelope<EventOf<V>>],
    ) -> Result<Vec<ViewChange>> {
        view_changes::<V>(views, events).await
    }
}

/// The prefix of the checkpoint that marks a projection's rebuild as under way (see
/// [`Projector::rebuild`]); no projection of a view may be named with it.
pub const REBUILD_MARKER_PREFIX: &str = "factum.rebuilding.";

/// How far a projection is behind the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionLag {
    /// The position of the last event the projection has applied.
    pub checkpoint: u64,
    /// The position of the last stored event.
    pub head: u64,
}

impl ProjectionLag {
    /// Events stored but not yet applied.
    pub fn behind(&self) -> u64 {
        self.head.saturating_sub(self.checkpoint)
    }
}

/// Runs view `V` as an asynchronous projection over `read_all`.
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
/// /// How many pings each pinger got.
/// #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
/// struct PingCount { pings: u64 }
/// impl View for PingCount {
///     const TYPE: &'static str = "ping_counts";
///     const KIND: ViewKind = ViewKind::PerAggregate;
///     type Aggregate = Pinger;
///     fn update(&self, _: &EventEnvelope<Ping>) -> Option<Self> {
///         Some(Self { pings: self.pings + 1 })
///     }
/// }
///
/// let store = Arc::new(InMemoryEventStore::new());
/// let engine = CqrsCommandEngine::<Pinger>::new(store.clone(), ());
/// engine.create_with_id("p-1", &(), &CqrsContext::new()).await.unwrap();
/// engine.update("p-1", &(), &CqrsContext::new()).await.unwrap();
///
/// let projector = Projector::<PingCount>::new(store.clone(), store.clone());
/// projector.catch_up(|_| {}).await.unwrap();
/// let record = store.get_view("ping_counts", "p-1").await.unwrap().unwrap();
/// assert_eq!(record.decode::<PingCount>().unwrap(), PingCount { pings: 2 });
/// assert_eq!(projector.lag().await.unwrap().behind(), 0);
/// # });
/// ```
pub struct Projector<V: View> {
    events: Arc<dyn EventStore>,
    views: Arc<dyn ViewStore>,
    name: String,
    upcasters: Upcasters,
    batch_size: usize,
    max_attempts: u32,
    /// The position of the event that failed last and how many times in a row.
    failing: Mutex<Option<(u64, u32)>>,
    _view: PhantomData<fn() -> V>,
}

impl<V: View> Projector<V> {
    /// A projector named after the view, reading 500 events per batch.
    pub fn new(events: Arc<dyn EventStore>, views: Arc<dyn ViewStore>) -> Self {
        Self {
            events,
            views,
            name: V::TYPE.to_owned(),
            upcasters: Upcasters::new(),
            batch_size: 500,
            max_attempts: DEFAULT_PROJECTION_ATTEMPTS,
            failing: Mutex::new(None),
            _view: PhantomData,
        }
    }

    /// A projector over a store that keeps both events and views.
    pub fn for_store(store: Arc<dyn EventStore>) -> Result<Self> {
        let views = store.clone().into_view_store().ok_or_else(|| {
            Error::Validation(format!(
                "projection {} needs a store that keeps views",
                V::TYPE
            ))
        })?;
        Ok(Self::new(store, views))
    }

    crate::setters! {
        /// Sets the number of events read per batch (at least 1).
        pub fn with_batch_size(batch_size: usize) => batch_size = batch_size.max(1);
        /// Sets how many times an event that cannot be applied is tried before it is parked (at
        /// least 1; 5 by default).
        pub fn with_max_attempts(max_attempts: u32) => max_attempts = max_attempts.max(1);
    }

    /// The events this projection has parked.
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>> {
        self.views.parked_events(&self.name).await
    }

    /// Sets the upcasters applied to events before the view sees them.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// The projection's name (its checkpoint key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the view holds no record at all: for a view kept inline over a store that
    /// has events, a sign that it was never built (the store was written before it existed).
    pub async fn is_empty(&self) -> Result<bool> {
        let one = ViewQuery {
            page_size: 1,
            ..ViewQuery::default()
        };
        let page = self.views.query_views(V::TYPE, &one, V::fields()).await?;
        Ok(page.total == 0)
    }

    /// The checkpoint and the log's head.
    pub async fn lag(&self) -> Result<ProjectionLag> {
        Ok(ProjectionLag {
            checkpoint: self.views.projection_checkpoint(&self.name).await?.position,
            head: self.events.head_position().await?,
        })
    }

    /// Applies one batch. Returns how many events it read (0 when caught up).
    ///
    /// When the batch fails because of its events (see [`is_event_fault`]), its events are
    /// applied one at a time up to the one at fault; that one is tried again on each call,
    /// and parked after [`Projector::with_max_attempts`] failures in a row so the projection
    /// goes on.
    pub async fn run_once(&self) -> Result<usize> {
        let checkpoint = self.views.projection_checkpoint(&self.name).await?;
        let stored = self
            .events
            .read_all(checkpoint.position, self.batch_size)
            .await?;
        let Some(last) = stored.last() else {
            return Ok(0);
        };
        let last_position = last.position;
        let changes = match self.changes_for(&stored).await {
            Ok(changes) => changes,
            Err(error) if is_event_fault(&error) => {
                tracing::debug!(projection = %self.name, %error, "batch failed; applying its events one at a time");
                return self.one_at_a_time(checkpoint, &stored).await;
            }
            Err(error) => return Err(error),
        };
        self.views
            .apply_projection(ProjectionBatch {
                projection: self.name.clone(),
                expected: checkpoint,
                checkpoint: last_position,
                changes,
            })
            .await?;
        Ok(stored.len())
    }

    async fn changes_for(&self, stored: &[StoredEvent]) -> Result<Vec<ViewChange>> {
        let mut envelopes = Vec::new();
        for event in stored {
            if event.aggregate_type == <V::Aggregate as Aggregate>::TYPE {
                envelopes.push(self.upcasters.decode::<EventOf<V>>(event)?);
            }
        }
        view_changes::<V>(&*self.views, &envelopes).await
    }

    async fn one_at_a_time(
        &self,
        mut expected: ProjectionCheckpoint,
        stored: &[StoredEvent],
    ) -> Result<usize> {
        for (applied, event) in stored.iter().enumerate() {
            match self.changes_for(std::slice::from_ref(event)).await {
                Ok(changes) => {
                    self.views
                        .apply_projection(ProjectionBatch {
                            projection: self.name.clone(),
                            expected,
                            checkpoint: event.position,
                            changes,
                        })
                        .await?;
                }
                Err(fault) if is_event_fault(&fault) => {
                    let attempts = self.note_failure(event.position);
                    if attempts < self.max_attempts {
                        tracing::warn!(projection = %self.name, position = event.position, attempts, error = %fault, "projection cannot apply an event; will retry");
                        return if applied == 0 {
                            Err(fault)
                        } else {
                            Ok(applied)
                        };
                    }
                    let parked = ParkedEvent::of(&self.name, event, fault.to_string(), attempts);
                    self.views.park_event(expected, parked).await?;
                    tracing::error!(projection = %self.name, position = event.position, event_id = %event.event_id, attempts, error = %fault, "projection parked an event it cannot apply");
                }
                Err(other) => return Err(other),
            }
            expected.position = event.position;
        }
        Ok(stored.len())
    }

    /// Counts a failure of the event at `position`; returns how many in a row.
    fn note_failure(&self, position: u64) -> u32 {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        let attempts = match *failing {
            Some((at, attempts)) if at == position => attempts.saturating_add(1),
            _ => 1,
        };
        *failing = Some((position, attempts));
        attempts
    }

    /// Applies batches until the log's head at the time of each read is reached; `progress`
    /// is called after each batch. Returns the number of events read.
    pub async fn catch_up(&self, mut progress: impl FnMut(ProjectionLag) + Send) -> Result<u64> {
        let mut read = 0u64;
        loop {
            match self.run_once().await {
                Ok(0) => return Ok(read),
                Ok(n) => {
                    read += n as u64;
                    progress(self.lag().await?);
                }
                // Another runner moved the checkpoint: read again from the stored one.
                Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                // An event at fault: tried again until it is parked.
                Err(error) if is_event_fault(&error) => tokio::task::yield_now().await,
                Err(error) => return Err(error),
            }
        }
    }

    /// Deletes the view's records, resets the checkpoint to 0 and replays the whole log.
    /// Safe while the service runs: a runner still on the old checkpoint has its next batch
    /// refused and re-reads from 0.
    ///
    /// A durable marker is set before the reset and cleared after the last batch, so a
    /// rebuild that was killed midway is known afterwards ([`rebuild_unfinished`]): that
    /// matters for a view kept inline, which nothing else ever completes. Running the
    /// rebuild again redoes it from the start and clears the marker.
    ///
    /// [`rebuild_unfinished`]: Self::rebuild_unfinished
    pub async fn rebuild(&self, progress: impl FnMut(ProjectionLag) + Send) -> Result<u64> {
        self.set_rebuild_marker(true).await?;
        self.views.reset_projection(&self.name, &[V::TYPE]).await?;
        let read = self.catch_up(progress).await?;
        self.set_rebuild_marker(false).await?;
        Ok(read)
    }

    /// Whether a [`rebuild`](Self::rebuild) of this projection started and did not finish
    /// (the process was killed or the store failed midway): the view is incomplete until
    /// it is rebuilt again.
    pub async fn rebuild_unfinished(&self) -> Result<bool> {
        let marker = self
            .views
            .projection_checkpoint(&self.rebuild_marker())
            .await?;
        Ok(marker.position != 0)
    }

    /// The marker is a checkpoint of its own (position 1 while a rebuild runs, 0 otherwise):
    /// every view store keeps checkpoints durably and moves them by compare-and-set.
    fn rebuild_marker(&self) -> String {
        format!("{REBUILD_MARKER_PREFIX}{}", self.name)
    }

    async fn set_rebuild_marker(&self, running: bool) -> Result<()> {
        let projection = self.rebuild_marker();
        let expected = self.views.projection_checkpoint(&projection).await?;
        self.views
            .apply_projection(ProjectionBatch {
                projection,
                expected,
                checkpoint: u64::from(running),
                changes: Vec::new(),
            })
            .await
    }

    /// Follows the log until `shutdown` completes, polling every `poll_interval` when caught
    /// up. Failures are logged and retried after the interval.
    pub async fn run(
        &self,
        poll_interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        loop {
            let caught_up = match self.run_once().await {
                Ok(0) => true,
                Ok(_) | Err(Error::Conflict { .. }) => false,
                Err(error) => {
                    tracing::error!(projection = %self.name, %error, "projection batch failed; retrying");
                    true
                }
            };
            if caught_up {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(poll_interval) => {}
                }
            } else if futures_ready(&mut shutdown) {
                return;
            }
        }
    }
}

/// Whether a pinned future is already complete, without waiting for it.
fn futures_ready<F: std::future::Future<Output = ()>>(future: &mut std::pin::Pin<&mut F>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    future.as_mut().poll(&mut cx).is_ready()
}
