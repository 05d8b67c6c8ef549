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
    AccessPolicy, CqrsCommandEngine, CqrsContext, EngineConfig, EventStore, Filter, FilterOp,
    FilterValue, Projector, ViewStore,
};
use factum_http::{Api, CommandSpec, HttpAggregate, HttpConfig, HttpView, Projections};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{ADMIN_ROLE, TodoList, TodoServices};
use crate::views::{ListSummary, TodoView};

/// What a client sees of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListState {
    /// The list id.
    #[schema(example = "home")]
    pub id: String,
    /// Its name.
    #[schema(example = "Home")]
    pub name: String,
    /// Its to-dos, by id.
    pub todos: Vec<TodoState>,
}

/// One to-do of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TodoState {
    /// Its id on the list.
    #[schema(example = "tap")]
    pub todo_id: String,
    /// What to do.
    #[schema(example = "Fix the tap")]
    pub title: String,
    /// Who does it; `null` until assigned.
    pub assignee: Option<String>,
    /// Whether it is done.
    pub resolved: bool,
}

/// The body of `CreateList`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateListBody {
    /// 1 to 200 characters, not blank.
    #[schema(example = "Home")]
    pub name: String,
}

/// The body of `AddTodo`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTodoBody {
    /// Its id on the list: 1 to 64 letters, digits, `-` or `_`.
    #[schema(example = "tap")]
    pub todo_id: String,
    /// What to do: 1 to 200 characters, not blank.
    #[schema(example = "Fix the tap")]
    pub title: String,
}

/// The body of `AssignTodo`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignTodoBody {
    /// The to-do.
    #[schema(example = "tap")]
    pub todo_id: String,
    /// Who does it: 1 to 200 characters.
    #[schema(example = "bob")]
    pub assignee: String,
}

/// The body of `ResolveTodo` and `RemoveTodo`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoIdBody {
    /// The to-do.
    #[schema(example = "tap")]
    pub todo_id: String,
}

/// The JSON of a list event (the schema of [`TodoListEvent`](crate::domain::TodoListEvent)).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
#[schema(as = TodoListEvent)]
pub enum TodoListEventDoc {
    /// The list was created.
    ListCreated {
        /// Its name.
        name: String,
        /// The user who created it, when the service knows callers.
        #[serde(default)]
        created_by: Option<String>,
    },
    /// A to-do was added.
    TodoAdded {
        /// Its id.
        todo_id: String,
        /// What to do.
        title: String,
    },
    /// A to-do was removed.
    TodoRemoved {
        /// Its id.
        todo_id: String,
        /// Whether it had been resolved.
        was_resolved: bool,
    },
    /// A to-do was assigned.
    TodoAssigned {
        /// Its id.
        todo_id: String,
        /// Who does it.
        assignee: String,
    },
    /// A to-do was resolved.
    TodoResolved {
        /// Its id.
        todo_id: String,
    },
}

/// The JSON of a list summary record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ListSummary)]
pub struct ListSummaryDoc {
    /// The list id.
    #[schema(example = "home")]
    pub list_id: String,
    /// Its name.
    #[schema(example = "Home")]
    pub name: String,
    /// To-dos on the list.
    #[schema(example = 3)]
    pub total: u64,
    /// Of which resolved.
    #[schema(example = 1)]
    pub resolved: u64,
    /// Of which open.
    #[schema(example = 2)]
    pub open: u64,
    /// The user who created it; absent when the service does not know callers.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// The JSON of a to-do record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Todo)]
pub struct TodoDoc {
    /// The list.
    #[schema(example = "home")]
    pub list_id: String,
    /// The to-do's id on the list.
    #[schema(example = "tap")]
    pub todo_id: String,
    /// What to do.
    #[schema(example = "Fix the tap")]
    pub title: String,
    /// Who does it; `null` until assigned.
    pub assignee: Option<String>,
    /// Whether it is done.
    pub resolved: bool,
}

impl HttpAggregate for TodoList {
    const PATH: &'static str = "lists";
    type View = ListState;
    type EventSchema = TodoListEventDoc;

    fn view(&self, _version: u64) -> ListState {
        ListState {
            id: self.id.clone(),
            name: self.name.clone(),
            todos: self
                .todos
                .iter()
                .map(|(todo_id, todo)| TodoState {
                    todo_id: todo_id.clone(),
                    title: todo.title.clone(),
                    assignee: todo.assignee.clone(),
                    resolved: todo.resolved,
                })
                .collect(),
        }
    }

    fn create_commands() -> Vec<CommandSpec> {
        vec![CommandSpec::new::<CreateListBody>(
            "CreateList",
            "Create a list with a name",
        )]
    }

    fn update_commands() -> Vec<CommandSpec> {
        vec![
            CommandSpec::new::<AddTodoBody>("AddTodo", "Add a to-do to a list"),
            CommandSpec::new::<TodoIdBody>("RemoveTodo", "Remove a to-do"),
            CommandSpec::new::<AssignTodoBody>("AssignTodo", "Assign an open to-do to someone"),
            CommandSpec::new::<TodoIdBody>("ResolveTodo", "Resolve an open to-do"),
        ]
    }

    fn access_policy() -> AccessPolicy<Self> {
        crate::domain::list_access()
    }
}

impl HttpView for ListSummary {
    const PATH: &'static str = "lists";
    type Schema = ListSummaryDoc;

