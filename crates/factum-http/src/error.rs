//! Errors: the crate's [`Error`] (setting up and running a server) and [`ApiError`], the one
//! type every failing request turns into.
//!
//! An [`ApiError`] is a [`CqrsError`] (the structured shape every Factum layer shows:
//! `{"domain","code","internalCode","status","message","details"?,"requestId"?}`) plus the
//! response headers that go with it. Core errors, domain errors and axum's own rejections
//! all convert into it, so a client parses one format whatever went wrong. Store internals
//! (SQL, file paths) are logged and replaced by a generic message; they never reach a client.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use factum_core::standard::StandardError;
use factum_core::{CommandError, CqrsError, DomainError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong setting up or running an HTTP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (an empty JWT secret, ...).
    #[error("invalid HTTP configuration: {0}")]
    Config(String),
    /// A JSON Web Key Set cannot be read or is not one.
    #[error("JWKS: {0}")]
    Jwks(String),
    /// The server stopped with an I/O error (the listener failed).
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// View routes were asked of a store that keeps events only.
    #[error("view '{view}' needs a store that keeps views; this event store does not")]
    ViewsUnsupported {
        /// The view's type name.
        view: String,
    },
}

/// The JSON body of every error response: the structured error of `factum-core`.
///
/// This is the wire type (and the OpenAPI schema) of [`CqrsError`]; the two serialize to the
/// same JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The domain that raised the error: `CQRS` for infrastructure and request errors, or
    /// the aggregate's domain (`ACCOUNT`).
    #[schema(example = "ACCOUNT")]
    pub domain: String,
    /// A stable, machine-readable code.
    #[schema(example = "ACCOUNT_INSUFFICIENT_FUNDS")]
    pub code: String,
    /// A stable numeric code: the domain prefix times 1000 plus the error's index.
    #[schema(example = 10001)]
    pub internal_code: u64,
    /// The HTTP status of the response.
    #[schema(example = 400)]
    pub status: u16,
    /// A human-readable explanation.
    #[schema(example = "insufficient funds: balance is 100.00, withdrawal is 200.00")]
    pub message: String,
    /// Structured details (the allowed commands, the versions of a failed `If-Match`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// The id of the request, as in the `X-Request-Id` response header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl From<CqrsError> for ErrorBody {
    fn from(error: CqrsError) -> Self {
        Self {
            domain: error.domain,
            code: error.code,
            internal_code: error.internal_code,
            status: error.status,
            message: error.message,
            details: error.details,
            request_id: error.request_id,
        }
    }
}

/// A failed request: its structured error and the headers that go with it.
///
/// Every handler of this crate returns `Result<_, ApiError>`; so can yours. It renders as
/// the [`ErrorBody`] JSON with the error's status. The context middleware (see
/// [`Api`](crate::Api)) adds the request id to it.
///
/// ```
/// use axum::response::IntoResponse;
/// use factum_http::ApiError;
///
/// let response = ApiError::validation("limit must be at least 1").into_response();
/// assert_eq!(response.status(), 400);
/// ```
#[derive(Debug, Clone)]
pub struct ApiError(Box<Inner>);

// Boxed: handlers return `Result<_, ApiError>` everywhere, and the happy path should not pay
// for moving a large error around.
#[derive(Debug, Clone)]
struct Inner {
    error: CqrsError,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Marks a response rendered from an [`ApiError`], so the middleware can re-render it with
/// the request id instead of replacing it.
#[derive(Debug, Clone)]
pub(crate) struct RenderedError(pub(crate) CqrsError);

impl ApiError {
    /// An error with this structured body.
    pub fn new(error: CqrsError) -> Self {
        Self(Box::new(Inner {
            error,
            headers: Vec::new(),
        }))
    }

    /// A standard infrastructure error with a message.
    pub fn standard(kind: StandardError, message: impl Into<String>) -> Self {
        Self::new(CqrsError::standard(kind, message))
    }

    /// A typed domain error, with its own code and status.
    pub fn domain(error: &impl DomainError) -> Self {
        Self::new(error.to_cqrs_error())
    }

