//! A counter: the small aggregate that engine and store tests share when any aggregate will
//! do. It counts what its events add, records several events from one command, records
//! nothing for a command that changes nothing, and refuses one command outright.

use factum_core::standard::StandardError;
use factum_core::{Aggregate, CommandHandler, CqrsContext, CqrsError, Event};
use serde::{Deserialize, Serialize};

/// What happens to a counter.
#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CounterEvent {
    /// The counter was created, at zero.
    Created,
    /// `by` was added.
    Added {
        /// How much.
        by: u32,
    },
    /// One of the `of` steps one command recorded: all or none of them must be stored.
    Step {
        /// Which step, from 1.
        part: u32,
        /// How many steps the command recorded.
        of: u32,
    },
}

/// A counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    /// Its id.
    pub id: String,
    /// What its events added up to: each `Added` its amount, each `Step` one.
    pub total: u64,
}

/// Commands on a counter.
#[derive(Debug, Clone, PartialEq)]
pub enum CounterCommand {
    /// Add an amount in one event; adding 0 records nothing.
    Add(u32),
    /// Record this many steps, one event each.
    Steps(u32),
    /// Refused with a validation error.
    Refuse,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Event = CounterEvent;
    type Error = CqrsError;
    fn with_aggregate_id(id: String) -> Self {
        Self { id, total: 0 }
    }
    fn aggregate_id(&self) -> &str {
        &self.id
    }
    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Created => {}
            CounterEvent::Added { by } => self.total += u64::from(*by),
            CounterEvent::Step { .. } => self.total += 1,
        }
    }
}

impl CommandHandler for Counter {
    type CreateCommand = ();
    type UpdateCommand = CounterCommand;
    type Services = ();
    async fn handle_create(
        &self,
        _: &(),
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<CounterEvent>, CqrsError> {
        Ok(vec![CounterEvent::Created])
    }
    async fn handle_update(
        &self,
        command: &CounterCommand,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<CounterEvent>, CqrsError> {
        Ok(match *command {
            CounterCommand::Add(0) => Vec::new(),
            CounterCommand::Add(by) => vec![CounterEvent::Added { by }],
            CounterCommand::Steps(of) => (1..=of)
                .map(|part| CounterEvent::Step { part, of })
                .collect(),
            CounterCommand::Refuse => {
                return Err(CqrsError::standard(StandardError::Validation, "refused"));
            }
        })
    }
}
