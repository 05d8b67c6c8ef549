//! Given/when/then tests of the to-do list rules and errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_testing::AggregateTestFixture;
use todolist::domain::{CreateListCommand, TodoError, TodoList, TodoListCommand, TodoListEvent};

fn fixture() -> AggregateTestFixture<TodoList> {
    AggregateTestFixture::new(()).with_aggregate_id("home")
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

#[test]
fn a_list_needs_a_name() {
    fixture()
        .given_no_previous_events()
        .when_create(CreateListCommand::CreateList {
            name: "Home".into(),
        })
        .then_expect_events(vec![created()]);
    for name in ["", "  ", &"x".repeat(201)] {
        fixture()
            .given_no_previous_events()
            .when_create(CreateListCommand::CreateList {
                name: name.to_owned(),
            })
            .then_expect_error(TodoError::ListNameRequired);
    }
    fixture()
        .given(vec![created()])
        .when_create(CreateListCommand::CreateList {
            name: "Again".into(),
        })
        .then_expect_error_code("TODO_LIST_ALREADY_EXISTS");
}

#[test]
fn todos_are_added_with_a_title_and_a_fresh_id() {
    fixture()
        .given(vec![created()])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "t1".into(),
            title: "do t1".into(),
        })
        .then_expect_events(vec![added("t1")]);
    fixture()
        .given(vec![created()])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "t1".into(),
            title: " ".into(),
        })
        .then_expect_error(TodoError::EmptyTitle);
    fixture()
        .given(vec![created(), added("t1")])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "t1".into(),
            title: "again".into(),
        })
        .then_expect_error_code("TODO_ALREADY_EXISTS");
    fixture()
        .given(vec![created()])
        .when_update(TodoListCommand::AddTodo {
            todo_id: "a b".into(),
            title: "x".into(),
        })
        .then_expect_error_code("TODO_INVALID_ID");
}

#[test]
fn remove_assign_and_resolve_need_an_existing_todo() {
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
            .then_expect_error(TodoError::TodoNotFound {
                todo_id: "nope".into(),
            });
    }
}

#[test]
fn todos_are_assigned_resolved_once_and_removed() {
    fixture()
        .given(vec![created(), added("t1")])
        .when_update(TodoListCommand::AssignTodo {
            todo_id: "t1".into(),
            assignee: "bob".into(),
        })
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
        .then_expect_events(vec![resolved.clone()]);
    fixture()
        .given(vec![created(), added("t1"), resolved.clone()])
        .when_update(TodoListCommand::ResolveTodo {
            todo_id: "t1".into(),
        })
        .then_expect_error(TodoError::AlreadyResolved {
            todo_id: "t1".into(),
        });
    fixture()
        .given(vec![created(), added("t1"), resolved.clone()])
        .when_update(TodoListCommand::AssignTodo {
            todo_id: "t1".into(),
            assignee: "bob".into(),
        })
        .then_expect_error_code("TODO_ALREADY_RESOLVED");
    let state = fixture()
        .given(vec![created(), added("t1"), resolved])
        .when_update(TodoListCommand::RemoveTodo {
            todo_id: "t1".into(),
        })
        .then_expect_events(vec![TodoListEvent::TodoRemoved {
            todo_id: "t1".into(),
            was_resolved: true,
        }]);
    assert!(state.todos.is_empty());
}

#[test]
fn commands_on_a_missing_list_are_not_found() {
    fixture()
        .given_no_previous_events()
        .when_update(TodoListCommand::ResolveTodo {
            todo_id: "t1".into(),
        })
        .then_expect_error(TodoError::ListNotFound { id: "home".into() });
}

#[test]
fn error_statuses_match_the_issue() {
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
