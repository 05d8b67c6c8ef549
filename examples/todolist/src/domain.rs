//! The to-do list domain: lists holding to-dos that are added, removed, assigned and
//! resolved. Imports `factum-core` and serde only.

use std::collections::BTreeMap;
use std::sync::Arc;

use factum_core::{
    Access, AccessPolicy, Aggregate, CommandHandler, Commands, CqrsContext, Event, async_trait,
    define_domain_errors,
};
use serde::{Deserialize, Serialize};

/// The longest list name or to-do title, in characters.
pub const MAX_TEXT_LEN: usize = 200;

define_domain_errors! {
    /// Why a list refuses a command.
    pub enum TodoError {
        domain: "TODO",
        prefix: 20,
        /// No to-do with this id on the list.
        TodoNotFound { todo_id: String } = (1, 404, "TODO_NOT_FOUND", "to-do '{todo_id}' not found"),
        /// The to-do is already resolved.
        AlreadyResolved { todo_id: String } = (2, 409, "TODO_ALREADY_RESOLVED", "to-do '{todo_id}' is already resolved"),
        /// A to-do needs a title.
        EmptyTitle = (3, 400, "TODO_EMPTY_TITLE", "a to-do needs a title of 1 to 200 characters"),
        /// A list needs a name.
        ListNameRequired = (4, 400, "TODO_LIST_NAME_REQUIRED", "a list needs a name of 1 to 200 characters"),
        /// No list with this id.
        ListNotFound { id: String } = (5, 404, "TODO_LIST_NOT_FOUND", "list '{id}' not found"),
        /// A list with this id exists.
        ListAlreadyExists { id: String } = (6, 409, "TODO_LIST_ALREADY_EXISTS", "list '{id}' already exists"),
        /// The to-do id is taken on this list.
        TodoAlreadyExists { todo_id: String } = (7, 409, "TODO_ALREADY_EXISTS", "to-do '{todo_id}' already exists"),
        /// Ids are 1 to 64 characters of letters, digits, `-` and `_`; assignees 1 to 200 characters.
        InvalidId { what: &'static str } = (8, 400, "TODO_INVALID_ID", "invalid {what}"),
        /// The list holds as many open to-dos as its limit allows.
        LimitReached { limit: usize } = (9, 409, "TODO_LIMIT_REACHED", "the list already holds {limit} open to-dos, its limit"),
    }
}

/// How many open (unresolved) to-dos a list may hold: a policy kept outside the list (a
/// plan, a quota service), which the handler asks, and awaits, when a to-do is added.
#[async_trait]
pub trait TodoLimits: Send + Sync + 'static {
    /// The most open to-dos the list may hold; `None` for no limit.
    async fn max_open_todos(&self, list_id: &str, ctx: &CqrsContext) -> Option<usize>;
}

/// The services the list's handlers consult. The default has no limits.
#[derive(Clone, Default)]
pub struct TodoServices {
    limits: Option<Arc<dyn TodoLimits>>,
}

impl TodoServices {
    /// Services that ask `limits` how many open to-dos a list may hold.
    pub fn with_limits(limits: Arc<dyn TodoLimits>) -> Self {
        Self {
            limits: Some(limits),
        }
    }

    async fn max_open_todos(&self, list_id: &str, ctx: &CqrsContext) -> Option<usize> {
        match &self.limits {
            Some(limits) => limits.max_open_todos(list_id, ctx).await,
            None => None,
        }
    }
}

impl std::fmt::Debug for TodoServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TodoServices")
            .field("limits", &self.limits.is_some())
            .finish()
    }
}

/// What happens to a list.
/// Each event is stored under its serde tag (`#[derive(Event)]`).
#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TodoListEvent {
    /// The list was created.
    ListCreated {
        /// Its name.
        name: String,
        /// The user who created it (the token's `sub`), when the service knows callers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_by: Option<String>,
    },
    /// A to-do was added.
    TodoAdded {
        /// Its id on the list.
        todo_id: String,
        /// What to do.
        title: String,
    },
    /// A to-do was removed.
    TodoRemoved {
        /// Its id.
        todo_id: String,
        /// Whether it had been resolved (so counts stay right without looking it up).
        #[serde(default)]
        was_resolved: bool,
    },
    /// A to-do was assigned to someone.
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

/// Creates a list. A command's name is its serde tag (`#[derive(Commands)]`).
#[derive(Commands, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CreateListCommand {
    /// Create a list with a name.
    CreateList {
        /// 1 to 200 characters.
        name: String,
    },
}

/// Changes a list's to-dos.
#[derive(Commands, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TodoListCommand {
    /// Add a to-do to a list.
    AddTodo {
        /// Its id on the list (letters, digits, `-`, `_`; 1 to 64 characters).
        todo_id: String,
        /// What to do: 1 to 200 characters.
        title: String,
    },
    /// Remove a to-do.
    RemoveTodo {
        /// Its id.
        todo_id: String,
    },
    /// Assign an open to-do to someone.
    AssignTodo {
        /// Its id.
        todo_id: String,
        /// Who does it: 1 to 200 characters.
        assignee: String,
    },
    /// Resolve an open to-do.
    ResolveTodo {
        /// Its id.
        todo_id: String,
    },
}

/// One to-do on a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Todo {
    /// What to do.
    pub title: String,
    /// Who does it.
    pub assignee: Option<String>,
    /// Whether it is done.
    pub resolved: bool,
}

/// A to-do list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoList {
    /// The list id.
    pub id: String,
    /// Its name; empty until created.
    pub name: String,
    /// Its to-dos by id.
    pub todos: BTreeMap<String, Todo>,
    /// The user who created it, if the service knew callers then.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// The role that may act on and read every list.