    /// A caller sees the lists they created; an admin sees all.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        match ctx.user_id() {
            Some(user) if !ctx.has_role(ADMIN_ROLE) => vec![Filter {
                field: "created_by".to_owned(),
                op: FilterOp::Eq,
                value: FilterValue::Text(user.to_owned()),
            }],
            _ => Vec::new(),
        }
    }
}

impl HttpView for TodoView {
    const PATH: &'static str = "todos";
    type Schema = TodoDoc;

    /// Across lists, a caller sees the to-dos assigned to them; an admin sees all. A list's
    /// creator reads all of its to-dos at `/lists/{id}/todos`.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        match ctx.user_id() {
            Some(user) if !ctx.has_role(ADMIN_ROLE) => vec![Filter {
                field: "assignee".to_owned(),
                op: FilterOp::Eq,
                value: FilterValue::Text(user.to_owned()),
            }],
            _ => Vec::new(),
        }
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
        let views = store.clone().into_view_store().ok_or_else(|| {
            factum_core::Error::Validation("the to-do views need a store that keeps views".into())
        })?;
        let projections = projected_views(&store)?;
        let engine = CqrsCommandEngine::builder(store)
            .services(services)
            .config(EngineConfig::default())
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

#[cfg(test)]
mod tests {
    use factum_core::{CqrsContext, EventEnvelope, Metadata, View};

    use super::*;
    use crate::domain::TodoListEvent;

    fn envelope(version: u64, payload: TodoListEvent) -> EventEnvelope<TodoListEvent> {
        let ctx = CqrsContext::new();
        EventEnvelope {
            event_id: ctx.new_id(),
            aggregate_type: "todolist".into(),
            aggregate_id: "home".into(),
            version,
            position: version,
            recorded_at: ctx.now(),
            event_type: factum_core::Event::event_type(&payload).into(),
            metadata: Metadata::default(),
            payload,
        }
    }

    #[test]
    fn events_and_records_fit_their_documented_schemas() {
        let events = [
            TodoListEvent::ListCreated {
                name: "Home".into(),
                created_by: None,
            },
            TodoListEvent::TodoAdded {
                todo_id: "tap".into(),
                title: "Fix the tap".into(),
            },
            TodoListEvent::TodoAssigned {
                todo_id: "tap".into(),
                assignee: "bob".into(),
            },
            TodoListEvent::TodoResolved {
                todo_id: "tap".into(),
            },
            TodoListEvent::TodoRemoved {
                todo_id: "tap".into(),
                was_resolved: true,
            },
        ];
        let mut summary = ListSummary::default();
        let mut todo = TodoView::default();
        for (version, event) in (1..).zip(events) {
            let json = serde_json::to_value(&event).unwrap_or_default();
            let doc: TodoListEventDoc =
                serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert!(format!("{doc:?}").starts_with(factum_core::Event::event_type(&event)));
            let envelope = envelope(version, event);
            if let Some(next) = summary.update(&envelope) {
                summary = next;
            }
            let doc: Result<ListSummaryDoc, _> =
                serde_json::from_value(serde_json::to_value(&summary).unwrap_or_default());
            assert!(doc.is_ok(), "{summary:?}");
            if let Some(next) = todo.update(&envelope) {
                if !next.is_deleted() {
                    let doc: Result<TodoDoc, _> =
                        serde_json::from_value(serde_json::to_value(&next).unwrap_or_default());
                    assert!(doc.is_ok(), "{next:?}");
                }
                todo = next;
            }
        }
        assert!(todo.is_deleted());
        assert_eq!((summary.total, summary.open, summary.resolved), (0, 0, 0));
    }

    #[test]
    fn the_routes_accept_exactly_the_domains_commands() {
        use crate::domain::{CreateListCommand, TodoListCommand};
        let names: Vec<_> = TodoList::create_commands()
            .iter()
            .chain(&TodoList::update_commands())
            .map(CommandSpec::name)
            .collect();
        assert_eq!(
            names,
            [
                "CreateList",
                "AddTodo",
                "RemoveTodo",
                "AssignTodo",
                "ResolveTodo"
            ]
        );
        let create: Result<CreateListCommand, _> =
            serde_json::from_value(serde_json::json!({"type": "CreateList", "name": "x"}));
        assert!(create.is_ok());
        for (name, body) in [
            ("AddTodo", serde_json::json!({"todo_id": "a", "title": "t"})),
            ("RemoveTodo", serde_json::json!({"todo_id": "a"})),
            (
                "AssignTodo",
                serde_json::json!({"todo_id": "a", "assignee": "b"}),
            ),
            ("ResolveTodo", serde_json::json!({"todo_id": "a"})),
        ] {
            let mut tagged = body.clone();
            tagged["type"] = name.into();
            let command: Result<TodoListCommand, _> = serde_json::from_value(tagged);
            assert!(command.is_ok(), "{name}");
            let documented = match name {
                "AddTodo" => serde_json::from_value::<AddTodoBody>(body).is_ok(),
                "AssignTodo" => serde_json::from_value::<AssignTodoBody>(body).is_ok(),
                _ => serde_json::from_value::<TodoIdBody>(body).is_ok(),
            };
            assert!(documented, "{name}");
        }
    }
}
