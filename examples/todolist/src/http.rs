//! The to-do lists over HTTP: the generic aggregate routes of `factum-http` for a list, the
//! view routes, `/projections`, `/health`, `/openapi.json` and `/docs`.
//!
//! | route | does |
//! |---|---|
//! | `POST /lists/{id}/commands/CreateList` (`{"name"}`) | create a list → 201 (`POST /lists/commands/CreateList` picks the id) |
//! | `POST /lists/{id}/commands/AddTodo` (`{"todo_id","title"}`) | add a to-do → 200 |
//! | `POST /lists/{id}/commands/AssignTodo` (`{"todo_id","assignee"}`), `ResolveTodo`, `RemoveTodo` (`{"todo_id"}`) | change a to-do → 200 |
//! | `GET /lists/{id}` (`?version=N`), `GET /lists/{id}/events` | the list's state, its audit log |
//! | `GET /views/lists?filter=open:gt:0&sort=-total` | list summaries: `name`, `total`, `resolved`, `open` |
//! | `GET /views/todos?filter=assignee:eq:bob,resolved:eq:false&sort=title` | to-dos across lists: `list_id`, `title`, `assignee`, `resolved` |
//! | `GET /lists/{id}/todos` | one list's to-dos (same query string) |
//! | `GET /views/lists/{id}`, `GET /views/todos/{list}:{todo}` | one record |
//! | `GET /projections` | how far the to-do projection is behind |
//!
//! With authentication on (`--jwt-secret`), a list is for the user who created it and for the
//! `admin` role (403 for anyone else); `/views/lists` shows each caller the lists they
//! created, `/views/todos` the to-dos assigned to them (admins see everything).
//!
//! Domain errors are the structured JSON of every Factum error: `TODO_NOT_FOUND` 404,
//! `TODO_ALREADY_RESOLVED` 409, `TODO_EMPTY_TITLE` 400, `TODO_LIST_NAME_REQUIRED` 400, ...
//!
//! ## Inline or asynchronous, per view
//!
//! - **list summaries** ([`ListSummary`]) are kept **inline**: the counts a client shows next
//!   to a list are right in the same instant the command answers (add a to-do, and the list's
//!   `open` count already includes it). One small record per list.
//! - **to-dos** ([`TodoView`]) run as an **asynchronous projection**: the big queryable set
//!   (every to-do of every list, by assignee and state), which a client reads a moment later
//!   anyway, and which can then be rebuilt while the service runs. The service follows the
//!   log (woken by each commit, polling for other processes) and reports its lag at
//!   `/projections/todos`.
//!
//! `todolist rebuild-views` rebuilds the projection safely while the service runs (each
//! batch commits with its checkpoint, refused if a rebuild reset it). The summaries are
//! written by every command from their current record, so they are rebuilt only with
//! `--include-inline`, with the service stopped.

use std::sync::Arc;

use axum::Router;
use factum_core::{
    AccessPolicy, CqrsCommandEngine, CqrsContext, EngineConfig, EventStore, Filter, Projections,
    Projector, ViewStore,
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

/// The to-do lists over one store: an engine that keeps the list summaries inline, and the
/// to-do projection (run it with [`Projections::spawn`]; the engine wakes it after each
/// commit).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use factum_core::{CqrsContext, InMemoryEventStore};
/// use todolist::domain::{CreateListCommand, TodoListCommand};
/// use todolist::http::TodoService;
///
/// let service = TodoService::open(Arc::new(InMemoryEventStore::new())).unwrap();
/// let ctx = CqrsContext::new();
/// service.engine().create_with_id("home", &CreateListCommand::CreateList { name: "Home".into() }, &ctx).await.unwrap();
/// let add = TodoListCommand::AddTodo { todo_id: "tap".into(), title: "Fix the tap".into() };
/// service.engine().update("home", &add, &ctx).await.unwrap();
/// // The summary is written with the events; the to-do once projected.
/// assert!(service.views().get_view("list_summaries", "home").await.unwrap().is_some());
/// assert!(service.views().get_view("todos", "home:tap").await.unwrap().is_none());
/// service.projections().catch_up().await.unwrap();
/// assert!(service.views().get_view("todos", "home:tap").await.unwrap().is_some());
/// # });
/// ```
#[derive(Clone)]
pub struct TodoService {
    engine: CqrsCommandEngine<TodoList>,
    projections: Projections,
    views: Arc<dyn ViewStore>,
}

impl std::fmt::Debug for TodoService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TodoService")
            .field("engine", &self.engine)
            .field("projections", &self.projections)
            .finish_non_exhaustive()
    }
}

impl TodoService {
    /// The service over `store`, with no limits. A store that keeps no views is an error.
    pub fn open(store: Arc<dyn EventStore>) -> factum_core::Result<Self> {
        Self::with_services(store, TodoServices::default())
    }

    /// The service over `store`, whose handlers consult `services`.
    pub fn with_services(
        store: Arc<dyn EventStore>,
        services: TodoServices,
    ) -> factum_core::Result<Self> {
        Self::with_config(store, services, EngineConfig::default())
    }

    /// The service over `store` with `services` and this engine configuration.
    pub fn with_config(
        store: Arc<dyn EventStore>,
        services: TodoServices,
        config: EngineConfig,
    ) -> factum_core::Result<Self> {
        let views = store.clone().into_view_store().ok_or_else(|| {
            factum_core::Error::Validation("the to-do views need a store that keeps views".into())
        })?;
        let projections = projected_views(&store)?;
        let engine = CqrsCommandEngine::builder(store)
            .services(services)
            .config(config)
            .inline_view::<ListSummary>()
            .dispatcher(projections.waker::<TodoList>())
            .build()?;
        Ok(Self {
            engine,
            projections,
            views,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &CqrsCommandEngine<TodoList> {
        &self.engine
    }

    /// The asynchronous projections (to-dos).
    pub fn projections(&self) -> &Projections {
        &self.projections
    }

    /// The view side of the store.
    pub fn views(&self) -> &Arc<dyn ViewStore> {
        &self.views
    }

    /// Every route and its document, not yet turned into a router.
    pub fn api(&self, config: HttpConfig) -> Result<Api, factum_http::Error> {
        let store = self.engine.store().clone();
        Ok(
            Api::new(config.with_title("Factum to-do lists", env!("CARGO_PKG_VERSION")))
                .with_health(store.clone())
                .with_aggregate("", self.engine.clone())
                .with_view::<ListSummary>("/views", &store)?
                .with_view::<TodoView>("/views", &store)?
                .with_child_view::<TodoView>("", &store)?
                .with_projections(&self.projections),
        )
    }

    /// The router, ready to serve or to test with `tower::ServiceExt::oneshot`.
    pub fn router(&self, config: HttpConfig) -> Result<Router, factum_http::Error> {
        Ok(self.api(config)?.into_router())
    }
}

/// The views run as asynchronous projections: to-dos. Rebuilding them is safe while the
/// service runs.
pub fn projected_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<TodoView>::for_store(store.clone())?))
}

/// The views kept inline (list summaries), as projectors for a rebuild: only while no
/// command runs.
pub fn inline_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<ListSummary>::for_store(store.clone())?))
}
