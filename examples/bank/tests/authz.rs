//! The bank with authentication on: an account is for the user who opened it and for the
//! `admin` role, on every route that reaches it (reference, generic, child view, view
//! record); the accounts view lists each caller's own accounts, filtered in the store's
//! query; refused commands store nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bank::http::Bank;
use factum_core::{EventStore, InMemoryEventStore};
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::http::column;
use factum_testing::jwt::{self, claims};
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "bank-s3cret";

fn token(sub: &str, roles: &[&str]) -> String {
    let mut claims = claims(sub, 600);
    claims["roles"] = json!(roles);
    jwt::hs256(SECRET, &claims)
}

fn bank() -> (Bank, Router) {
    bank_on(Arc::new(InMemoryEventStore::new()))
}

fn bank_on(store: Arc<dyn EventStore>) -> (Bank, Router) {
    let bank = Bank::open(store).unwrap();
    let config = HttpConfig::default().with_auth(JwtAuth::hs256(SECRET).unwrap());
    let router = bank::http::router(&bank, config).unwrap();
    (bank, router)
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: &str,
) -> (StatusCode, Value) {
    let reply = factum_testing::http::call_as(app, method, uri, body, token).await;
    (reply.status, reply.body)
}

async fn open(app: &Router, id: &str, token: &str) {
    let body = r#"{"type": "OpenAccount", "owner": "Someone", "initial_balance": 100}"#;
    let (status, reply) = call(
        app,
        Method::POST,
        &format!("/accounts/{id}"),
        Some(body),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}

#[tokio::test]
async fn an_account_is_for_its_opener_and_admins_and_refusals_store_nothing() {
    let (bank, app) = bank();
    let alice = token("alice", &[]);
    let bob = token("bob", &["teller"]);
    let admin = token("root", &["admin"]);
    open(&app, "acc-a", &alice).await;
    // Opened through the generic route: the same rule holds.
    let (status, reply) = call(
        &app,
        Method::POST,
        "/api/accounts/acc-b/commands/OpenAccount",
        Some(r#"{"owner": "Bob", "initial_balance": 5}"#),
        &bob,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["state"]["opened_by"], "bob");
    bank.projections().catch_up().await.unwrap();

    let deposit = r#"{"type": "Deposit", "amount": 1}"#;
    let refused: [(Method, &str, Option<&str>); 9] = [
        (Method::GET, "/accounts/acc-a", None),
        (Method::GET, "/accounts/acc-a?version=1", None),
        (Method::GET, "/accounts/acc-a/events", None),
        (Method::POST, "/accounts/acc-a", Some(deposit)),
        (Method::GET, "/api/accounts/acc-a", None),
        (Method::GET, "/api/accounts/acc-a/events", None),
        (
            Method::POST,
            "/api/accounts/acc-a/commands/Withdraw",
            Some(r#"{"amount": 1}"#),
        ),
        (Method::GET, "/accounts/acc-a/movements", None),
        (Method::GET, "/views/accounts/acc-a", None),
    ];
    for (method, uri, body) in refused.iter().cloned() {
        let (status, reply) = call(&app, method.clone(), uri, body, &bob).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "bob {method} {uri}: {reply}");
        assert_eq!(reply["code"], "FORBIDDEN");
    }
    // Opening someone else's account again is still just a conflict.
    let body = r#"{"type": "OpenAccount", "owner": "Bob", "initial_balance": 1}"#;
    let (status, _) = call(&app, Method::POST, "/accounts/acc-a", Some(body), &bob).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The opener and an admin may do all of it.
    for (who, token) in [("alice", &alice), ("admin", &admin)] {
        for (method, uri, body) in refused.iter().cloned() {
            let (status, reply) = call(&app, method.clone(), uri, body, token).await;
            assert!(
                status.is_success(),
                "{who} {method} {uri}: {status} {reply}"
            );
        }
    }
    // Nothing of bob's was stored: the opening, alice's and the admin's two movements each.
    let (_, events) = call(
        &app,
        Method::GET,
        "/accounts/acc-a/events?metadata=true",
        None,
        &alice,
    )
    .await;
    assert_eq!(
        column(&events, "user_id", Value::as_str),
        ["alice", "alice", "alice", "root", "root"]
    );
    let (_, account) = call(&app, Method::GET, "/accounts/acc-a", None, &alice).await;
    assert_eq!(
        account,
        json!({"id": "acc-a", "owner": "Someone", "balance": 100.0, "version": 5, "opened_by": "alice"})
    );

    // Every account's movements at once: admins only.
    let (status, _) = call(&app, Method::GET, "/views/movements", None, &bob).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    bank.projections().catch_up().await.unwrap();
    let (status, page) = call(&app, Method::GET, "/views/movements", None, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 6);
}

#[tokio::test]
async fn the_accounts_view_shows_each_caller_their_own_in_memory() {
    accounts_view_shows_each_caller_their_own(Arc::new(InMemoryEventStore::new())).await;
}

#[tokio::test]
async fn the_accounts_view_shows_each_caller_their_own_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bank.db").display());
    accounts_view_shows_each_caller_their_own(factum::open_store(&url).await.unwrap()).await;
}

/// On PostgreSQL, in a schema of its own (dropped at the end); the server is required
/// (`FACTUM_TEST_DATABASE_URL`, default the local one): without it the test fails.
#[tokio::test]
async fn the_accounts_view_shows_each_caller_their_own_on_postgres() {
    use factum::postgres::PostgresEventStore;
    use factum::postgres::sqlx::{self, Connection};
    let url = std::env::var("FACTUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("factum_authz_{}_{nanos}", std::process::id());
    let store = PostgresEventStore::connect_with_schema(&url, &schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required at {url}: {e}"));
    let store: Arc<dyn EventStore> = Arc::new(store);
    let run = tokio::spawn(accounts_view_shows_each_caller_their_own(store));
    let outcome = run.await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // The schema name is the plain identifier generated above.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// The filter that limits what a caller sees is part of the store's query: totals and
/// pages count the caller's records only.
async fn accounts_view_shows_each_caller_their_own(store: Arc<dyn EventStore>) {
    let (_bank, app) = bank_on(store);
    let alice = token("alice", &[]);
    let bob = token("bob", &[]);
    let admin = token("root", &["admin"]);
    for i in 0..5 {
        open(&app, &format!("a-{i}"), &alice).await;
    }
    open(&app, "b-0", &bob).await;
    open(&app, "b-1", &bob).await;

    let ids = |page: &Value| column(&page["items"], "id", Value::as_str).join(" ");
    let view = async |query: &str, who: &str| {
        let uri = format!("/views/accounts{query}");
        call(&app, Method::GET, &uri, None, who).await
    };
    // The filter is part of the query: totals and pages count bob's accounts only.
    let (status, page) = view("?page_size=1", &bob).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["total"].clone(), ids(&page)),
        (json!(2), "b-0".into())
    );
    assert_eq!(ids(&view("?page_size=1&page=2", &bob).await.1), "b-1");
    // A filter of the caller's own cannot widen what they see.
    let (_, page) = view("?filter=opened_by:eq:alice", &bob).await;
    assert_eq!(page["total"], 0);
    let (_, page) = view("?sort=-version", &alice).await;
    assert_eq!(page["total"], 5);
    assert!(ids(&page).split(' ').all(|id| id.starts_with("a-")));
    assert_eq!(view("?page_size=100", &admin).await.1["total"], 7);
    let (_, page) = view("?filter=opened_by:eq:bob", &admin).await;
    assert_eq!(ids(&page), "b-0 b-1");
}

/// Every operation of the document, without a token: 401 with the structured error, except
/// `/health`. A route the bank adds later is covered without changing this test.
#[tokio::test]
async fn every_documented_route_needs_a_token() {
    let (_bank, app) = bank();
    let admin = token("root", &["admin"]);
    let (_, doc) = call(&app, Method::GET, "/openapi.json", None, &admin).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", "acc-1").replace("{name}", "movements");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            if ["/health", "/health/live", "/health/ready"].contains(&path.as_str()) {
                assert_eq!(response.status(), StatusCode::OK);
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri}"
                );
                assert_eq!(response.headers()["www-authenticate"], "Bearer");
                let documented = &item[method.as_str().to_lowercase()]["responses"];
                assert!(
                    documented["401"].is_object() && documented["403"].is_object(),
                    "{path}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} operations documented");
}
