//! The bank's views through the real binary on a temporary SQLite file: the accounts view
//! after the reference walkthrough, the movements projection catching up, `bank
//! rebuild-views` while the service runs and deposits keep coming, and the inline rebuild
//! with the service stopped, each giving the same rows; then a restart showing them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use factum_testing::http::{column, fetch};
use factum_testing::server::{Server, run_ok};
use reqwest::Method;
use serde_json::{Value, json};

const BANK: &str = env!("CARGO_BIN_EXE_bank");

/// Runs `bank rebuild-views` with these arguments; returns its stdout.
fn rebuild_views(store: &str, extra: &[&str]) -> String {
    let args = [&["rebuild-views", "--store", store][..], extra].concat();
    run_ok(BANK, &args)
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Value {
    let reply = fetch(client, Method::POST, url, Some(body), &[])
        .await
        .unwrap();
    assert!(reply.status.is_success(), "{url} {body}");
    reply.json()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let reply = fetch(client, Method::GET, url, None, &[]).await.unwrap();
    (reply.status.as_u16(), reply.json())
}

/// Waits until the movements projection has applied every stored event (at least `head`).
async fn caught_up(client: &reqwest::Client, bank: &Server, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, lag) = get(client, &bank.url("/projections/movements")).await;
        assert_eq!(status, 200, "{lag}");
        if lag["behind"] == 0 && lag["head"].as_u64().unwrap() >= head {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "movements never caught up: {lag}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every record of a view, page by page.
async fn all(client: &reqwest::Client, bank: &Server, view: &str) -> Vec<Value> {
    let mut records = Vec::new();
    for page in 1.. {
        let (status, body) = get(
            client,
            &bank.url(&format!("/views/{view}?page={page}&page_size=100")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        records.extend(items.iter().cloned());
        if items.len() < 100 {
            assert_eq!(body["total"].as_u64().unwrap(), records.len() as u64);
            break;
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_follow_the_walkthrough_and_rebuild_to_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    let client = reqwest::Client::new();
    let bank = Server::on_store(BANK, &store);
    let account = bank.url("/accounts/acc-001");
    post(
        &client,
        &account,
        r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}"#,
    )
    .await;
    post(&client, &account, r#"{"type": "Deposit", "amount": 500.0}"#).await;
    post(
        &client,
        &account,
        r#"{"type": "Withdraw", "amount": 200.0}"#,
    )
    .await;
    post(
        &client,
        &bank.url("/accounts/acc-002"),
        r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 2000}"#,
    )
    .await;
    post(
        &client,
        &bank.url("/accounts/acc-003"),
        r#"{"type": "OpenAccount", "owner": "Bob", "initial_balance": 5}"#,
    )
    .await;

    // The inline view is current as soon as the commands answered.
    let (status, page) = get(
        &client,
        &bank.url("/views/accounts?filter=owner:eq:Alice&sort=-balance"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        page,
        json!({"items": [
            {"id": "acc-002", "owner": "Alice", "balance": 2000.0, "version": 1},
            {"id": "acc-001", "owner": "Alice", "balance": 1300.0, "version": 3},
        ], "total": 2, "page": 1, "page_size": 50})
    );
    let (status, record) = get(&client, &bank.url("/views/accounts/acc-001")).await;
    assert_eq!(
        (status, record),
        (
            200,
            json!({"id": "acc-001", "owner": "Alice", "balance": 1300.0, "version": 3})
        )
    );
    let (status, error) = get(&client, &bank.url("/views/accounts?filter=balance:gt:lots")).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "VALIDATION_ERROR");
    assert_eq!(
        error["message"],
        "invalid accounts query: 'lots' is not a number"
    );

    // The movements projection catches up in the background.
    caught_up(&client, &bank, 5).await;
    let (status, movements) = get(&client, &bank.url("/accounts/acc-001/movements")).await;
    assert_eq!(status, 200, "{movements}");
    let kinds: Vec<(&str, f64)> = movements["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["amount"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("opening", 1000.0),
            ("deposit", 500.0),
            ("withdrawal", 200.0)
        ]
    );

    // Rebuild while the service runs and deposits keep coming.
    let depositing = {
        let client = client.clone();
        let url = bank.url("/accounts/acc-003");
        tokio::spawn(async move {
            for _ in 0..200 {
                post(&client, &url, r#"{"type": "Deposit", "amount": 0.01}"#).await;
            }
        })
    };
    let store_for_rebuild = store.clone();
    let printed = tokio::task::spawn_blocking(move || rebuild_views(&store_for_rebuild, &[]))
        .await
        .unwrap();
    assert!(printed.contains("movements: rebuilt from "), "{printed}");
    assert!(
        printed.contains("accounts: kept inline, not rebuilt"),
        "{printed}"
    );
    depositing.await.unwrap();
    caught_up(&client, &bank, 205).await;
    let movements = all(&client, &bank, "movements").await;
    assert_eq!(movements.len(), 205);
    let (_, acc3) = get(
        &client,
        &bank.url("/accounts/acc-003/movements?page_size=1000"),
    )
    .await;
    assert_eq!(
        column(&acc3["items"], "version", Value::as_u64),
        (1..=201).collect::<Vec<_>>(),
        "every deposit, once"
    );
    let accounts = all(&client, &bank, "accounts").await;
    assert_eq!(
        accounts[2],
        json!({"id": "acc-003", "owner": "Bob", "balance": 7.0, "version": 201})
    );

    // Stopped, the inline view is rebuilt too; both give the same rows after a restart.
    assert!(bank.stop().success(), "exits 0 on SIGTERM");
    let printed = rebuild_views(&store, &["--include-inline"]);
    for view in ["accounts", "movements"] {
        let line = format!("{view}: rebuilt from 205 events");
        assert!(printed.contains(&line), "{printed}");
    }
    let bank = Server::on_store(BANK, &store);
    caught_up(&client, &bank, 205).await;
    assert_eq!(all(&client, &bank, "accounts").await, accounts);
    assert_eq!(all(&client, &bank, "movements").await, movements);
    assert!(bank.stop().success(), "exits 0 on SIGTERM");
}

#[test]
fn rebuild_views_explains_itself_and_refuses_a_bad_store() {
    let help = Command::new(BANK)
        .args(["rebuild-views", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    assert!(text.contains("--include-inline"), "{text}");
    assert!(text.contains("--store"), "{text}");
    let bad = Command::new(BANK)
        .args(["rebuild-views", "--store", "ftp://nowhere"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(
        error.starts_with("bank: cannot open the event store ftp://nowhere"),
        "{error}"
    );
}
