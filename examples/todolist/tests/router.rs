//! The to-do list service in process (`tower::ServiceExt::oneshot`): the generic list routes
//! and every domain error, the inline summaries, the to-do projection and its queries, the
//! operational routes and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use factum_core::CqrsCommandEngine;
use factum_core::{InMemoryEventStore, View};
use factum_http::HttpConfig;
use factum_testing::http::{Reply, column};
use factum_testing::views::{all_records, replay};
use serde_json::{Value, json};
use todolist::domain::TodoList;
use todolist::views::{ListSummary, TodoView};
use tower::ServiceExt;

fn service() -> (CqrsCommandEngine<TodoList>, Router) {
    service_with(HttpConfig::default())
}

fn service_with(config: HttpConfig) -> (CqrsCommandEngine<TodoList>, Router) {
    let store = Arc::new(InMemoryEventStore::new());
    let service = todolist::http::engine(store, Default::default(), Default::default()).unwrap();
    let app = todolist::http::router(&service, config).unwrap();
    (service, app)
}

/// The configuration of the tests with auth: HS256 tokens signed with `secret`.
fn with_auth(secret: &str) -> HttpConfig {
    HttpConfig::default().with_auth(factum_http::JwtAuth::hs256(secret).unwrap())
}

async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>) -> Reply {
    factum_testing::http::call(app, method, uri, body, &[]).await
}

async fn command(app: &Router, list: &str, name: &str, body: Value) -> Reply {
    send(
        app,
        Method::POST,
        &format!("/lists/{list}/commands/{name}"),
        Some(&body.to_string()),
    )
    .await
}

async fn ok(app: &Router, list: &str, name: &str, body: Value) -> Value {
    let reply = command(app, list, name, body).await;
    assert!(reply.status.is_success(), "{name}: {}", reply.text);
    reply.body
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Method::GET, uri, None).await
}

/// Two lists: `home` (tap resolved by bob, bins open for ann, lamp open, unassigned, and a
/// removed one) and `work` (report open for bob, slides resolved by ann).
async fn seed(app: &Router) {
    ok(app, "home", "CreateList", json!({"name": "Home"})).await;
    ok(app, "work", "CreateList", json!({"name": "Work"})).await;
    let todos = [
        ("home", "tap", "Fix the tap", Some("bob")),
        ("home", "bins", "Take out the bins", Some("ann")),
        ("home", "lamp", "Buy a lamp", None),
        ("home", "old", "Something old", None),
        ("work", "report", "Write the report", Some("bob")),
        ("work", "slides", "Make slides", Some("ann")),
    ];
    for (list, todo, title, _) in todos {
        let body = json!({"todo_id": todo, "title": title});
        ok(app, list, "AddTodo", body).await;
    }
    for (list, todo, _, assignee) in todos {
        if let Some(who) = assignee {
            let body = json!({"todo_id": todo, "assignee": who});
            ok(app, list, "AssignTodo", body).await;
        }
    }
    ok(app, "home", "ResolveTodo", json!({"todo_id": "tap"})).await;
    ok(app, "work", "ResolveTodo", json!({"todo_id": "slides"})).await;
    ok(app, "home", "RemoveTodo", json!({"todo_id": "old"})).await;
}

fn titles(page: &Value) -> Vec<&str> {
    column(&page["items"], "title", Value::as_str)
}

