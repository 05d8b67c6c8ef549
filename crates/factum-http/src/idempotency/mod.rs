//! `Idempotency-Key` on command routes: a client may repeat a command safely.
//!
//! The first request with a key runs, and its response is remembered by the store as an
//! [`IdempotencyRecord`]: for a command that stores events, **in the same transaction as the
//! events** (the engine renders the response before the commit, see
//! [`factum_core::idempotency`]), so a crash can never keep one without the other. A repeat
//! with the same key and the same request gets the remembered response back, with
//! `Idempotent-Replayed: true`, and stores nothing. The same key with another request is a
//! 422 (`IDEMPOTENCY_KEY_REUSED`).
//!
//! - **Which responses are remembered.** Every answer of a command that ran: success, and
//!   the 4xx a rule gave it (insufficient funds, not found, already exists, `If-Match`
//!   failed), because repeating it could give another answer once the state moved (a
//!   retried withdrawal that failed must not succeed later). Not remembered: requests
//!   refused before the command ran (malformed JSON, unknown command, bad id: the client
//!   fixes the request and may reuse the key), and transient failures (5xx, 408, 429,
//!   `CONCURRENCY_CONFLICT`), which the client should be able to retry. As at Stripe.
//! - **What "the same request" is.** A SHA-256 of the method, the path and the body's
//!   bytes, taken by a layer before the body is parsed. Bytes rather than parsed JSON: a
//!   retry resends the very same bytes, and a hash of the text cannot be fooled by how a
//!   parser rounds numbers (`1.0000000000000000000001` and `1` are different requests).
//!   A retry that reformats its JSON is a 422, never a silent double.
//! - **Concurrency.** In one process, a repeat waits (up to
//!   [`HttpConfig::idempotency_wait`](crate::HttpConfig::idempotency_wait), then 409
//!   `IDEMPOTENCY_KEY_IN_USE`) for the first request, then replays it. Across processes
//!   the store decides: `(scope, key)` is unique, the loser's append fails and stores
//!   nothing, and the loser answers with the winner's record.
//! - **Scope.** Keys belong to the caller: the authenticated user, or one shared anonymous
//!   scope when auth is off.
//! - **Expiry.** Records live [`HttpConfig::idempotency_ttl`](crate::HttpConfig::idempotency_ttl)
//!   (24 h by default); expired ones are purged in the background, at most hourly.
//! - A replayed error carries the current request's `requestId` (and `X-Request-Id`);
//!   everything else in it is as first answered. A replayed success is byte for byte the
//!   first body, with the same `ETag` and `Location`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use factum_core::standard::StandardError;
use factum_core::{CqrsContext, CqrsError, EventStore, IdempotencyRecord, KeyedLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

mod openapi;
mod service;

pub(crate) use openapi::document;

/// The request header carrying the key.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header of a replayed response (`true`).
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// How long a key is remembered by default: 24 hours.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a repeat waits by default for the first request of its key in this process.
pub const DEFAULT_IDEMPOTENCY_WAIT: Duration = Duration::from_secs(5);
/// The longest a key is remembered: its expiry must stay a date every store can keep.
const MAX_IDEMPOTENCY_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

/// A TTL between 1 s and 10 years.
pub(crate) fn bounded_ttl(ttl: Duration) -> Duration {
    ttl.clamp(Duration::from_secs(1), MAX_IDEMPOTENCY_TTL)
}

/// The longest time between two purges of expired records.
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// What the layer shares with the requests it passes on.
#[derive(Debug)]
pub(crate) struct Shared {
    locks: KeyedLock,
    ttl: Duration,
    wait: Duration,
    last_purge: Mutex<Option<Instant>>,
}

impl Shared {
    pub(crate) fn new(ttl: Duration, wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            locks: KeyedLock::default(),
            ttl: bounded_ttl(ttl),
            wait,
            last_purge: Mutex::new(None),
        })
    }

    /// Starts a purge of expired records if none ran for a while.
    fn maybe_purge(&self, store: &Arc<dyn EventStore>, now: DateTime<Utc>) {
        let every = PURGE_EVERY.min(self.ttl);
        {
            let mut last = self.last_purge.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < every) {
                return;
            }
            *last = Some(Instant::now());
        }
        let store = store.clone();
        tokio::spawn(async move {
            match store.purge_idempotency(now).await {
                Ok(purged) => tracing::debug!(purged, "purged expired idempotency records"),
                Err(error) => tracing::warn!(%error, "purging idempotency records failed"),
            }
        });
    }
}

