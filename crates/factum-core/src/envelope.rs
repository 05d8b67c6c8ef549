//! [`EventEnvelope`]: a stored event decoded for callers (its payload typed, its metadata
//! parsed). The serialized forms a backend stores are in [`crate::store`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::Metadata;

/// A typed event with everything the store knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope<E> {
    /// The event's unique id.
    pub event_id: Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The version within the aggregate.
    pub version: u64,
    /// The store-wide position.
    pub position: u64,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// The stable event type name.
    pub event_type: String,
    /// Who caused it and in which request.
    pub metadata: Metadata,
    /// The event, upcast to the current schema.
    pub payload: E,
}
