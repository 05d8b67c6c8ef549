//! Read models: [`View`]s built from events, stored as JSON records, queried with
//! [`ViewQuery`].
//!
//! A view is pure: `update(&self, envelope)` returns the record after one event, or `None` when
//! the event does not concern it. How a view is kept up to date is chosen when it is wired:
//! **inline** (the engine computes the record changes and the store writes them in the same
//! transaction as the events, so the view can never miss or double-apply an event) or as an
//! **asynchronous projection** ([`Projector`](crate::Projector)) that follows `read_all` from a
//! checkpoint stored with the records.
//!
//! A query is plain data here; translating it to SQL lives in the store crates, with bound
//! parameters only. Field names are checked against the view's declared [`ViewField`]s before
//! any store sees them, so an unknown field or operator is a validation error (400), never a
//! 500 and never text spliced into SQL.
//!
//! The modules, bottom up: `model` (views, records, changes), `query` (filters and pages),
//! `store` (the backend trait).

mod model;
mod query;
mod store;

pub use model::*;
pub use query::*;
pub use store::ViewStore;
