//! Transfers in process: `POST /transfers` and `GET /transfers/{id}` on the router, the
//! transfer process run by its subscription, the refusals of bad input (nothing stored), and
//! who may transfer with authentication on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use bank::http::Bank;
use factum_core::{EventStore, InMemoryEventStore};
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::http::{Reply, call_as, get, post};
use factum_testing::jwt;

const SECRET: &str = "transfers-test-secret";

fn token(sub: &str) -> String {
    jwt::hs256(SECRET, &jwt::claims(sub, 600))
}

struct Setup {
    bank: Bank,
    app: Router,
    store: Arc<dyn EventStore>,
}

fn setup(config: HttpConfig) -> Setup {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let bank = Bank::open(store.clone()).unwrap();
    let app = bank::http::router(&bank, config).unwrap();
    Setup { bank, app, store }
}

async fn open(app: &Router, id: &str, balance: &str) {
    let body =
        format!(r#"{{"type": "OpenAccount", "owner": "Ann", "initial_balance": {balance}}}"#);
    assert_eq!(
        post(app, &format!("/accounts/{id}"), &body).await.status,
        201
    );
}

async fn transfer(app: &Router, from: &str, to: &str, amount: &str) -> Reply {
    let body = format!(r#"{{"from": "{from}", "to": "{to}", "amount": {amount}}}"#);
    post(app, "/transfers", &body).await
}

/// Runs the transfer process (and the movements) until nothing is left to do; the
/// transfer's state then.
async fn settled(s: &Setup, reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, 201, "{}", reply.text);
    s.bank.projections().catch_up().await.unwrap();
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    get(&s.app, &format!("/transfers/{id}")).await.json()
}

async fn balance(app: &Router, id: &str) -> serde_json::Value {
    get(app, &format!("/accounts/{id}")).await.json()["balance"].clone()
}

#[tokio::test]
async fn a_transfer_completes_refunds_or_fails_with_its_reason() {
    let s = setup(HttpConfig::default());
    open(&s.app, "acc-1", "100.10").await;
    open(&s.app, "acc-2", "0").await;

    let created = transfer(&s.app, "acc-1", "acc-2", "0.1").await;
    let body = created.json();
    assert_eq!(body["state"], "requested");
    assert_eq!(
        (&body["from"], &body["amount"]),
        (&"acc-1".into(), &0.1.into())
    );
    let id = body["id"].as_str().unwrap();
    assert_eq!(created.headers["location"], format!("/transfers/{id}"));
    let done = settled(&s, &created).await;
    assert_eq!(
        (&done["state"], &done["version"]),
        (&"completed".into(), &3.into())
    );
    assert_eq!(balance(&s.app, "acc-1").await, 100.0);
    assert_eq!(balance(&s.app, "acc-2").await, 0.1);

    // The withdrawal is refused: nothing moves, and the transfer says why.
    let failed = settled(&s, &transfer(&s.app, "acc-2", "acc-1", "0.11").await).await;
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient funds"),
        "{failed}"
    );

    // The deposit is refused (no such account): the money goes back.
    let refunded = settled(&s, &transfer(&s.app, "acc-1", "acc-gone", "40").await).await;
    assert_eq!(refunded["state"], "refunded");
    assert!(
        refunded["reason"].as_str().unwrap().contains("acc-gone"),
        "{refunded}"
    );
    assert_eq!(balance(&s.app, "acc-1").await, 100.0);
    // Withdrawn and paid back: two events, one each.
    let events = get(&s.app, "/accounts/acc-1/events").await.json();
    assert_eq!(events.as_array().unwrap().len(), 4, "{events}");

    // The process's commands carry the transfer's correlation id, and it as their cause.
    let envelopes = get(&s.app, "/accounts/acc-1/events?metadata=true")
        .await
        .json();
    let feed = get(&s.app, "/events?aggregate_type=transfer&limit=1")
        .await
        .json();
    let requested = &feed["events"][0];
    assert_eq!(requested["event_type"], "TransferRequested");
    let withdrawal = &envelopes[1];
    assert_eq!(withdrawal["event_type"], "MoneyWithdrawn");
    assert_eq!(
        withdrawal["causation_id"], requested["event_id"],
        "{withdrawal}"
    );
    assert_eq!(
        withdrawal["correlation_id"],
        requested["metadata"]["correlation_id"]
    );
    assert!(withdrawal["correlation_id"].is_string(), "{requested}");
    let generic = get(&s.app, &format!("/api/transfers/{id}")).await;
    assert_eq!(
        generic.status, 404,
        "the transfer's generic routes are not served"
    );

    let statuses = get(&s.app, "/subscriptions").await.json();
    let process = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "bank.transfers")
        .unwrap();
    assert_eq!(
        (&process["lag"], &process["parked"]),
        (&0.into(), &0.into())
    );
}