pub const ADMIN_ROLE: &str = "admin";

/// Who may act on and read a list (with authentication on): the user who created it, and
/// callers with the [`ADMIN_ROLE`]; anyone may create a new one.
pub fn list_access() -> AccessPolicy<TodoList> {
    AccessPolicy::new().rule(
        |ctx: &CqrsContext, _: Access<'_>, list: Option<&TodoList>| match list {
            None => true,
            Some(list) => {
                ctx.has_role(ADMIN_ROLE)
                    || list
                        .created_by
                        .as_deref()
                        .is_some_and(|creator| Some(creator) == ctx.user_id())
            }
        },
    )
}

fn text_ok(text: &str) -> bool {
    !text.trim().is_empty() && text.chars().count() <= MAX_TEXT_LEN
}

fn todo_id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TodoList {
    fn todo(&self, todo_id: &str) -> Result<&Todo, TodoError> {
        self.todos
            .get(todo_id)
            .ok_or_else(|| TodoError::TodoNotFound {
                todo_id: todo_id.to_owned(),
            })
    }
}

impl Aggregate for TodoList {
    const TYPE: &'static str = "todolist";
    type Event = TodoListEvent;
    type Error = TodoError;

    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            name: String::new(),
            todos: BTreeMap::new(),
            created_by: None,
        }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }

    fn apply(&mut self, event: &TodoListEvent) {
        match event {
            TodoListEvent::ListCreated { name, created_by } => {
                self.name.clone_from(name);
                self.created_by.clone_from(created_by);
            }
            TodoListEvent::TodoAdded { todo_id, title } => {
                self.todos.insert(
                    todo_id.clone(),
                    Todo {
                        title: title.clone(),
                        assignee: None,
                        resolved: false,
                    },
                );
            }
            TodoListEvent::TodoRemoved { todo_id, .. } => {
                self.todos.remove(todo_id);
            }
            TodoListEvent::TodoAssigned { todo_id, assignee } => {
                if let Some(todo) = self.todos.get_mut(todo_id) {
                    todo.assignee = Some(assignee.clone());
                }
            }
            TodoListEvent::TodoResolved { todo_id } => {
                if let Some(todo) = self.todos.get_mut(todo_id) {
                    todo.resolved = true;
                }
            }
        }
    }
}

impl CommandHandler for TodoList {
    type CreateCommand = CreateListCommand;
    type UpdateCommand = TodoListCommand;
    type Services = TodoServices;

    async fn handle_create(
        &self,
        command: &CreateListCommand,
        _: &TodoServices,
        ctx: &CqrsContext,
    ) -> Result<Vec<TodoListEvent>, TodoError> {
        let CreateListCommand::CreateList { name } = command;
        if !text_ok(name) {
            return Err(TodoError::ListNameRequired);
        }
        Ok(vec![TodoListEvent::ListCreated {
            name: name.clone(),
            created_by: ctx.user_id().map(str::to_owned),
        }])
    }

    async fn handle_update(
        &self,
        command: &TodoListCommand,
        services: &TodoServices,
        ctx: &CqrsContext,
    ) -> Result<Vec<TodoListEvent>, TodoError> {
        match command {
            TodoListCommand::AddTodo { todo_id, title } => {
                if !todo_id_ok(todo_id) {
                    return Err(TodoError::InvalidId { what: "todo_id" });
                }
                if !text_ok(title) {
                    return Err(TodoError::EmptyTitle);
                }
                if self.todos.contains_key(todo_id) {
                    return Err(TodoError::TodoAlreadyExists {
                        todo_id: todo_id.clone(),
                    });
                }
                if let Some(limit) = services.max_open_todos(&self.id, ctx).await {
                    let open = self.todos.values().filter(|todo| !todo.resolved).count();
                    if open >= limit {
                        return Err(TodoError::LimitReached { limit });
                    }
                }
                Ok(vec![TodoListEvent::TodoAdded {
                    todo_id: todo_id.clone(),
                    title: title.clone(),
                }])
            }
            TodoListCommand::RemoveTodo { todo_id } => {
                let was_resolved = self.todo(todo_id)?.resolved;
                Ok(vec![TodoListEvent::TodoRemoved {
                    todo_id: todo_id.clone(),
                    was_resolved,
                }])
            }
            TodoListCommand::AssignTodo { todo_id, assignee } => {
                if self.todo(todo_id)?.resolved {
                    return Err(TodoError::AlreadyResolved {
                        todo_id: todo_id.clone(),
                    });
                }
                if !text_ok(assignee) {
                    return Err(TodoError::InvalidId { what: "assignee" });
                }
                Ok(vec![TodoListEvent::TodoAssigned {
                    todo_id: todo_id.clone(),
                    assignee: assignee.clone(),
                }])
            }
            TodoListCommand::ResolveTodo { todo_id } => {
                if self.todo(todo_id)?.resolved {
                    return Err(TodoError::AlreadyResolved {
                        todo_id: todo_id.clone(),
                    });
                }
                Ok(vec![TodoListEvent::TodoResolved {
                    todo_id: todo_id.clone(),
                }])
            }
        }
    }

    fn not_found_error(aggregate_id: &str) -> Option<TodoError> {
        Some(TodoError::ListNotFound {
            id: aggregate_id.to_owned(),
        })
    }

    fn already_exists_error(aggregate_id: &str) -> Option<TodoError> {
        Some(TodoError::ListAlreadyExists {
            id: aggregate_id.to_owned(),
        })
    }
}
