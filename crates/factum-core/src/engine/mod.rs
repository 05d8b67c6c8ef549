//! The command engine: load an aggregate, decide a command, append its events with an
//! expected version, write the snapshot, dispatch the committed events.
//!
//! Concurrency has two layers. Within one process, commands on one aggregate are serialized
//! by a keyed lock, so they never conflict with each other and different aggregates never
//! wait on each other. Between processes sharing a store, the store's expected-version check
//! is what keeps updates from being lost: on a conflict the engine re-loads, re-decides and
//! re-appends, up to [`EngineConfig::max_attempts`] times with jittered backoff.
//!
//! The modules, bottom up: `config`, `outcome` and `dispatch` (plain types), `handle` (the
//! engine value and its cache), `builder` (how one is made), `load` (reading state), `commit`
//! (storing a decision) and `command` (running commands, on top of both).

mod builder;
mod command;
mod commit;
mod config;
mod dispatch;
mod handle;
mod load;
mod outcome;

pub use builder::{EngineBuilder, NoServices, WithServices};
pub use command::CommandResult;
pub use config::{EngineConfig, SnapshotPolicy};
pub use dispatch::{DispatchFailure, Dispatcher};
pub use handle::CqrsCommandEngine;
pub use outcome::{CommandCall, CommandOutcome, LoadedAggregate, Remember, ResponseRenderer};
