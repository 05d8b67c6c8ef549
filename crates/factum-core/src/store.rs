//! The narrow interface a storage backend implements.
//!
//! A backend stores serialized events and snapshots and enforces expected versions; it knows
//! nothing of aggregates, upcasting or retries, which live once in the engine.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use crate::envelope::{NewEvent, Snapshot, StoredEvent};
use crate::error::{Error, Result};
use crate::idempotency::IdempotencyRecord;
use crate::view::{ViewChange, ViewStore};

/// What an append expects of the stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No expectation.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream must be at exactly this version (0 is the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `current` (0 for none) satisfies the expectation.
    pub fn is_satisfied_by(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Exact(expected) => current == expected,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// One atomic append to one aggregate's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRequest {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The expectation on the stream's version before the append.
    pub expected: ExpectedVersion,
    /// The events, in order. They get versions `current + 1 ..`.
    pub events: Vec<NewEvent>,
    /// A snapshot to write in the same transaction. Its version must be that of the last
    /// appended event; it replaces an older stored snapshot, never a newer one.
    pub snapshot: Option<Snapshot>,
    /// Inline view record changes to write in the same transaction (stores without views
    /// refuse a request that has any).
    pub view_changes: Vec<ViewChange>,
    /// An idempotency record to write in the same transaction as the events: stored with
    /// them or not at all. If a live record of the same scope and key is stored already, the
    /// append fails with [`Error::IdempotencyKeyTaken`] and stores nothing (stores without
    /// idempotency support refuse a request that has one).
    pub idempotency: Option<IdempotencyRecord>,
}

impl AppendRequest {
    /// An append of `events` with no snapshot and no view changes.
    pub fn new(
        aggregate_type: impl Into<String>,
        aggregate_id: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            expected,
            events,
            snapshot: None,
            view_changes: Vec::new(),
            idempotency: None,
        }
    }
}

/// The event store interface every backend implements.
///
/// Rules every backend keeps (the conformance suite in `factum-testing` checks them):
/// - `append` is atomic: all its events and its snapshot are stored, or nothing is.
/// - A violated expectation is [`Error::Conflict`](crate::Error::Conflict), never a duplicate.
/// - An append whose first event id is already stored for that aggregate is a retry: if all
///   its event ids match the stored events at those versions it succeeds and returns them
///   without storing anything; otherwise it is a `Conflict`. An event id stored under another
///   aggregate is a `Conflict` too.
/// - Positions are assigned in commit order, 1, 2, 3, ..., without gaps, so `read_all` from a
///   checkpoint never misses an event.
/// - When `append` returns, the events are durable (for durable backends).
/// - An append's `view_changes` are written in the same transaction as its events.
/// - An append's `idempotency` record is written in the same transaction as its events; a
///   live record under the same scope and key makes the append fail with
///   [`Error::IdempotencyKeyTaken`] and store nothing (a retry of an append that went
///   through, recognised by its event ids, still succeeds). `(scope, key)` is unique across
///   every process sharing the store. An expired record counts as absent and is replaced.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one aggregate's stream, atomically, and returns them as stored.
    async fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>>;

    /// Reads one aggregate's events with version `>= from_version`, in version order, at
    /// most `limit` of them.
    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>>;

    /// Reads events of every aggregate with position `> after_position`, in position order,
    /// at most `limit` of them.
    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<StoredEvent>>;

    /// The current version of one aggregate's stream (0 when it has no events).
    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64>;

    /// The latest snapshot of an aggregate.
    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>>;

    /// Stores a snapshot unless a newer one is stored already.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()>;

    /// The position of the last stored event (0 when the store is empty).
    async fn head_position(&self) -> Result<u64>;

    /// The live idempotency record of `scope` and `key` at `now`, if any (see
    /// [`crate::idempotency`]).
    async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>> {
        let _ = (scope, key, now);
        Err(idempotency_unsupported())
    }

    /// Stores `record` unless a live record of its scope and key is stored already (live at
    /// `record.created_at`), and returns the record that holds now: `record` itself, or the
    /// one that was there first. For commands that store no events; one that does passes
    /// its record with its append instead.
    async fn remember_idempotency(&self, record: IdempotencyRecord) -> Result<IdempotencyRecord> {
        let _ = record;
        Err(idempotency_unsupported())
    }

    /// Deletes the idempotency records expired at `now`; returns how many.
    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64> {
        let _ = now;
        Err(idempotency_unsupported())
    }

    /// Checks that the store is reachable (for health endpoints).
    async fn health_check(&self) -> Result<()> {
        Ok(())
    }

    /// The same store as a [`ViewStore`], if it keeps views (and so can write inline view
    /// changes in the append's transaction).
    fn as_view_store(&self) -> Option<&dyn ViewStore> {
        None
    }

    /// The same store as a shared [`ViewStore`] handle, if it keeps views.
    fn into_view_store(self: Arc<Self>) -> Option<Arc<dyn ViewStore>> {
        None
    }
}

fn idempotency_unsupported() -> Error {
    Error::Validation("this event store keeps no idempotency records".to_owned())
}
