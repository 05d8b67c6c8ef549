//! Events and snapshots as a backend stores them: serialized, with their JSON as text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::Metadata;

/// A serialized event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event's unique id. Re-appending the same ids is idempotent.
    pub event_id: Uuid,
    /// The stable event type name.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload as JSON text.
    pub payload: String,
    /// Who caused it and in which request: a [`Metadata`] as JSON text (the events of one
    /// command share it, so it is serialized once per command).
    pub metadata: String,
    /// When it was recorded (from the context's clock).
    pub recorded_at: DateTime<Utc>,
}

/// A serialized event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Store-wide position: grows strictly in feed order (1, 2, 3, ... in memory and SQLite;
    /// not dense on PostgreSQL, where it follows the committing transaction).
    pub position: u64,
    /// The event's unique id.
    pub event_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The version within the aggregate: 1, 2, 3, ...
    pub version: u64,
    /// The stable event type name.
    pub event_type: String,
    /// The payload's schema version as stored.
    pub schema_version: u32,
    /// The payload as JSON text.
    pub payload: String,
    /// Who caused it and in which request: a [`Metadata`] as JSON text, parsed only when an
    /// envelope is decoded (loading an aggregate never needs it).
    pub metadata: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// Which event this is, in its stream.
    pub fn reference(&self) -> EventRef {
        EventRef {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            version: self.version,
            event_type: self.event_type.clone(),
        }
    }

    /// Parses the metadata.
    pub fn parse_metadata(&self) -> crate::Result<Metadata> {
        crate::json::from_str(&self.metadata).map_err(|e| {
            crate::Error::serialization(format!("metadata of event {}", self.event_id), e)
        })
    }
}

/// Which stored event, in its stream: what a parked event and a feed envelope say of their
/// event beside its position (flattened: in JSON these are their own top-level fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    /// The event's id.
    pub event_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The version within the aggregate.
    pub version: u64,
    /// The event type.
    pub event_type: String,
}

/// The serialized state of an aggregate at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The version of the last event folded into `state`.
    pub version: u64,
    /// The state as JSON text.
    pub state: String,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
}
