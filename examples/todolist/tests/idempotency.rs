//! `Idempotency-Key` on the to-do list's (generic) command routes: a repeat is replayed and
//! stores nothing, another request with the key is a 422, and a refused command is
//! remembered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use factum_core::{EventStore, InMemoryEventStore};
use factum_http::HttpConfig;
use tower::ServiceExt;

async fn post(app: &Router, uri: &str, body: &str, key: &str) -> (StatusCode, bool, String) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, replayed, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn list_commands_are_safe_to_repeat() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let engine =
        todolist::http::engine(store.clone(), Default::default(), Default::default()).unwrap();
    let app = todolist::http::router(&engine, HttpConfig::default()).unwrap();
    let create = post(
        &app,
        "/lists/home/commands/CreateList",
        r#"{"name": "Home"}"#,
        "c",
    )
    .await;
    assert_eq!(create.0, StatusCode::CREATED, "{}", create.2);
    let add = r#"{"todo_id": "tap", "title": "Fix the tap"}"#;
    let first = post(&app, "/lists/home/commands/AddTodo", add, "add-tap").await;
    assert_eq!((first.0, first.1), (StatusCode::OK, false), "{}", first.2);
    let again = post(&app, "/lists/home/commands/AddTodo", add, "add-tap").await;
    assert_eq!((again.0, again.1), (StatusCode::OK, true));
    assert_eq!(again.2, first.2);
    assert_eq!(store.stream_version("todolist", "home").await.unwrap(), 2);

    let other = r#"{"todo_id": "door", "title": "Oil the door"}"#;
    let reused = post(&app, "/lists/home/commands/AddTodo", other, "add-tap").await;
    assert_eq!(reused.0.as_u16(), 422, "{}", reused.2);

    let resolve = r#"{"todo_id": "nope"}"#;
    let refused = post(&app, "/lists/home/commands/ResolveTodo", resolve, "r").await;
    assert_eq!(refused.0, StatusCode::NOT_FOUND, "{}", refused.2);
    let again = post(&app, "/lists/home/commands/ResolveTodo", resolve, "r").await;
    assert_eq!((again.0, again.1), (StatusCode::NOT_FOUND, true));
    assert_eq!(store.stream_version("todolist", "home").await.unwrap(), 2);
}
