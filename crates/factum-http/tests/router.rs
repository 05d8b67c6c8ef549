//! The generic routers and the service layers, on a small test aggregate (a ticket whose
//! command enums are tagged by `kind`, not `type`), driven with `tower::ServiceExt::oneshot`
//! and, for graceful shutdown, over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use factum_core::{
    Aggregate, AppendRequest, CommandHandler, Commands, CqrsCommandEngine, CqrsContext, Event,
    EventStore, InMemoryEventStore, Snapshot, StoredEvent, async_trait, define_domain_errors,
};
use factum_http::{Api, ApiError, HttpAggregate, HttpConfig, JwtAuth, RequestContext};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use utoipa::ToSchema;

define_domain_errors! {
    /// Ticket errors.
    pub enum TicketError {
        domain: "TICKET",
        prefix: 77,
        /// The ticket is closed.
        Closed = (1, 409, "TICKET_CLOSED", "the ticket is closed"),
        /// No title.
        EmptyTitle = (2, 400, "TICKET_EMPTY_TITLE", "a ticket needs a title"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind")]
enum TicketEvent {
    Opened { title: String },
    Commented { text: String },
    Closed,
}

impl Event for TicketEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "Opened",
            Self::Commented { .. } => "Commented",
            Self::Closed => "Closed",
        }
    }
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "kind")]
enum OpenTicket {
    /// Open a ticket.
    Open { title: String },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "kind")]
enum ChangeTicket {
    /// Comment on a ticket.
    Comment { text: String },
    /// Close a ticket.
    Close,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ticket {
    id: String,
    title: String,
    comments: usize,
    closed: bool,
}

impl Aggregate for Ticket {
    const TYPE: &'static str = "ticket";
    type Event = TicketEvent;
    type Error = TicketError;

    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            title: String::new(),
            comments: 0,
            closed: false,
        }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }

    fn apply(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::Opened { title } => self.title.clone_from(title),
            TicketEvent::Commented { .. } => self.comments += 1,
            TicketEvent::Closed => self.closed = true,
        }
    }
}

impl CommandHandler for Ticket {
    type CreateCommand = OpenTicket;
    type UpdateCommand = ChangeTicket;
    type Services = ();

    async fn handle_create(
        &self,
        cmd: &OpenTicket,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        let OpenTicket::Open { title } = cmd;
        if title.is_empty() {
            return Err(TicketError::EmptyTitle);
        }
        Ok(vec![TicketEvent::Opened {
            title: title.clone(),
        }])
    }

    async fn handle_update(
        &self,
        cmd: &ChangeTicket,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        if self.closed {
            return Err(TicketError::Closed);
        }
        Ok(vec![match cmd {
            ChangeTicket::Comment { text } => TicketEvent::Commented { text: text.clone() },
            ChangeTicket::Close => TicketEvent::Closed,
        }])
    }
}

#[derive(Serialize, ToSchema)]
struct TicketView {
    title: String,
    comments: usize,
    closed: bool,
}

impl HttpAggregate for Ticket {
    const PATH: &'static str = "tickets";
    type View = TicketView;

    fn view(&self) -> TicketView {
        TicketView {
            title: self.title.clone(),
            comments: self.comments,
            closed: self.closed,
        }
    }
}

/// A store that can be broken on demand, failing with internals a client must not see.
#[derive(Default)]
struct BreakableStore {
    inner: InMemoryEventStore,
    broken: AtomicBool,
}

