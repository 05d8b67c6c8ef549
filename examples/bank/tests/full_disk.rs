//! A full store over HTTP (finding 8): once the SQLite database cannot grow, a deposit is a
//! 507 `STORE_FULL` (not a generic 500), nothing of it is stored, reads go on, and
//! `/health/ready` says the store is full while `/health/live` stays up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request};
use factum::sqlite::{SqliteEventStore, SqliteOptions};
use serde_json::Value;
use tower::ServiceExt;

async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(Body::from(body.unwrap_or("").to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_deposit_into_a_full_store_is_507_and_ready_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions::default().with_max_size(192 * 1024);
    let store = SqliteEventStore::open_with(dir.path().join("bank.db"), options)
        .await
        .unwrap();
    let bank = bank::http::Bank::open(Arc::new(store)).unwrap();
    let app = bank::http::router(&bank, factum_http::HttpConfig::default()).unwrap();

    // Long owners make each account's event and view record big, so the cap is reached soon.
    let owner = "O".repeat(200);
    let mut opened = 0u32;
    let (status, error) = loop {
        let body =
            format!(r#"{{"type": "OpenAccount", "owner": "{owner}", "initial_balance": 1}}"#);
        let reply = send(
            &app,
            Method::POST,
            &format!("/accounts/f-{opened}"),
            Some(&body),
        )
        .await;
        if reply.0 != 201 {
            break reply;
        }
        opened += 1;
        assert!(opened < 10_000, "the store never filled up");
    };
    assert_eq!(
        (status, error["code"].as_str()),
        (507, Some("STORE_FULL")),
        "{error}"
    );
    assert!(!error.to_string().contains("bank.db"), "{error}");

    let (status, _) = send(&app, Method::GET, &format!("/accounts/f-{opened}"), None).await;
    assert_eq!(status, 404, "the refused account was not stored");
    let (status, account) = send(&app, Method::GET, "/accounts/f-0", None).await;
    assert_eq!((status, account["version"].as_u64()), (200, Some(1)));

    let (status, ready) = send(&app, Method::GET, "/health/ready", None).await;
    assert_eq!(
        (status, ready["code"].as_str()),
        (503, Some("STORE_FULL")),
        "{ready}"
    );
    let (status, _) = send(&app, Method::GET, "/health/live", None).await;
    assert_eq!(status, 200);
}
