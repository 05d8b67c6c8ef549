//! `Idempotency-Key` on the bank's command routes (the reference `POST /accounts/{id}` and
//! the generic routes under `/api`), in process: replay, 422 on another request, remembered
//! domain errors, key validation, concurrent duplicates, expiry, auth scopes, the document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use factum_core::{EventStore, InMemoryEventStore};
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::http::Reply;
use serde_json::Value;
use tower::ServiceExt;

fn bank_app(config: HttpConfig) -> (Router, Arc<dyn EventStore>) {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let bank = bank::http::Bank::open(store.clone()).unwrap();
    (bank::http::router(&bank, config).unwrap(), store)
}

/// Whether a reply is a remembered one (`Idempotent-Replayed: true`).
fn replayed(reply: &Reply) -> bool {
    match reply.headers.get("idempotent-replayed") {
        None => false,
        Some(value) => {
            assert_eq!(value, "true");
            true
        }
    }
}

async fn send(app: &Router, uri: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    factum_testing::http::call(app, Method::POST, uri, Some(body), headers).await
}

async fn with_key(app: &Router, uri: &str, body: &str, key: &str) -> Reply {
    send(app, uri, body, &[("idempotency-key", key)]).await
}

const OPEN: &str = r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 100}"#;
const DEPOSIT: &str = r#"{"type": "Deposit", "amount": 25}"#;

async fn events(store: &Arc<dyn EventStore>, id: &str) -> u64 {
    store.stream_version("account", id).await.unwrap()
}

