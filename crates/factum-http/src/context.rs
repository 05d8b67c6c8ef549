//! The request context: request id, correlation id and user, resolved once per request by a
//! middleware and handed to every command as a [`CqrsContext`] (so it lands in each stored
//! event's metadata: the audit trail).
//!
//! The same middleware is where every response passes on its way out, which makes it the one
//! place that (1) puts `X-Request-Id` (and `X-Correlation-Id`) on every response, (2) turns
//! any error response into the structured JSON shape with the request id in it, whoever
//! produced it (a handler, axum's router for a 404/405, the timeout or panic layers), and
//! (3) writes the access log line.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use factum_core::standard::StandardError;
use factum_core::{CqrsContext, CqrsError};
use tracing::Instrument;

use crate::auth::{AuthRejection, JwtAuth, Principal};
use crate::error::{ApiError, RenderedError, clip, render};

/// The request id header, read from requests and set on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The correlation id header, read from requests and set on every response.
pub static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// The longest request or correlation id taken from a client.
const MAX_ID_LEN: usize = 128;

/// Who is calling, as the middleware found out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    /// Auth is not configured.
    Anonymous,
    /// A verified token's caller.
    User(Principal),
    /// Auth is configured and the request has no valid token; holds why.
    Rejected(AuthRejection),
}

impl Identity {
    /// The answer to a request that needs a caller and has none; `None` when it has one.
    fn rejection(&self) -> Option<ApiError> {
        match self {
            Self::Anonymous | Self::User(_) => None,
            Self::Rejected(AuthRejection::Invalid(why)) => Some(ApiError::unauthorized(*why)),
            Self::Rejected(AuthRejection::KeysUnavailable) => Some(
                ApiError::standard(
                    StandardError::ServiceUnavailable,
                    "the keys that verify tokens cannot be read now; try again shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")),
            ),
        }
    }
}

/// What the middleware learned about a request; in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    request_id: String,
    correlation_id: String,
    identity: Identity,
    pub(crate) body_limit: usize,
}

impl RequestInfo {
    /// The request id (from `X-Request-Id` if sane, else generated).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The correlation id (from `X-Correlation-Id` if sane, else the request id).
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// The verified user, if any.
    pub fn user(&self) -> Option<&str> {
        self.principal().map(|p| p.user.as_str())
    }

    /// The verified caller (user and roles), if any.
    pub fn principal(&self) -> Option<&Principal> {
        match &self.identity {
            Identity::User(principal) => Some(principal),
            _ => None,
        }
    }
}

/// The command context of a request (user, roles, request and correlation ids): extract it
/// in a handler to run commands on behalf of the caller. With auth configured, the
/// authentication layer has already refused a request without a valid bearer token on every
/// protected route; on a public route this extractor refuses it the same way (401).
///
/// Without the context middleware installed (a router used bare), every request is an
/// anonymous one with a fresh request id.
#[derive(Debug, Clone)]
pub struct RequestContext(pub CqrsContext);

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(info) = parts.extensions.get::<RequestInfo>() else {
            return Ok(Self(CqrsContext::new()));
        };
        let ctx = CqrsContext::new()
            .with_request_id(info.request_id.clone())
            .with_correlation_id(info.correlation_id.clone());
        if let Some(rejection) = info.identity.rejection() {
            return Err(rejection);
        }
        Ok(Self(match &info.identity {
            Identity::User(principal) => ctx
                .with_user(principal.user.clone())
                .with_roles(principal.roles.iter().cloned()),
            _ => ctx,
        }))
    }
}

/// What the middleware needs to know.
#[derive(Debug, Clone)]
pub(crate) struct ContextConfig {
    pub(crate) auth: Option<Arc<JwtAuth>>,
    pub(crate) body_limit: usize,
    pub(crate) timeout_secs: f64,
}

fn sane_id(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= MAX_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| text.to_owned())
}

async fn identify(auth: Option<&JwtAuth>, headers: &axum::http::HeaderMap) -> Identity {
    use AuthRejection::Invalid;
    let Some(auth) = auth else {
        return Identity::Anonymous;
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Identity::Rejected(Invalid(
            "missing bearer token (Authorization: Bearer <JWT>)",
        ));
    };
    let Some(token) = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }) else {
        return Identity::Rejected(Invalid("the Authorization header is not a bearer token"));
    };
    match auth.verify(token).await {
        Ok(principal) => Identity::User(principal),
        Err(why) => Identity::Rejected(why),
    }
}

/// The authentication layer, over every protected route: a request without a verified
/// caller is answered here (401, or 503 when the keys cannot be read), before any handler,
/// extractor or body read.
pub(crate) async fn require_caller(req: Request, next: Next) -> Response {
    let rejection = match req.extensions().get::<RequestInfo>() {
        Some(info) => info.identity.rejection(),
        // The context middleware always runs first; without it nothing says who calls.
        None => Some(ApiError::unauthorized("no caller could be identified")),
    };
    match rejection {
        Some(error) => axum::response::IntoResponse::into_response(error),
        None => next.run(req).await,
    }
}

