//! The test domain of the router tests: tickets whose command enums are tagged by `kind`,
//! not `type`, over a store that can be broken on demand, and routes of the tests' own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use factum_core::{
    Aggregate, CommandHandler, Commands, CqrsCommandEngine, CqrsContext, Event,
    define_domain_errors,
};
use factum_http::{Api, ApiError, HttpAggregate, HttpConfig, RequestContext};
use factum_testing::faulty::FaultyStore;
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

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind")]
pub enum TicketEvent {
    Opened { title: String },
    Commented { text: String },
    Closed,
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

/// A ticket as it stands, which is also what the routes show of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    title: String,
    comments: usize,
    closed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    id: String,
    state: TicketView,
}

impl Aggregate for Ticket {
    const TYPE: &'static str = "ticket";
    type Event = TicketEvent;
    type Error = TicketError;

    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            state: TicketView::default(),
        }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }

    fn apply(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::Opened { title } => self.state.title.clone_from(title),
            TicketEvent::Commented { .. } => self.state.comments += 1,
            TicketEvent::Closed => self.state.closed = true,
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
        if self.state.closed {
            return Err(TicketError::Closed);
        }
        Ok(vec![match cmd {
            ChangeTicket::Comment { text } => TicketEvent::Commented { text: text.clone() },
            ChangeTicket::Close => TicketEvent::Closed,
        }])
    }
}

impl HttpAggregate for Ticket {
    const PATH: &'static str = "tickets";
    type View = TicketView;

    fn view(&self) -> TicketView {
        self.state.clone()
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

pub fn service(config: HttpConfig) -> (Router, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore::new());
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
