//! Durable subscriptions: a named [`EventHandler`] that follows `read_all` from a checkpoint
//! kept in the same store as the events (beside the projections' checkpoints), at least once.
//!
//! Each event that passes the [`SubscriptionFilter`] is handed to the handler; the checkpoint
//! moves past it only after the handler returned. A crash between the two hands the event
//! over again after the restart (at least once: handlers are idempotent, or deduplicate by
//! event id). A handler that fails with [`HandlerError::Event`] is tried again with
//! [`Backoff`]; after [`Subscription::with_max_attempts`] attempts the event is **parked** (kept
//! durably with its error, in the same write that moves the checkpoint past it) and the
//! subscription goes on, so one poison event never stops it. [`HandlerError::Unavailable`]
//! (a broker or a database that is down) is never parked: the batch stops there and is read
//! again later. Parked events are listed with [`Subscription::parked`] and handed over again
//! with [`Subscription::replay_parked`] once the fault is fixed.
//!
//! A subscription is run by the same runtime as the view projections
//! ([`Subscriptions`](crate::Subscriptions)): one task each, woken by commits.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::parked::{ParkedEvent, is_event_fault};
use crate::projection::{DEFAULT_PROJECTION_ATTEMPTS, ProjectionLag};
use crate::store::{EventStore, StoredEvent};
use crate::view::{ProjectionBatch, ProjectionCheckpoint, ViewStore};

/// Why a handler could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// A fault of this event (it does not decode, a rule refuses it, a bug in the handler):
    /// tried again with backoff, then parked so that the subscription goes on.
    #[error("{0}")]
    Event(String),
    /// Something the handler needs is down (a broker, a database): the event is not parked;
    /// the subscription stops before it and tries again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<Error> for HandlerError {
    /// Faults of the event are [`HandlerError::Event`], faults of a store are
    /// [`HandlerError::Unavailable`] (see [`is_event_fault`]).
    fn from(error: Error) -> Self {
        if is_event_fault(&error) {
            Self::Event(error.to_string())
        } else {
            Self::Unavailable(error.to_string())
        }
    }
}

/// What a subscription does with each event.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event. May be called again for an event it handled already (after a
    /// crash before the checkpoint moved, or a replay).
    async fn handle(&self, event: &StoredEvent) -> std::result::Result<(), HandlerError>;
}

/// Which events a subscription is handed; the others move its checkpoint silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    /// Only these aggregate types (all when empty).
    pub aggregate_types: Vec<String>,
    /// Only these event types (all when empty).
    pub event_types: Vec<String>,
}

impl SubscriptionFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        let any_or =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any_or(&self.aggregate_types, &event.aggregate_type)
            && any_or(&self.event_types, &event.event_type)
    }
}

/// Where a subscription that has no checkpoint yet starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// From the first event ever stored.
    #[default]
    Beginning,
    /// After the last event stored when it first runs.
    Now,
}

/// How long to wait before trying a failed event again: `initial`, doubled each attempt,
/// at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The outcome of [`Subscription::replay_parked`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Parked events handled now (and so forgotten).
    pub handled: Vec<u64>,
    /// Parked events that failed again (still parked), with the error.
    pub failed: Vec<(u64, String)>,
}

/// The checkpoint key that marks a subscription started with [`StartFrom::Now`] as placed.
const STARTED_MARKER_PREFIX: &str = "factum.started.";

/// A named handler following the log. See the module docs.
pub struct Subscription {
    name: String,
    events: Arc<dyn EventStore>,
    checkpoints: Arc<dyn ViewStore>,
    handler: Arc<dyn EventHandler>,
    filter: SubscriptionFilter,
    start: StartFrom,
    batch_size: usize,
    max_attempts: u32,
    backoff: Backoff,
    retries: AtomicU64,
    /// One replay at a time in this process, so a replay hands each parked event over once.
    replaying: tokio::sync::Mutex<()>,
    /// The last error a handler returned, for status reports.
    last_error: Mutex<Option<String>>,
}

crate::debug_fields! { Subscription { name, filter, start, .. } }

