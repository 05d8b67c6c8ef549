//! [`AppendRequest`]: one atomic append to one aggregate's stream.

use crate::idempotency::IdempotencyRecord;
use crate::view::ViewChange;

use super::expected::ExpectedVersion;
use super::record::{NewEvent, Snapshot};

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
    /// append fails with [`Error::IdempotencyKeyTaken`](crate::Error::IdempotencyKeyTaken) and stores nothing (stores without
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
