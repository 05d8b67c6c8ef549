//! The [`EventStore`] trait: the narrow interface a storage backend implements.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::idempotency::IdempotencyRecord;
use crate::view::ViewStore;

use super::record::{Snapshot, StoredEvent};
use super::request::AppendRequest;

/// The event store interface every backend implements.
///
/// Rules every backend keeps (the conformance suite in `factum-testing` checks them):
/// - `append` is atomic: all its events and its snapshot are stored, or nothing is.
/// - A violated expectation is [`Error::Conflict`](crate::Error::Conflict), never a duplicate.
/// - An append whose first event id is already stored for that aggregate is a retry: if all
///   its event ids match the stored events at those versions it succeeds and returns them
///   without storing anything; otherwise it is a `Conflict`. An event id stored under another
///   aggregate is a `Conflict` too.
/// - Positions grow strictly along the store-wide feed, and no event ever becomes visible at
///   a position below one `read_all` has already returned, so `read_all` from a checkpoint
///   never misses an event. Positions may have gaps (PostgreSQL derives them from
///   transaction ids); the in-memory and SQLite stores number 1, 2, 3, ... in commit order.
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

    /// The stream's current version when the store knows it without any I/O, because every
    /// write to its data goes through this very value (the in-memory store; a SQLite file
    /// this process holds exclusively); `None` when it would take a read. Never a version
    /// older than that of an append that has returned. Lets a read of the current state be
    /// answered from the engine's cache without touching the store.
    fn known_stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Option<u64> {
        let _ = (aggregate_type, aggregate_id);
        None
    }

    /// The latest snapshot of an aggregate.
    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>>;

    /// Stores a snapshot unless a newer one is stored already.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()>;

    /// The position of the last event `read_all` shows (0 when the store is empty).
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