impl Subscription {
    /// A subscription named `name` (its checkpoint key, shared with projections' names) over
    /// a store that keeps views (and so checkpoints and parked events).
    pub fn new(
        name: impl Into<String>,
        store: Arc<dyn EventStore>,
        handler: Arc<dyn EventHandler>,
    ) -> Result<Self> {
        let name = name.into();
        let checkpoints = store.clone().into_view_store().ok_or_else(|| {
            Error::Validation(format!(
                "subscription {name} needs a store that keeps checkpoints"
            ))
        })?;
        Ok(Self::with_checkpoints(name, store, checkpoints, handler))
    }

    /// A subscription that keeps its checkpoint in `checkpoints`.
    pub fn with_checkpoints(
        name: impl Into<String>,
        events: Arc<dyn EventStore>,
        checkpoints: Arc<dyn ViewStore>,
        handler: Arc<dyn EventHandler>,
    ) -> Self {
        Self {
            name: name.into(),
            events,
            checkpoints,
            handler,
            filter: SubscriptionFilter::default(),
            start: StartFrom::Beginning,
            batch_size: 100,
            max_attempts: DEFAULT_PROJECTION_ATTEMPTS,
            backoff: Backoff::default(),
            retries: AtomicU64::new(0),
            replaying: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
        }
    }

