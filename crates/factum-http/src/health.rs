//! Operational routes and limits: `/health/live`, `/health/ready` (and `/health`, which
//! answers as ready does), and the bound on requests in flight.
//!
//! Live says the process serves HTTP; it never touches the store, so an orchestrator does
//! not restart a healthy process because its database is down. Ready says the store is
//! reachable and can take writes: a store that does not answer within
//! [`READY_CHECK_TIMEOUT`] is not ready, so the check itself never hangs.
//!
//! The in-flight bound answers 503 (with `Retry-After`) as soon as the limit is reached,
//! instead of queueing without bound: a client then backs off while the server works off
//! what it has, and memory and latency stay bounded under overload.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use factum_core::standard::StandardError;
use factum_core::{CqrsError, EventStore};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How long `/health/ready` waits for the store before calling it unreachable.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health/live`: the process is up and serving.
pub(crate) async fn live() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /health/ready` (and `/health`): the store answers and has room for writes.
pub(crate) async fn ready(State(store): State<Option<Arc<dyn EventStore>>>) -> Response {
    let Some(store) = store else {
        return live().await;
    };
    match tokio::time::timeout(READY_CHECK_TIMEOUT, store.health_check()).await {
        Ok(Ok(())) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            not_ready(&error).into_response()
        }
        Err(_) => {
            tracing::warn!("readiness check: the store did not answer in time");
            not_ready(&factum_core::Error::Unavailable(format!(
                "no answer within {} s",
                READY_CHECK_TIMEOUT.as_secs()
            )))
            .into_response()
        }
    }
}

/// Always 503 (an orchestrator reads the status): the body's code says why, `STORE_FULL` or
/// `STORE_UNAVAILABLE`.
fn not_ready(error: &factum_core::Error) -> ApiError {
    let (kind, reason) = match error {
        factum_core::Error::StoreFull(_) => (
            StandardError::StoreFull,
            "the event store has no space left for writes",
        ),
        _ => (
            StandardError::StoreUnavailable,
            "the event store is not reachable",
        ),
    };
    let mut shown = CqrsError::standard(kind, format!("not ready: {reason}"));
    shown.status = 503;
    ApiError::new(shown).with_details(serde_json::json!({"check": "store"}))
}

/// The bound on requests in flight, shared by every connection.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl InFlight {
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

/// Runs the request if a permit is free, else answers 503 at once.
pub(crate) async fn limit_in_flight(
    State(in_flight): State<InFlight>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = in_flight.permits.clone().try_acquire_owned() else {
        tracing::warn!(
            limit = in_flight.limit,
            "shedding a request: too many in flight"
        );
        return ApiError::standard(
            StandardError::ServiceUnavailable,
            format!(
                "the server is handling its limit of {} requests; retry shortly",
                in_flight.limit
            ),
        )
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
        .into_response();
    };
    next.run(req).await
}
