//! The bank's views over HTTP, in process (`oneshot`): the accounts view kept inline, the
//! movements projection (caught up, run in the background, rebuilt while commands keep
//! coming), the queries and their rejections, after the reference walkthrough.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use bank::http::Bank;
use bank::views::{AccountSummary, Movement};
use factum_core::{EventStore, InMemoryEventStore, Projections, Projector, View};
use factum_http::HttpConfig;
use factum_testing::http::column;
use factum_testing::views::{all_records, replay};
use serde_json::{Value, json};

struct Service {
    bank: Bank,
    app: Router,
    store: Arc<dyn EventStore>,
}

fn service() -> Service {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let bank = Bank::open(store.clone()).unwrap();
    let app = bank::http::router(&bank, HttpConfig::default()).unwrap();
    Service { bank, app, store }
}

async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let reply = factum_testing::http::call(app, method, uri, body, &[]).await;
    (reply.status, reply.json())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Method::GET, uri, None).await
}

async fn post(app: &Router, uri: &str, body: &str) -> Value {
    let (status, reply) = send(app, Method::POST, uri, Some(body)).await;
    assert!(status.is_success(), "{uri} {body}: {reply}");
    reply
}

/// The reference walkthrough's commands, then a few more accounts.
async fn walkthrough(app: &Router) {
    for body in [
        r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}"#,
        r#"{"type": "Deposit", "amount": 500.0}"#,
        r#"{"type": "Withdraw", "amount": 200.0}"#,
    ] {
        post(app, "/accounts/acc-001", body).await;
    }
    for (id, owner, initial) in [
        ("acc-002", "Bob", "50.25"),
        ("acc-003", "Alice", "2500"),
        ("acc-004", "Carol", "0"),
        ("acc-005", "Alice", "10.10"),
    ] {
        let body = format!(
            r#"{{"type": "OpenAccount", "owner": "{owner}", "initial_balance": {initial}}}"#
        );
        post(app, &format!("/accounts/{id}"), &body).await;
    }
}

fn ids(page: &Value) -> Vec<&str> {
    column(&page["items"], "id", Value::as_str)
}

