//! Reactions to committed events: the [`Dispatcher`] trait and how a failing one is reported.

use std::sync::Arc;

use async_trait::async_trait;

use crate::aggregate::Aggregate;
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};

/// handed to the engine's dispatch error handler.
#[async_trait]
pub trait Dispatcher<A: Aggregate>: Send + Sync + 'static {
    /// A name for logs and failure reports.
    fn name(&self) -> &str;

    /// Handles the events one command committed, in version order.
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<A::Event>]) -> Result<()>;
}

/// A dispatcher that failed, as reported to the dispatch error handler.
#[derive(Debug)]
pub struct DispatchFailure {
    /// The dispatcher's name.
    pub dispatcher: String,
    /// The aggregate type.
    pub aggregate_type: &'static str,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The versions of the events it was given.
    pub versions: std::ops::RangeInclusive<u64>,
    /// What went wrong.
    pub error: Error,
}

pub(crate) type DispatchErrorHandler = Arc<dyn Fn(&DispatchFailure) + Send + Sync>;
