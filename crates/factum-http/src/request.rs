//! The extractors of the aggregate routes: what every read and every command of one
//! aggregate takes, each read in one place and in one order (so each route reports the
//! same failure first: a missing token before a bad id, a bad id before a bad body).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use factum_core::CqrsContext;
use serde::de::DeserializeOwned;

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::extract::{IfMatch, JsonBody, Params, PathId, Precondition};
use crate::idempotency::{Idempotency, IdempotentRequest};

/// A read of one aggregate: the caller's context, the aggregate id in the path, and the
/// query string as `Q`.
pub(crate) struct AggregateRead<Q> {
    pub(crate) ctx: CqrsContext,
    pub(crate) id: String,
    pub(crate) query: Q,
}

impl<S: Send + Sync, Q: DeserializeOwned> FromRequestParts<S> for AggregateRead<Q> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RequestContext(ctx) = RequestContext::from_request_parts(parts, state).await?;
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        let Params(query) = Params::<Q>::from_request_parts(parts, state).await?;
        Ok(Self { ctx, id, query })
    }
}

/// A command with one segment in its path (the aggregate id, or the command name): the
/// caller's context, that segment, `If-Match`, `Idempotency-Key`, and the JSON body.
pub(crate) struct CommandRequest {
    pub(crate) ctx: CqrsContext,
    pub(crate) segment: String,
    pub(crate) precondition: Option<Precondition>,
    pub(crate) idempotency: Option<IdempotentRequest>,
    pub(crate) body: serde_json::Value,
}

impl<S: Send + Sync> FromRequest<S> for CommandRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let RequestContext(ctx) = RequestContext::from_request_parts(&mut parts, state).await?;
        let PathId(segment) = PathId::from_request_parts(&mut parts, state).await?;
        let IfMatch(precondition) = IfMatch::from_request_parts(&mut parts, state).await?;
        let Idempotency(idempotency) = Idempotency::from_request_parts(&mut parts, state).await?;
        let JsonBody(body) =
            JsonBody::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self {
            ctx,
            segment,
            precondition,
            idempotency,
            body,
        })
    }
}