impl BreakableStore {
    fn check(&self) -> factum_core::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            Err(factum_core::Error::store(std::io::Error::other(
                "/srv/secret/events.db: disk I/O error in SELECT * FROM events",
            )))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl EventStore for BreakableStore {
    async fn append(&self, request: AppendRequest) -> factum_core::Result<Vec<StoredEvent>> {
        self.check()?;
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        t: &str,
        id: &str,
        from: u64,
        limit: Option<usize>,
    ) -> factum_core::Result<Vec<StoredEvent>> {
        self.check()?;
        self.inner.read_stream(t, id, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> factum_core::Result<Vec<StoredEvent>> {
        self.check()?;
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, t: &str, id: &str) -> factum_core::Result<u64> {
        self.check()?;
        self.inner.stream_version(t, id).await
    }
    async fn load_snapshot(&self, t: &str, id: &str) -> factum_core::Result<Option<Snapshot>> {
        self.check()?;
        self.inner.load_snapshot(t, id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> factum_core::Result<()> {
        self.check()?;
        self.inner.save_snapshot(snapshot).await
    }
    async fn head_position(&self) -> factum_core::Result<u64> {
        self.check()?;
        self.inner.head_position().await
    }
    async fn health_check(&self) -> factum_core::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            Err(factum_core::Error::Unavailable(
                "connection refused to 10.0.0.7".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Routes of the tests' own: a panic, a slow handler, and one that reports the context.
fn extra_routes() -> Router {
    async fn boom() -> &'static str {
        panic!("secret internals of the panic")
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(400)).await;
        "done"
    }
    async fn whoami(RequestContext(ctx): RequestContext) -> Result<axum::Json<Value>, ApiError> {
        Ok(axum::Json(json!({
            "user": ctx.user_id(),
            "request": ctx.request_id(),
            "correlation": ctx.correlation_id(),
        })))
    }
    Router::new()
        .route("/boom", get(boom))
        .route("/slow", get(slow))
        .route("/whoami", get(whoami))
}

fn service(config: HttpConfig) -> (Router, Arc<BreakableStore>) {
    let store = Arc::new(BreakableStore::default());
    let engine = CqrsCommandEngine::<Ticket>::new(store.clone(), ());
    let router = Api::new(config)
        .with_health(store.clone())
        .with_aggregate("", engine)
        .with_routes(
            extra_routes(),
            utoipa::openapi::OpenApiBuilder::new().build(),
        )
        .into_router();
    (router, store)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.body["code"], code, "{}", reply.text);
    assert_eq!(reply.body["status"], status, "{}", reply.text);
    assert_eq!(
        reply.body["requestId"],
        reply.headers["x-request-id"].to_str().unwrap(),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn commands_use_the_aggregates_own_tag_field() {
    let (app, _) = service(HttpConfig::default());
    let r = send(
        &app,
        Method::POST,
        "/tickets/commands/Open",
        Some(r#"{"title": "Printer on fire"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body["state"],
        json!({"title": "Printer on fire", "comments": 0, "closed": false})
    );
    assert_eq!(r.headers["location"], format!("/tickets/{id}").as_str());

    let uri = format!("/tickets/{id}/commands/Comment");
    let r = send(
        &app,
        Method::POST,
        &uri,
        Some(r#"{"text": "still burning", "kind": "Comment"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 2);
    let r = send(
        &app,
        Method::POST,
        &uri,
        Some(r#"{"text": "x", "kind": "Close"}"#),
        &[],
    )
    .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        r.body["message"].as_str().unwrap().contains("`kind`"),
        "{}",
        r.text
    );
    let r = send(&app, Method::POST, &uri, Some(r#"{"text": 5}"#), &[]).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.text.contains("invalid Comment command"), "{}", r.text);

    // A unit command takes an empty object.
    let r = send(
        &app,
        Method::POST,
        &format!("/tickets/{id}/commands/Close"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(
        &app,
        Method::POST,
        &uri,
        Some(r#"{"text": "reopen?"}"#),
        &[],
    )
    .await;
    assert_error(&r, 409, "TICKET_CLOSED");
    assert_eq!(r.body["domain"], "TICKET");
    assert_eq!(r.body["internalCode"], 77001);

    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": ""}"#),
        &[],
    )
    .await;
    assert_error(&r, 400, "TICKET_EMPTY_TITLE");
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": "ok"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": "again"}"#),
        &[],
    )
    .await;
    // No domain error for "exists": the standard conflict.
    assert_error(&r, 409, "CONFLICT");

    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Reopen",
        Some("{}"),
        &[],
    )
    .await;
    assert_error(&r, 404, "NOT_FOUND");
    assert_eq!(
        r.body["details"]["allowed"],
        json!(["Open", "Comment", "Close"])
    );
    // No domain error for "missing": the standard not-found.
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-2/commands/Close",
        Some("{}"),
        &[],
    )
    .await;
    assert_error(&r, 404, "NOT_FOUND");
    assert!(r.text.contains("ticket 't-2' not found"), "{}", r.text);
    let r = send(&app, Method::GET, "/tickets/t-2", None, &[]).await;
    assert_error(&r, 404, "NOT_FOUND");

    let r = send(
        &app,
        Method::GET,
        &format!("/tickets/{id}/events"),
        None,
        &[],
    )
    .await;
    let kinds: Vec<_> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("Opened"), json!("Commented"), json!("Closed")]
    );
    assert_eq!(r.body["events"][2]["payload"], json!({"kind": "Closed"}));
}

#[tokio::test]
async fn the_context_reaches_handlers_and_events() {
    let (app, _) = service(HttpConfig::default());
    let r = send(
        &app,
        Method::GET,
        "/whoami",
        None,
        &[("x-request-id", "r-1"), ("x-correlation-id", "c-1")],
    )
    .await;
    assert_eq!(
        r.body,
        json!({"user": null, "request": "r-1", "correlation": "c-1"})
    );
    assert_eq!(r.headers["x-correlation-id"], "c-1");
    let r = send(&app, Method::GET, "/whoami", None, &[]).await;
    assert_eq!(r.body["request"], r.body["correlation"]);
    assert_eq!(
        r.body["request"],
        r.headers["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn auth_guards_every_route_but_health() {
    let secret = "k3y";
    let (app, _) = service(HttpConfig::default().with_auth(JwtAuth::hs256(secret).unwrap()));
    let r = send(&app, Method::GET, "/whoami", None, &[]).await;
    assert_error(&r, 401, "UNAUTHORIZED");
    let r = send(
        &app,
        Method::POST,
        "/tickets/commands/Open",
        Some(r#"{"title": "x"}"#),
        &[],
    )
    .await;
    assert_error(&r, 401, "UNAUTHORIZED");
    #[derive(Serialize)]
    struct Claims {
        sub: &'static str,
        exp: u64,
    }
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims { sub: "bob", exp },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let r = send(
        &app,
        Method::GET,
        "/whoami",
        None,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(r.body["user"], "bob");
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-9/commands/Open",
        Some(r#"{"title": "x"}"#),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &app,
        Method::GET,
        "/tickets/t-9/events",
        None,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(r.body["events"][0]["user_id"], "bob");
    // Health stays open; the docs are protected unless configured public.
    assert_eq!(
        send(&app, Method::GET, "/health", None, &[]).await.status,
        StatusCode::OK
    );
    let r = send(&app, Method::GET, "/openapi.json", None, &[]).await;
    assert_error(&r, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_panic_is_a_structured_500_without_its_message() {
    let (app, _) = service(HttpConfig::default());
    let r = send(&app, Method::GET, "/boom", None, &[]).await;
    assert_error(&r, 500, "INTERNAL_ERROR");
    assert!(!r.text.contains("secret"), "{}", r.text);
    // The service goes on.
    assert_eq!(
        send(&app, Method::GET, "/health", None, &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_slow_request_times_out_with_a_structured_408() {
    let (app, _) = service(HttpConfig::default().with_request_timeout(Duration::from_millis(50)));
    let r = send(&app, Method::GET, "/slow", None, &[]).await;
    assert_error(&r, 408, "REQUEST_TIMEOUT");
    let (app, _) = service(HttpConfig::default());
    let r = send(&app, Method::GET, "/slow", None, &[]).await;
    assert_eq!(r.text, "done");
}

#[tokio::test]
async fn store_failures_are_500_or_503_without_internals() {
    let (app, store) = service(HttpConfig::default());
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": "x"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    store.broken.store(true, Ordering::SeqCst);
    for (method, uri, body) in [
        (
            Method::POST,
            "/tickets/t-1/commands/Comment",
            Some(r#"{"text": "y"}"#),
        ),
        (
            Method::POST,
            "/tickets/t-2/commands/Open",
            Some(r#"{"title": "z"}"#),
        ),
        (Method::GET, "/tickets/t-1", None),
        (Method::GET, "/tickets/t-1/events", None),
    ] {
        let r = send(&app, method, uri, body, &[]).await;
        assert_error(&r, 500, "INTERNAL_ERROR");
        assert_eq!(r.body["message"], "internal error");
        for secret in ["secret", "SELECT", "/srv", "disk"] {
            assert!(!r.text.contains(secret), "{}", r.text);
        }
    }
    let r = send(&app, Method::GET, "/health", None, &[]).await;
    assert_error(&r, 503, "STORE_UNAVAILABLE");
    assert!(!r.text.contains("10.0.0.7"), "{}", r.text);
    store.broken.store(false, Ordering::SeqCst);
    let r = send(&app, Method::GET, "/tickets/t-1", None, &[]).await;
    assert_eq!(r.body["version"], 1, "the failed comment stored nothing");
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let (app, _) = service(HttpConfig::default().with_body_limit(100));
    let long = format!(r#"{{"title": "{}"}}"#, "x".repeat(200));
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(&long),
        &[],
    )
    .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert!(r.text.contains("100 bytes"), "{}", r.text);
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": "short"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_document_lists_each_command_as_an_operation() {
    let doc = factum_http::aggregate_openapi::<Ticket>("/v1", false);
    let json = serde_json::to_value(&doc).unwrap();
    let paths: Vec<_> = json["paths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        paths,
        [
            "/v1/tickets/commands/Open",
            "/v1/tickets/{id}",
            "/v1/tickets/{id}/commands/Close",
            "/v1/tickets/{id}/commands/Comment",
            "/v1/tickets/{id}/commands/Open",
            "/v1/tickets/{id}/events",
        ]
    );
    let mut ids: Vec<_> = json["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_owned())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    let schemas = json["components"]["schemas"].as_object().unwrap();
    for name in [
        "TicketView",
        "TicketViewResponse",
        "TicketEvent",
        "TicketEventEnvelope",
        "TicketEventPage",
        "OpenBody",
        "CommentBody",
        "CloseBody",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
}

async fn raw_get(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let (app, _) = service(HttpConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(factum_http::serve_with_shutdown(listener, app, async {
        let _ = stopped.await;
    }));
    let in_flight = tokio::spawn(raw_get(address, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once the request is answered")
        .unwrap()
        .unwrap();
    assert!(
        raw_get(address, "/health").await.is_err(),
        "no longer listening"
    );
}
