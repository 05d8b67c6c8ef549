//! The global feed: every aggregate's events in position order, as full envelopes, for other
//! services to follow (`GET /events`, the SSE stream, a broker outbox) and as the audit log
//! of who did what in which request.
//!
//! Envelopes carry the payload and metadata as the JSON text stored, untouched (never parsed
//! into floating point), so amounts and ids come out exactly as they went in.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::store::{EventRef, EventStore, StoredEvent};

/// The most events one feed page holds.
pub const MAX_FEED_LIMIT: usize = 1000;

/// The most events one feed read looks at while filtering: a page of a sparse filter stops
/// there and its `next` says where to go on.
pub const MAX_FEED_SCAN: usize = 10_000;

/// Which events a feed read returns (all when every field is `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    /// Only this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events of commands made in this conversation.
    pub correlation_id: Option<String>,
    /// Only events of commands this user issued.
    pub user: Option<String>,
}

impl FeedFilter {
    /// Whether `event` passes. Metadata is parsed only when a filter needs it.
    pub fn matches(&self, event: &StoredEvent) -> Result<bool> {
        let same =
            |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        if !same(&self.aggregate_type, &event.aggregate_type)
            || !same(&self.event_type, &event.event_type)
        {
            return Ok(false);
        }
        if self.correlation_id.is_none() && self.user.is_none() {
            return Ok(true);
        }
        let metadata = event.parse_metadata()?;
        let same_opt = |wanted: &Option<String>, value: &Option<String>| {
            wanted.is_none() || wanted.as_deref() == value.as_deref()
        };
        Ok(same_opt(&self.correlation_id, &metadata.correlation_id)
            && same_opt(&self.user, &metadata.user_id))
    }
}

/// One event as the feed shows it: the stored envelope, payload and metadata as stored.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    /// Store-wide position.
    pub position: u64,
    /// Which event.
    #[serde(flatten)]
    pub event: EventRef,
    /// The payload's schema version.
    pub schema_version: u32,
    /// When it was recorded (RFC 3339).
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// Who caused it and in which request.
    pub metadata: Box<RawValue>,
    /// The event itself.
    pub payload: Box<RawValue>,
}

impl FeedEvent {
    /// The envelope of a stored event.
    pub fn of(event: &StoredEvent) -> Result<Self> {
        let raw = |what: &str, text: &str| {
            RawValue::from_string(text.to_owned())
                .map_err(|e| Error::serialization(format!("{what} of event {}", event.event_id), e))
        };
        Ok(Self {
            position: event.position,
            event: event.reference(),
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            metadata: raw("metadata", &event.metadata)?,
            payload: raw("payload", &event.payload)?,
        })
    }

    /// The envelope as JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| {
            Error::serialization(format!("envelope of event {}", self.event.event_id), e)
        })
    }
}

/// A page of the feed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedPage {
    /// The events, in position order.
    pub events: Vec<FeedEvent>,
    /// The position to ask from next (`after=next`): the last event looked at, so a sparse
    /// filter still moves on.
    pub next: u64,
}

/// Reads up to `limit` (1 to [`MAX_FEED_LIMIT`]) events after `after` that pass `filter`,
/// looking at no more than [`MAX_FEED_SCAN`] events.
pub async fn read_feed(
    store: &dyn EventStore,
    after: u64,
    limit: usize,
    filter: &FeedFilter,
) -> Result<FeedPage> {
    if limit == 0 || limit > MAX_FEED_LIMIT {
        return Err(Error::Validation(format!(
            "limit must be 1 to {MAX_FEED_LIMIT}, not {limit}"
        )));
    }
    let mut page = FeedPage {
        events: Vec::new(),
        next: after,
    };
    let mut scanned = 0;
    while scanned < MAX_FEED_SCAN {
        let chunk = store.read_all(page.next, limit.max(100)).await?;
        if chunk.is_empty() {
            break;
        }
        for event in &chunk {
            scanned += 1;
            page.next = event.position;
            if filter.matches(event)? {
                page.events.push(FeedEvent::of(event)?);
                if page.events.len() == limit {
                    return Ok(page);
                }
            }
        }
    }
    Ok(page)
}
