//! `GET /projections` and `GET /projections/{name}`: how far each asynchronous projection of
//! a service is behind the event log. The runtime itself ([`Projections`]: tasks, waking,
//! rebuilds) is factum-core's; this module only serves its [`ProjectionStatus`] and describes
//! it in the OpenAPI document ([`ProjectionStatusDoc`], checked against what is served by a
//! test below).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use factum_core::Projections;
#[cfg(doc)]
use factum_core::{ParkedEntry, ProjectionStatus};
use utoipa::ToSchema;

use crate::context::RequestContext;
use crate::error::{ApiError, clip};
use crate::extract::PathId;

/// The OpenAPI schema of [`ProjectionStatus`] (named `ProjectionStatus` in the document),
/// the body of `GET /projections/{name}`. Only a description: the body served is core's type.
#[derive(ToSchema)]
#[schema(as = ProjectionStatus)]
#[allow(dead_code)]
pub(crate) struct ProjectionStatusDoc {
    /// The projection's name.
    #[schema(example = "movements")]
    name: String,
    /// The position of the last event it has applied.
    #[schema(example = 1200)]
    checkpoint: u64,
    /// The position of the last stored event.
    #[schema(example = 1203)]
    head: u64,
    /// Events stored but not applied yet.
    #[schema(example = 3)]
    behind: u64,
    /// How many events it parked: events it could not apply after its attempts, set aside
    /// so that it goes on (they need a fix and a rebuild).
    #[schema(example = 0)]
    parked: u64,
    /// The parked events, by position.
    parked_events: Vec<ParkedEntryDoc>,
}

/// The OpenAPI schema of [`ParkedEntry`] (named `ParkedEntry` in the document).
#[derive(ToSchema)]
#[schema(as = ParkedEntry)]
#[allow(dead_code)]
pub(crate) struct ParkedEntryDoc {
    /// The event's global position.
    position: u64,
    /// The event's id.
    event_id: String,
    /// The aggregate type.
    aggregate_type: String,
    /// The aggregate id.
    aggregate_id: String,
    /// The event's aggregate version.
    version: u64,
    /// The event type.
    event_type: String,
    /// Why it could not be applied.
    error: String,
    /// How many times it was tried.
    attempts: u32,
    /// When it was parked (RFC 3339).
    parked_at: String,
}

/// `GET /projections` (every projection's lag) and `GET /projections/{name}`.
pub fn projection_routes(projections: Projections) -> Router {
    Router::new()
        .route("/projections", get(list_statuses))
        .route("/projections/{name}", get(one_status))
        .with_state(projections)
}

async fn list_statuses(
    State(projections): State<Projections>,
    RequestContext(_ctx): RequestContext,
) -> Result<Response, ApiError> {
    Ok(axum::Json(projections.statuses().await?).into_response())
}

async fn one_status(
    State(projections): State<Projections>,
    RequestContext(_ctx): RequestContext,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    let Some(status) = projections.status(&name).await? else {
        return Err(ApiError::not_found(format!(
            "no projection '{}'; this service runs: {}",
            clip(&name, 64),
            projections.names().join(", ")
        )));
    };
    Ok(axum::Json(status).into_response())
}

#[cfg(test)]
mod tests {
    use factum_core::{ParkedEntry, ProjectionStatus};
    use serde_json::Value;
    use utoipa::PartialSchema;

    use super::*;

    /// The property names a schema documents, and those it marks required.
    fn documented(schema: impl serde::Serialize) -> (Vec<String>, Vec<String>) {
        let schema = serde_json::to_value(schema).unwrap();
        let mut properties: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        properties.sort();
        required.sort();
        (properties, required)
    }

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_documented_status_is_what_is_served() {
        let parked = ParkedEntry {
            position: 7,
            event: factum_core::EventRef {
                event_id: uuid::Uuid::nil(),
                aggregate_type: "account".into(),
                aggregate_id: "acc-1".into(),
                version: 2,
                event_type: "MoneyDeposited".into(),
            },
            error: "bad".into(),
            attempts: 5,
            parked_at: "2025-01-01T00:00:00+00:00".into(),
        };
        let status = ProjectionStatus {
            name: "movements".into(),
            checkpoint: 7,
            head: 9,
            behind: 2,
            parked: 1,
            parked_events: vec![parked],
        };
        let served = serde_json::to_value(&status).unwrap();
        // Every field served is documented and required (the server always sends it).
        let (properties, required) = documented(ProjectionStatusDoc::schema());
        assert_eq!(properties, keys(&served));
        assert_eq!(required, keys(&served));
        let (properties, required) = documented(ParkedEntryDoc::schema());
        assert_eq!(properties, keys(&served["parked_events"][0]));
        assert_eq!(required, keys(&served["parked_events"][0]));
        assert_eq!(ProjectionStatusDoc::name(), "ProjectionStatus");
        assert_eq!(ParkedEntryDoc::name(), "ParkedEntry");
    }
}