    /// 400 `VALIDATION_ERROR`: the request is malformed.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::standard(StandardError::Validation, message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::standard(StandardError::NotFound, message)
    }

    /// 401 `UNAUTHORIZED`, with the `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::standard(StandardError::Unauthorized, message)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403 `FORBIDDEN`: the caller is known and may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::standard(StandardError::Forbidden, message)
    }

    /// 500 `INTERNAL_ERROR` with a generic message: what broke is logged, not shown.
    pub fn internal() -> Self {
        Self::standard(StandardError::Internal, "internal error")
    }

    /// Attaches structured details.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.0.error.details = Some(details);
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The structured error.
    pub fn error(&self) -> &CqrsError {
        &self.0.error
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        status_of(&self.0.error)
    }
}

fn status_of(error: &CqrsError) -> StatusCode {
    StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Renders a structured error as a JSON response with its status.
pub(crate) fn render(error: &CqrsError) -> Response {
    let body = serde_json::to_vec(&ErrorBody::from(error.clone())).unwrap_or_else(|_| {
        // Serializing strings and numbers cannot fail; keep a valid body regardless.
        br#"{"domain":"CQRS","code":"INTERNAL_ERROR","internalCode":1013,"status":500,"message":"internal error"}"#.to_vec()
    });
    let mut response = (
        status_of(error),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    response
        .extensions_mut()
        .insert(RenderedError(error.clone()));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Inner { error, headers } = *self.0;
        let mut response = render(&error);
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        if response.status() == StatusCode::SERVICE_UNAVAILABLE
            && !response.headers().contains_key(header::RETRY_AFTER)
        {
            // Every 503 is temporary (a store outage, overload): tell clients when to retry.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.error.fmt(f)
    }
}

impl std::error::Error for ApiError {}

impl From<CqrsError> for ApiError {
    fn from(error: CqrsError) -> Self {
        Self::new(error)
    }
}

impl From<factum_core::Error> for ApiError {
    fn from(error: factum_core::Error) -> Self {
        let shown = error.to_cqrs_error();
        if matches!(
            error,
            factum_core::Error::Unavailable(_) | factum_core::Error::StoreFull(_)
        ) {
            // A state of the store, logged once per request but not as a fault of this one.
            tracing::warn!(error = %error, "request refused");
        } else if shown.status >= 500 {
            // The client gets a generic message; the operator gets the cause.
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
        }
        Self::new(shown)
    }
}

impl<E: DomainError> From<CommandError<E>> for ApiError {
    /// A command's error, rendered as the core error of the same case (one mapping).
    fn from(error: CommandError<E>) -> Self {
        factum_core::Error::from(error).into()
    }
}

/// Caps what a client-controlled string contributes to a message.
pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::validation(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        let text = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        Self::validation(format!("invalid query string: {text}"))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::standard(
                StandardError::PayloadTooLarge,
                "request body is larger than the server accepts",
            )
        } else {
            Self::validation("the request body could not be read")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_serializes_exactly_like_the_core_error() {
        let core = CqrsError::standard(StandardError::Validation, "bad")
            .with_details(serde_json::json!({"field": "amount"}))
            .with_request_id("r-1");
        let ours = serde_json::to_value(ErrorBody::from(core.clone())).unwrap_or_default();
        let theirs = serde_json::to_value(core).unwrap_or_default();
        assert_eq!(ours, theirs);
        assert_eq!(ours["internalCode"], 1001);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = factum_core::Error::store(std::io::Error::other("/var/secret.db locked"));
        let api = ApiError::from(err);
        assert_eq!(api.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!api.error().message.contains("secret"));
    }

    #[test]
    fn an_unreachable_store_is_503_with_retry_after_and_a_full_one_507() {
        let down = ApiError::from(factum_core::Error::Unavailable("10.0.0.7 refused".into()))
            .into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "1");
        let full = ApiError::from(factum_core::Error::StoreFull("disk".into())).into_response();
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(!full.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("ééééé", 2), "éé...");
    }
}
