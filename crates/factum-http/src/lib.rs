//! # factum-http
//!
//! axum routers for Factum. Implement [`HttpAggregate`] for an aggregate (its collection
//! path and how its state is shown: the command names and every schema come from the
//! domain's own types, which derive [`Commands`](factum_core::Commands) and `ToSchema`), and
//! [`Api::with_tagged_commands`] serves the reference shape (`POST /{type}/{id}` with a body
//! whose `type` names the command: 201 for a create, 200 for an update; `GET /{type}/{id}`,
//! `GET /{type}/{id}/events`), [`Api::with_aggregate`] the generic REST surface, both with an
//! OpenAPI document:
//!
//! - `POST /{type}/commands/{command}`: a create command, generated id → 201
//! - `POST /{type}/{id}/commands/{command}`: create with this id → 201, or update → 200;
//!   `If-Match: "N"` → 412 unless at version N
//! - `GET /{type}/{id}` (`?version=N` for time travel), with `ETag: "N"`
//! - `GET /{type}/{id}/events?from_version=&limit=`: the audit log (envelopes with event
//!   id, version, position, type, recorded-at, user, request and correlation ids, payload)
//!
//! [`Api::with_collection`] serves an aggregate whose clients only create and read it (its
//! update commands are a process manager's): `POST /{type}` (generated id → 201, `Location`)
//! and `GET /{type}/{id}`;
//! plus `GET /health`, `GET /openapi.json` and a Swagger UI page at `/docs` that works
//! offline. The read side: implement [`HttpView`] for a view and [`Api::with_view`] serves
//! `GET /views/{path}?filter=&sort=&page=&page_size=` and `GET /views/{path}/{id}`,
//! [`Api::with_child_view`] an aggregate's records at `GET /{type}/{id}/{path}`; a rejected
//! query is a 400, never a 500. [`Api::with_projections`] reports the lag of a service's
//! asynchronous projections (factum-core's [`Projections`](factum_core::Projections)) at
//! `GET /projections`. Every error, whoever raises it (a domain rule, the engine, a malformed request,
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
//! use factum_http::{Api, HttpAggregate, HttpConfig};
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceExt;
//! use utoipa::ToSchema;
//!
//! // The domain: its types derive what the HTTP layer reads (names, schemas).
//! #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
//! #[serde(tag = "type")]
//! enum CounterEvent { Started, Added { by: u32 } }
//! #[derive(Commands, Debug, Deserialize, ToSchema)]
//! #[serde(tag = "type", deny_unknown_fields)]
//! enum CreateCounter {
//!     /// Start a counter at 0.
//!     Start,
//! }
//! #[derive(Commands, Debug, Deserialize, ToSchema)]
//! #[serde(tag = "type", deny_unknown_fields)]
//! enum ChangeCounter {
//!     /// Add to a counter.
//!     Add { by: u32 },
//! }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
//! // The HTTP side: where the collection is and what a client sees.
//! impl HttpAggregate for Counter {
//!     const PATH: &'static str = "counters";
//!     type View = Self;
//!     fn view(&self) -> Self { self.clone() }
//! }
//!
//! let engine = CqrsCommandEngine::<Counter>::new(Arc::new(InMemoryEventStore::new()), ());
//! let app = Api::new(HttpConfig::default())
//!     .with_tagged_commands("", engine.clone())
//!     .with_aggregate("/api", engine)
//!     .into_router();
//!
//! let post = |uri: &str, body: &'static str| {
//!     Request::post(uri).header("content-type", "application/json").body(Body::from(body)).unwrap()
//! };
//! // The tagged routes: the body names the command.
//! let created = app.clone().oneshot(post("/counters/c-1", r#"{"type": "Start"}"#)).await.unwrap();
//! assert_eq!(created.status(), 201);
//! let added = app.clone().oneshot(post("/counters/c-1", r#"{"type": "Add", "by": 2}"#)).await.unwrap();
//! assert_eq!(added.status(), 200);
//! let body = to_bytes(added.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, r#"{"id":"c-1","value":2,"version":2}"#);
//!
//! // The generic routes: the path names the command.
//! let added = app.clone().oneshot(post("/api/counters/c-1/commands/Add", r#"{"by": 3}"#)).await.unwrap();
//! assert_eq!(added.status(), 200);
//! assert_eq!(added.headers()["etag"], "\"3\"");
//! let body = to_bytes(added.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, r#"{"id":"c-1","state":{"id":"c-1","value":5},"version":3}"#);
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
mod bodies;
mod body_schemas;
mod collection;
mod context;
mod error;
mod extract;
mod feed;
mod health;
pub mod idempotency;
mod openapi;
mod openapi_aggregate;
mod openapi_feed;
mod openapi_views;
mod projections;
mod request;
mod routes;
pub mod schema_check;
mod server;
mod service;
mod spec;
mod subscriptions;
mod tagged;
mod views;

pub use aggregate::HttpAggregate;
pub use app::{
    Api, DEFAULT_BODY_LIMIT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, HttpConfig, serve,
    serve_with_shutdown, shutdown_signal,
};
pub use auth::{
    AuthRejection, DEFAULT_JWKS_MIN_REFETCH, DEFAULT_JWKS_REFRESH, DEFAULT_ROLES_CLAIM, JwtAuth,
    JwtAuthBuilder, Principal,
};
pub use bodies::{
    DEFAULT_PAGE, EnvelopeBody, EventPage, EventsQuery, History, HistoryQuery, MAX_PAGE, StateBody,
    StateQuery, VersionedState, with_etag,
};
pub use collection::collection_routes;
pub use context::{RequestContext, RequestInfo, X_CORRELATION_ID, X_REQUEST_ID};
pub use error::{ApiError, Error, ErrorBody, Result};
pub use extract::{IfMatch, JsonBody, Precondition, decode_json_body, etag};
pub use feed::{DEFAULT_FEED_LIMIT, feed_routes};
pub use health::READY_CHECK_TIMEOUT;
pub use idempotency::{
    CommandReply, DEFAULT_IDEMPOTENCY_TTL, DEFAULT_IDEMPOTENCY_WAIT, IDEMPOTENCY_KEY,
    IDEMPOTENT_REPLAYED, Idempotency, IdempotentRequest,
};
pub use openapi::{
    AGGREGATE_ID_PATTERN, BEARER_SCHEME, IF_MATCH_PATTERN, aggregate_id_param, error_response,
    json_response,
};
pub use openapi_aggregate::{aggregate_openapi, collection_openapi, tagged_openapi};
pub use openapi_feed::feed_openapi;
pub use openapi_views::{child_view_openapi, projections_openapi, view_openapi};
pub use projections::projection_routes;
pub use routes::aggregate_routes;
pub use server::{DEFAULT_HEADER_READ_TIMEOUT, ServeConfig, serve_with_config};
pub use service::{AggregateService, CommandKind, Executed, ParsedCommand};
pub use spec::{CommandSpec, tagged_schema};
pub use subscriptions::subscription_routes;
pub use tagged::tagged_routes;
pub use views::{
    HttpView, ViewListQuery, child_view_routes, child_view_routes_limited, owned_by, view_routes,
    view_routes_limited, view_store_of,
};
