//! The to-do list service: `cargo run --release -p todolist`, then drive it with curl;
//! `todolist rebuild-views` rebuilds its views from the event log.

use factum::service::{App, Service};
use todolist::domain::TodoServices;

const ABOUT: &str = "\
The to-do list service of Factum: lists of to-dos, every change an event.

Create a list:  curl -X POST localhost:8081/lists/home/commands/CreateList -H 'Content-Type: application/json'
                  -d '{\"name\": \"Home\"}'
Then AddTodo ({\"todo_id\": \"tap\", \"title\": \"Fix the tap\"}), AssignTodo ({\"todo_id\": \"tap\",
\"assignee\": \"bob\"}), ResolveTodo / RemoveTodo ({\"todo_id\": \"tap\"}) the same way;
GET /lists/home, GET /lists/home/events.
Views: GET /views/lists, GET /views/todos?filter=assignee:eq:bob,resolved:eq:false&sort=title,
GET /lists/home/todos.
API docs: /docs (OpenAPI at /openapi.json). Health: /health. Projection lag: /projections.";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Service::new("todolist")
        .about(ABOUT)
        .version(env!("CARGO_PKG_VERSION"))
        .default_store("sqlite://data/todolist.db")
        .default_listen("127.0.0.1:8081")
        .app(|store, engine_config| {
            let engine = todolist::http::engine(store, TodoServices::default(), engine_config)?;
            Ok(App::of_engine(engine, todolist::http::api))
        })
        .run()
        .await
}
