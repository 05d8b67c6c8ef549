//! The test domain of the auth tests: notes whose author may edit them, with routes of the
//! service's own beside the generic ones, and the refusals the auth layer answers with.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use factum_core::{
    Access, AccessPolicy, Aggregate, CommandHandler, Commands, CqrsCommandEngine, CqrsContext,
    CqrsError, Event, InMemoryEventStore,
};
use factum_http::{Api, HttpAggregate, HttpConfig};
use factum_testing::http::{Reply, call_as};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::{OpenApiBuilder, PathsBuilder, ResponseBuilder};

// A note: written by its author; editing is the author's or an admin's; purging needs the
// `moderator` role; its events need `auditor` or `moderator`.

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum NoteEvent {
    Written {
        text: String,
        author: Option<String>,
    },
    Edited {
        text: String,
    },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum CreateNote {
    Write { text: String },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum ChangeNote {
    Edit { text: String },
    Purge,
}

/// A note as it stands, which is also what the routes show of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NoteView {
    text: String,
    author: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    id: String,
    state: NoteView,
}

impl Aggregate for Note {
    const TYPE: &'static str = "note";
    type Event = NoteEvent;
    type Error = CqrsError;
    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            state: NoteView::default(),
        }
    }
    fn aggregate_id(&self) -> &str {
        &self.id
    }
    fn apply(&mut self, event: &NoteEvent) {
        match event {
            NoteEvent::Written { text, author } => {
                self.state.text.clone_from(text);
                self.state.author.clone_from(author);
            }
            NoteEvent::Edited { text } => self.state.text.clone_from(text),
        }
    }
}

impl CommandHandler for Note {
    type CreateCommand = CreateNote;
    type UpdateCommand = ChangeNote;
    type Services = ();
    async fn handle_create(
        &self,
        command: &CreateNote,
        _: &(),
        ctx: &CqrsContext,
    ) -> Result<Vec<NoteEvent>, CqrsError> {
        let CreateNote::Write { text } = command;
        Ok(vec![NoteEvent::Written {
            text: text.clone(),
            author: ctx.user_id().map(str::to_owned),
        }])
    }
    async fn handle_update(
        &self,
        command: &ChangeNote,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<NoteEvent>, CqrsError> {
        Ok(vec![NoteEvent::Edited {
            text: match command {
                ChangeNote::Edit { text } => text.clone(),
                ChangeNote::Purge => String::new(),
            },
        }])
    }
}

impl HttpAggregate for Note {
    const PATH: &'static str = "notes";
    type View = NoteView;
    fn view(&self) -> NoteView {
        self.state.clone()
    }
    fn access_policy() -> AccessPolicy<Self> {
        AccessPolicy::new()
            .command("Purge", ["moderator"])
            .read_history(["auditor", "moderator"])
            .rule(|ctx: &CqrsContext, _: Access<'_>, note: Option<&Note>| {
                note.is_none_or(|note| {
                    ctx.has_role("admin") || note.state.author.as_deref() == ctx.user_id()
                })
            })
    }
}

pub const SECRET: &str = "k3y";

/// A route a service adds itself, whose handler extracts nothing at all.
pub fn plain_routes() -> (Router, utoipa::openapi::OpenApi) {
    let router = Router::new().route("/plain", get(|| async { "plain" }));
    let doc = OpenApiBuilder::new()
        .paths(
            PathsBuilder::new().path(
                "/plain",
                PathItem::new(
                    HttpMethod::Get,
                    OperationBuilder::new()
                        .response("200", ResponseBuilder::new().description("plain").build())
                        .build(),
                ),
            ),
        )
        .build();
    (router, doc)
}

pub fn app(config: HttpConfig) -> Router {
    let store = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Note>::new(store.clone(), ());
    let (plain, doc) = plain_routes();
    Api::new(config)
        .with_health(store)
        .with_aggregate("", engine)
        .with_routes(plain, doc)
        .into_router()
}

pub async fn get_as(app: &Router, uri: &str, token: &str) -> Reply {
    call_as(app, Method::GET, uri, None, token).await
}

/// `POST uri` with a JSON body, as the bearer of `token` (none when empty).
pub async fn post_as(app: &Router, uri: &str, body: &str, token: &str) -> Reply {
    call_as(app, Method::POST, uri, Some(body), token).await
}

/// The refusals of the auth layer.
pub trait Refusals {
    fn unauthorized(&self, what: &str);
    fn forbidden(&self, what: &str);
}

impl Refusals for Reply {
    fn unauthorized(&self, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            self.text
        );
        assert_eq!(self.body["code"], "UNAUTHORIZED", "{what}");
        assert_eq!(self.headers["www-authenticate"], "Bearer", "{what}");
        assert_eq!(
            self.body["requestId"],
            self.headers["x-request-id"].to_str().unwrap()
        );
    }

    fn forbidden(&self, what: &str) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{what}: {}", self.text);
        assert_eq!(self.body["code"], "FORBIDDEN", "{what}");
    }
}
