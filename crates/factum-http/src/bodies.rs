//! The JSON bodies of the aggregate routes: states with their version, event envelopes and
//! pages, and the query strings. Their schemas are in `body_schemas`.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use factum_core::EventEnvelope;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::aggregate::HttpAggregate;
use crate::extract::etag;

/// The most events one page of the audit log holds.
pub const MAX_PAGE: usize = 1000;
/// The page size of the audit log when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// The reply to a command or a state read of the generic routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateBody<V> {
    /// The aggregate id.
    pub id: String,
    /// The state, as [`HttpAggregate::view`] renders it.
    pub state: V,
    /// The aggregate's version (the `ETag`).
    pub version: u64,
}

impl<V> StateBody<V> {
    /// The body for an aggregate at a version.
    pub fn of<A: HttpAggregate<View = V>>(id: &str, state: &A, version: u64) -> Self {
        Self {
            id: id.to_owned(),
            state: state.view(),
            version,
        }
    }
}

/// The reply of the tagged routes: the view's fields and the version beside them
/// (`{"id","owner","balance","version"}` for a view `{"id","owner","balance"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionedState<V> {
    /// The state, as [`HttpAggregate::view`] renders it.
    #[serde(flatten)]
    pub state: V,
    /// The aggregate's version (the `ETag`).
    pub version: u64,
}

impl<V> VersionedState<V> {
    /// The body for an aggregate at a version.
    pub fn of<A: HttpAggregate<View = V>>(state: &A, version: u64) -> Self {
        Self {
            state: state.view(),
            version,
        }
    }
}

/// One stored event with everything the store knows about it: the audit log's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeBody<E> {
    /// The event's unique id.
    pub event_id: uuid::Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The version within the aggregate: 1, 2, 3, ...
    pub version: u64,
    /// The store-wide position, in commit order.
    pub position: u64,
    /// The stable event type name.
    pub event_type: String,
    /// When it was recorded, RFC 3339 in UTC.
    pub recorded_at: String,
    /// The user whose command caused it; `null` for anonymous callers.
    pub user_id: Option<String>,
    /// The request that carried the command.
    pub request_id: Option<String>,
    /// The conversation the request belongs to.
    pub correlation_id: Option<String>,
    /// The message that caused it, if known.
    pub causation_id: Option<String>,
    /// Free-form metadata recorded with it.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The event.
    pub payload: E,
}

impl<E> From<EventEnvelope<E>> for EnvelopeBody<E> {
    fn from(envelope: EventEnvelope<E>) -> Self {
        let meta = envelope.metadata;
        Self {
            event_id: envelope.event_id,
            aggregate_type: envelope.aggregate_type,
            aggregate_id: envelope.aggregate_id,
            version: envelope.version,
            position: envelope.position,
            event_type: envelope.event_type,
            recorded_at: envelope
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            user_id: meta.user_id,
            request_id: meta.request_id,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            metadata: meta.extra.into_iter().collect(),
            payload: envelope.payload,
        }
    }
}

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage<E> {
    /// The events, in version order.
    pub events: Vec<EnvelopeBody<E>>,
    /// The `from_version` of the next page; `null` when this page is the last.
    pub next_from_version: Option<u64>,
}

/// Query of `GET /{type}/{id}`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// Time travel: the state after the first `version` events (at least 1).
    #[param(minimum = 1)]
    pub version: Option<u64>,
}

/// Query of `GET /{type}/{id}/events`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The first version to return (default 1).
    #[param(minimum = 1)]
    pub from_version: Option<u64>,
    /// How many events at most (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Query of `GET /{collection}/{id}/events` of the tagged routes.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `true`: envelopes with ids, version, position, time, user and request ids.
    pub metadata: Option<bool>,
}

/// The reply of `GET /{collection}/{id}/events` of the tagged routes: the events, or with
/// `?metadata=true` their envelopes (only its schema is used: `oneOf` the two arrays).
#[derive(Debug)]
pub struct History<E>(std::marker::PhantomData<E>);

/// A command's status: 201 when it created the aggregate, else 200.
pub(crate) fn command_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// A JSON response with an `ETag` of the version.
pub fn with_etag(status: StatusCode, version: u64, body: impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
