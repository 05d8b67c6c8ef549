//! The backend interface: what a storage backend implements, and the rules every backend
//! keeps.
//!
//! A backend stores serialized events ([`NewEvent`] in, [`StoredEvent`] out) and snapshots
//! ([`Snapshot`]), appends atomically with an [`ExpectedVersion`] ([`AppendRequest`]), and
//! reads a stream or everything from a position: the [`EventStore`] trait. It knows nothing
//! of aggregates, upcasting or retries, which live once in the engine, and it decides what
//! an append may do, and what a refused one means, by the shared [`rules`].
//!
//! Domain code never needs this module: the engine speaks to the store. [`EventStore`] and
//! [`ExpectedVersion`] are also at the crate root, for code that holds an
//! `Arc<dyn EventStore>` or names an expectation.

mod event_store;
mod expected;
mod record;
mod request;
pub mod rules;

pub use event_store::EventStore;
pub use expected::ExpectedVersion;
pub use record::{EventRef, NewEvent, Snapshot, StoredEvent};
pub use request::AppendRequest;
