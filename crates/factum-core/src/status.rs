//! What the runtime reports: [`ProjectionStatus`] (`GET /projections/{name}`) and
//! [`SubscriptionStatus`] (`GET /subscriptions`).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::parked::ParkedEvent;
use crate::running::{LeaseStatus, RunningSubscription, SubscriptionKind};
use crate::store::EventRef;

/// How far one projection is behind: the body of `GET /projections/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// The position of the last event it has applied.
    pub checkpoint: u64,
    /// The position of the last stored event.
    pub head: u64,
    /// Events stored but not applied yet.
    pub behind: u64,
    /// How many events it parked: events it could not apply after its attempts, set aside
    /// so that it goes on (they need a fix and a rebuild).
    #[serde(default)]
    pub parked: u64,
    /// The parked events, by position.
    #[serde(default)]
    pub parked_events: Vec<ParkedEntry>,
}

/// An event a projection parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEntry {
    /// The event's global position.
    pub position: u64,
    /// The event.
    #[serde(flatten)]
    pub event: EventRef,
    /// Why it could not be applied.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
}

impl From<ParkedEvent> for ParkedEntry {
    fn from(parked: ParkedEvent) -> Self {
        Self {
            position: parked.position,
            event: parked.event,
            error: parked.error,
            attempts: parked.attempts,
            parked_at: parked.parked_at.to_rfc3339(),
        }
    }
}

impl ProjectionStatus {
    /// The status of `projection` now.
    pub async fn of(projection: &dyn RunningSubscription) -> Result<Self> {
        let lag = projection.lag().await?;
        let parked: Vec<ParkedEntry> = projection
            .parked()
            .await?
            .into_iter()
            .map(ParkedEntry::from)
            .collect();
        Ok(Self {
            name: projection.name().to_owned(),
            checkpoint: lag.checkpoint,
            head: lag.head,
            behind: lag.behind(),
            parked: parked.len() as u64,
            parked_events: parked,
        })
    }
}

/// How one subscription is doing: an entry of `GET /subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStatus {
    /// Its name (its checkpoint key).
    pub name: String,
    /// A view projection or an event handler.
    pub kind: SubscriptionKind,
    /// The position of the last event it has handled.
    pub position: u64,
    /// The position of the last stored event.
    pub head: u64,
    /// Events stored but not handled yet.
    pub lag: u64,
    /// Failed attempts tried again since this process started it.
    pub retries: u64,
    /// How many events it parked.
    pub parked: u64,
    /// The last error its handler returned in this process, if any.
    pub last_error: Option<String>,
    /// Who runs it, when it runs under a lease (one node at a time); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseStatus>,
}

impl SubscriptionStatus {
    /// The status of `subscription` now.
    pub async fn of(subscription: &dyn RunningSubscription) -> Result<Self> {
        let lag = subscription.lag().await?;
        Ok(Self {
            name: subscription.name().to_owned(),
            kind: subscription.kind(),
            position: lag.checkpoint,
            head: lag.head,
            lag: lag.behind(),
            retries: subscription.retries(),
            parked: subscription.parked().await?.len() as u64,
            last_error: subscription.last_error(),
            lease: subscription.lease().await,
        })
    }
}
