//! Assembling a service: [`Api`] puts aggregates' routes, your own routes, `/health`, the
//! OpenAPI document and the docs page behind the operational layers; [`serve`] runs it with
//! graceful shutdown.
//!
//! The layers, outermost first: the context middleware (request and correlation ids, user,
//! structured errors with the request id, access log), panic catching (a panic is a 500 in
//! the structured shape; the panic message goes to the log only), the request timeout (408),
//! the body limit (413), and, on the service's own routes, the bound on requests in flight
//! (503 above it). [`serve`] adds the connection-level bounds (see [`ServeConfig`]).
//!
//! With auth configured, authentication is one more layer, over the routes rather than the
//! router: every route mounted on the [`Api`] (aggregates, views, projections, and routes of
//! your own through [`Api::with_routes`]) needs a valid bearer token, checked before its
//! handler runs, so a handler cannot forget it. Only the health routes (`/health`,
//! `/health/live`, `/health/ready`) are public, and the docs (`/docs`, `/openapi.json`) when
//! [`HttpConfig::with_public_docs`] says so. Fail closed: a route is public only by being one
//! of those.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use factum_core::{CqrsCommandEngine, EventStore, Projections, QueryLimits};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_swagger_ui::SwaggerUi;

use crate::aggregate::HttpAggregate;
use crate::auth::JwtAuth;
use crate::collection::collection_routes;
use crate::context::{ContextConfig, context_middleware, require_caller};
use crate::error::{ApiError, Error, Result};
use crate::health::{self, InFlight, limit_in_flight};
use crate::openapi::{common_openapi, secure_document};
use crate::openapi_aggregate::{aggregate_openapi, collection_openapi, tagged_openapi};
use crate::openapi_views::{child_view_openapi, projections_openapi, view_openapi};
use crate::projections::projection_routes;
use crate::routes::aggregate_routes;
use crate::server::{ServeConfig, serve_with_config};
use crate::service::AggregateService;
use crate::tagged::tagged_routes;
use crate::views::{HttpView, child_view_routes_limited, view_routes_limited, view_store_of};

/// The routes served without a token when auth is on (besides the docs, if configured so).
const PUBLIC_PATHS: &[&str] = &["/health", "/health/live", "/health/ready"];

/// The default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The default request timeout: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default bound on requests in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// How a service behaves on the wire.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The largest request body accepted, in bytes (413 above).
    pub body_limit: usize,
    /// How long a request may take before it is answered with 408. A command whose append
    /// had already reached the store when the time ran out may still be stored: a client that
    /// gets a 408 should read the state (or retry with `If-Match`) before repeating it.
    pub request_timeout: Duration,
    /// Bearer-token auth; `None` serves everyone as anonymous.
    pub auth: Option<Arc<JwtAuth>>,
    /// With auth on, whether `/docs` and `/openapi.json` are served without a token.
    pub public_docs: bool,
    /// The document's title.
    pub title: String,
    /// The document's API version.
    pub version: String,
    /// The most requests handled at once; above it a request is answered 503 with
    /// `Retry-After` at once rather than queued. The health routes are not counted.
    pub max_in_flight: usize,
    /// How many filter clauses and sort keys a view query may have (400 above).
    pub query_limits: QueryLimits,
    /// How long a command's response is remembered for repeats with its `Idempotency-Key`
    /// (24 h by default).
    pub idempotency_ttl: Duration,
    /// How long a repeat of an `Idempotency-Key` waits for the first request still running
    /// in this process before a 409 (5 s by default).
    pub idempotency_wait: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_TIMEOUT,
            auth: None,
            public_docs: false,
            title: "Factum service".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            query_limits: QueryLimits::default(),
            idempotency_ttl: crate::idempotency::DEFAULT_IDEMPOTENCY_TTL,
            idempotency_wait: crate::idempotency::DEFAULT_IDEMPOTENCY_WAIT,
        }
    }
}