/// The middleware: see the module docs.
pub(crate) async fn context_middleware(
    State(config): State<Arc<ContextConfig>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = sane_id(req.headers().get(&X_REQUEST_ID))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let correlation_id =
        sane_id(req.headers().get(&X_CORRELATION_ID)).unwrap_or_else(|| request_id.clone());
    let identity = identify(config.auth.as_deref(), req.headers()).await;
    let user = match &identity {
        Identity::User(principal) => Some(principal.user.clone()),
        _ => None,
    };
    req.extensions_mut().insert(RequestInfo {
        request_id: request_id.clone(),
        correlation_id: correlation_id.clone(),
        identity,
        body_limit: config.body_limit,
    });

    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = next.run(req).instrument(span).await;

    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        response = structured(response, &request_id, &method, &path, &config);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        headers.insert(X_CORRELATION_ID.clone(), value);
    }
    tracing::info!(
        target: "factum_http::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        request_id = %request_id,
        user = user.as_deref().unwrap_or("-"),
        "request"
    );
    response
}

/// Re-renders an error response in the structured shape with the request id: a response
/// from an [`ApiError`] keeps its error; any other (axum's 404/405, the timeout's 408, a
/// body limit's 413) gets the standard error for its status.
fn structured(
    response: Response,
    request_id: &str,
    method: &Method,
    path: &str,
    config: &ContextConfig,
) -> Response {
    let (mut parts, _body) = response.into_parts();
    let error = match parts.extensions.remove::<RenderedError>() {
        Some(RenderedError(error)) => error,
        None => standard_for(parts.status, method, path, config),
    };
    let error = error.with_request_id(request_id);
    let rendered = render(&error);
    let (new_parts, body) = rendered.into_parts();
    parts.status = new_parts.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.extensions.insert(RenderedError(error));
    Response::from_parts(parts, Body::new(body))
}

fn standard_for(
    status: StatusCode,
    method: &Method,
    path: &str,
    config: &ContextConfig,
) -> CqrsError {
    use StandardError as S;
    let path = clip(path, 200);
    let (kind, message) = match status {
        StatusCode::NOT_FOUND => (S::NotFound, format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => (
            S::MethodNotAllowed,
            format!("method {method} is not allowed on {path}"),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            S::RequestTimeout,
            format!(
                "the request took longer than {} seconds",
                config.timeout_secs
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            S::PayloadTooLarge,
            format!(
                "the request body is larger than {} bytes",
                config.body_limit
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (S::UnsupportedMediaType, "unsupported media type".to_owned())
        }
        StatusCode::UNAUTHORIZED => (S::Unauthorized, "unauthorized".to_owned()),
        StatusCode::FORBIDDEN => (S::Forbidden, "forbidden".to_owned()),
        StatusCode::TOO_MANY_REQUESTS => (S::TooManyRequests, "too many requests".to_owned()),
        StatusCode::SERVICE_UNAVAILABLE => {
            (S::ServiceUnavailable, "service unavailable".to_owned())
        }
        s if s.is_server_error() => (S::Internal, "internal error".to_owned()),
        _ => (S::Validation, "the request was rejected".to_owned()),
    };
    let mut error = CqrsError::standard(kind, message);
    // Keep the real status for statuses without a standard code of their own.
    error.status = status.as_u16();
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_taken_from_clients() {
        let ok = HeaderValue::from_static("req-1.a_b:c");
        assert_eq!(sane_id(Some(&ok)).as_deref(), Some("req-1.a_b:c"));
        for bad in ["", "has space", "semi;colon", "é"] {
            let value = HeaderValue::from_bytes(bad.as_bytes()).ok();
            assert_eq!(sane_id(value.as_ref()), None, "{bad}");
        }
        let long = HeaderValue::from_str(&"x".repeat(MAX_ID_LEN + 1)).ok();
        assert_eq!(sane_id(long.as_ref()), None);
    }

    #[tokio::test]
    async fn identity_without_auth_is_anonymous_whatever_the_headers() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer junk"),
        );
        assert_eq!(identify(None, &headers).await, Identity::Anonymous);
        let auth = JwtAuth::hs256("k").unwrap_or_else(|_| unreachable!());
        assert!(matches!(
            identify(Some(&auth), &headers).await,
            Identity::Rejected(_)
        ));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(
            identify(Some(&auth), &headers).await,
            Identity::Rejected(AuthRejection::Invalid(
                "the Authorization header is not a bearer token"
            ))
        );
    }
}