#[tokio::test]
async fn bad_transfers_are_4xx_and_store_nothing() {
    let s = setup(HttpConfig::default());
    open(&s.app, "acc-1", "10").await;
    open(&s.app, "acc-2", "10").await;
    let head = s.store.head_position().await.unwrap();
    let cases = [
        (
            r#"{"from": "acc-1", "to": "acc-1", "amount": 1}"#,
            "TRANSFER_SAME_ACCOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "acc-2", "amount": 0}"#,
            "TRANSFER_INVALID_AMOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "acc-2", "amount": -1}"#,
            "TRANSFER_INVALID_AMOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "acc-2", "amount": 0.001}"#,
            "TRANSFER_INVALID_AMOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "acc-2", "amount": "1"}"#,
            "TRANSFER_INVALID_AMOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "acc-2", "amount": 1e16}"#,
            "TRANSFER_INVALID_AMOUNT",
        ),
        (
            r#"{"from": "acc 1", "to": "acc-2", "amount": 1}"#,
            "TRANSFER_INVALID_ACCOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "", "amount": 1}"#,
            "TRANSFER_INVALID_ACCOUNT",
        ),
        (
            r#"{"from": "nobody", "to": "acc-2", "amount": 1}"#,
            "TRANSFER_UNKNOWN_ACCOUNT",
        ),
        (
            r#"{"from": "acc-1", "to": "acc-2", "amount": 1, "memo": "x"}"#,
            "VALIDATION_ERROR",
        ),
        (r#"{"from": "acc-1", "amount": 1}"#, "VALIDATION_ERROR"),
        (r#"{"type": "RecordDebit"}"#, "VALIDATION_ERROR"),
        (r#"[1]"#, "VALIDATION_ERROR"),
    ];
    for (body, code) in cases {
        let status = if code == "TRANSFER_UNKNOWN_ACCOUNT" {
            404
        } else {
            400
        };
        post(&s.app, "/transfers", body).await.error(status, code);
    }
    get(&s.app, "/transfers/no-such")
        .await
        .error(404, "TRANSFER_NOT_FOUND");
    get(&s.app, "/transfers/bad%20id")
        .await
        .error(400, "VALIDATION_ERROR");
    // The process's own commands are not served.
    let update = post(&s.app, "/transfers/t-1", r#"{"type": "RecordCompletion"}"#).await;
    assert_eq!(update.status, 405, "{}", update.text);
    assert_eq!(
        s.store.head_position().await.unwrap(),
        head,
        "nothing stored"
    );
}

#[tokio::test]
async fn with_auth_a_caller_moves_only_money_it_may_and_reads_only_its_transfers() {
    let s = setup(HttpConfig::default().with_auth(JwtAuth::hs256(SECRET).unwrap()));
    let (ann, bob) = (token("ann"), token("bob"));
    let open = r#"{"type": "OpenAccount", "owner": "Ann", "initial_balance": 5}"#;
    let call = |method, uri: &'static str, body: Option<&'static str>, token: &String| {
        let (app, token) = (s.app.clone(), token.clone());
        async move { call_as(&app, method, uri, body, &token).await }
    };
    assert_eq!(
        call(Method::POST, "/accounts/ann-1", Some(open), &ann)
            .await
            .status,
        201
    );
    assert_eq!(
        call(Method::POST, "/accounts/bob-1", Some(open), &bob)
            .await
            .status,
        201
    );
    let steal = r#"{"from": "ann-1", "to": "bob-1", "amount": 5}"#;
    call(Method::POST, "/transfers", Some(steal), &bob)
        .await
        .error(403, "TRANSFER_FORBIDDEN");
    let pay = r#"{"from": "bob-1", "to": "ann-1", "amount": 2}"#;
    let paid = call(Method::POST, "/transfers", Some(pay), &bob).await;
    assert_eq!(paid.status, 201, "{}", paid.text);
    let id = paid.json()["id"].as_str().unwrap().to_owned();
    let path: &'static str = format!("/transfers/{id}").leak();
    assert_eq!(call(Method::GET, path, None, &bob).await.status, 200);
    assert_eq!(call(Method::GET, path, None, &ann).await.status, 403);
    assert_eq!(
        call(Method::GET, path, None, &String::new()).await.status,
        401
    );
}
