//! The to-do lists over HTTP: the generic aggregate routes of `factum-http` for a list, the
//! view routes, `/projections`, `/health`, `/openapi.json` and `/docs`.
//!
//! Commands are `POST /lists/{id}/commands/{CreateList|AddTodo|AssignTodo|ResolveTodo|RemoveTodo}`;
//! `GET /lists/{id}` and `/lists/{id}/events` read a list; `/views/lists`, `/views/todos` and
//! `/lists/{id}/todos` query the views. `/docs` documents every route and shape.
//!
//! With authentication on (`--jwt-secret`), a list is for the user who created it and for the
//! `admin` role (403 for anyone else); `/views/lists` shows each caller the lists they
//! created, `/views/todos` the to-dos assigned to them (admins see everything).
//!
//! Domain errors are the structured JSON of every Factum error: `TODO_NOT_FOUND` 404,
//! `TODO_ALREADY_RESOLVED` 409, `TODO_EMPTY_TITLE` 400, `TODO_LIST_NAME_REQUIRED` 400, ...
//!
//! How each view is kept (inline or as a projection) and rebuilt: see [`crate::views`].

use std::sync::Arc;

use axum::Router;
use factum_core::{
    AccessPolicy, CqrsCommandEngine, CqrsContext, EngineConfig, EventStore, Filter, Projections,
    Projector,
};
use factum_http::{Api, HttpAggregate, HttpConfig, HttpView, owned_by};

use crate::domain::{ADMIN_ROLE, TodoList, TodoServices};
use crate::views::{ListState, ListSummary, TodoView};

impl HttpAggregate for TodoList {
    const PATH: &'static str = "lists";
    type View = ListState;

    fn view(&self) -> ListState {
        ListState::from(self)
    }

    fn access_policy() -> AccessPolicy<Self> {
        crate::domain::list_access()
    }
}

impl HttpView for ListSummary {
    const PATH: &'static str = "lists";

    /// A caller sees the lists they created; an admin sees all.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        owned_by(ctx, "created_by", ADMIN_ROLE)
    }
}

impl HttpView for TodoView {
    const PATH: &'static str = "todos";

    /// Across lists, a caller sees the to-dos assigned to them; an admin sees all. A list's
    /// creator reads all of its to-dos at `/lists/{id}/todos`.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        owned_by(ctx, "assignee", ADMIN_ROLE)
    }
}

/// The to-do lists' engine over `store`: it keeps the list summaries inline and wakes the
/// to-do projection after each commit (run `engine.projections().spawn(..)`); a store
/// without views is an error.
pub fn engine(
    store: Arc<dyn EventStore>,
    services: TodoServices,
    config: EngineConfig,
) -> factum_core::Result<CqrsCommandEngine<TodoList>> {
    CqrsCommandEngine::builder(store)
        .services(services)
        .config(config)
        .inline_view::<ListSummary>()
        .projection::<TodoView>()
        .build()
}

/// Every route and its document over `engine`, not yet turned into a router.
pub fn api(
    engine: &CqrsCommandEngine<TodoList>,
    config: HttpConfig,
) -> Result<Api, factum_http::Error> {
    let store = engine.store().clone();
    Ok(
        Api::new(config.with_title("Factum to-do lists", env!("CARGO_PKG_VERSION")))
            .with_health(store.clone())
            .with_aggregate("", engine.clone())
            .with_view::<ListSummary>("/views", &store)?
            .with_view::<TodoView>("/views", &store)?
            .with_child_view::<TodoView>("", &store)?
            .with_projections(engine.projections())
            .with_event_feed(&store),
    )
}

/// The router, ready to serve or to test with `tower::ServiceExt::oneshot`.
pub fn router(
    engine: &CqrsCommandEngine<TodoList>,
    config: HttpConfig,
) -> Result<Router, factum_http::Error> {
    Ok(api(engine, config)?.into_router())
}

/// The views run as asynchronous projections: to-dos. Rebuilding them is safe while the
/// service runs.
pub fn projected_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<TodoView>::for_store(store.clone())?))
}
