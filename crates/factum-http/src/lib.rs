//! # factum-http
//!
//! axum routers for Factum. Implement [`HttpAggregate`] for an aggregate (its collection
//! path, its command names with their body schemas, how its state is shown) and
//! [`Api::with_aggregate`] gives it a REST surface with an OpenAPI document:
//!
//! - `POST /{type}/commands/{command}`: a create command, generated id → 201
//! - `POST /{type}/{id}/commands/{command}`: create with this id → 201, or update → 200;
//!   `If-Match: "N"` → 412 unless at version N
//! - `GET /{type}/{id}` (`?version=N` for time travel), with `ETag: "N"`
//! - `GET /{type}/{id}/events?from_version=&limit=`: the audit log (envelopes with event
//!   id, version, position, type, recorded-at, user, request and correlation ids, payload)
//!
//! plus `GET /health`, `GET /openapi.json` and a Swagger UI page at `/docs` that works
//! offline. The read side: implement [`HttpView`] for a view and [`Api::with_view`] serves
//! `GET /views/{path}?filter=&sort=&page=&page_size=` and `GET /views/{path}/{id}`,
//! [`Api::with_child_view`] an aggregate's records at `GET /{type}/{id}/{path}`; a rejected
//! query is a 400, never a 500. [`Projections`] runs asynchronous projections next to the
//! service and [`Api::with_projections`] reports their lag at `GET /projections`. Every error, whoever raises it (a domain rule, the engine, a malformed request,
//! an unknown route, a timeout, a panic), is an [`ApiError`] rendered as the structured JSON
//! `{"domain","code","internalCode","status","message","details"?,"requestId"?}`. Every
//! response carries `X-Request-Id`. With [`JwtAuth`] configured (HS256 with a secret, or
//! RS256/ES256 with a JWKS file or URL, with issuer and audience checks), every route but
//! `/health` (and the docs, if configured public) needs a valid bearer token, checked by a
//! layer before any handler runs; its `sub` is recorded as the user of every event, and its
//! roles feed each aggregate's [`AccessPolicy`](factum_core::AccessPolicy)
//! ([`HttpAggregate::access_policy`]) and each view's [`HttpView::visible_to`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use axum::body::{Body, to_bytes};
//! use axum::http::Request;
//! use factum_core::*;
//! use factum_http::{Api, CommandSpec, HttpAggregate, HttpConfig};
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceExt;
//! use utoipa::ToSchema;
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
//! #[serde(tag = "type")]
//! enum CounterEvent { Started, Added { by: u32 } }
//! impl Event for CounterEvent {
//!     fn event_type(&self) -> &'static str {
//!         match self { Self::Started => "Started", Self::Added { .. } => "Added" }
//!     }
//! }
//! #[derive(Debug, Deserialize)]
//! #[serde(tag = "type")]
//! enum CreateCounter { Start }
//! #[derive(Debug, Deserialize)]
//! #[serde(tag = "type")]
//! enum ChangeCounter { Add { by: u32 } }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Counter { id: String, value: u64 }
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "counter";
//!     type Event = CounterEvent;
//!     type Error = CqrsError;
//!     fn with_aggregate_id(id: String) -> Self { Self { id, value: 0 } }
//!     fn aggregate_id(&self) -> &str { &self.id }
//!     fn apply(&mut self, event: &CounterEvent) {
//!         if let CounterEvent::Added { by } = event { self.value += u64::from(*by); }
//!     }
//! }
//! impl CommandHandler for Counter {
//!     type CreateCommand = CreateCounter;
//!     type UpdateCommand = ChangeCounter;
//!     type Services = ();
//!     async fn handle_create(&self, _: &CreateCounter, _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
//!         Ok(vec![CounterEvent::Started])
//!     }
//!     async fn handle_update(&self, cmd: &ChangeCounter, _: &(), _: &CqrsContext) -> Result<Vec<CounterEvent>, CqrsError> {
//!         let ChangeCounter::Add { by } = cmd;
//!         Ok(vec![CounterEvent::Added { by: *by }])
//!     }
//! }
//!
//! // The HTTP side: the view clients see and the body schema of each command.
//! #[derive(Serialize, ToSchema)]
//! struct CounterView { value: u64 }
//! #[derive(ToSchema)]
//! struct StartBody {}
//! #[derive(ToSchema)]
//! struct AddBody { by: u32 }
//! impl HttpAggregate for Counter {
//!     const PATH: &'static str = "counters";
//!     type View = CounterView;
//!     type EventSchema = CounterEvent;
//!     fn view(&self, _version: u64) -> CounterView { CounterView { value: self.value } }
//!     fn create_commands() -> Vec<CommandSpec> {
//!         vec![CommandSpec::new::<StartBody>("Start", "Start a counter at 0")]
//!     }
//!     fn update_commands() -> Vec<CommandSpec> {
//!         vec![CommandSpec::new::<AddBody>("Add", "Add to a counter")]
//!     }
//! }
//!
//! let engine = CqrsCommandEngine::<Counter>::new(Arc::new(InMemoryEventStore::new()), ());
//! let app = Api::new(HttpConfig::default()).with_aggregate("/api", engine).into_router();
//!
//! let post = |uri: &str, body: &'static str| {
//!     Request::post(uri).header("content-type", "application/json").body(Body::from(body)).unwrap()
//! };
//! let created = app.clone().oneshot(post("/api/counters/c-1/commands/Start", "{}")).await.unwrap();
//! assert_eq!(created.status(), 201);
//! let added = app.clone().oneshot(post("/api/counters/c-1/commands/Add", r#"{"by": 5}"#)).await.unwrap();
//! assert_eq!(added.status(), 200);
//! assert_eq!(added.headers()["etag"], "\"2\"");
//! let body = to_bytes(added.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, r#"{"id":"c-1","state":{"value":5},"version":2}"#);
//!
//! let unknown = app.clone().oneshot(post("/api/counters/c-1/commands/Reset", "{}")).await.unwrap();
//! assert_eq!(unknown.status(), 404);
//! let error: serde_json::Value =
//!     serde_json::from_slice(&to_bytes(unknown.into_body(), usize::MAX).await.unwrap()).unwrap();
//! assert_eq!(error["details"]["allowed"], serde_json::json!(["Start", "Add"]));
//! # });
//! ```

