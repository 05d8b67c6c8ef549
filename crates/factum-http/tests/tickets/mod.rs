//! The test domain of the router tests: tickets whose command enums are tagged by `kind`,
//! not `type`, a store that can be broken on demand, and routes of the tests' own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use factum_core::store::{AppendRequest, Snapshot, StoredEvent};
use factum_core::{
    Aggregate, CommandHandler, Commands, CqrsCommandEngine, CqrsContext, Event, EventStore,
    InMemoryEventStore, async_trait, define_domain_errors,
};
use factum_http::{Api, ApiError, HttpAggregate, HttpConfig, RequestContext};
use factum_testing::http::Reply;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
pub enum TicketEvent {
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
pub enum OpenTicket {
    /// Open a ticket.
    Open { title: String },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "kind")]
pub enum ChangeTicket {
    /// Comment on a ticket.
    Comment { text: String },
    /// Close a ticket.
    Close,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
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
pub struct TicketView {
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
pub struct BreakableStore {
    inner: InMemoryEventStore,
    pub broken: AtomicBool,
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
pub fn extra_routes() -> Router {
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

pub fn service(config: HttpConfig) -> (Router, Arc<BreakableStore>) {
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

pub fn assert_error(reply: &Reply, status: u16, code: &str) {
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
