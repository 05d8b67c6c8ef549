//! Given/when/then tests of the to-do list rules and errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use factum_core::{CqrsContext, async_trait};
use factum_testing::AggregateTestFixture;
use todolist::domain::{
    CreateListCommand, TodoError, TodoLimits, TodoList, TodoListCommand, TodoListEvent,
    TodoServices,
};

fn fixture() -> AggregateTestFixture<TodoList> {
    AggregateTestFixture::new(TodoServices::default()).with_aggregate_id("home")
}

/// A fake limits service: answers after yielding to the runtime (so the handler really
/// awaits it) and counts the questions.
struct FakeLimits {
    limit: usize,
    asked: AtomicUsize,
}

#[async_trait]
impl TodoLimits for FakeLimits {
    async fn max_open_todos(&self, list_id: &str, _: &CqrsContext) -> Option<usize> {
        tokio::task::yield_now().await;
        self.asked.fetch_add(1, Ordering::SeqCst);
        (list_id == "home").then_some(self.limit)
    }
}

#[tokio::test]
async fn adding_a_todo_awaits_the_limits_service() {
    let limits = Arc::new(FakeLimits {
        limit: 2,
        asked: AtomicUsize::new(0),
    });
    let with_limits = || {
        AggregateTestFixture::<TodoList>::new(TodoServices::with_limits(limits.clone()))
            .with_aggregate_id("home")
    };
    with_limits()
        .given(vec![created(), added("a")])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "b".into(),
            title: "do b".into(),
        })
        .await
        .then_expect_events(vec![added("b")]);
    with_limits()
        .given(vec![created(), added("a"), added("b")])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "c".into(),
            title: "do c".into(),
        })
        .await
        .then_expect_error(TodoError::LimitReached { limit: 2 });
    // A resolved to-do no longer counts against the limit.
    with_limits()
        .given(vec![
            created(),
            added("a"),
            added("b"),
            TodoListEvent::TodoResolved {
                todo_id: "a".into(),
            },
        ])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "c".into(),
            title: "do c".into(),
        })
        .await
        .then_expect_events(vec![added("c")]);
    assert_eq!(limits.asked.load(Ordering::SeqCst), 3);
}

fn created() -> TodoListEvent {
    TodoListEvent::ListCreated {
        name: "Home".into(),
        created_by: None,
    }
}

fn added(id: &str) -> TodoListEvent {
    TodoListEvent::TodoAdded {
        todo_id: id.into(),
        title: format!("do {id}"),
    }
}

#[tokio::test]
async fn a_list_needs_a_name() {
    fixture()
        .given_no_previous_events()
        .when_create(CreateListCommand::CreateList {
            name: "Home".into(),
        })
        .await
        .then_expect_events(vec![created()]);
    for name in ["", "  ", &"x".repeat(201)] {
        fixture()
            .given_no_previous_events()
            .when_create(CreateListCommand::CreateList {
                name: name.to_owned(),
            })
            .await
            .then_expect_error(TodoError::ListNameRequired);
    }
    fixture()
        .given(vec![created()])
        .when_create(CreateListCommand::CreateList {
            name: "Again".into(),
        })
        .await
        .then_expect_error_code("TODO_LIST_ALREADY_EXISTS");
}

#[tokio::test]
async fn todos_are_added_with_a_title_and_a_fresh_id() {
    fixture()
        .given(vec![created()])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "t1".into(),
            title: "do t1".into(),
        })
        .await
        .then_expect_events(vec![added("t1")]);
    fixture()
        .given(vec![created()])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "t1".into(),
            title: " ".into(),
        })
        .await
        .then_expect_error(TodoError::EmptyTitle);
    fixture()
        .given(vec![created(), added("t1")])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "t1".into(),
            title: "again".into(),
        })
        .await
        .then_expect_error_code("TODO_ALREADY_EXISTS");
    fixture()
        .given(vec![created()])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "a b".into(),
            title: "x".into(),
        })
        .await
        .then_expect_error_code("TODO_INVALID_ID");
}

#[tokio::test]
async fn remove_assign_and_resolve_need_an_existing_todo() {
    for command in [
        TodoListCommand::RemoveTodo {
            todo_id: "nope".into(),
        },
        TodoListCommand::AssignTodo {
            todo_id: "nope".into(),
            assignee: "bob".into(),
        },
        TodoListCommand::ResolveTodo {
            todo_id: "nope".into(),
        },
    ] {
        fixture()
            .given(vec![created(), added("t1")])
            .when_update(command)
            .await
            .then_expect_error(TodoError::TodoNotFound {
                todo_id: "nope".into(),
            });
    }
}

#[tokio::test]
async fn todos_are_assigned_resolved_once_and_removed() {
    fixture()
        .given(vec![created(), added("t1")])
        .when_update(TodoListCommand::AssignTodo {
            todo_id: "t1".into(),
            assignee: "bob".into(),
        })
        .await
        .then_expect_events(vec![TodoListEvent::TodoAssigned {
            todo_id: "t1".into(),
            assignee: "bob".into(),
        }]);
    let resolved = TodoListEvent::TodoResolved {
        todo_id: "t1".into(),
    };
    fixture()
        .given(vec![created(), added("t1")])
        .when_update(TodoListCommand::ResolveTodo {
            todo_id: "t1".into(),
        })
        .await
        .then_expect_events(vec![resolved.clone()]);
    fixture()
        .given(vec![created(), added("t1"), resolved.clone()])
        .when_update(TodoListCommand::ResolveTodo {
            todo_id: "t1".into(),
        })
        .await
        .then_expect_error(TodoError::AlreadyResolved {
            todo_id: "t1".into(),
        });
    fixture()
        .given(vec![created(), added("t1"), resolved.clone()])
        .when_update(TodoListCommand::AssignTodo {
            todo_id: "t1".into(),
            assignee: "bob".into(),
        })
        .await
        .then_expect_error_code("TODO_ALREADY_RESOLVED");
    let state = fixture()
        .given(vec![created(), added("t1"), resolved])
        .when_update(TodoListCommand::RemoveTodo {
            todo_id: "t1".into(),
        })
        .await
        .then_expect_events(vec![TodoListEvent::TodoRemoved {
            todo_id: "t1".into(),
            was_resolved: true,
        }]);
    assert!(state.todos.is_empty());
}

#[tokio::test]
async fn commands_on_a_missing_list_are_not_found() {
    fixture()
        .given_no_previous_events()
        .when_update(TodoListCommand::ResolveTodo {
            todo_id: "t1".into(),
        })
        .await
        .then_expect_error(TodoError::ListNotFound { id: "home".into() });
}

#[tokio::test]
async fn error_statuses_match_the_issue() {
    use factum_core::DomainError;
    assert_eq!(
        TodoError::TodoNotFound {
            todo_id: "x".into()
        }
        .status(),
        404
    );
    assert_eq!(
        TodoError::AlreadyResolved {
            todo_id: "x".into()
        }
        .status(),
        409
    );
    assert_eq!(TodoError::EmptyTitle.status(), 400);
    assert_eq!(TodoError::ListNameRequired.status(), 400);
}