mod access;
mod aggregate;
mod app;
mod auth;
mod context;
mod error;
mod extract;
mod health;
pub mod idempotency;
mod openapi;
mod projections;
mod server;
mod views;

pub use aggregate::{
    AggregateService, CommandKind, CommandSpec, DEFAULT_PAGE, EnvelopeBody, EventPage, EventsQuery,
    Executed, HttpAggregate, MAX_PAGE, ParsedCommand, StateBody, StateQuery, aggregate_routes,
    with_etag,
};
pub use app::{
    Api, DEFAULT_BODY_LIMIT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, HttpConfig, serve,
    serve_with_shutdown, shutdown_signal,
};
pub use auth::{
    AuthRejection, DEFAULT_JWKS_MIN_REFETCH, DEFAULT_JWKS_REFRESH, DEFAULT_ROLES_CLAIM, JwtAuth,
    JwtAuthBuilder, Principal,
};
pub use context::{RequestContext, RequestInfo, X_CORRELATION_ID, X_REQUEST_ID};
pub use error::{ApiError, Error, ErrorBody, Result};
pub use extract::{IfMatch, JsonBody, Precondition, decode_json_body, etag};
pub use health::READY_CHECK_TIMEOUT;
pub use idempotency::{
    CommandReply, DEFAULT_IDEMPOTENCY_TTL, DEFAULT_IDEMPOTENCY_WAIT, IDEMPOTENCY_KEY,
    IDEMPOTENT_REPLAYED, Idempotency, IdempotentRequest,
};
pub use openapi::{
    AGGREGATE_ID_PATTERN, BEARER_SCHEME, IF_MATCH_PATTERN, aggregate_id_param, aggregate_openapi,
    child_view_openapi, error_response, json_response, projections_openapi, view_openapi,
};
pub use projections::{
    ParkedEntry, ProjectionStatus, ProjectionTasks, Projections, RunningProjection,
    projection_routes,
};
pub use server::{DEFAULT_HEADER_READ_TIMEOUT, ServeConfig, serve_with_config};
pub use views::{
    HttpView, ViewListQuery, child_view_routes, child_view_routes_limited, view_routes,
    view_routes_limited, view_store_of,
};