#[tokio::test]
async fn a_repeat_gets_the_first_response_and_stores_nothing() {
    let (app, store) = bank_app(HttpConfig::default());
    let opened = with_key(&app, "/accounts/a-1", OPEN, "open-a-1").await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    assert!(!replayed(&opened));
    let first = with_key(&app, "/accounts/a-1", DEPOSIT, "dep-1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(!replayed(&first));
    assert_eq!(events(&store, "a-1").await, 2);

    for _ in 0..3 {
        let again = with_key(&app, "/accounts/a-1", DEPOSIT, "dep-1").await;
        assert_eq!(again.status, StatusCode::OK);
        assert!(replayed(&again));
        assert_eq!(again.text, first.text, "the same body, byte for byte");
        assert_eq!(again.headers["etag"], first.headers["etag"]);
        assert_eq!(again.headers["content-type"], "application/json");
    }
    let reopened = with_key(&app, "/accounts/a-1", OPEN, "open-a-1").await;
    assert_eq!(reopened.status, StatusCode::CREATED, "not 409: replayed");
    assert!(replayed(&reopened));
    assert_eq!(reopened.text, opened.text);
    assert_eq!(events(&store, "a-1").await, 2, "counted once");

    // Without a key, a repeat is a new deposit.
    let plain = send(&app, "/accounts/a-1", DEPOSIT, &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(!replayed(&plain));
    assert_eq!(events(&store, "a-1").await, 3);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422() {
    let (app, store) = bank_app(HttpConfig::default());
    with_key(&app, "/accounts/a-1", OPEN, "open").await;
    with_key(&app, "/accounts/a-1", DEPOSIT, "k").await;
    for (uri, body) in [
        ("/accounts/a-1", r#"{"type": "Deposit", "amount": 26}"#),
        // The same command in other bytes is another request: never a silent double.
        ("/accounts/a-1", r#"{"type":"Deposit","amount":25}"#),
        ("/accounts/a-2", DEPOSIT),
        ("/api/accounts/a-1/commands/Deposit", r#"{"amount": 25}"#),
    ] {
        let reply = with_key(&app, uri, body, "k").await;
        assert_eq!(reply.status.as_u16(), 422, "{uri} {body}: {}", reply.text);
        let error = reply.json();
        assert_eq!(error["code"], "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(
            error["requestId"],
            reply.headers["x-request-id"].to_str().unwrap()
        );
    }
    assert_eq!(events(&store, "a-1").await, 2);
    assert_eq!(events(&store, "a-2").await, 0);
}

#[tokio::test]
async fn the_generic_routes_replay_status_location_and_body() {
    let (app, store) = bank_app(HttpConfig::default());
    let open = r#"{"owner": "Bob", "initial_balance": 5}"#;
    let first = with_key(&app, "/api/accounts/commands/OpenAccount", open, "gen-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let location = first.headers["location"].to_str().unwrap().to_owned();
    let again = with_key(&app, "/api/accounts/commands/OpenAccount", open, "gen-1").await;
    assert!(replayed(&again));
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.headers["location"],
        location.as_str(),
        "the same generated id"
    );
    assert_eq!(again.text, first.text);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(events(&store, &id).await, 1);
    assert_eq!(
        store.head_position().await.unwrap(),
        1,
        "one account, not two"
    );

    let uri = format!("/api/accounts/{id}/commands/Deposit");
    let deposit = with_key(&app, &uri, r#"{"amount": 1}"#, "gen-2").await;
    let again = with_key(&app, &uri, r#"{"amount": 1}"#, "gen-2").await;
    assert_eq!(
        (deposit.status, again.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(replayed(&again));
    assert_eq!(again.text, deposit.text);
    assert_eq!(events(&store, &id).await, 2);
}

#[tokio::test]
async fn a_command_refused_by_a_rule_is_remembered_and_not_run_again() {
    let (app, store) = bank_app(HttpConfig::default());
    with_key(&app, "/accounts/a-1", OPEN, "open").await;
    let withdraw = r#"{"type": "Withdraw", "amount": 150}"#;
    let refused = with_key(&app, "/accounts/a-1", withdraw, "w-1").await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text);
    assert_eq!(refused.json()["code"], "ACCOUNT_INSUFFICIENT_FUNDS");
    // Now the withdrawal would pass; its repeat still gets the first answer.
    send(
        &app,
        "/accounts/a-1",
        r#"{"type": "Deposit", "amount": 100}"#,
        &[],
    )
    .await;
    let again = with_key(&app, "/accounts/a-1", withdraw, "w-1").await;
    assert!(replayed(&again));
    assert_eq!(again.status.as_u16(), 400);
    let (first, second) = (refused.json(), again.json());
    assert_eq!(second["code"], first["code"]);
    assert_eq!(second["message"], first["message"]);
    assert_eq!(
        second["requestId"],
        again.headers["x-request-id"].to_str().unwrap(),
        "a replayed error names the request that got it"
    );
    assert_eq!(
        events(&store, "a-1").await,
        2,
        "opened and the plain deposit"
    );

    // A create that finds the account there: the 409 is remembered too.
    let exists = with_key(&app, "/accounts/a-1", OPEN, "open-again").await;
    assert_eq!(exists.status, StatusCode::CONFLICT);
    assert!(replayed(
        &with_key(&app, "/accounts/a-1", OPEN, "open-again").await
    ));
}

#[tokio::test]
async fn a_request_refused_before_it_ran_is_not_remembered() {
    let (app, store) = bank_app(HttpConfig::default());
    with_key(&app, "/accounts/a-1", OPEN, "open").await;
    let bad = with_key(
        &app,
        "/accounts/a-1",
        r#"{"type": "Deposit", "amount": }"#,
        "k",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = with_key(&app, "/accounts/a-1", r#"{"type": "Steal"}"#, "k").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(!replayed(&unknown));
    let fixed = with_key(&app, "/accounts/a-1", DEPOSIT, "k").await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.text);
    assert!(!replayed(&fixed));
    assert_eq!(events(&store, "a-1").await, 2);
}

#[tokio::test]
async fn invalid_keys_are_400s_and_store_nothing() {
    let (app, store) = bank_app(HttpConfig::default());
    let long = "k".repeat(256);
    for key in ["", " padded", long.as_str()] {
        let reply = with_key(&app, "/accounts/a-1", OPEN, key).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{key:?}: {}",
            reply.text
        );
        assert_eq!(reply.json()["code"], "VALIDATION_ERROR");
    }
    let non_ascii = Request::post("/accounts/a-1")
        .header("content-type", "application/json")
        .header(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(b"cl\xe9").unwrap(),
        )
        .body(Body::from(OPEN))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(non_ascii).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let two = send(
        &app,
        "/accounts/a-1",
        OPEN,
        &[("idempotency-key", "a"), ("idempotency-key", "b")],
    )
    .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    let max = "k".repeat(255);
    assert_eq!(
        with_key(&app, "/accounts/a-1", OPEN, &max).await.status,
        StatusCode::CREATED
    );
    assert_eq!(events(&store, "a-1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_store_one_event_and_agree() {
    let (app, store) = bank_app(HttpConfig::default());
    with_key(&app, "/accounts/a-1", OPEN, "open").await;
    let replies = futures::future::join_all(
        (0..20).map(|_| with_key(&app, "/accounts/a-1", DEPOSIT, "same")),
    )
    .await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    assert!(replies.iter().all(|r| r.text == replies[0].text));
    assert_eq!(replies.iter().filter(|r| !replayed(r)).count(), 1);
    assert_eq!(events(&store, "a-1").await, 2, "exactly one deposit");
}

#[tokio::test]
async fn keys_expire() {
    let config = HttpConfig::default().with_idempotency_ttl(Duration::from_secs(1));
    let (app, store) = bank_app(config);
    with_key(&app, "/accounts/a-1", OPEN, "open").await;
    with_key(&app, "/accounts/a-1", DEPOSIT, "k").await;
    assert!(replayed(
        &with_key(&app, "/accounts/a-1", DEPOSIT, "k").await
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = with_key(&app, "/accounts/a-1", DEPOSIT, "k").await;
    assert_eq!(later.status, StatusCode::OK);
    assert!(!replayed(&later), "an expired key runs afresh");
    assert_eq!(events(&store, "a-1").await, 3);
    // That request also started a purge of the expired records ("open"); looked up as of a
    // moment when it was still live, it is gone from the store.
    let long_ago = chrono::Utc::now() - chrono::Duration::seconds(60);
    let mut waited = 0;
    while store
        .find_idempotency("", "open", long_ago)
        .await
        .unwrap()
        .is_some()
    {
        assert!(waited < 200, "the expired record was never purged");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert!(
        store
            .find_idempotency("", "k", long_ago)
            .await
            .unwrap()
            .is_some(),
        "the renewed key stays"
    );
}

fn token(secret: &str, sub: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let config = HttpConfig::default().with_auth(JwtAuth::hs256("s3cret").unwrap());
    let (app, store) = bank_app(config);
    let alice = format!("Bearer {}", token("s3cret", "alice"));
    let bob = format!("Bearer {}", token("s3cret", "bob"));
    let as_user = |auth: &str, uri: &'static str, body: &'static str| {
        let auth = auth.to_owned();
        let app = app.clone();
        async move {
            send(
                &app,
                uri,
                body,
                &[("authorization", &auth), ("idempotency-key", "k")],
            )
            .await
        }
    };
    let opened = as_user(&alice, "/accounts/a-1", OPEN).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    // Were keys shared, bob's other request under alice's key would be a 422.
    let bobs = as_user(&bob, "/accounts/b-1", OPEN).await;
    assert_eq!(
        bobs.status,
        StatusCode::CREATED,
        "bob's key k is not alice's"
    );
    assert!(!replayed(&bobs));
    assert!(replayed(&as_user(&bob, "/accounts/b-1", OPEN).await));
    assert_eq!(events(&store, "a-1").await, 1);
    assert_eq!(events(&store, "b-1").await, 1);
}

#[tokio::test]
async fn the_document_shows_the_key_on_every_command() {
    let (app, _store) = bank_app(HttpConfig::default());
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    let doc: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    let mut commands = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(post) = item.get("post") else {
            continue;
        };
        commands += 1;
        let key = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{path}: no Idempotency-Key parameter"));
        assert_eq!(key["in"], "header");
        assert_eq!(key["schema"]["maxLength"], 255);
        let responses = post["responses"].as_object().unwrap();
        assert!(responses.contains_key("422"), "{path}");
        assert!(
            responses["409"]["description"]
                .as_str()
                .unwrap()
                .contains("IDEMPOTENCY_KEY_IN_USE"),
            "{path}"
        );
        for (status, response) in responses {
            if status.starts_with('2') {
                assert!(
                    response["headers"].get("Idempotent-Replayed").is_some(),
                    "{path} {status}"
                );
            }
        }
    }
    assert!(commands >= 5, "reference and generic commands: {commands}");
}
