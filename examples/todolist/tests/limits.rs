//! A handler that awaits a service, over HTTP: the to-do list asks a (fake) limits service
//! how many open to-dos a list may hold, and the limit shows as a 409 that stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use factum_core::{CqrsContext, EventStore, InMemoryEventStore, async_trait};
use factum_http::HttpConfig;
use serde_json::{Value, json};
use todolist::domain::{TodoLimits, TodoServices};
use tower::ServiceExt;

/// Answers after a real timer: the handler has to await it across a suspension point.
struct SlowLimits;

#[async_trait]
impl TodoLimits for SlowLimits {
    async fn max_open_todos(&self, list_id: &str, ctx: &CqrsContext) -> Option<usize> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        // A policy may depend on who asks: the test's "pro" user has no limit.
        if ctx.user_id() == Some("pro") {
            return None;
        }
        list_id.starts_with("small").then_some(1)
    }
}

async fn post(app: &axum::Router, uri: &str, body: Value) -> (u16, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_async_handler_awaits_its_service_through_the_engine_and_over_http() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let engine = todolist::http::engine(
        store.clone(),
        TodoServices::with_limits(Arc::new(SlowLimits)),
        factum_core::EngineConfig::default(),
    )
    .unwrap();
    let app = todolist::http::router(&engine, HttpConfig::default()).unwrap();
    let add = |id: &str| json!({"todo_id": id, "title": format!("do {id}")});

    for list in ["small-1", "big-1"] {
        let (status, body) = post(
            &app,
            &format!("/lists/{list}/commands/CreateList"),
            json!({"name": list}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = post(&app, &format!("/lists/{list}/commands/AddTodo"), add("a")).await;
        assert_eq!(status, 200, "{body}");
    }
    let head = store.head_position().await.unwrap();

    // The small list holds one open to-do: the second is refused, and nothing is stored.
    let (status, body) = post(&app, "/lists/small-1/commands/AddTodo", add("b")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "TODO_LIMIT_REACHED");
    assert_eq!(store.head_position().await.unwrap(), head);
    // The big list has no limit.
    let (status, body) = post(&app, "/lists/big-1/commands/AddTodo", add("b")).await;
    assert_eq!(status, 200, "{body}");

    // Through the engine directly: the same service, the same verdict, and a caller the
    // policy treats differently.
    let add_c = todolist::domain::TodoListCommand::AddTodo {
        todo_id: "c".into(),
        title: "do c".into(),
    };
    let refused = engine
        .update("small-1", &add_c, &CqrsContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            factum_core::CommandError::Domain(todolist::domain::TodoError::LimitReached {
                limit: 1
            })
        ),
        "{refused:?}"
    );
    let pro = CqrsContext::new().with_user("pro");
    assert_eq!(
        engine
            .update("small-1", &add_c, &pro)
            .await
            .unwrap()
            .version,
        3
    );
}
