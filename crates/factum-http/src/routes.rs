//! The generic routes of an [`HttpAggregate`], for an aggregate with `PATH = "accounts"`
//! mounted at `/api`:
//!
//! | route | does |
//! |---|---|
//! | `POST /api/accounts/commands/{command}` | a create command, with a generated id → 201 |
//! | `POST /api/accounts/{id}/commands/{command}` | a create command with this id → 201, or an update command → 200 |
//! | `GET /api/accounts/{id}` (`?version=N`) | the state, now or after the first N events; `ETag` = version |
//! | `GET /api/accounts/{id}/events` (`?from_version=&limit=`) | the audit log: event envelopes, paged |
//!
//! Commands answer `{"id", "state", "version"}`. The command name in the path is the serde
//! tag of the command enums: the body's fields are the variant's fields, and the tag field is
//! filled in from the path (a body that names another command is a 400). An unknown command
//! is a 404 whose details list the allowed ones. `If-Match: "N"` makes an update run only at
//! version N (else 412, nothing stored).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use factum_core::standard::StandardError;
use factum_core::{CqrsCommandEngine, CqrsContext};

use crate::aggregate::{HttpAggregate, collection_path};
use crate::bodies::{
    DEFAULT_PAGE, EnvelopeBody, EventPage, EventsQuery, MAX_PAGE, StateBody, StateQuery,
    command_status, with_etag,
};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::extract::{IfMatch, JsonBody, Precondition, etag};
use crate::idempotency::{CommandReply, Idempotency, IdempotentRequest};
use crate::request::{AggregateRead, CommandRequest};
use crate::service::{AggregateService, CommandKind};

/// The generic routes of `A`, under `{prefix}/{A::PATH}` (`prefix` is `""` or like `/api`).
pub fn aggregate_routes<A: HttpAggregate>(prefix: &str, engine: CqrsCommandEngine<A>) -> Router {
    let base = collection_path::<A>(prefix);
    let service = AggregateService::new(engine);
    Router::new()
        .route(
            &format!("{base}/commands/{{command}}"),
            post(create_generated::<A>),
        )
        .route(
            &format!("{base}/{{id}}/commands/{{command}}"),
            post(run_command::<A>),
        )
        .route(&format!("{base}/{{id}}"), get(read_state::<A>))
        .route(&format!("{base}/{{id}}/events"), get(read_events::<A>))
        .with_state(RouteState {
            service,
            base: Arc::from(base.as_str()),
        })
}

/// `{prefix}/{A::PATH}` with one leading slash and no trailing one.
struct RouteState<A: HttpAggregate> {
    service: AggregateService<A>,
    base: Arc<str>,
}

impl<A: HttpAggregate> Clone for RouteState<A> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            base: self.base.clone(),
        }
    }
}

/// The reply to a command of the generic routes: `{"id","state","version"}` with its `ETag`,
/// and a `Location` for a create.
fn command_reply<A: HttpAggregate>(
    base: &str,
    created: bool,
    id: &str,
    state: &A,
    version: u64,
) -> serde_json::Result<CommandReply> {
    let reply = CommandReply::json(command_status(created), &StateBody::of(id, state, version))?
        .with_header(header::ETAG, &etag(version));
    Ok(if created {
        reply.with_header(header::LOCATION, &format!("{base}/{id}"))
    } else {
        reply
    })
}

async fn create_generated<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    request: CommandRequest,
) -> Result<Response, ApiError> {
    let (service, command) = (&state.service, request.segment.as_str());
    match service.command_kind(command) {
        None => return Err(service.unknown_command(command, StandardError::NotFound)),
        Some(CommandKind::Update) => {
            return Err(ApiError::validation(format!(
                "{command} is an update command: POST {}/{{id}}/commands/{command}",
                state.base
            )));
        }
        Some(CommandKind::Create) => {}
    }
    let named = Named {
        id: None,
        command,
        body: request.body,
    };
    let idempotency = request.idempotency.as_ref();
    execute(
        &state,
        named,
        request.precondition,
        &request.ctx,
        idempotency,
    )
    .await
}

async fn run_command<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<(String, String)>, PathRejection>,
    IfMatch(precondition): IfMatch,
    Idempotency(idempotency): Idempotency,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Path((id, command)) = path?;
    let service = &state.service;
    if service.command_kind(&command).is_none() {
        return Err(service.unknown_command(&command, StandardError::NotFound));
    }
    factum_core::validate_aggregate_id(&id)?;
    let command = Named {
        id: Some(&id),
        command: &command,
        body,
    };
    execute(&state, command, precondition, &ctx, idempotency.as_ref()).await
}

/// A command named in the path, with its body and the aggregate id if the path has one.
struct Named<'a> {
    id: Option<&'a str>,
    command: &'a str,
    body: serde_json::Value,
}

/// Parses and runs a command of the generic routes, answering `{"id","state","version"}`.
async fn execute<A: HttpAggregate>(
    state: &RouteState<A>,
    named: Named<'_>,
    precondition: Option<Precondition>,
    ctx: &CqrsContext,
    idempotency: Option<&IdempotentRequest>,
) -> Result<Response, ApiError> {
    let parsed = state.service.parse(named.command, named.body)?;
    let base = &state.base;
    state
        .service
        .execute_idempotent(
            named.id,
            parsed,
            precondition,
            ctx,
            idempotency,
            |created, id, aggregate: &A, version| {
                command_reply(base, created, id, aggregate, version)
            },
        )
        .await
}

async fn read_state<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    AggregateRead { ctx, id, query }: AggregateRead<StateQuery>,
) -> Result<Response, ApiError> {
    let loaded = state.service.load(&id, query.version, &ctx).await?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        StateBody::of(&id, &loaded.state, loaded.version),
    ))
}

async fn read_events<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    AggregateRead { ctx, id, query }: AggregateRead<EventsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit > MAX_PAGE {
        return Err(ApiError::validation(format!(
            "limit must be at most {MAX_PAGE}"
        )));
    }
    let events = state
        .service
        .history(&id, query.from_version.unwrap_or(1), Some(limit), &ctx)
        .await?;
    let next_from_version = match events.last() {
        Some(last) if events.len() == limit => Some(last.version + 1),
        _ => None,
    };
    let page = EventPage {
        events: events.into_iter().map(EnvelopeBody::from).collect(),
        next_from_version,
    };
    Ok(axum::Json(page).into_response())
}