impl HttpConfig {
    factum_core::setters! {
        /// Sets the body limit.
        pub fn with_body_limit(bytes: usize) => body_limit = bytes;
        /// Sets the request timeout.
        pub fn with_request_timeout(timeout: Duration) => request_timeout = timeout;
        /// Requires a valid bearer token on every route but `/health` (and the docs if
        /// [`with_public_docs`](Self::with_public_docs)); see the module docs.
        pub fn with_auth(auth: JwtAuth) => auth = Some(Arc::new(auth));
        /// Sets the bound on requests in flight (at least 1).
        pub fn with_max_in_flight(requests: usize) => max_in_flight = requests.max(1);
        /// With auth on, serves `/docs` and `/openapi.json` without a token (they are
        /// protected like every other route unless this says otherwise).
        pub fn with_public_docs(public: bool) => public_docs = public;
        /// Sets the limits on the clauses of view queries.
        pub fn with_query_limits(limits: QueryLimits) => query_limits = limits;
        /// Sets how long idempotency keys are remembered (at least 1 s, at most 10 years: the
        /// expiry must stay a date every store can keep).
        pub fn with_idempotency_ttl(ttl: Duration)
            => idempotency_ttl = crate::idempotency::bounded_ttl(ttl);
        /// Sets how long a repeat of an idempotency key waits for the first request.
        pub fn with_idempotency_wait(wait: Duration) => idempotency_wait = wait;
    }

    /// Sets the document's title and version.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>, version: impl Into<String>) -> Self {
        self.title = title.into();
        self.version = version.into();
        self
    }
}

