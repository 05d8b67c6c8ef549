//! Extractors whose failures are [`ApiError`]s: a JSON body and the `If-Match` precondition.
//!
//! axum's own `Json` extractor answers bad input with plain-text bodies and a 422 for a body
//! that does not fit the type. Commands here are read as a [`serde_json::Value`] first (a
//! syntax problem is a 400 naming the line and column) and only then as the command type, so
//! the message can name the command and the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use factum_core::standard::StandardError;
use serde::de::DeserializeOwned;

use crate::context::RequestInfo;
use crate::error::{ApiError, clip};

/// A JSON request body, read exactly ([`factum_core::json::parse_body`]): a number no
/// `f64` holds is kept as its text (for exact types such as money to read), and a key
/// repeated in an object is a 400 naming it.
///
/// A `Content-Type` other than `application/json` (or `application/*+json`), or none at
/// all, is a 415. An empty body or one that is not JSON is a 400; a body over
/// the limit is a 413.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // A missing Content-Type is refused too: without it a browser sends a cross-site
        // POST with no CORS preflight, so any web page could run commands.
        let mime = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase());
        let mime = mime
            .as_deref()
            .map(|text| text.split(';').next().unwrap_or("").trim());
        match mime {
            Some(mime) if is_json(mime) => {}
            Some(mime) => {
                return Err(ApiError::standard(
                    StandardError::UnsupportedMediaType,
                    format!(
                        "expected Content-Type: application/json, got {:?}",
                        clip(mime, 80)
                    ),
                ));
            }
            None => {
                return Err(ApiError::standard(
                    StandardError::UnsupportedMediaType,
                    "expected Content-Type: application/json; the request has none",
                ));
            }
        }
        let limit = req
            .extensions()
            .get::<RequestInfo>()
            .map(|info| info.body_limit);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match limit.filter(|_| rejection.status() == StatusCode::PAYLOAD_TOO_LARGE) {
                Some(limit) => ApiError::standard(
                    StandardError::PayloadTooLarge,
                    format!("the request body is larger than {limit} bytes"),
                ),
                None => ApiError::from(rejection),
            }
        })?;
        decode_json_body(&bytes).map(Self)
    }
}

/// Reads a request body as JSON, as [`JsonBody`] does once the headers are checked
/// ([`factum_core::json::parse_body`]: numbers kept exact, repeated keys refused): an empty
/// body, one that is not JSON, or JSON refused as data is a 400.
pub fn decode_json_body(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "the request body is empty; expected a JSON object",
        ));
    }
    factum_core::json::parse_body(bytes).map_err(|e| {
        // Data errors: valid JSON refused (a repeated key, a reserved key, too deep).
        if e.is_data() {
            ApiError::validation(format!("the request body is refused: {e}"))
        } else {
            ApiError::validation(format!("the request body is not valid JSON: {e}"))
        }
    })
}

/// `application/json` or `application/*+json` (a lower-case media type without parameters).
fn is_json(mime: &str) -> bool {
    mime == "application/json"
        || mime
            .strip_prefix("application/")
            .and_then(|rest| rest.strip_suffix("+json"))
            .is_some_and(|subtype| !subtype.is_empty() && !subtype.contains('/'))
}

/// The precondition of an `If-Match` header.
///
/// The `ETag` of an aggregate is its version in quotes (`"3"`). `If-Match: "3"` makes a
/// command run only if the aggregate is still at version 3 (else 412, nothing stored);
/// `If-Match: *` only asks that it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current version.
    Any,
    /// The aggregate must be at exactly this version.
    Version(u64),
}

impl Precondition {
    /// Parses an `If-Match` value: `*`, `"3"`, `W/"3"` or a bare `3`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value == "*" {
            return Some(Self::Any);
        }
        let value = value.strip_prefix("W/").unwrap_or(value);
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        value.parse().ok().map(Self::Version)
    }
}

/// The `ETag` value of an aggregate at a version: the version in quotes.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The optional `If-Match` header of a request. An unreadable one is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<Precondition>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        let invalid = || {
            ApiError::validation(
                "invalid If-Match header: expected one ETag such as \"3\" (the version) or *",
            )
        };
        if values.next().is_some() {
            return Err(invalid());
        }
        let text = value.to_str().map_err(|_| invalid())?;
        Precondition::parse(text)
            .map(|p| Self(Some(p)))
            .ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_values_parse() {
        assert_eq!(Precondition::parse("*"), Some(Precondition::Any));
        assert_eq!(Precondition::parse("\"3\""), Some(Precondition::Version(3)));
        assert_eq!(
            Precondition::parse("W/\"12\""),
            Some(Precondition::Version(12))
        );
        assert_eq!(Precondition::parse(" 7 "), Some(Precondition::Version(7)));
        for bad in [
            "",
            "\"\"",
            "\"a\"",
            "\"1\", \"2\"",
            "-1",
            "99999999999999999999999",
        ] {
            assert_eq!(Precondition::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Precondition::parse(&etag(42)),
            Some(Precondition::Version(42))
        );
    }
}

/// The one `{id}` (or `{name}`) segment of a route's path; one that does not decode is a 400
/// in the API's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(Self(id))
    }
}

/// A route's query string, read as `Q`; one that does not read is a 400 in the API's error
/// shape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Params<Q>(pub Q);

impl<S: Send + Sync, Q: DeserializeOwned> FromRequestParts<S> for Params<Q> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(query) = Query::<Q>::from_request_parts(parts, state).await?;
        Ok(Self(query))
    }
}
