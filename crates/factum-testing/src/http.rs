//! Requests to an axum [`Router`] in tests, without a socket (`tower::ServiceExt::oneshot`),
//! and their replies read whole: one helper for every test file that drives a service's
//! router.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use axum::Router;
//! use axum::routing::post;
//! use factum_testing::http;
//!
//! let app = Router::new().route("/echo", post(|body: String| async move { body }));
//! let reply = http::post(&app, "/echo", r#"{"n": 1}"#).await;
//! assert_eq!(reply.status, 200);
//! assert_eq!(reply.json()["n"], 1);
//! # });
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test support: a failure is a test failure.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// A reply, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body as JSON, or `null` when it is not JSON.
    pub body: Value,
    /// Its body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics (failing the test) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts a structured Factum error with this status and code, whose request id is the
    /// `X-Request-Id` header's; returns its message.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.text);
        assert_eq!(body["status"], status, "{}", self.text);
        assert!(
            body["domain"].is_string() && body["internalCode"].is_u64(),
            "{}",
            self.text
        );
        let header = self.headers["x-request-id"].to_str().unwrap();
        assert_eq!(body["requestId"], header, "{}", self.text);
        assert_eq!(
            self.headers["content-type"], "application/json",
            "{}",
            self.text
        );
        body["message"].as_str().unwrap().to_owned()
    }
}

/// A request with a JSON body (and its `Content-Type`) when `body` is given, and `headers`.
pub fn request(
    method: Method,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap()
}

/// Sends `request` to `app` and reads the reply.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Reply::read(status, headers, &bytes)
}

/// [`send`] of a [`request`].
pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    send(app, request(method, uri, body, headers)).await
}

/// [`call`] with a bearer token (none when `token` is empty).
pub async fn call_as(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: &str,
) -> Reply {
    let bearer = format!("Bearer {token}");
    let headers: &[(&str, &str)] = if token.is_empty() {
        &[]
    } else {
        &[("authorization", &bearer)]
    };
    call(app, method, uri, body, headers).await
}

/// `GET uri`.
pub async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Method::GET, uri, None, &[]).await
}

/// `POST uri` with a JSON body.
pub async fn post(app: &Router, uri: &str, body: &str) -> Reply {
    call(app, Method::POST, uri, Some(body), &[]).await
}

impl Reply {
    fn read(status: StatusCode, headers: HeaderMap, bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes).into_owned();
        Self {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

/// The same request as [`request`], for a running server over real HTTP (`url` is whole).
#[cfg(feature = "client")]
pub fn request_to(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

/// Sends a [`request_to`] and reads the reply whole; the transport's error when there is
/// none.
#[cfg(feature = "client")]
pub async fn fetch(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    let response = request_to(client, method, url, body, headers)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    Ok(Reply::read(status, headers, &bytes))
}

/// One field of every item of a JSON array (a view page's `items`, an event list), read
/// with `as_t` (`Value::as_str`, `Value::as_u64`, ...); panics when an item has no such field.
pub fn column<'a, T>(
    items: &'a Value,
    field: &str,
    as_t: impl Fn(&'a Value) -> Option<T>,
) -> Vec<T> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|item| as_t(&item[field]).unwrap_or_else(|| panic!("{field} of {item}")))
        .collect()
}

/// The component schemas of an OpenAPI document (as JSON), asserting that each of `names` is
/// among them.
pub fn assert_schemas<'a>(doc: &'a Value, names: &[&str]) -> &'a serde_json::Map<String, Value> {
    let schemas = doc["components"]["schemas"]
        .as_object()
        .unwrap_or_else(|| panic!("no component schemas in {doc}"));
    for name in names {
        assert!(schemas.contains_key(*name), "missing schema {name}");
    }
    schemas
}
