//! `GET /subscriptions` (every subscription's position, lag, retries and parked count) and
//! `POST /subscriptions/{name}/replay-parked` (hands a handler's parked events over again).
//! The runtime is factum-core's [`Projections`]; view projections are listed too, and
//! refuse a replay (their parked events are applied again by a rebuild).

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use factum_core::Projections;
use serde_json::json;

use crate::context::RequestContext;
use crate::error::{ApiError, clip};

/// `GET /subscriptions` and `POST /subscriptions/{name}/replay-parked`.
pub fn subscription_routes(subscriptions: Projections) -> Router {
    Router::new()
        .route("/subscriptions", get(list))
        .route("/subscriptions/{name}/replay-parked", post(replay))
        .with_state(subscriptions)
}

async fn list(
    State(subscriptions): State<Projections>,
    RequestContext(_ctx): RequestContext,
) -> Result<Response, ApiError> {
    Ok(axum::Json(subscriptions.subscription_statuses().await?).into_response())
}

async fn replay(
    State(subscriptions): State<Projections>,
    RequestContext(_ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = path?;
    let Some(report) = subscriptions.replay_parked(&name).await? else {
        return Err(ApiError::not_found(format!(
            "no subscription '{}'; this service runs: {}",
            clip(&name, 64),
            subscriptions.subscription_names().join(", ")
        )));
    };
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|(position, error)| json!({"position": position, "error": error}))
        .collect();
    Ok(axum::Json(json!({"handled": report.handled, "failed": failed})).into_response())
}
