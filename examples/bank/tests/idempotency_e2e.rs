//! `Idempotency-Key` end to end on the real `bank` binary:
//!
//! - on SQLite, across SIGKILL and restart on the same file: a repeat is replayed and
//!   counted once, also for requests whose reply the client never read because the process
//!   was killed while they ran (finding 3 of issue 9);
//! - two processes on one PostgreSQL database racing the same keys: one event per key, and
//!   both processes answer with the same response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use factum_testing::database::TestDatabase;
use factum_testing::server::Server;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const BANK: &str = env!("CARGO_BIN_EXE_bank");

#[derive(Debug)]
struct Reply {
    status: u16,
    replayed: bool,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &str, key: &str) -> Reply {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = match response.headers().get("idempotent-replayed") {
        Some(value) => {
            assert_eq!(value, "true");
            true
        }
        None => false,
    };
    Reply {
        status,
        replayed,
        text: response.text().await.unwrap(),
    }
}

async fn account(client: &reqwest::Client, bank: &Server, id: &str) -> Value {
    let response = client
        .get(bank.url(&format!("/accounts/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A balance in cents, whether the JSON holds it as a number or as decimal text.
fn cents(balance: &Value) -> i64 {
    let text = balance.to_string();
    let value: f64 = text.trim_matches('"').parse().unwrap();
    (value * 100.0).round() as i64
}

/// Sends a request over raw TCP and never reads the reply: a client that loses it.
async fn send_and_forget(address: String, path: String, body: String, key: String) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
        return;
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    // Keep the connection open until the process dies under it.
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_after_sigkill_and_restart_is_replayed_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    let client = reqwest::Client::new();
    let open = r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 100}"#;
    let deposit = r#"{"type": "Deposit", "amount": 10}"#;

    let bank = Server::start(BANK, &["--store", &store, "--listen", "127.0.0.1:0"], &[]);
    let opened = post(&client, &bank.url("/accounts/acc-1"), open, "open-1").await;
    assert_eq!(opened.status, 201, "{}", opened.text);
    let first = post(&client, &bank.url("/accounts/acc-1"), deposit, "dep-1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(!first.replayed);
    // Killed right after the reply: nothing but the committed transaction survives.
    bank.kill().unwrap();

    let bank = Server::start(BANK, &["--store", &store, "--listen", "127.0.0.1:0"], &[]);
    let again = post(&client, &bank.url("/accounts/acc-1"), deposit, "dep-1").await;
    assert_eq!(again.status, 200);
    assert!(again.replayed, "replayed after the restart");
    assert_eq!(again.text, first.text);
    let reopened = post(&client, &bank.url("/accounts/acc-1"), open, "open-1").await;
    assert!(reopened.replayed && reopened.status == 201);
    assert_eq!(reopened.text, opened.text);
    let other = post(
        &client,
        &bank.url("/accounts/acc-1"),
        r#"{"type": "Deposit", "amount": 11}"#,
        "dep-1",
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.text);
    let state = account(&client, &bank, "acc-1").await;
    assert_eq!(state["version"], 2);
    assert_eq!(cents(&state["balance"]), 11_000, "the deposit counted once");

    // Clients that lose their replies: each round sends deposits with keys over raw TCP,
    // SIGKILLs the process while they run, restarts it, and repeats every one with its key.
    const ROUNDS: u64 = 4;
    const PER_ROUND: u64 = 8;
    let mut bank = bank;
    let (mut stored_before_kill, mut run_on_repeat) = (0, 0);
    for round in 0..ROUNDS {
        let address = bank.address().to_owned();
        let senders: Vec<_> = (1..=PER_ROUND)
            .map(|i| {
                tokio::spawn(send_and_forget(
                    address.clone(),
                    "/accounts/acc-1".to_owned(),
                    format!(r#"{{"type": "Deposit", "amount": {i}}}"#),
                    format!("lost-{round}-{i}"),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(2..=12) + 2 * round)).await;
        bank.kill().unwrap();
        for sender in senders {
            sender.abort();
        }
        bank = Server::start(BANK, &["--store", &store, "--listen", "127.0.0.1:0"], &[]);
        for i in 1..=PER_ROUND {
            let reply = post(
                &client,
                &bank.url("/accounts/acc-1"),
                &format!(r#"{{"type": "Deposit", "amount": {i}}}"#),
                &format!("lost-{round}-{i}"),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            if reply.replayed {
                stored_before_kill += 1;
            } else {
                run_on_repeat += 1;
            }
        }
    }
    let state = account(&client, &bank, "acc-1").await;
    let per_round: i64 = (1..=PER_ROUND as i64).sum();
    assert_eq!(
        state["version"],
        2 + ROUNDS * PER_ROUND,
        "every deposit stored exactly once"
    );
    assert_eq!(
        cents(&state["balance"]),
        11_000 + ROUNDS as i64 * per_round * 100
    );
    eprintln!(
        "lost replies: {stored_before_kill} stored before the SIGKILL (replayed), \
         {run_on_repeat} run by the repeat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgres_race_the_same_keys_to_one_event_each() {
    let database = TestDatabase::create("factum_idempotency").await;
    let url = database.url();
    let args = ["--store", url.as_str(), "--listen", "127.0.0.1:0"];
    // Started together: they migrate the fresh database at the same moment.
    let (a, b) = (
        Server::spawn(BANK, &args, &[]),
        Server::spawn(BANK, &args, &[]),
    );
    let (a, b) = (Server::ready(BANK, a), Server::ready(BANK, b));
    let client = reqwest::Client::new();

    let open = r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 0}"#;
    let (url_a, url_b) = (a.url("/accounts/acc-pg"), b.url("/accounts/acc-pg"));
    let (on_a, on_b) = tokio::join!(
        post(&client, &url_a, open, "open"),
        post(&client, &url_b, open, "open"),
    );
    assert_eq!((on_a.status, on_b.status), (201, 201), "{on_a:?} {on_b:?}");
    assert_eq!(on_a.text, on_b.text);
    assert_eq!(u8::from(on_a.replayed) + u8::from(on_b.replayed), 1);

    const ROUNDS: u64 = 30;
    for round in 0..ROUNDS {
        let key = format!("dep-{round}");
        let body = r#"{"type": "Deposit", "amount": 1.5}"#;
        let (on_a, on_b) = tokio::join!(
            post(&client, &url_a, body, &key),
            post(&client, &url_b, body, &key),
        );
        assert_eq!((on_a.status, on_b.status), (200, 200), "{on_a:?} {on_b:?}");
        assert_eq!(on_a.text, on_b.text, "both nodes answer alike");
        assert_eq!(
            u8::from(on_a.replayed) + u8::from(on_b.replayed),
            1,
            "one ran, the other replayed: {on_a:?} {on_b:?}"
        );
        assert_eq!(on_a.json()["version"], round + 2);
    }
    for node in [&a, &b] {
        let state = account(&client, node, "acc-pg").await;
        assert_eq!(state["version"], 1 + ROUNDS, "one event per key");
        assert_eq!(cents(&state["balance"]), ROUNDS as i64 * 150);
    }
    drop((a, b));
    drop(database);
}
