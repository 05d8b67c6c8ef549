//! The global feed over HTTP: `GET /events` (pages of full envelopes in position order, and
//! the position to ask from next) and `GET /events/stream` (Server-Sent Events: `id:` the
//! position, `event:` the event type, `data:` the envelope JSON; it resumes after
//! `Last-Event-ID` or `?after=`, sends keep-alives and stays live). Both take the filters
//! `aggregate_type`, `event_type`, `correlation_id` and `user`; the reading itself is
//! factum-core's [`read_feed`].
//!
//! The stream reads the store in position order from its cursor, and the cursor only moves
//! to what it has sent, so a client that reconnects with the last `id:` it saw gets every
//! later event once: `read_all` never skips an event and never shows one before an event
//! that committed earlier (positions grow, though on PostgreSQL they are not dense).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use factum_core::EventStore;
use factum_core::feed::{FeedFilter, MAX_FEED_LIMIT, read_feed};
use futures::Stream;
use serde::Deserialize;

use crate::context::RequestContext;
use crate::error::ApiError;

/// How many events a page holds unless `limit` says otherwise.
pub const DEFAULT_FEED_LIMIT: usize = 100;

/// The longest filter value accepted.
const MAX_FILTER_LEN: usize = 256;

/// How often an idle stream looks for new events.
const STREAM_POLL: Duration = Duration::from_millis(100);

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The query of both routes; anything else is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedParams {
    after: Option<u64>,
    limit: Option<usize>,
    aggregate_type: Option<String>,
    event_type: Option<String>,
    correlation_id: Option<String>,
    user: Option<String>,
}

impl FeedParams {
    fn filter(&self) -> Result<FeedFilter, ApiError> {
        let check = |name: &str, value: &Option<String>| -> Result<Option<String>, ApiError> {
            match value {
                Some(v) if v.is_empty() || v.len() > MAX_FILTER_LEN || v.contains('\0') => {
                    Err(ApiError::validation(format!(
                        "{name} must be 1 to {MAX_FILTER_LEN} bytes of text"
                    )))
                }
                other => Ok(other.clone()),
            }
        };
        Ok(FeedFilter {
            aggregate_type: check("aggregate_type", &self.aggregate_type)?,
            event_type: check("event_type", &self.event_type)?,
            correlation_id: check("correlation_id", &self.correlation_id)?,
            user: check("user", &self.user)?,
        })
    }

    /// The position to read after: stores keep positions as signed 64-bit integers.
    fn after(&self) -> Result<u64, ApiError> {
        checked_position(self.after.unwrap_or(0))
            .ok_or_else(|| ApiError::validation(format!("after must be 0 to {}", i64::MAX)))
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.unwrap_or(DEFAULT_FEED_LIMIT) {
            n @ 1..=MAX_FEED_LIMIT => Ok(n),
            n => Err(ApiError::validation(format!(
                "limit must be 1 to {MAX_FEED_LIMIT}, not {n}"
            ))),
        }
    }
}

/// `position` if a store can hold it.
fn checked_position(position: u64) -> Option<u64> {
    i64::try_from(position).is_ok().then_some(position)
}

/// `GET /events` and `GET /events/stream` over `store`.
pub fn feed_routes(store: Arc<dyn EventStore>) -> Router {
    Router::new()
        .route("/events", get(page))
        .route("/events/stream", get(stream))
        .with_state(store)
}

async fn page(
    State(store): State<Arc<dyn EventStore>>,
    RequestContext(_ctx): RequestContext,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let (filter, limit) = (params.filter()?, params.limit()?);
    let page = read_feed(&*store, params.after()?, limit, &filter).await?;
    Ok(axum::Json(page).into_response())
}

async fn stream(
    State(store): State<Arc<dyn EventStore>>,
    RequestContext(_ctx): RequestContext,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let (filter, limit) = (params.filter()?, params.limit()?);
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .and_then(checked_position)
            .ok_or_else(|| ApiError::validation("Last-Event-ID must be an event position"))?,
        None => params.after()?,
    };
    let events = follow(store, after, limit, filter);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The events after `after`, then every new one, as SSE events. A store failure ends the
/// stream (the client reconnects with its last id).
fn follow(
    store: Arc<dyn EventStore>,
    after: u64,
    limit: usize,
    filter: FeedFilter,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (store, after, filter, std::collections::VecDeque::new());
    futures::stream::unfold(
        state,
        move |(store, mut cursor, filter, mut queue)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((Ok(event), (store, cursor, filter, queue)));
                }
                match read_feed(&*store, cursor, limit, &filter).await {
                    Ok(page) => {
                        let moved = page.next != cursor;
                        cursor = page.next;
                        for envelope in page.events {
                            match envelope.to_json() {
                                Ok(json) => {
                                    let event = Event::default()
                                        .id(envelope.position.to_string())
                                        .data(json);
                                    // A line break would end the field early (and axum refuses it).
                                    let named = !envelope.event.event_type.contains(['\n', '\r']);
                                    queue.push_back(if named {
                                        event.event(envelope.event.event_type.clone())
                                    } else {
                                        event
                                    });
                                }
                                Err(error) => {
                                    tracing::error!(%error, "event feed stream stopped");
                                    return None;
                                }
                            }
                        }
                        if !moved {
                            tokio::time::sleep(STREAM_POLL).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event feed stream stopped: the store failed");
                        return None;
                    }
                }
            }
        },
    )
}
