//! The command engine: load an aggregate, decide a command, append its events with an
//! expected version, write the snapshot, dispatch the committed events.
//!
//! Concurrency has two layers. Within one process, updates of one aggregate are decided one
//! after the other on its lane, each on the state after the ones before it, so they never
//! conflict with each other; those that wait while a batch is appended are appended
//! together in the next one (one append, one fsync, each caller answered with its own
//! outcome), and different aggregates never wait on each other. Between processes sharing
//! a store, the store's expected-version check is what keeps updates from being lost: on a
//! conflict the engine catches up, re-decides and re-appends, up to
//! [`EngineConfig::max_attempts`] times or for [`EngineConfig::retry_for`], with jittered
//! backoff.
//!
//! The modules, bottom up: `config`, `outcome` and `dispatch` (plain types), `lane` (one
//! aggregate's queue of decided commands), `cache` (the state cache), `handle` (the engine
//! value),
//! `builder` (how one is made), `load` (reading state), `commit` (preparing and appending
//! decisions), `batch` (deciding on a lane and committing its batches) and `command`
//! (running commands, on top of them).

mod batch;
mod builder;
mod cache;
mod command;
mod commit;
mod config;
mod dispatch;
mod handle;
mod lane;
mod load;
mod outcome;

pub use builder::{EngineBuilder, NoServices, WithServices};
pub use cache::CacheStats;
pub use command::CommandResult;
pub use config::{EngineConfig, SnapshotPolicy};
pub use dispatch::{DispatchFailure, Dispatcher};
pub use handle::CqrsCommandEngine;
pub use outcome::{CommandCall, CommandOutcome, LoadedAggregate, Remember, ResponseRenderer};
