//! The read side of the to-do lists: a summary per list and a record per to-do, queryable
//! by assignee and resolved state.
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
//!
//! Both views can also be kept inline, as here (the engine writes them with its events):
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use factum_core::*;
//! use todolist::domain::{CreateListCommand, TodoList, TodoListCommand};
//! use todolist::views::{ListSummary, TodoView};
//!
//! let store = Arc::new(InMemoryEventStore::new());
//! let engine = CqrsCommandEngine::<TodoList>::builder(store.clone())
//!     .inline_view::<ListSummary>()
//!     .inline_view::<TodoView>()
//!     .build()
//!     .unwrap();
//! let ctx = CqrsContext::new();
//! engine.create_with_id("home", &CreateListCommand::CreateList { name: "Home".into() }, &ctx).await.unwrap();
//! let add = TodoListCommand::AddTodo { todo_id: "t1".into(), title: "Fix the tap".into() };
//! engine.update("home", &add, &ctx).await.unwrap();
//!
//! let query = ViewQuery::parse(Some("resolved:eq:false"), None, None, None, TodoView::fields()).unwrap();
//! let open = store.query_views(TodoView::TYPE, &query, TodoView::fields()).await.unwrap();
//! assert_eq!(open.total, 1);
//! let summary: ListSummary = store.get_view(ListSummary::TYPE, "home").await.unwrap().unwrap().decode().unwrap();
//! assert_eq!((summary.total, summary.open), (1, 1));
//! # });
//! ```

use factum_core::{EventEnvelope, FieldKind, View, ViewField, ViewKind};
use serde::{Deserialize, Serialize};

use crate::domain::{TodoList, TodoListEvent};

/// What a client sees of a list: its to-dos as a list, in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListState {
    /// The list id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its to-dos, by id.
    pub todos: Vec<TodoState>,
}

/// One to-do of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TodoState {
    /// Its id on the list.
    pub todo_id: String,
    /// What to do.
    pub title: String,
    /// Who does it; `null` until assigned.
    pub assignee: Option<String>,
    /// Whether it is done.
    pub resolved: bool,
}

impl From<&TodoList> for ListState {
    fn from(list: &TodoList) -> Self {
        let todos = list.todos.iter().map(|(todo_id, todo)| TodoState {
            todo_id: todo_id.clone(),
            title: todo.title.clone(),
            assignee: todo.assignee.clone(),
            resolved: todo.resolved,
        });
        Self {
            id: list.id.clone(),
            name: list.name.clone(),
            todos: todos.collect(),
        }
    }
}

/// One record per list: its name and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListSummary {
    /// The list id.
    pub list_id: String,
    /// Its name.
    pub name: String,
    /// To-dos on the list.
    pub total: u64,
    /// Of which resolved.
    pub resolved: u64,
    /// Of which open.
    pub open: u64,
    /// The user who created it, if known: what the view shows each caller is filtered on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl View for ListSummary {
    const TYPE: &'static str = "list_summaries";
    const KIND: ViewKind = ViewKind::PerAggregate;
    type Aggregate = TodoList;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("name", FieldKind::Text),
            ViewField::new("total", FieldKind::Number),
            ViewField::new("resolved", FieldKind::Number),
            ViewField::new("open", FieldKind::Number),
            ViewField::new("created_by", FieldKind::Text),
        ];
        FIELDS
    }

    fn update(&self, envelope: &EventEnvelope<TodoListEvent>) -> Option<Self> {
        let mut next = self.clone();
        match &envelope.payload {
            TodoListEvent::ListCreated { name, created_by } => {
                next.list_id.clone_from(&envelope.aggregate_id);
                next.name.clone_from(name);
                next.created_by.clone_from(created_by);
            }
            TodoListEvent::TodoAdded { .. } => {
                next.total += 1;
                next.open += 1;
            }
            TodoListEvent::TodoRemoved { was_resolved, .. } => {
                next.total = next.total.saturating_sub(1);
                if *was_resolved {
                    next.resolved = next.resolved.saturating_sub(1);
                } else {
                    next.open = next.open.saturating_sub(1);
                }
            }
            TodoListEvent::TodoAssigned { .. } => return None,
            TodoListEvent::TodoResolved { .. } => {
                next.resolved += 1;
                next.open = next.open.saturating_sub(1);
            }
        }
        Some(next)
    }
}

/// One record per to-do, a child of its list, deleted when the to-do is removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Todo))]
pub struct TodoView {
    /// The list.
    pub list_id: String,
    /// The to-do's id on the list.
    pub todo_id: String,
    /// What to do.
    pub title: String,
    /// Who does it (null until assigned).
    pub assignee: Option<String>,
    /// Whether it is done.
    pub resolved: bool,
    /// Set when removed: the record is then deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl View for TodoView {
    const TYPE: &'static str = "todos";
    const KIND: ViewKind = ViewKind::ChildOfAggregate;
    type Aggregate = TodoList;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("list_id", FieldKind::Text),
            ViewField::new("title", FieldKind::Text),
            ViewField::new("assignee", FieldKind::Text),
            ViewField::new("resolved", FieldKind::Boolean),
        ];
        FIELDS
    }

    fn view_id(envelope: &EventEnvelope<TodoListEvent>) -> String {
        match &envelope.payload {
            TodoListEvent::TodoAdded { todo_id, .. }
            | TodoListEvent::TodoRemoved { todo_id, .. }
            | TodoListEvent::TodoAssigned { todo_id, .. }
            | TodoListEvent::TodoResolved { todo_id } => {
                format!("{}:{todo_id}", envelope.aggregate_id)
            }
            TodoListEvent::ListCreated { .. } => envelope.aggregate_id.clone(),
        }
    }

    fn update(&self, envelope: &EventEnvelope<TodoListEvent>) -> Option<Self> {
        let mut next = self.clone();
        match &envelope.payload {
            TodoListEvent::ListCreated { .. } => return None,
            TodoListEvent::TodoAdded { todo_id, title } => {
                next = Self {
                    list_id: envelope.aggregate_id.clone(),
                    todo_id: todo_id.clone(),
                    title: title.clone(),
                    assignee: None,
                    resolved: false,
                    removed: false,
                };
            }
            TodoListEvent::TodoRemoved { .. } => next.removed = true,
            TodoListEvent::TodoAssigned { assignee, .. } => next.assignee = Some(assignee.clone()),
            TodoListEvent::TodoResolved { .. } => next.resolved = true,
        }
        Some(next)
    }

    fn is_deleted(&self) -> bool {
        self.removed
    }
}