/// The layer: for a request with an `Idempotency-Key` (other than GET and HEAD), checks the
/// key (400), hashes the method, path and body (413 over the body limit), and passes the
/// request on with an [`IdempotentRequest`] in its extensions.
pub(crate) async fn idempotency_layer(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD)
        || !req.headers().contains_key(&IDEMPOTENCY_KEY)
    {
        return next.run(req).await;
    }
    match fingerprint(shared, req).await {
        Ok(req) => next.run(req).await,
        Err(error) => error.into_response(),
    }
}

async fn fingerprint(shared: Arc<Shared>, req: Request) -> Result<Request, ApiError> {
    let key = key_of(req.headers())?;
    let (mut parts, body) = req.into_parts();
    let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::standard(
                    StandardError::PayloadTooLarge,
                    "the request body is larger than the limit",
                )
            } else {
                ApiError::from(rejection)
            }
        })?;
    let request_hash = request_hash(&parts.method, parts.uri.path(), &bytes);
    parts.extensions.insert(IdempotentRequest {
        key,
        request_hash,
        shared,
    });
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn key_of(headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::validation(
            "send one Idempotency-Key header, not several",
        ));
    };
    let key = value.to_str().map_err(|_| {
        ApiError::validation("the Idempotency-Key holds characters other than printable ASCII")
    })?;
    factum_core::validate_idempotency_key(key)?;
    Ok(key.to_owned())
}

/// The SHA-256 of a request, in hex: method, path and body, each but the last ended by a
/// newline (neither a method nor a path holds one).
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A request that carries a valid `Idempotency-Key`, as the layer hashed it.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    key: String,
    request_hash: String,
    shared: Arc<Shared>,
}

/// The optional idempotency key of a command request. Without the layer of
/// [`Api::into_router`](crate::Api::into_router) a request with a key is refused (500)
/// rather than run without the protection the client asked for.
#[derive(Debug, Clone)]
pub struct Idempotency(pub Option<IdempotentRequest>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if let Some(request) = parts.extensions.get::<IdempotentRequest>() {
            return Ok(Self(Some(request.clone())));
        }
        if parts.headers.contains_key(&IDEMPOTENCY_KEY) {
            tracing::error!("Idempotency-Key sent to a router without the idempotency layer");
            return Err(ApiError::internal());
        }
        Ok(Self(None))
    }
}

/// A command's response as it is sent and remembered: status, headers and the body's text.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReply {
    /// The status.
    pub status: StatusCode,
    /// Headers besides `Content-Type` (which is JSON).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The JSON body.
    pub body: String,
}

impl CommandReply {
    /// A JSON reply.
    pub fn json(status: StatusCode, body: &impl Serialize) -> serde_json::Result<Self> {
        Ok(Self {
            status,
            headers: Vec::new(),
            body: serde_json::to_string(body)?,
        })
    }

    /// Adds a header (a value that is not a valid header value is left out).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }
}

/// A reply as kept in [`IdempotencyRecord::response`].
pub(crate) fn encode_reply(reply: &CommandReply) -> serde_json::Result<String> {
    serde_json::to_string(&Remembered::Reply {
        headers: reply
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: reply.body.clone(),
    })
}