    crate::setters! {
        /// Hands over only events that pass `filter`.
        pub fn with_filter(filter: SubscriptionFilter) => filter = filter;
        /// Where to start when there is no checkpoint yet.
        pub fn starting_from(start: StartFrom) => start = start;
        /// Events read per batch (at least 1; 100 by default).
        pub fn with_batch_size(batch_size: usize) => batch_size = batch_size.max(1);
        /// How many times an event is tried before it is parked (at least 1; 5 by default).
        pub fn with_max_attempts(max_attempts: u32) => max_attempts = max_attempts.max(1);
        /// The waits between attempts.
        pub fn with_backoff(backoff: Backoff) => backoff = backoff;
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Failed attempts that were tried again, since this value was made.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The last error its handler returned, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The checkpoint and the log's head.
    pub async fn lag(&self) -> Result<ProjectionLag> {
        Ok(ProjectionLag {
            checkpoint: self
                .checkpoints
                .projection_checkpoint(&self.name)
                .await?
                .position,
            head: self.events.head_position().await?,
        })
    }

    /// The events it parked, by position.
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>> {
        self.checkpoints.parked_events(&self.name).await
    }

    /// Handles one batch; returns how many events it read (0 when caught up).
    ///
    /// Fails with [`Error::Unavailable`] when the handler is, after moving the checkpoint
    /// past the events it handled; with [`Error::Conflict`] when another runner moved the
    /// checkpoint (nothing to do: read again).
    pub async fn run_once(&self) -> Result<usize> {
        let mut checkpoint = self.placed_checkpoint().await?;
        let stored = self
            .events
            .read_all(checkpoint.position, self.batch_size)
            .await?;
        let mut handled_to = checkpoint.position;
        for event in &stored {
            if self.filter.matches(event) {
                match self.handle_with_retries(event).await {
                    Ok(()) => {}
                    Err(HandlerError::Event(error)) => {
                        self.park(checkpoint, event, error).await?;
                        checkpoint.position = event.position;
                    }
                    Err(HandlerError::Unavailable(error)) => {
                        self.move_checkpoint(checkpoint, handled_to).await?;
                        return Err(Error::Unavailable(format!(
                            "subscription {}: {error}",
                            self.name
                        )));
                    }
                }
            }
            handled_to = event.position;
        }
        self.move_checkpoint(checkpoint, handled_to).await?;
        Ok(stored.len())
    }

    /// Handles batches until the head at the time of each read; returns the events read.
    pub async fn catch_up(&self) -> Result<u64> {
        let mut read = 0u64;
        loop {
            match self.run_once().await {
                Ok(0) => return Ok(read),
                Ok(n) => read += n as u64,
                Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                Err(error) => return Err(error),
            }
        }
    }

    /// Hands each parked event over again (with the same attempts and backoff); those handled
    /// are forgotten, those that fail again stay parked with their first error.
    pub async fn replay_parked(&self) -> Result<ReplayReport> {
        let _one_at_a_time = self.replaying.lock().await;
        let mut report = ReplayReport::default();
        for parked in self.parked().await? {
            let event = self
                .events
                .read_all(parked.position.saturating_sub(1), 1)
                .await?
                .into_iter()
                .next()
                .filter(|e| e.event_id == parked.event.event_id)
                .ok_or_else(|| {
                    Error::Validation(format!(
                        "parked event {} is not at position {}",
                        parked.event.event_id, parked.position
                    ))
                })?;
            match self.handle_with_retries(&event).await {
                Ok(()) => {
                    if self
                        .checkpoints
                        .unpark_event(&self.name, parked.position)
                        .await?
                    {
                        report.handled.push(parked.position);
                    }
                }
                Err(HandlerError::Unavailable(error)) => {
                    return Err(Error::Unavailable(format!(
                        "subscription {}: {error}",
                        self.name
                    )));
                }
                Err(HandlerError::Event(error)) => report.failed.push((parked.position, error)),
            }
        }
        Ok(report)
    }

    /// The stored checkpoint; for a subscription starting from now that has never run, the
    /// head, stored first (with a marker, so an empty log's 0 is not taken for "never ran").
    async fn placed_checkpoint(&self) -> Result<ProjectionCheckpoint> {
        let checkpoint = self.checkpoints.projection_checkpoint(&self.name).await?;
        if self.start == StartFrom::Beginning || checkpoint.position != 0 {
            return Ok(checkpoint);
        }
        let marker = format!("{STARTED_MARKER_PREFIX}{}", self.name);
        let placed = self.checkpoints.projection_checkpoint(&marker).await?;
        if placed.position != 0 {
            return Ok(checkpoint);
        }
        let head = self.events.head_position().await?;
        self.move_checkpoint(checkpoint, head).await?;
        self.checkpoints
            .apply_projection(ProjectionBatch {
                projection: marker,
                expected: placed,
                checkpoint: 1,
                changes: Vec::new(),
            })
            .await?;
        Ok(ProjectionCheckpoint {
            position: head,
            generation: checkpoint.generation,
        })
    }

    async fn move_checkpoint(&self, expected: ProjectionCheckpoint, to: u64) -> Result<()> {
        if to == expected.position {
            return Ok(());
        }
        self.checkpoints
            .apply_projection(ProjectionBatch {
                projection: self.name.clone(),
                expected,
                checkpoint: to,
                changes: Vec::new(),
            })
            .await
    }

    async fn handle_with_retries(
        &self,
        event: &StoredEvent,
    ) -> std::result::Result<(), HandlerError> {
        let mut attempt = 1;
        loop {
            let error = match self.handler.handle(event).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
            if matches!(error, HandlerError::Unavailable(_)) || attempt >= self.max_attempts {
                return Err(error);
            }
            tracing::warn!(subscription = %self.name, position = event.position, attempt, %error, "handler failed; trying again");
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn park(
        &self,
        expected: ProjectionCheckpoint,
        event: &StoredEvent,
        error: String,
    ) -> Result<()> {
        tracing::error!(subscription = %self.name, position = event.position, event_id = %event.event_id, attempts = self.max_attempts, %error, "subscription parked an event");
        self.checkpoints
            .park_event(
                expected,
                ParkedEvent::of(&self.name, event, error, self.max_attempts),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        let waits: Vec<u128> = (1..=5).map(|a| backoff.delay(a).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 50, 50]);
        assert_eq!(backoff.delay(200), Duration::from_millis(50));
    }

    #[test]
    fn errors_of_events_park_errors_of_stores_do_not() {
        let event = HandlerError::from(Error::Validation("bad".into()));
        assert!(matches!(event, HandlerError::Event(_)));
        let store = HandlerError::from(Error::Unavailable("down".into()));
        assert!(matches!(store, HandlerError::Unavailable(_)));
    }
}
