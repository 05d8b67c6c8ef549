//! The tagged-command routes of an [`HttpAggregate`]: the shape of the reference bank service,
//! where the body names its command. For `PATH = "accounts"` mounted at `""`:
//!
//! | route | does |
//! |---|---|
//! | `POST /accounts/{id}` | the command the body's tag (`type`) names: a create command → 201, an update command → 200 |
//! | `GET /accounts/{id}` (`?version=N`) | the state, now or after the first N events |
//! | `GET /accounts/{id}/events` (`?metadata=true`) | every event, or their envelopes |
//!
//! Commands and reads answer the aggregate's view with its version beside its fields
//! ([`VersionedState`]: `{"id","owner","balance","version"}`) and an `ETag` of the version.
//! `If-Match`, `Idempotency-Key` and the access policy work as on the generic routes.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use factum_core::validate_aggregate_id;

use crate::aggregate::{HttpAggregate, collection_path};
use crate::bodies::{
    EnvelopeBody, HistoryQuery, StateQuery, VersionedState, command_status, with_etag,
};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::extract::etag;
use crate::idempotency::CommandReply;
use crate::request::{AggregateRead, CommandRequest};
use crate::service::AggregateService;

/// The tagged-command routes of `A` under `{prefix}/{A::PATH}` (see the module docs).
pub fn tagged_routes<A: HttpAggregate>(prefix: &str, service: AggregateService<A>) -> Router {
    let base = collection_path::<A>(prefix);
    Router::new()
        .route(&format!("{base}/{{id}}"), post(run::<A>).get(read::<A>))
        .route(&format!("{base}/{{id}}/events"), get(history::<A>))
        // An empty id is a route of its own: the router would otherwise answer 404.
        .route(&format!("{base}/"), post(empty_id).get(empty_id))
        .with_state(service)
}

async fn run<A: HttpAggregate>(
    State(service): State<AggregateService<A>>,
    request: CommandRequest,
) -> Result<Response, ApiError> {
    let id = request.segment;
    validate_aggregate_id(&id)?;
    let name = service.command_name_in(&request.body)?.to_owned();
    let command = service.parse(&name, request.body)?;
    service
        .execute_idempotent(
            Some(&id),
            command,
            request.precondition,
            &request.ctx,
            request.idempotency.as_ref(),
            |created, _id, state: &A, version| versioned_reply(created, state, version),
        )
        .await
}

/// A command's reply on these routes: the view with its version, 201 for a create (else
/// 200), and its `ETag`.
pub(crate) fn versioned_reply<A: HttpAggregate>(
    created: bool,
    state: &A,
    version: u64,
) -> serde_json::Result<CommandReply> {
    Ok(
        CommandReply::json(command_status(created), &VersionedState::of(state, version))?
            .with_header(header::ETAG, &etag(version)),
    )
}

pub(crate) async fn read<A: HttpAggregate>(
    State(service): State<AggregateService<A>>,
    AggregateRead { ctx, id, query }: AggregateRead<StateQuery>,
) -> Result<Response, ApiError> {
    let loaded = service.load(&id, query.version, &ctx).await?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        VersionedState::of(&loaded.state, loaded.version),
    ))
}

async fn history<A: HttpAggregate>(
    State(service): State<AggregateService<A>>,
    AggregateRead { ctx, id, query }: AggregateRead<HistoryQuery>,
) -> Result<Response, ApiError> {
    let events = service.history(&id, 1, None, &ctx).await?;
    Ok(if query.metadata.unwrap_or(false) {
        let envelopes: Vec<EnvelopeBody<A::Event>> =
            events.into_iter().map(EnvelopeBody::from).collect();
        axum::Json(envelopes).into_response()
    } else {
        let events: Vec<A::Event> = events.into_iter().map(|e| e.payload).collect();
        axum::Json(events).into_response()
    })
}

pub(crate) async fn empty_id(RequestContext(_ctx): RequestContext) -> ApiError {
    ApiError::validation("aggregate id must not be empty")
}
