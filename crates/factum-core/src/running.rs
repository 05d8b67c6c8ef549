//! [`RunningSubscription`]: what the runtime ([`Projections`](crate::Projections)) runs, of
//! two kinds: view projections ([`Projector`]) and event handlers ([`Subscription`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::parked::ParkedEvent;
use crate::projection::{ProjectionLag, Projector};
use crate::subscription::{ReplayReport, Subscription};
use crate::view::View;

/// What a subscription is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionKind {
    /// An asynchronous view projection ([`Projector`]): parked events need a fix and a rebuild.
    Projection,
    /// An event handler ([`Subscription`]): parked events can be replayed one by one.
    Handler,
}

/// Which node runs a leased subscription (see [`RunningSubscription::lease`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// Whether this node holds the lease (and so runs the subscription).
    pub held_here: bool,
    /// The name of the node that holds it, if any node does and its name can be read.
    pub holder: Option<String>,
}

/// A subscription as the runtime sees it: a name, a lag, and a way to catch up. View
/// projections ([`Projector`]) and event handlers ([`Subscription`]) are its two kinds.
#[async_trait]
pub trait RunningSubscription: Send + Sync + 'static {
    /// The projection's name (its checkpoint key).
    fn name(&self) -> &str;

    /// Its checkpoint and the log's head.
    async fn lag(&self) -> Result<ProjectionLag>;

    /// Applies batches until it reaches the head; returns the number of events read.
    async fn catch_up(&self) -> Result<u64>;

    /// The events it has parked (could not apply after its attempts), by position.
    async fn parked(&self) -> Result<Vec<ParkedEvent>>;

    /// Deletes the records, resets the checkpoint to 0 and replays the whole log, calling
    /// `progress` after each batch; returns the number of events read.
    async fn rebuild(&self, progress: &mut (dyn FnMut(ProjectionLag) + Send)) -> Result<u64>;

    /// Whether a rebuild started and did not finish (see [`Projector::rebuild`]).
    async fn rebuild_unfinished(&self) -> Result<bool>;

    /// Whether its view holds no record at all (see [`Projector::is_empty`]).
    async fn is_empty(&self) -> Result<bool>;

    /// What it is (a projection unless said otherwise).
    fn kind(&self) -> SubscriptionKind {
        SubscriptionKind::Projection
    }

    /// Failed attempts tried again since it was made.
    fn retries(&self) -> u64 {
        0
    }

    /// The last error its handler returned, if any.
    fn last_error(&self) -> Option<String> {
        None
    }

    /// Who runs it when it runs under a lease (one node at a time), `None` when it runs
    /// wherever it is spawned.
    async fn lease(&self) -> Option<LeaseStatus> {
        None
    }

    /// Hands its parked events over again (see [`Subscription::replay_parked`]). A
    /// projection cannot apply one event out of order: it is refused; fix and rebuild.
    async fn replay_parked(&self) -> Result<ReplayReport> {
        Err(Error::Validation(format!(
            "{} is a view projection: its parked events are applied again by a rebuild",
            self.name()
        )))
    }
}

#[async_trait]
impl<V: View> RunningSubscription for Projector<V> {
    fn name(&self) -> &str {
        Projector::name(self)
    }

    async fn lag(&self) -> Result<ProjectionLag> {
        Projector::lag(self).await
    }

    async fn catch_up(&self) -> Result<u64> {
        Projector::catch_up(self, |_| {}).await
    }

    async fn parked(&self) -> Result<Vec<ParkedEvent>> {
        Projector::parked(self).await
    }

    async fn rebuild(&self, progress: &mut (dyn FnMut(ProjectionLag) + Send)) -> Result<u64> {
        Projector::rebuild(self, &mut *progress).await
    }

    async fn rebuild_unfinished(&self) -> Result<bool> {
        Projector::rebuild_unfinished(self).await
    }

    async fn is_empty(&self) -> Result<bool> {
        Projector::is_empty(self).await
    }
}

#[async_trait]
impl RunningSubscription for Subscription {
    fn name(&self) -> &str {
        Subscription::name(self)
    }

    async fn lag(&self) -> Result<ProjectionLag> {
        Subscription::lag(self).await
    }

    async fn catch_up(&self) -> Result<u64> {
        Subscription::catch_up(self).await
    }

    async fn parked(&self) -> Result<Vec<ParkedEvent>> {
        Subscription::parked(self).await
    }

    async fn rebuild(&self, _progress: &mut (dyn FnMut(ProjectionLag) + Send)) -> Result<u64> {
        Err(Error::Validation(format!(
            "{} is an event handler, not a view: it has nothing to rebuild",
            self.name()
        )))
    }

    async fn rebuild_unfinished(&self) -> Result<bool> {
        Ok(false)
    }

    async fn is_empty(&self) -> Result<bool> {
        Ok(false)
    }

    fn kind(&self) -> SubscriptionKind {
        SubscriptionKind::Handler
    }

    fn retries(&self) -> u64 {
        Subscription::retries(self)
    }

    fn last_error(&self) -> Option<String> {
        Subscription::last_error(self)
    }

    async fn replay_parked(&self) -> Result<ReplayReport> {
        Subscription::replay_parked(self).await
    }
}