/// A service under construction: routes plus their OpenAPI document.
///
/// [`Api::into_router`] adds `GET /health/live` (the process serves), `GET /health/ready`
/// and `GET /health` (the store given to [`Api::with_health`] answers and has room for
/// writes; 503 with the reason otherwise), `GET /openapi.json`, the
/// docs page at `/docs` (Swagger UI, served from assets compiled into the binary), a
/// structured 404 for unknown routes, and the layers of the module docs.
pub struct Api {
    config: HttpConfig,
    router: Router,
    openapi: OpenApi,
    store: Option<Arc<dyn EventStore>>,
    // The service of each mounted aggregate, by its type: a child view's routes check the
    // aggregate's access policy through it.
    services: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("config", &self.config)
            .field(
                "paths",
                &self.openapi.paths.paths.keys().collect::<Vec<_>>(),
            )
            .field("health", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Api {
    /// An empty service.
    pub fn new(config: HttpConfig) -> Self {
        Self {
            config,
            router: Router::new(),
            openapi: OpenApiBuilder::new().build(),
            store: None,
            services: HashMap::new(),
        }
    }

    /// Makes `GET /health` and `GET /health/ready` check this store.
    #[must_use]
    pub fn with_health(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Mounts the generic routes of `A` under `{prefix}/{A::PATH}` (`prefix` `""` or like
    /// `/api`) and adds them to the document.
    #[must_use]
    pub fn with_aggregate<A: HttpAggregate>(
        mut self,
        prefix: &str,
        engine: CqrsCommandEngine<A>,
    ) -> Self {
        self.services.insert(
            TypeId::of::<A>(),
            Box::new(AggregateService::new(engine.clone())),
        );
        self.router = self.router.merge(aggregate_routes(prefix, engine));
        self.openapi
            .merge(aggregate_openapi::<A>(prefix, self.config.auth.is_some()));
        self
    }

    /// Mounts the tagged-command routes of `A` under `{prefix}/{A::PATH}`: `POST
    /// {collection}/{id}` with a body whose tag names the command (201 for a create, 200 for
    /// an update), `GET {collection}/{id}` and `GET {collection}/{id}/events` (see
    /// [`tagged_routes`](crate::tagged_routes)), and adds them to the document.
    #[must_use]
    pub fn with_tagged_commands<A: HttpAggregate>(
        self,
        prefix: &str,
        engine: CqrsCommandEngine<A>,
    ) -> Self {
        let service = AggregateService::new(engine);
        let doc = tagged_openapi::<A>(prefix, self.config.auth.is_some());
        self.mount(tagged_routes(prefix, service.clone()), doc, service)
    }

    /// Adds routes of `A` and their document; `service` serves `A`'s child views unless one
    /// is there already.
    fn mount<A: HttpAggregate>(
        mut self,
        router: Router,
        doc: OpenApi,
        service: AggregateService<A>,
    ) -> Self {
        self.router = self.router.merge(router);
        self.services
            .entry(TypeId::of::<A>())
            .or_insert_with(|| Box::new(service));
        self.openapi.merge(doc);
        self
    }

    /// Mounts the collection routes of `A` under `{prefix}/{A::PATH}`: `POST {collection}`
    /// creates one with an id the engine's generator picks (201, `Location`), `GET
    /// {collection}/{id}` reads it (see [`collection_routes`](crate::collection_routes)); its
    /// update commands are not served (a process manager runs them). Adds them to the
    /// document.
    #[must_use]
    pub fn with_collection<A: HttpAggregate>(
        self,
        prefix: &str,
        engine: CqrsCommandEngine<A>,
    ) -> Self {
        let service = AggregateService::new(engine);
        let doc = collection_openapi::<A>(prefix, self.config.auth.is_some());
        self.mount(collection_routes(prefix, service.clone()), doc, service)
    }

    /// Mounts the read routes of view `V` under `{prefix}/{V::PATH}` (a page of records by
    /// query, one record by id; see [`view_routes`]) and adds them to the document. The
    /// records are read from the view side of `store` (the engine's store): a store that
    /// keeps no views is an [`Error::ViewsUnsupported`], at startup rather than per request.
    pub fn with_view<V: HttpView>(
        mut self,
        prefix: &str,
        store: &Arc<dyn EventStore>,
    ) -> Result<Self> {
        let limits = self.config.query_limits;
        self.router = self
            .router
            .merge(view_routes_limited::<V>(prefix, store, limits)?);
        self.openapi
            .merge(view_openapi::<V>(prefix, self.config.auth.is_some()));
        Ok(self)
    }

    /// Mounts `GET {prefix}/{A::PATH}/{id}/{V::PATH}`: the records of view `V` belonging to
    /// one aggregate (see [`child_view_routes`]), with its document. `prefix` is where the
    /// aggregate's own routes are (`""` for `/accounts/{id}/movements`). Mount the aggregate
    /// first ([`Api::with_aggregate`]): the route checks its access policy, and is an
    /// [`Error::Config`] without it.
    pub fn with_child_view<V>(mut self, prefix: &str, store: &Arc<dyn EventStore>) -> Result<Self>
    where
        V: HttpView,
        V::Aggregate: HttpAggregate,
    {
        view_store_of(store, V::TYPE)?;
        let service = self
            .services
            .get(&TypeId::of::<V::Aggregate>())
            .and_then(|service| service.downcast_ref::<AggregateService<V::Aggregate>>())
            .cloned()
            .ok_or_else(|| {
                Error::Config(format!(
                    "mount the aggregate {} (Api::with_aggregate) before its child view {}",
                    <V::Aggregate as factum_core::Aggregate>::TYPE,
                    V::TYPE
                ))
            })?;
        let limits = self.config.query_limits;
        self.router = self.router.merge(child_view_routes_limited::<V>(
            prefix, store, service, limits,
        )?);
        self.openapi
            .merge(child_view_openapi::<V>(prefix, self.config.auth.is_some()));
        Ok(self)
    }

    /// Serves `GET /projections` and `GET /projections/{name}`: how far each asynchronous
    /// projection is behind the event log.
    #[must_use]
    pub fn with_projections(mut self, projections: &Projections) -> Self {
        self.router = self
            .router
            .merge(projection_routes(projections.clone()))
            .merge(crate::subscriptions::subscription_routes(
                projections.clone(),
            ));
        self.openapi
            .merge(projections_openapi(self.config.auth.is_some()));
        self
    }

    /// Serves the global feed of `store`: `GET /events` and `GET /events/stream` (SSE), with
    /// `GET /subscriptions` and `POST /subscriptions/{name}/replay-parked` documented too
    /// (they are mounted by [`Api::with_projections`]).
    #[must_use]
    pub fn with_event_feed(mut self, store: &Arc<dyn EventStore>) -> Self {
        self.router = self.router.merge(crate::feed::feed_routes(store.clone()));
        self.openapi.merge(crate::openapi_feed::feed_openapi(
            self.config.auth.is_some(),
        ));
        self
    }

    /// Adds routes of your own and their document. With auth on they are protected like
    /// every mounted route (no token, no handler call). Extract
    /// [`RequestContext`](crate::RequestContext) in their handlers to get the caller's
    /// context (user and roles), and return [`ApiError`]s.
    #[must_use]
    pub fn with_routes(mut self, router: Router, openapi: OpenApi) -> Self {
        self.router = self.router.merge(router);
        self.openapi.merge(openapi);
        self
    }

    /// The complete OpenAPI document.
    pub fn openapi(&self) -> OpenApi {
        let mut doc = self.openapi.clone();
        crate::idempotency::document(&mut doc);
        doc.merge(common_openapi(
            self.config.auth.is_some(),
            self.store.is_some(),
        ));
        doc.info = InfoBuilder::new()
            .title(self.config.title.clone())
            .version(self.config.version.clone())
            .description(Some(
                "Errors are JSON of one shape: {domain, code, internalCode, status, message, details?, requestId?}. \
                 Every response carries X-Request-Id.",
            ))
            .build();
        if self.config.auth.is_some() {
            secure_document(&mut doc, PUBLIC_PATHS);
        }
        doc
    }

    /// The finished router.
    pub fn into_router(self) -> Router {
        let doc = self.openapi();
        let auth = self.config.auth.is_some();
        let mut router = self.router;
        // Every route mounted so far is protected; the public ones are added after this.
        if auth && router.has_routes() {
            router = router.route_layer(axum::middleware::from_fn(require_caller));
        }
        let mut docs = Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", doc));
        if auth && !self.config.public_docs {
            docs = docs.route_layer(axum::middleware::from_fn(require_caller));
        }
        // Health routes stay outside the in-flight bound (an overloaded process is still
        // live) and outside auth.
        let router = router
            .layer(axum::middleware::from_fn_with_state(
                InFlight::new(self.config.max_in_flight),
                limit_in_flight,
            ))
            .route("/health/live", get(health::live))
            .merge(
                Router::new()
                    .route("/health", get(health::ready))
                    .route("/health/ready", get(health::ready))
                    .with_state(self.store),
            );
        let context = Arc::new(ContextConfig {
            auth: self.config.auth.clone(),
            body_limit: self.config.body_limit,
            timeout_secs: self.config.request_timeout.as_secs_f64(),
        });
        router
            .merge(docs)
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                crate::idempotency::Shared::new(
                    self.config.idempotency_ttl,
                    self.config.idempotency_wait,
                ),
                crate::idempotency::idempotency_layer,
            ))
            .layer(DefaultBodyLimit::max(self.config.body_limit))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.config.request_timeout,
            ))
            .layer(CatchPanicLayer::custom(panicked))
            .layer(axum::middleware::from_fn_with_state(
                context,
                context_middleware,
            ))
    }
}

async fn not_found() -> StatusCode {
    // The context middleware renders it with the method and path.
    StatusCode::NOT_FOUND
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a handler panicked");
    ApiError::internal().into_response()
}

/// Serves until SIGTERM or Ctrl-C, then stops taking connections, lets in-flight requests
/// finish, and returns.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> Result<()> {
    serve_with_shutdown(listener, router, shutdown_signal()).await
}

/// Serves until `signal` completes, then shuts down gracefully (in-flight requests finish).
pub async fn serve_with_shutdown(
    listener: tokio::net::TcpListener,
    router: Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with_config(listener, router, ServeConfig::default(), signal).await
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
