//! Parked events: an event an asynchronous projection could not apply after its attempts is
//! set aside, recorded durably with the view store (in the same transaction that moves the
//! checkpoint past it), reported, and the projection goes on with the next event.
//!
//! Parking is for faults of one event (it does not decode, the view cannot fold it, the
//! record it makes would not read back), never for a store that is down: those are retried
//! until the store answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::store::EventRef;
use crate::store::StoredEvent;

/// An event a projection set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEvent {
    /// The projection that parked it.
    pub projection: String,
    /// The event's global position.
    pub position: u64,
    /// The event.
    #[serde(flatten)]
    pub event: EventRef,
    /// Why it could not be applied (the last attempt's error).
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

impl ParkedEvent {
    /// `event` as parked now by `projection` after `attempts` that ended with `error`.
    pub fn of(projection: &str, event: &StoredEvent, error: String, attempts: u32) -> Self {
        Self {
            projection: projection.to_owned(),
            position: event.position,
            event: event.reference(),
            error,
            attempts,
            parked_at: Utc::now(),
        }
    }
}

/// Whether `error` is a fault of the events being applied (parked after the projection's
/// attempts) rather than of the store (retried until the store answers).
pub fn is_event_fault(error: &Error) -> bool {
    matches!(
        error,
        Error::Serialization { .. }
            | Error::Upcast { .. }
            | Error::Unrepresentable { .. }
            | Error::Validation(_)
            | Error::Domain(_)
    )
}
