//! The collection routes of an [`HttpAggregate`] whose clients create aggregates with an id
//! the service picks and then only read them, while its update commands are the service's
//! own (a process manager runs them). For `PATH = "transfers"` mounted at `""`:
//!
//! | route | does |
//! |---|---|
//! | `POST /transfers` | the create command (its tag may be left out when there is only one) → 201 with the view and its version, `ETag`, `Location` |
//! | `GET /transfers/{id}` (`?version=N`) | the view with its version, now or after the first N events |
//!
//! `Idempotency-Key` and the access policy work as on the other routes; the update commands
//! are not served.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header;
use axum::response::Response;
use axum::routing::{get, post};
use factum_core::{Commands, CqrsContext};

use crate::aggregate::{HttpAggregate, collection_path};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::extract::{IfMatch, JsonBody, Precondition};
use crate::idempotency::{Idempotency, IdempotentRequest};
use crate::service::{AggregateService, CommandKind};
use crate::tagged::{empty_id, read, versioned_reply};

/// The collection routes of `A` under `{prefix}/{A::PATH}` (see the module docs).
pub fn collection_routes<A: HttpAggregate>(prefix: &str, service: AggregateService<A>) -> Router {
    let base = collection_path::<A>(prefix);
    let create = Router::new()
        .route(&base, post(create::<A>))
        .with_state(Collection {
            service: service.clone(),
            base: Arc::from(base.as_str()),
        });
    Router::new()
        .route(&format!("{base}/{{id}}"), get(read::<A>))
        // An empty id is a route of its own: the router would otherwise answer 404.
        .route(&format!("{base}/"), get(empty_id))
        .with_state(service)
        .merge(create)
}

struct Collection<A: HttpAggregate> {
    service: AggregateService<A>,
    base: Arc<str>,
}

impl<A: HttpAggregate> Clone for Collection<A> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            base: self.base.clone(),
        }
    }
}

/// What the create route reads besides its state: the caller's context, the `If-Match`
/// precondition, the idempotency key and the JSON body (read last), each refused as its own
/// extractor refuses it.
struct CreateRequest {
    ctx: CqrsContext,
    precondition: Option<Precondition>,
    idempotency: Option<IdempotentRequest>,
    body: serde_json::Value,
}

impl<S: Send + Sync> FromRequest<S> for CreateRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let RequestContext(ctx) = RequestContext::from_request_parts(&mut parts, state).await?;
        let IfMatch(precondition) = IfMatch::from_request_parts(&mut parts, state).await?;
        let Idempotency(idempotency) = Idempotency::from_request_parts(&mut parts, state).await?;
        let JsonBody(body) =
            JsonBody::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self {
            ctx,
            precondition,
            idempotency,
            body,
        })
    }
}

async fn create<A: HttpAggregate>(
    State(state): State<Collection<A>>,
    request: CreateRequest,
) -> Result<Response, ApiError> {
    let CreateRequest {
        ctx,
        precondition,
        idempotency,
        body,
    } = request;
    let service = &state.service;
    let name = match <A::CreateCommand as Commands>::NAMES {
        [only] => (*only).to_owned(),
        _ => service.command_name_in(&body)?.to_owned(),
    };
    if service.command_kind(&name) != Some(CommandKind::Create) {
        return Err(ApiError::validation(format!(
            "POST {} runs a create command; {name} is not one",
            state.base
        )));
    }
    let command = service.parse(&name, body)?;
    let base = &state.base;
    service
        .execute_idempotent(
            None,
            command,
            precondition,
            &ctx,
            idempotency.as_ref(),
            |created, id, aggregate: &A, version| {
                Ok(versioned_reply(created, aggregate, version)?
                    .with_header(header::LOCATION, &format!("{base}/{id}")))
            },
        )
        .await
}
