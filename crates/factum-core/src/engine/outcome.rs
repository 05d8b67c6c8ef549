//! What goes into an engine call and what comes out: [`CommandCall`], [`CommandOutcome`],
//! [`LoadedAggregate`], and the idempotency record a command may write ([`Remember`]).

use std::fmt;

use crate::aggregate::{Aggregate, CommandHandler};
use crate::envelope::EventEnvelope;
use crate::error::Result;
use crate::idempotency::IdempotencyRecord;

/// An aggregate's state at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedAggregate<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied (0 for none).
    pub version: u64,
}

/// What a successful command produced.
#[derive(Debug, Clone)]
pub struct CommandOutcome<A: Aggregate> {
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The state after the command.
    pub state: A,
    /// The version after the command.
    pub version: u64,
    /// The events the command recorded (empty if it decided nothing needed to change).
    pub events: Vec<EventEnvelope<A::Event>>,
    /// How many times the command was decided (more than 1 after conflicts).
    pub attempts: u32,
}

/// A command for [`CqrsCommandEngine::execute`].
#[derive(Debug)]
pub enum CommandCall<'a, A: CommandHandler> {
    /// A create command, with this id or (`None`) one from the id generator.
    Create {
        /// The new aggregate's id.
        id: Option<&'a str>,
        /// The command.
        command: &'a A::CreateCommand,
    },
    /// An update command, at any version or (`Some`) only at this one.
    Update {
        /// The aggregate's id.
        id: &'a str,
        /// The command.
        command: &'a A::UpdateCommand,
        /// Run only at this version (else a [`Error::Conflict`], not retried).
        expected_version: Option<u64>,
    },
}

/// Renders a command's response from the aggregate id, the new state and the new version:
/// `(status, response text)`.
pub type ResponseRenderer<'a, A> =
    Box<dyn Fn(&str, &A, u64) -> Result<(u16, String)> + Send + Sync + 'a>;

/// Asks the engine to write an idempotency record in the same transaction as a command's
/// events (see [`crate::idempotency`]).
///
/// The response must be in the record before the commit, so the engine renders it from the
/// state and version it is about to commit. A command that stores no events (it failed, or
/// decided nothing needed to change) writes no record: the caller remembers it alone with
/// [`EventStore::remember_idempotency`](crate::EventStore::remember_idempotency).
pub struct Remember<'a, A> {
    /// The record to write; `render` fills in its status and response.
    pub record: IdempotencyRecord,
    /// Renders the response.
    pub render: ResponseRenderer<'a, A>,
}

impl<A> fmt::Debug for Remember<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remember")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}