#[tokio::test]
async fn the_accounts_view_is_current_after_each_command_and_queryable() {
    let s = service();
    walkthrough(&s.app).await;

    // The record is exactly the reference state, with no projection run at all.
    let (status, record) = get(&s.app, "/views/accounts/acc-001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        record,
        json!({"id": "acc-001", "owner": "Alice", "balance": 1300.0, "version": 3})
    );
    let (_, state) = get(&s.app, "/accounts/acc-001").await;
    assert_eq!(record, state);

    let (status, page) = get(
        &s.app,
        "/views/accounts?filter=owner:eq:Alice&sort=-balance",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), ["acc-003", "acc-001", "acc-005"]);
    assert_eq!(
        (page["total"].as_u64(), page["page"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(page["items"][2]["balance"], 10.1);

    let (_, page) = get(&s.app, "/views/accounts?filter=balance:lt:100&sort=balance").await;
    assert_eq!(ids(&page), ["acc-004", "acc-005", "acc-002"]);
    let (_, page) = get(
        &s.app,
        "/views/accounts?filter=balance:gte:1300,owner:ne:Bob",
    )
    .await;
    assert_eq!(ids(&page), ["acc-001", "acc-003"]);
    let (_, page) = get(&s.app, "/views/accounts?filter=owner:in:Bob|Carol").await;
    assert_eq!(ids(&page), ["acc-002", "acc-004"]);
    let (_, page) = get(&s.app, "/views/accounts?filter=version:gt:1").await;
    assert_eq!(ids(&page), ["acc-001"]);
    let (_, page) = get(
        &s.app,
        "/views/accounts?sort=owner,-balance&page=2&page_size=2",
    )
    .await;
    assert_eq!(page["total"], 5);
    assert_eq!(ids(&page), ["acc-005", "acc-002"]);

    // A deposit shows in the next query: the view commits with the events.
    post(
        &s.app,
        "/accounts/acc-005",
        r#"{"type": "Deposit", "amount": 5000}"#,
    )
    .await;
    let (_, page) = get(
        &s.app,
        "/views/accounts?filter=owner:eq:Alice&sort=-balance&page_size=1",
    )
    .await;
    assert_eq!(ids(&page), ["acc-005"]);
    assert_eq!(page["items"][0]["balance"], 5010.1);
    // A refused command changes no record.
    let (status, _) = send(
        &s.app,
        Method::POST,
        "/accounts/acc-004",
        Some(r#"{"type": "Withdraw", "amount": 1}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, record) = get(&s.app, "/views/accounts/acc-004").await;
    assert_eq!(record["version"], 1);
}

#[tokio::test]
async fn rejected_queries_and_missing_records_are_structured_errors() {
    let s = service();
    walkthrough(&s.app).await;
    for query in [
        "filter=balance:gt:lots",
        "filter=iban:eq:DE00",
        "filter=owner:startswith:A",
        "filter=balance:contains:1",
        "filter=owner",
        "sort=-iban",
        "page=0",
        "page_size=5000",
        "page=x",
    ] {
        for base in [
            "/views/accounts",
            "/views/movements",
            "/accounts/acc-001/movements",
        ] {
            let uri = format!("{base}?{query}");
            let (status, body) = get(&s.app, &uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert_eq!(body["code"], "VALIDATION_ERROR", "{uri}: {body}");
            assert_eq!(body["domain"], "CQRS");
            assert!(body["requestId"].is_string());
        }
    }
    let (_, body) = get(&s.app, "/views/accounts?filter=iban:eq:DE00").await;
    assert_eq!(
        body["message"],
        "invalid accounts query: unknown field 'iban'; queryable fields: owner, balance, version, opened_by"
    );
    assert_eq!(body["details"]["fields"][1]["name"], "balance");
    assert_eq!(
        body["details"]["fields"][1]["operators"],
        json!(["eq", "ne", "lt", "lte", "gt", "gte", "in"])
    );

    let (status, body) = get(&s.app, "/views/accounts/acc-404").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    let (status, body) = get(&s.app, "/views/movements/acc-001-9").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&s.app, "/accounts/acc-404/movements").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "ACCOUNT_NOT_FOUND");
    let (status, body) = get(&s.app, "/accounts/bad%20id/movements").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn movements_follow_as_a_projection_after_the_walkthrough() {
    let s = service();
    walkthrough(&s.app).await;
    // Not projected yet: the account exists, its movements are still to come.
    let (status, page) = get(&s.app, "/accounts/acc-001/movements").await;
    assert_eq!((status, page["total"].as_u64()), (StatusCode::OK, Some(0)));
    let (_, lag) = get(&s.app, "/projections/movements").await;
    assert_eq!(
        lag,
        json!({"name": "movements", "checkpoint": 0, "head": 7, "behind": 7, "parked": 0, "parked_events": []})
    );

    // The accounts' subscriptions share one set (clones share their entries): the movements
    // projection and the transfer process each read the same 7 events.
    assert_eq!(s.bank.engine().projections().catch_up().await.unwrap(), 14);
    let (_, lags) = get(&s.app, "/projections").await;
    assert_eq!(
        lags,
        json!([{"name": "movements", "checkpoint": 7, "head": 7, "behind": 0, "parked": 0, "parked_events": []}])
    );

    let (status, page) = get(&s.app, "/accounts/acc-001/movements").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let summary: Vec<(u64, &str, f64)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["account_id"], "acc-001");
            assert!(m["recorded_at"].as_str().unwrap().contains('T'));
            assert_eq!(m["user_id"], Value::Null);
            (
                m["version"].as_u64().unwrap(),
                m["kind"].as_str().unwrap(),
                m["amount"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "opening", 1000.0),
            (2, "deposit", 500.0),
            (3, "withdrawal", 200.0)
        ]
    );
    assert_eq!(page["total"], 3);
    let (_, page) = get(
        &s.app,
        "/accounts/acc-001/movements?filter=kind:ne:opening&sort=-amount&page_size=1",
    )
    .await;
    assert_eq!(
        (page["total"].as_u64(), page["items"][0]["kind"].as_str()),
        (Some(2), Some("deposit"))
    );

    let (status, one) = get(&s.app, "/views/movements/acc-001-3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (one["kind"].as_str(), one["amount"].as_f64()),
        (Some("withdrawal"), Some(200.0))
    );
    // Across accounts: by account, then version.
    let (_, page) = get(&s.app, "/views/movements?filter=kind:eq:opening").await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"][0]["account_id"], "acc-001");
    assert_eq!(page["items"][4]["account_id"], "acc-005");
    let (_, page) = get(
        &s.app,
        "/views/movements?filter=amount:gte:1000&sort=-amount",
    )
    .await;
    assert_eq!(
        column(&page["items"], "amount", Value::as_f64),
        [2500.0, 1000.0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilding_gives_the_same_rows_even_while_commands_and_the_runner_go_on() {
    let s = service();
    walkthrough(&s.app).await;
    let views = s.store.clone().into_view_store().unwrap();
    let tasks = s.bank.projections().spawn(Duration::from_millis(20));

    // Commands keep coming while the movements projection is rebuilt twice.
    let writer = {
        let app = s.app.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                let account = format!("acc-00{}", 1 + i % 5);
                post(
                    &app,
                    &format!("/accounts/{account}"),
                    r#"{"type": "Deposit", "amount": 0.01}"#,
                )
                .await;
            }
        })
    };
    // The movements projection as another process would run it.
    let projected =
        Projections::new().with(Projector::<Movement>::for_store(s.store.clone()).unwrap());
    for _ in 0..2 {
        let rebuilt = projected.rebuild(|_, _| {}).await.unwrap();
        assert_eq!(rebuilt[0].0, "movements");
        // The running runner may apply some batches of the replay itself (the rebuild then
        // reads only what is left), so the count is not a bound: the checkpoint is.
        let status = projected.status("movements").await.unwrap().unwrap();
        assert!(status.checkpoint >= 7, "{status:?}");
    }
    writer.await.unwrap();

    // The runner follows to the head, and the rows are what a replay from scratch gives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, lag) = get(&s.app, "/projections/movements").await;
        if lag["behind"] == 0 && lag["head"] == 157 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never caught up: {lag}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let movements = all_records(&*views, Movement::TYPE, Movement::fields()).await;
    assert_eq!(movements.len(), 157);
    assert_eq!(movements, replay::<Movement>(&*s.store).await);
    let accounts = all_records(&*views, AccountSummary::TYPE, AccountSummary::fields()).await;
    assert_eq!(accounts, replay::<AccountSummary>(&*s.store).await);
    assert_eq!(accounts["acc-001"]["balance"], 1300.3);
    tasks.stop().await;

    // With the writers stopped, the inline view rebuilds to the same rows too.
    let inline = s.bank.engine().inline_projections();
    let mut reports = 0;
    let rebuilt = inline.rebuild(|_, _| reports += 1).await.unwrap();
    assert_eq!(rebuilt, [("accounts".to_owned(), 157)]);
    assert!(reports >= 1);
    assert_eq!(
        all_records(&*views, AccountSummary::TYPE, AccountSummary::fields()).await,
        accounts
    );
    // And commands after it keep the rebuilt records up to date.
    post(
        &s.app,
        "/accounts/acc-001",
        r#"{"type": "Withdraw", "amount": 0.3}"#,
    )
    .await;
    let (_, record) = get(&s.app, "/views/accounts/acc-001").await;
    assert_eq!(
        record,
        json!({"id": "acc-001", "owner": "Alice", "balance": 1300.0, "version": 34})
    );
}
