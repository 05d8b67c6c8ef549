//! The domain model a user implements: [`Aggregate`], [`Event`] and [`CommandHandler`].
//!
//! Deciding may read but never write: a handler reads the current state, a command and (by
//! awaiting them) its services, and returns the events to record or a typed error. Side
//! effects belong to dispatchers and projections that react to stored events.

use std::fmt::Debug;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::CqrsContext;
use crate::error::DomainError;

/// A domain event: a stable, named fact.
///
/// `event_type` is an explicit string stored with the event, so renaming the Rust variant
/// never breaks stored history. `schema_version` says which shape of the payload this code
/// writes; older shapes are brought forward by [`Upcasters`](crate::Upcasters) when read.
pub trait Event:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The stable name of this event, such as `MoneyDeposited`.
    fn event_type(&self) -> &'static str;

    /// The schema version of the payload this code writes. Starts at 1.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// An event-sourced aggregate: state rebuilt from its events alone.
pub trait Aggregate: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The aggregate type, stored with every event (`account`).
    const TYPE: &'static str;
    /// The events this aggregate records.
    type Event: Event;
    /// The typed business-rule errors its handlers return.
    type Error: DomainError;

    /// The empty state of the aggregate with this id, before any event.
    fn with_aggregate_id(aggregate_id: String) -> Self;

    /// This aggregate's id.
    fn aggregate_id(&self) -> &str;

    /// Applies one event to the state. Must not fail: events are facts that already happened.
    fn apply(&mut self, event: &Self::Event);
}

/// Decides what a command means for an aggregate.
///
/// The handlers are `async`, so they may await their [`Services`](Self::Services) (a
/// uniqueness check, a price lookup); a handler that needs nothing is written `async fn` all
/// the same, with a plain body. They must not write: the engine appends what they return.
pub trait CommandHandler: Aggregate {
    /// A command that creates a new aggregate.
    type CreateCommand: Debug + Send + Sync + 'static;
    /// A command on an existing aggregate.
    type UpdateCommand: Debug + Send + Sync + 'static;
    /// Read-only services the handlers may consult (a price list, a clock, ...).
    type Services: Send + Sync + 'static;

    /// Decides a create command on the empty state [`Aggregate::with_aggregate_id`] returns.
    /// The engine has checked that the aggregate has no events yet.
    fn handle_create(
        &self,
        command: &Self::CreateCommand,
        services: &Self::Services,
        ctx: &CqrsContext,
    ) -> impl Future<Output = Result<Vec<Self::Event>, Self::Error>> + Send;

    /// Decides an update command on the current state. The engine has checked that the
    /// aggregate exists (has at least one event).
    fn handle_update(
        &self,
        command: &Self::UpdateCommand,
        services: &Self::Services,
        ctx: &CqrsContext,
    ) -> impl Future<Output = Result<Vec<Self::Event>, Self::Error>> + Send;

    /// The domain error to report when an update names an aggregate with no events.
    /// `None` reports the standard `NOT_FOUND` error.
    fn not_found_error(aggregate_id: &str) -> Option<Self::Error> {
        let _ = aggregate_id;
        None
    }

    /// The domain error to report when a create names an aggregate that already exists.
    /// `None` reports the standard `CONFLICT` error.
    fn already_exists_error(aggregate_id: &str) -> Option<Self::Error> {
        let _ = aggregate_id;
        None
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::Event;

    // Derived inside the crate that defines the trait: the generated path must resolve here too.
    #[derive(crate::Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum LampEvent {
        SwitchedOn,
        #[event(version = 2)]
        Dimmed {
            percent: u8,
        },
    }

    #[test]
    fn derived_events_work_inside_factum_core() {
        assert_eq!(LampEvent::SwitchedOn.event_type(), "SwitchedOn");
        assert_eq!(LampEvent::Dimmed { percent: 5 }.event_type(), "Dimmed");
        assert_eq!(LampEvent::Dimmed { percent: 5 }.schema_version(), 2);
        assert_eq!(LampEvent::SwitchedOn.schema_version(), 1);
    }
}
