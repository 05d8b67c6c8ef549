//! The real `bank` binary over real HTTP on a temporary SQLite file, and on a MongoDB
//! database of its own (`factum_testing::mongo`: nx-27017 unless `MONGODB_URL` is set): the
//! reference walkthrough verbatim, SIGKILL and restart on the same store, 16 concurrent
//! clients, and a graceful SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use factum_testing::http::{fetch, request_to};
use factum_testing::server::Server;
use reqwest::Method;
use serde_json::{Value, json};

/// The bank binary on a free port over `store`.
fn start(store: &str) -> Server {
    Server::on_store(env!("CARGO_BIN_EXE_bank"), store)
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> (u16, String) {
    let reply = fetch(client, Method::POST, url, Some(body), &[])
        .await
        .unwrap();
    (reply.status.as_u16(), reply.text)
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let reply = fetch(client, Method::GET, url, None, &[]).await.unwrap();
    (reply.status.as_u16(), reply.text)
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("bank.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_survives_sigkill_and_sixteen_clients_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    walkthrough(&sqlite_url(dir.path()), "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_on_mongodb() {
    walkthrough(&factum_testing::mongo::database_url("bank_e2e"), "MongoDB").await;
}

/// The walkthrough, a SIGKILL and restart, and 16 clients x 100 deposits on `store`.
async fn walkthrough(store: &str, name: &str) {
    let client = reqwest::Client::new();
    let bank = start(store);
    let account = bank.url("/accounts/acc-001");

    // The walkthrough of the reference, verbatim.
    let reply = post(
        &client,
        &account,
        r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}"#,
    )
    .await;
    assert_eq!(
        reply,
        (
            201,
            r#"{"id":"acc-001","owner":"Alice","balance":1000.0,"version":1}"#.to_owned()
        )
    );
    let reply = post(&client, &account, r#"{"type": "Deposit", "amount": 500.0}"#).await;
    assert_eq!(
        reply,
        (
            200,
            r#"{"id":"acc-001","owner":"Alice","balance":1500.0,"version":2}"#.to_owned()
        )
    );
    let reply = post(
        &client,
        &account,
        r#"{"type": "Withdraw", "amount": 200.0}"#,
    )
    .await;
    assert_eq!(
        reply,
        (
            200,
            r#"{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}"#.to_owned()
        )
    );
    // A form post with no JSON Content-Type (what any web page may send cross-site without a
    // preflight) is a 415 on the real binary and moves no money.
    for content_type in [None, Some("text/plain")] {
        let mut request = client
            .post(&account)
            .body(r#"{"type": "Withdraw", "amount": 1300.0}"#);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "UNSUPPORTED_MEDIA_TYPE", "{error}");
    }
    let state = (
        200,
        r#"{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}"#.to_owned(),
    );
    assert_eq!(get(&client, &account).await, state);
    let history = json!([{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0},
                         {"type":"MoneyDeposited","amount":500.0},
                         {"type":"MoneyWithdrawn","amount":200.0}]);
    let (status, body) = get(&client, &bank.url("/accounts/acc-001/events")).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), history);
    let (status, body) = get(&client, &bank.url("/accounts/acc-001/events?metadata=true")).await;
    assert_eq!(status, 200);
    let envelopes: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(envelopes.as_array().unwrap().len(), 3);
    assert_eq!(envelopes[2]["payload"], history[2]);
    assert_eq!(envelopes[2]["version"], 3);
    let past = (
        200,
        r#"{"id":"acc-001","owner":"Alice","balance":1500.0,"version":2}"#.to_owned(),
    );
    assert_eq!(
        get(&client, &bank.url("/accounts/acc-001?version=2")).await,
        past
    );
    let (status, body) = get(&client, &bank.url("/accounts/acc-001?version=0")).await;
    assert_eq!(status, 400, "{body}");

    // SIGKILL right after the last reply; the restarted service shows every change.
    bank.kill().unwrap();
    let bank = start(store);
    assert_eq!(get(&client, &bank.url("/accounts/acc-001")).await, state);
    let (_, body) = get(&client, &bank.url("/accounts/acc-001/events")).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), history);
    assert_eq!(
        get(&client, &bank.url("/accounts/acc-001?version=2")).await,
        past
    );

    // 16 concurrent clients x 100 deposits of 0.01: every reply 200, nothing lost.
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let client = reqwest::Client::new();
        let url = bank.url("/accounts/acc-001");
        clients.push(tokio::spawn(async move {
            for _ in 0..100 {
                let (status, body) =
                    post(&client, &url, r#"{"type": "Deposit", "amount": 0.01}"#).await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for task in clients {
        task.await.unwrap();
    }
    eprintln!(
        "16 x 100 deposits over HTTP on {name}: {:?}",
        started.elapsed()
    );
    let after = (
        200,
        r#"{"id":"acc-001","owner":"Alice","balance":1316.0,"version":1603}"#.to_owned(),
    );
    assert_eq!(get(&client, &bank.url("/accounts/acc-001")).await, after);

    // And all of it is on disk.
    bank.kill().unwrap();
    let bank = start(store);
    assert_eq!(get(&client, &bank.url("/accounts/acc-001")).await, after);
    bank.kill().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_url(dir.path());
    let client = reqwest::Client::new();
    let mut bank = start(&store);
    let (status, _) = post(
        &client,
        &bank.url("/accounts/acc-1"),
        r#"{"type": "OpenAccount", "owner": "Bob", "initial_balance": 0}"#,
    )
    .await;
    assert_eq!(status, 201);

    // Clients keep depositing while the service is told to stop.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = reqwest::Client::new();
        let url = bank.url("/accounts/acc-1");
        clients.push(tokio::spawn(async move {
            let mut acknowledged = 0u64;
            for _ in 0..10_000 {
                let deposit = Some(r#"{"type": "Deposit", "amount": 0.01}"#);
                let sent = request_to(&client, Method::POST, &url, deposit, &[])
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        // Once a request is taken, it is answered in full.
                        assert_eq!(response.status(), 200);
                        let _ = response.text().await.unwrap();
                        acknowledged += 1;
                    }
                    // The listener is closed: the service is shutting down.
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    bank.terminate();
    let exit = tokio::task::spawn_blocking(move || {
        let status = bank.wait().unwrap();
        (status, bank)
    });
    let mut acknowledged = 0;
    for task in clients {
        acknowledged += task.await.unwrap();
    }
    let (status, _bank) = exit.await.unwrap();
    assert!(status.success(), "graceful exit with 0: {status:?}");
    assert!(
        acknowledged > 0,
        "the clients got through before the signal"
    );

    // Every acknowledged deposit is stored.
    let bank = start(&store);
    let (code, body) = get(&client, &bank.url("/accounts/acc-1")).await;
    assert_eq!(code, 200);
    let state: Value = serde_json::from_str(&body).unwrap();
    let version = state["version"].as_u64().unwrap();
    eprintln!("SIGTERM: {acknowledged} deposits acknowledged, version {version} after restart");
    assert!(
        version > acknowledged,
        "version {version} holds the open and {acknowledged} acknowledged deposits"
    );
    assert!(
        version <= acknowledged + 1 + 8,
        "at most one unacknowledged in-flight deposit per client: {version} vs {acknowledged}"
    );
    bank.kill().unwrap();
}