#[tokio::test]
async fn commands_change_the_list_and_answer_its_state() {
    let (_, app) = service();
    let created = command(&app, "home", "CreateList", json!({"name": "Home"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.body,
        json!({"id": "home", "state": {"id": "home", "name": "Home", "todos": []}, "version": 1})
    );
    let add = json!({"todo_id": "tap", "title": "Fix the tap"});
    ok(&app, "home", "AddTodo", add).await;
    let assign = json!({"todo_id": "tap", "assignee": "bob"});
    ok(&app, "home", "AssignTodo", assign).await;
    let resolved = ok(&app, "home", "ResolveTodo", json!({"todo_id": "tap"})).await;
    assert_eq!(
        resolved,
        json!({"id": "home", "version": 4, "state": {"id": "home", "name": "Home", "todos": [
            {"todo_id": "tap", "title": "Fix the tap", "assignee": "bob", "resolved": true}
        ]}})
    );
    let removed = ok(&app, "home", "RemoveTodo", json!({"todo_id": "tap"})).await;
    assert_eq!(removed["state"]["todos"], json!([]));
    let state = get(&app, "/lists/home?version=2").await;
    assert_eq!(state.body["state"]["todos"][0]["assignee"], Value::Null);
    let events = get(&app, "/lists/home/events").await;
    let types: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ListCreated",
            "TodoAdded",
            "TodoAssigned",
            "TodoResolved",
            "TodoRemoved"
        ]
    );
    // A generated id.
    let generated = send(
        &app,
        Method::POST,
        "/lists/commands/CreateList",
        Some(r#"{"name": "Errands"}"#),
    )
    .await;
    assert_eq!(generated.status, StatusCode::CREATED);
    assert!(generated.body["id"].as_str().unwrap().len() >= 32);
}

#[tokio::test]
async fn every_domain_error_is_structured_and_changes_nothing() {
    let (service, app) = service();
    seed(&app).await;
    let before = get(&app, "/lists/home").await.body;

    #[rustfmt::skip]
    let refusals = [
        ("home", "ResolveTodo", json!({"todo_id": "nope"}), 404, "TODO_NOT_FOUND"),
        ("home", "RemoveTodo", json!({"todo_id": "old"}), 404, "TODO_NOT_FOUND"),
        ("home", "ResolveTodo", json!({"todo_id": "tap"}), 409, "TODO_ALREADY_RESOLVED"),
        ("home", "AssignTodo", json!({"todo_id": "tap", "assignee": "cy"}), 409, "TODO_ALREADY_RESOLVED"),
        ("home", "AddTodo", json!({"todo_id": "new", "title": ""}), 400, "TODO_EMPTY_TITLE"),
        ("home", "AddTodo", json!({"todo_id": "new", "title": "   "}), 400, "TODO_EMPTY_TITLE"),
        ("home", "AddTodo", json!({"todo_id": "lamp", "title": "Again"}), 409, "TODO_ALREADY_EXISTS"),
        ("home", "AddTodo", json!({"todo_id": "a b", "title": "Spaces"}), 400, "TODO_INVALID_ID"),
        ("shed", "CreateList", json!({"name": ""}), 400, "TODO_LIST_NAME_REQUIRED"),
        ("home", "CreateList", json!({"name": "Again"}), 409, "TODO_LIST_ALREADY_EXISTS"),
        ("shed", "AddTodo", json!({"todo_id": "x", "title": "y"}), 404, "TODO_LIST_NOT_FOUND"),
    ];
    for (list, name, body, status, code) in refusals {
        command(&app, list, name, body).await.error(status, code);
    }
    get(&app, "/lists/shed")
        .await
        .error(404, "TODO_LIST_NOT_FOUND");
    let reply = command(&app, "home", "Archive", json!({})).await;
    reply.error(404, "NOT_FOUND");
    assert_eq!(
        reply.body["details"]["allowed"],
        json!([
            "CreateList",
            "AddTodo",
            "RemoveTodo",
            "AssignTodo",
            "ResolveTodo"
        ])
    );
    command(&app, "home", "AddTodo", json!({"todo_id": "x"}))
        .await
        .error(400, "VALIDATION_ERROR");
    let message = command(&app, "home", "CreateList", json!({"name": "x"}))
        .await
        .body["message"]
        .clone();
    assert_eq!(message, "list 'home' already exists");

    // Nothing changed: state, summary, and the events.
    assert_eq!(get(&app, "/lists/home").await.body, before);
    assert_eq!(
        get(&app, "/lists/shed/events").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        service.store().head_position().await.unwrap(),
        15,
        "2 lists, 6 added, 4 assigned, 2 resolved, 1 removed: no event for any refusal"
    );
}

#[tokio::test]
async fn summaries_are_current_at_once_and_queryable() {
    let (_, app) = service();
    seed(&app).await;
    let home = get(&app, "/views/lists/home").await;
    let summary = json!({"list_id": "home", "name": "Home", "total": 3, "resolved": 1, "open": 2});
    assert_eq!((home.status, &home.body), (StatusCode::OK, &summary));
    let work = json!({"list_id": "work", "name": "Work", "total": 2, "resolved": 1, "open": 1});
    let page = get(&app, "/views/lists?sort=-open").await.body;
    let expected = json!({"items": [summary, work], "total": 2, "page": 1, "page_size": 50});
    assert_eq!(page, expected);
    let page = get(&app, "/views/lists?filter=name:contains:or").await.body;
    assert_eq!(page["total"], 1);
    // The next command's effect is there as soon as it answered.
    ok(
        &app,
        "work",
        "AddTodo",
        json!({"todo_id": "mail", "title": "Answer mail"}),
    )
    .await;
    let page = get(&app, "/views/lists?filter=open:gte:2").await.body;
    assert_eq!(page["total"], 2);
    get(&app, "/views/lists/shed").await.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn todos_are_projected_then_queried_by_assignee_and_state() {
    let (service, app) = service();
    seed(&app).await;
    // Projected asynchronously: nothing until the projection runs.
    assert_eq!(get(&app, "/views/todos").await.body["total"], 0);
    let lag = get(&app, "/projections/todos").await.body;
    assert_eq!(
        lag,
        json!({"name": "todos", "checkpoint": 0, "head": 15, "behind": 15, "parked": 0, "parked_events": []})
    );
    service.projections().catch_up().await.unwrap();
    assert_eq!(get(&app, "/projections/todos").await.body["behind"], 0);

    let page = get(&app, "/views/todos?filter=assignee:eq:bob&sort=title")
        .await
        .body;
    assert_eq!(titles(&page), ["Fix the tap", "Write the report"]);
    let page = get(
        &app,
        "/views/todos?filter=assignee:eq:bob,resolved:eq:false",
    )
    .await
    .body;
    assert_eq!(
        page,
        json!({"items": [{"list_id": "work", "todo_id": "report", "title": "Write the report",
                          "assignee": "bob", "resolved": false}],
               "total": 1, "page": 1, "page_size": 50})
    );
    let page = get(&app, "/views/todos?filter=resolved:eq:true&sort=-title")
        .await
        .body;
    assert_eq!(titles(&page), ["Make slides", "Fix the tap"]);
    // Unassigned to-dos: a missing assignee matches `ne` only.
    let page = get(&app, "/views/todos?filter=assignee:ne:bob,assignee:ne:ann")
        .await
        .body;
    assert_eq!(titles(&page), ["Buy a lamp"]);
    let page = get(
        &app,
        "/views/todos?filter=assignee:in:ann|bob&sort=assignee,-title&page=2&page_size=3",
    )
    .await
    .body;
    assert_eq!(page["total"], 4);
    assert_eq!(titles(&page), ["Fix the tap"]);
    // The removed to-do is gone.
    assert_eq!(
        get(&app, "/views/todos?filter=title:eq:Something%20old")
            .await
            .body["total"],
        0
    );
    get(&app, "/views/todos/home:old")
        .await
        .error(404, "NOT_FOUND");
    let one = get(&app, "/views/todos/home:bins").await;
    assert_eq!(one.body["assignee"], "ann");

    // One list's to-dos.
    let page = get(&app, "/lists/home/todos?sort=title").await.body;
    assert_eq!(
        titles(&page),
        ["Buy a lamp", "Fix the tap", "Take out the bins"]
    );
    let page = get(
        &app,
        "/lists/home/todos?filter=resolved:eq:false&page_size=1",
    )
    .await
    .body;
    assert_eq!(
        (page["total"].as_u64(), titles(&page)),
        (Some(2), vec!["Take out the bins"])
    );
    get(&app, "/lists/shed/todos")
        .await
        .error(404, "TODO_LIST_NOT_FOUND");

    // Rejected queries.
    for uri in [
        "/views/todos?filter=owner:eq:bob",
        "/views/todos?filter=resolved:eq:maybe",
        "/views/todos?filter=resolved:lt:true",
        "/views/todos?filter=assignee:like:b",
        "/views/todos?sort=due",
        "/views/todos?page=0",
        "/views/lists?filter=open:gt:many",
        "/lists/home/todos?page_size=0",
    ] {
        get(&app, uri).await.error(400, "VALIDATION_ERROR");
    }

    // The projected rows are a replay from scratch; so are the inline summaries.
    let store = service.store();
    let views = service.store().as_view_store().unwrap();
    assert_eq!(
        all_records(views, TodoView::TYPE, TodoView::fields()).await,
        replay::<TodoView>(&**store).await
    );
    assert_eq!(
        all_records(views, ListSummary::TYPE, ListSummary::fields()).await,
        replay::<ListSummary>(&**store).await
    );
    // A rebuild gives the same rows.
    let before = all_records(views, TodoView::TYPE, TodoView::fields()).await;
    let rebuilt = todolist::http::projected_views(store)
        .unwrap()
        .rebuild(|_, _| {})
        .await
        .unwrap();
    assert_eq!(rebuilt, [("todos".to_owned(), 15)]);
    assert_eq!(
        all_records(views, TodoView::TYPE, TodoView::fields()).await,
        before
    );
}

#[tokio::test]
async fn operations_and_the_document() {
    let (_, app) = service();
    let health = get(&app, "/health").await;
    assert_eq!(
        (health.status, health.body.clone()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let docs = get(&app, "/docs/").await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    let doc = get(&app, "/openapi.json").await.body;
    assert_eq!(doc["info"]["title"], "Factum to-do lists");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/lists/commands/CreateList", "post"),
        ("/lists/{id}/commands/CreateList", "post"),
        ("/lists/{id}/commands/AddTodo", "post"),
        ("/lists/{id}/commands/RemoveTodo", "post"),
        ("/lists/{id}/commands/AssignTodo", "post"),
        ("/lists/{id}/commands/ResolveTodo", "post"),
        ("/lists/{id}", "get"),
        ("/lists/{id}/events", "get"),
        ("/lists/{id}/todos", "get"),
        ("/views/lists", "get"),
        ("/views/lists/{id}", "get"),
        ("/views/todos", "get"),
        ("/views/todos/{id}", "get"),
        ("/projections", "get"),
        ("/projections/{name}", "get"),
        ("/health", "get"),
        ("/health/ready", "get"),
        ("/health/live", "get"),
        ("/events", "get"),
        ("/events/stream", "get"),
        ("/subscriptions", "get"),
        ("/subscriptions/{name}/replay-parked", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    assert_eq!(paths.len(), 22, "{:?}", paths.keys().collect::<Vec<_>>());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    #[rustfmt::skip]
    let names = [
        "ListState", "TodoState", "TodoListEvent", "ErrorBody",
        "AddTodoBody", "AssignTodoBody", "RemoveTodoBody", "ResolveTodoBody", "CreateListBody",
        "ListSummary", "ListSummaryPage", "Todo", "TodoPage",
    ];
    for name in names {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    assert_eq!(
        paths["/views/todos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TodoPage"
    );
}

#[tokio::test]
async fn commands_need_json_and_only_their_documented_fields() {
    let (_service, app) = service();
    ok(&app, "home", "CreateList", json!({"name": "Home"})).await;
    let before = get(&app, "/lists/home").await.body;
    // No Content-Type (a browser's cross-site form post) or another one: 415.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = Request::post("/lists/home/commands/AddTodo");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(Body::from(r#"{"todo_id": "a", "title": "t"}"#))
            .unwrap();
        let reply = factum_testing::http::send(&app, request).await;
        let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        assert_eq!(reply.status, unsupported, "{content_type:?}");
        assert_eq!(
            reply.json()["code"],
            "UNSUPPORTED_MEDIA_TYPE",
            "{}",
            reply.text
        );
    }
    // Fields the document does not list: 400 naming the field.
    for (name, body) in [
        (
            "AddTodo",
            json!({"todo_id": "a", "title": "t", "due": "today"}),
        ),
        (
            "AssignTodo",
            json!({"todo_id": "a", "assignee": "b", "by": "c"}),
        ),
        ("ResolveTodo", json!({"todo_id": "a", "note": "done"})),
        ("RemoveTodo", json!({"todo_id": "a", "force": true})),
    ] {
        let reply = command(&app, "home", name, body).await;
        reply.error(400, "VALIDATION_ERROR");
        assert!(
            reply.text.contains("unknown field"),
            "{name}: {}",
            reply.text
        );
    }
    command(
        &app,
        "other",
        "CreateList",
        json!({"name": "x", "owner": "y"}),
    )
    .await
    .error(400, "VALIDATION_ERROR");
    assert_eq!(
        get(&app, "/lists/home").await.body,
        before,
        "nothing changed"
    );
    get(&app, "/lists/other")
        .await
        .error(404, "TODO_LIST_NOT_FOUND");
}
/// Every operation of the document, without a token: 401, except `/health`. A route added
/// to the service later is covered by this test without changing it.
#[tokio::test]
async fn with_auth_every_documented_route_needs_a_token() {
    let secret = "todo-s3cret";
    let (_service, app) = service_with(with_auth(secret));
    let token = factum_testing::jwt::hs256(secret, &factum_testing::jwt::claims("ann", 600));
    let request = |method: Method, uri: &str, token: Option<&str>| {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(request(Method::GET, "/openapi.json", Some(&token)))
        .await
        .unwrap();
    let doc: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", "home").replace("{name}", "todos");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = app
                .clone()
                .oneshot(request(method.clone(), &uri, None))
                .await
                .unwrap()
                .status();
            let expected = if ["/health", "/health/live", "/health/ready"].contains(&path.as_str())
            {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(status, expected, "{method} {uri}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} operations documented");
    // With the token, the same request goes through.
    let response = app
        .clone()
        .oneshot(
            request(
                Method::POST,
                "/lists/home/commands/CreateList",
                Some(&token),
            )
            .map(|_| Body::from(r#"{"name": "Home"}"#)),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// With auth on, a list is its creator's and the admins': others get 403 and store nothing;
/// the summaries show each caller their lists, the to-dos across lists those assigned to them.
#[tokio::test]
async fn with_auth_a_list_is_its_creators_and_the_admins() {
    let secret = "todo-s3cret";
    let (service, app) = service_with(with_auth(secret));
    let token = |sub: &str, roles: &[&str]| {
        let mut claims = factum_testing::jwt::claims(sub, 600);
        claims["roles"] = json!(roles);
        factum_testing::jwt::hs256(secret, &claims)
    };
    let (ann, bob, admin) = (
        token("ann", &[]),
        token("bob", &[]),
        token("root", &["admin"]),
    );
    let call = async |method: Method, uri: &str, body: Option<Value>, token: &str| {
        let body = body.map(|b| b.to_string());
        let reply = factum_testing::http::call_as(&app, method, uri, body.as_deref(), token).await;
        (reply.status, reply.body)
    };
    #[rustfmt::skip]
    let setup = [
        (&ann, "anns", "CreateList", json!({"name": "anns"}), StatusCode::CREATED),
        (&bob, "bobs", "CreateList", json!({"name": "bobs"}), StatusCode::CREATED),
        (&ann, "anns", "AddTodo", json!({"todo_id": "t1", "title": "for bob"}), StatusCode::OK),
        (&ann, "anns", "AssignTodo", json!({"todo_id": "t1", "assignee": "bob"}), StatusCode::OK),
    ];
    for (who, list, name, body, expected) in setup {
        let uri = format!("/lists/{list}/commands/{name}");
        let (status, _) = call(Method::POST, &uri, Some(body), who).await;
        assert_eq!(status, expected, "{name} {list}");
    }

    for (method, uri, body) in [
        (Method::GET, "/lists/anns", None),
        (Method::GET, "/lists/anns/todos", None),
        (Method::GET, "/views/lists/anns", None),
        (
            Method::POST,
            "/lists/anns/commands/ResolveTodo",
            Some(json!({"todo_id": "t1"})),
        ),
    ] {
        let (status, reply) = call(method.clone(), uri, body.clone(), &bob).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "bob {method} {uri}: {reply}");
        let (status, reply) = call(method.clone(), uri, body, &admin).await;
        assert!(status.is_success(), "admin {method} {uri}: {reply}");
    }
    let (_, state) = call(Method::GET, "/lists/anns/events", None, &ann).await;
    let users = column(&state["events"], "user_id", Value::as_str);
    assert_eq!(users, ["ann", "ann", "ann", "root"]);

    // Each view page: its total and its first item's id.
    let view = async |uri: &str, who: &str, id: &str| {
        let (_, page) = call(Method::GET, uri, None, who).await;
        let first = page["items"][0][id].as_str().map(str::to_owned);
        (page["total"].as_u64().unwrap(), first)
    };
    let bobs = Some("bobs".to_owned());
    assert_eq!(view("/views/lists", &bob, "list_id").await, (1, bobs));
    assert_eq!(view("/views/lists", &admin, "list_id").await.0, 2);
    service.projections().catch_up().await.unwrap();
    let t1 = Some("t1".to_owned());
    assert_eq!(view("/views/todos", &bob, "todo_id").await, (1, t1));
    assert_eq!(view("/views/todos", &ann, "todo_id").await.0, 0);
}