impl IntoResponse for CommandReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// How a response is kept in [`IdempotencyRecord::response`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Remembered {
    Reply {
        headers: Vec<(String, String)>,
        body: String,
    },
    Error {
        error: CqrsError,
    },
}

/// What running a command came to, for [`IdempotentRequest::run`].
#[derive(Debug)]
pub enum Ran {
    /// It stored events, and the record with them.
    Recorded(CommandReply),
    /// It succeeded without storing events (so without the record).
    Unrecorded(CommandReply),
    /// It failed.
    Failed(ApiError),
}

/// Whether a failure is remembered: an answer the command got, not a transient one.
fn remembered(error: &ApiError) -> bool {
    let status = error.status();
    let code = error.error().code.as_str();
    status.is_client_error()
        && !matches!(
            status,
            // Who may do what can change: a refusal is not the command's answer.
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        )
        && code != StandardError::ConcurrencyConflict.code()
        && code != StandardError::IdempotencyKeyInUse.code()
}

impl IdempotentRequest {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request's hash.
    pub fn request_hash(&self) -> &str {
        &self.request_hash
    }

    /// Runs a command under this key: replays the remembered response if there is one;
    /// else runs `execute` with the record to write (its status and response still empty),
    /// remembers what the command answered if `execute` did not write it with events, and
    /// answers. See the module docs.
    pub async fn run<F, Fut>(
        &self,
        store: &Arc<dyn EventStore>,
        ctx: &CqrsContext,
        execute: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce(IdempotencyRecord) -> Fut,
        Fut: Future<Output = Ran>,
    {
        let scope = ctx.user_id().unwrap_or_default().to_owned();
        let _guard = tokio::time::timeout(
            self.shared.wait,
            self.shared.locks.lock(&format!("{scope}\n{}", self.key)),
        )
        .await
        .map_err(|_| {
            ApiError::standard(
                StandardError::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still running; retry later",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        })?;
        // Whole microseconds: what every store keeps, so the record reads back equal.
        let now = ctx.now().trunc_subsecs(6);
        self.shared.maybe_purge(store, now);
        if let Some(record) = store.find_idempotency(&scope, &self.key, now).await? {
            return self.replay(record);
        }
        let ttl = chrono::Duration::from_std(self.shared.ttl).unwrap_or(chrono::Duration::MAX);
        let template = IdempotencyRecord {
            scope,
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            status: 0,
            response: String::new(),
            created_at: now,
            expires_at: now
                .checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        let (mine, answer) = match execute(template.clone()).await {
            Ran::Recorded(reply) => return Ok(reply.into_response()),
            Ran::Unrecorded(reply) => {
                let response = encode_reply(&reply).map_err(|error| {
                    tracing::error!(%error, "cannot encode a command's reply");
                    ApiError::internal()
                })?;
                let record = IdempotencyRecord {
                    status: reply.status.as_u16(),
                    response,
                    ..template
                };
                (record, Ok(reply.into_response()))
            }
            Ran::Failed(error) => {
                // Another request with this key (another process) may have won: its record
                // is the answer. Else remember this failure if it is an answer.
                if let Some(record) = store
                    .find_idempotency(&template.scope, &self.key, now)
                    .await?
                {
                    tracing::debug!(
                        key = %self.key,
                        error = %error.error(),
                        "another request holds the idempotency key; answering with its response"
                    );
                    return self.replay(record);
                }
                if !remembered(&error) {
                    return Err(error);
                }
                let mut shown = error.error().clone();
                shown.request_id = None;
                let response = serde_json::to_string(&Remembered::Error { error: shown })
                    .map_err(|_| ApiError::internal())?;
                let record = IdempotencyRecord {
                    status: error.status().as_u16(),
                    response,
                    ..template
                };
                (record, Err(error))
            }
        };
        let held = store.remember_idempotency(mine.clone()).await?;
        if held == mine {
            answer
        } else {
            self.replay(held)
        }
    }

    /// The remembered response, or a 422 if the key was first used with another request.
    fn replay(&self, record: IdempotencyRecord) -> Result<Response, ApiError> {
        if record.request_hash != self.request_hash {
            return Err(ApiError::standard(
                StandardError::IdempotencyKeyReused,
                "this Idempotency-Key was first used with another request (method, path or body); \
                 use a new key for a new request",
            ));
        }
        let replayed = HeaderValue::from_static("true");
        let remembered: Remembered = serde_json::from_str(&record.response).map_err(|error| {
            tracing::error!(%error, key = %record.key, "unreadable idempotency record");
            ApiError::internal()
        })?;
        Ok(match remembered {
            Remembered::Reply { headers, body } => {
                let mut reply = CommandReply {
                    status: StatusCode::from_u16(record.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    headers: Vec::new(),
                    body,
                };
                for (name, value) in headers {
                    if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                        reply = reply.with_header(name, &value);
                    }
                }
                let mut response = reply.into_response();
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED.clone(), replayed);
                response
            }
            Remembered::Error { error } => ApiError::new(error)
                .with_header(IDEMPOTENT_REPLAYED.clone(), replayed)
                .into_response(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_method_path_and_body_bytes() {
        let base = request_hash(&Method::POST, "/accounts/a", br#"{"amount":1}"#);
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            request_hash(&Method::POST, "/accounts/a", br#"{"amount":1}"#)
        );
        for other in [
            request_hash(&Method::PUT, "/accounts/a", br#"{"amount":1}"#),
            request_hash(&Method::POST, "/accounts/b", br#"{"amount":1}"#),
            request_hash(&Method::POST, "/accounts/a", br#"{"amount":1.0}"#),
            request_hash(&Method::POST, "/accounts/a\n", br#"{"amount":1}"#),
        ] {
            assert_ne!(base, other);
        }
    }

    #[tokio::test]
    async fn a_repeat_waits_for_the_first_then_gets_a_409() {
        let store: Arc<dyn EventStore> = Arc::new(factum_core::InMemoryEventStore::new());
        let request = IdempotentRequest {
            key: "k".to_owned(),
            request_hash: "h".to_owned(),
            shared: Shared::new(DEFAULT_IDEMPOTENCY_TTL, Duration::from_millis(20)),
        };
        // The first request with the key (anonymous scope) is still running.
        let first = request.shared.locks.lock("\nk").await;
        let ran = std::sync::atomic::AtomicBool::new(false);
        let ctx = CqrsContext::new();
        let refused = request
            .run(&store, &ctx, |_| async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ran::Failed(ApiError::internal())
            })
            .await
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        assert_eq!(refused.error().code, "IDEMPOTENCY_KEY_IN_USE");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        drop(first);
        let reply = CommandReply::json(StatusCode::OK, &serde_json::json!({"n": 1})).unwrap();
        let answered = request
            .run(&store, &ctx, |_| async { Ran::Unrecorded(reply) })
            .await
            .unwrap();
        assert_eq!(answered.status(), StatusCode::OK);
        let replayed = request
            .run(&store, &ctx, |_| async {
                Ran::Failed(ApiError::internal())
            })
            .await
            .unwrap();
        assert_eq!(replayed.headers()[&IDEMPOTENT_REPLAYED], "true");
    }

    #[test]
    fn only_answers_are_remembered() {
        assert!(remembered(&ApiError::validation("no")));
        assert!(remembered(&ApiError::not_found("no")));
        assert!(!remembered(&ApiError::standard(
            StandardError::Forbidden,
            "not yours"
        )));
        for transient in [
            ApiError::internal(),
            ApiError::standard(StandardError::ConcurrencyConflict, "x"),
            ApiError::standard(StandardError::RequestTimeout, "x"),
            ApiError::standard(StandardError::ServiceUnavailable, "x"),
        ] {
            assert!(!remembered(&transient), "{transient:?}");
        }
    }
}
