//! The real `todolist` binary over real HTTP on a temporary SQLite file: lists and to-dos,
//! every domain error, queries with sort and paging, a rejected query, the summary counts; a
//! restart showing the same views; and `todolist rebuild-views` on the same file giving the
//! same rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use factum_testing::http::{column, fetch};
use factum_testing::server::{Server, run_ok};
use reqwest::Method;
use serde_json::{Value, json};

/// The todolist binary on a free port over `store`.
fn start(store: &str) -> Server {
    Server::on_store(env!("CARGO_BIN_EXE_todolist"), store)
}

fn rebuild_views(store: &str, extra: &[&str]) -> String {
    let args = [&["rebuild-views", "--store", store][..], extra].concat();
    run_ok(env!("CARGO_BIN_EXE_todolist"), &args)
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    async fn command(&self, service: &Server, list: &str, name: &str, body: Value) -> (u16, Value) {
        let url = service.url(&format!("/lists/{list}/commands/{name}"));
        let body = body.to_string();
        let reply = fetch(&self.http, Method::POST, &url, Some(&body), &[]);
        let reply = reply.await.unwrap();
        (reply.status.as_u16(), reply.json())
    }

    async fn ok(&self, service: &Server, list: &str, name: &str, body: Value) -> Value {
        let (status, reply) = self.command(service, list, name, body).await;
        assert!((200..300).contains(&status), "{name}: {status} {reply}");
        reply
    }

    async fn refused(&self, service: &Server, list: &str, name: &str, body: Value) -> Value {
        let (status, reply) = self.command(service, list, name, body).await;
        assert_eq!(reply["status"], status, "{reply}");
        assert!(reply["requestId"].is_string(), "{reply}");
        reply
    }

    async fn get(&self, service: &Server, path: &str) -> (u16, Value) {
        let url = service.url(path);
        let reply = fetch(&self.http, Method::GET, &url, None, &[])
            .await
            .unwrap();
        (reply.status.as_u16(), reply.json())
    }

    /// Waits until the to-do projection has applied every stored event.
    async fn caught_up(&self, service: &Server, head: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, lag) = self.get(service, "/projections/todos").await;
            if lag["behind"] == 0 && lag["head"] == head {
                return;
            }
            assert!(Instant::now() < deadline, "never caught up: {lag}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every record of both views.
    async fn views(&self, service: &Server) -> (Value, Value) {
        let (_, lists) = self.get(service, "/views/lists?page_size=1000").await;
        let (_, todos) = self.get(service, "/views/todos?page_size=1000").await;
        (lists, todos)
    }
}

fn titles(page: &Value) -> Vec<&str> {
    column(&page["items"], "title", Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_todo_service_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("todo.db").display());
    let client = Client {
        http: reqwest::Client::new(),
    };
    let service = start(&store);

    // Create a list; add, assign, resolve and remove to-dos.
    let created = client
        .ok(&service, "home", "CreateList", json!({"name": "Home"}))
        .await;
    assert_eq!(
        created,
        json!({"id": "home", "state": {"id": "home", "name": "Home", "todos": []}, "version": 1})
    );
    client
        .ok(&service, "work", "CreateList", json!({"name": "Work"}))
        .await;
    for i in 1..=12 {
        let list = if i % 3 == 0 { "work" } else { "home" };
        let body = json!({"todo_id": format!("t{i:02}"), "title": format!("Task {i:02}")});
        client.ok(&service, list, "AddTodo", body).await;
        if i % 2 == 0 {
            let who = if i % 4 == 0 { "bob" } else { "ann" };
            let body = json!({"todo_id": format!("t{i:02}"), "assignee": who});
            client.ok(&service, list, "AssignTodo", body).await;
        }
    }
    for (list, todo) in [("home", "t04"), ("work", "t12"), ("home", "t01")] {
        client
            .ok(&service, list, "ResolveTodo", json!({"todo_id": todo}))
            .await;
    }
    let removed = client
        .ok(&service, "home", "RemoveTodo", json!({"todo_id": "t05"}))
        .await;
    assert_eq!(removed["state"]["todos"].as_array().unwrap().len(), 7);

    // Every domain error, as structured JSON.
    #[rustfmt::skip]
    let refusals = [
        ("home", "ResolveTodo", json!({"todo_id": "t99"}), 404, "TODO_NOT_FOUND"),
        ("home", "ResolveTodo", json!({"todo_id": "t04"}), 409, "TODO_ALREADY_RESOLVED"),
        ("home", "AddTodo", json!({"todo_id": "t13", "title": ""}), 400, "TODO_EMPTY_TITLE"),
        ("shed", "CreateList", json!({"name": " "}), 400, "TODO_LIST_NAME_REQUIRED"),
    ];
    for (i, (list, name, body, status, code)) in refusals.into_iter().enumerate() {
        let error = client.refused(&service, list, name, body).await;
        let seen = (error["status"].as_u64(), error["code"].as_str());
        assert_eq!(seen, (Some(status), Some(code)));
        if i == 0 {
            assert_eq!(error["message"], "to-do 't99' not found");
            assert_eq!(error["domain"], "TODO");
        }
    }
    let (status, _) = client.get(&service, "/lists/shed").await;
    assert_eq!(status, 404, "a refused create stores nothing");

    // 2 lists, 12 added, 6 assigned, 3 resolved, 1 removed.
    let head = 24;
    client.caught_up(&service, head).await;

    // The summaries' counts.
    let (_, summaries) = client.get(&service, "/views/lists?sort=name").await;
    assert_eq!(
        summaries,
        json!({"items": [
            {"list_id": "home", "name": "Home", "total": 7, "resolved": 2, "open": 5},
            {"list_id": "work", "name": "Work", "total": 4, "resolved": 1, "open": 3},
        ], "total": 2, "page": 1, "page_size": 50})
    );

    // Queries by assignee and resolved state, with sort and paging.
    // bob: t04 (home, resolved), t08 (home), t12 (work, resolved); ann: t02, t06 (work), t10.
    #[rustfmt::skip]
    let queries: [(&str, &[&str]); 5] = [
        ("/views/todos?filter=assignee:eq:bob&sort=-title", &["Task 12", "Task 08", "Task 04"]),
        ("/views/todos?filter=assignee:eq:bob,resolved:eq:false", &["Task 08"]),
        ("/views/todos?filter=resolved:eq:false&sort=title&page=2&page_size=3", &["Task 07", "Task 08", "Task 09"]),
        // No assignee sorts first.
        ("/views/todos?filter=resolved:eq:true&sort=assignee,title", &["Task 01", "Task 04", "Task 12"]),
        ("/lists/work/todos?filter=assignee:in:ann|bob&sort=-title", &["Task 12", "Task 06"]),
    ];
    for (i, (query, expected)) in queries.into_iter().enumerate() {
        let (_, page) = client.get(&service, query).await;
        assert_eq!(titles(&page), expected, "{query}");
        if i == 2 {
            assert_eq!(page["total"], 8);
        }
    }

    // A rejected query.
    let (status, error) = client
        .get(&service, "/views/todos?filter=priority:gt:2")
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "VALIDATION_ERROR");
    assert_eq!(
        error["message"],
        "invalid todos query: unknown field 'priority'; queryable fields: list_id, title, assignee, resolved"
    );

    // A restart shows the same views.
    let views = client.views(&service).await;
    assert_eq!(views.1["total"], 11);
    assert!(service.stop().success(), "exits 0 on SIGTERM");
    let service = start(&store);
    client.caught_up(&service, head).await;
    assert_eq!(client.views(&service).await, views);

    // Rebuilding the projection while the service runs gives the same rows.
    let printed = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || rebuild_views(&store, &[]))
            .await
            .unwrap()
    };
    assert!(
        printed.contains("todos: rebuilt from 24 events"),
        "{printed}"
    );
    assert!(printed.contains("list_summaries: kept inline"), "{printed}");
    client.caught_up(&service, head).await;
    assert_eq!(client.views(&service).await, views);

    // And the inline summaries, with the service stopped.
    assert!(service.stop().success(), "exits 0 on SIGTERM");
    let printed = rebuild_views(&store, &["--include-inline"]);
    assert!(
        printed.contains("list_summaries: rebuilt from 24 events"),
        "{printed}"
    );
    assert!(
        printed.contains("todos: rebuilt from 24 events"),
        "{printed}"
    );
    let service = start(&store);
    client.caught_up(&service, head).await;
    assert_eq!(client.views(&service).await, views);
    // The service goes on from the rebuilt records.
    client
        .ok(&service, "work", "ResolveTodo", json!({"todo_id": "t03"}))
        .await;
    let (_, work) = client.get(&service, "/views/lists/work").await;
    assert_eq!(
        (work["resolved"].as_u64(), work["open"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(service.stop().success(), "exits 0 on SIGTERM");
}

#[test]
fn help_explains_the_options() {
    let help = Command::new(env!("CARGO_BIN_EXE_todolist"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for needle in [
        "--listen",
        "FACTUM_LISTEN",
        "127.0.0.1:8081",
        "--store",
        "FACTUM_STORE",
        "sqlite://data/todolist.db",
        "postgres://",
        "rebuild-views",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}
