//! Transfers end to end on the real `bank` binary, on SQLite and on PostgreSQL: 1,000 random
//! transfers among 10 accounts while the process is SIGKILLed and restarted three times
//! (under requests, and while the transfer process runs). Every transfer ends completed,
//! refunded (to an account that does not exist) or failed (insufficient funds); the money is
//! conserved, and every balance and every account's number of events is exactly what the
//! transfers' outcomes say: no step of the process ran twice, none was lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum_testing::database::TestDatabase;
use factum_testing::server::Server;
use futures::StreamExt;
use serde_json::Value;

const BANK: &str = env!("CARGO_BIN_EXE_bank");
const ACCOUNTS: usize = 10;
const TRANSFERS: usize = 1000;
const ROUNDS: usize = 4;
const OPENING_CENTS: i64 = 100_000;

/// A transfer as sent: from, to, amount in cents.
#[derive(Debug, Clone)]
struct Sent {
    from: String,
    to: String,
    cents: i64,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Cents of an exact JSON money value (at most two decimals).
fn cents(value: &Value) -> i64 {
    let text = value.to_string();
    let (units, fraction) = text.split_once('.').unwrap_or((&text, "0"));
    let fraction = format!("{fraction:0<2}");
    units.parse::<i64>().unwrap() * 100 + fraction[..2].parse::<i64>().unwrap()
}

/// Posts transfer `n` with its own idempotency key: a repeat after a lost reply replays it.
/// `None` when the process died under the request.
async fn post_transfer(client: &reqwest::Client, base: &str, n: usize, t: &Sent) -> Option<String> {
    let body = format!(
        r#"{{"from": "{}", "to": "{}", "amount": {}}}"#,
        t.from,
        t.to,
        money(t.cents)
    );
    let response = client
        .post(format!("{base}/transfers"))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", format!("transfer-{n}"))
        .body(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    assert_eq!(status, 201, "transfer {n}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    Some(body["id"].as_str().unwrap().to_owned())
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

async fn thousand_transfers_across_sigkills(store: &str) {
    let client = reqwest::Client::new();
    let mut bank = Server::on_store(BANK, store);
    for a in 0..ACCOUNTS {
        let body = format!(
            r#"{{"type": "OpenAccount", "owner": "Owner {a}", "initial_balance": {}}}"#,
            money(OPENING_CENTS)
        );
        let response = client
            .post(bank.url(&format!("/accounts/acc-{a}")))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let sent: Vec<Sent> = (0..TRANSFERS)
        .map(|_| {
            let from = fastrand::usize(..ACCOUNTS);
            // One in twenty goes to an account that does not exist: refunded.
            let to = if fastrand::u8(..20) == 0 {
                "acc-gone".to_owned()
            } else {
                format!("acc-{}", (from + fastrand::usize(1..ACCOUNTS)) % ACCOUNTS)
            };
            Sent {
                from: format!("acc-{from}"),
                to,
                // Up to 150.00: some withdrawals find too little money (the process debits in log
                // order and credits once it reaches the debits, so money is in flight).
                cents: fastrand::i64(1..=15_000),
            }
        })
        .collect();

    let ids: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let per_round = TRANSFERS / ROUNDS;
    for round in 0..ROUNDS {
        let batch: Vec<usize> = (round * per_round..(round + 1) * per_round).collect();
        let sender = {
            let (client, base, ids, sent) =
                (client.clone(), bank.url(""), ids.clone(), sent.clone());
            let batch = batch.clone();
            tokio::spawn(async move {
                futures::stream::iter(batch)
                    .for_each_concurrent(8, |n| {
                        let (client, base, ids, t) = (&client, &base, &ids, &sent[n]);
                        async move {
                            if let Some(id) = post_transfer(client, base, n, t).await {
                                ids.lock().unwrap().insert(n, id);
                            }
                        }
                    })
                    .await;
            })
        };
        if round + 1 < ROUNDS {
            // Killed under requests, and while the process works through earlier rounds.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(150..600))).await;
            bank.kill().unwrap();
            sender.abort();
            let _ = sender.await;
            bank = Server::on_store(BANK, store);
        } else {
            sender.await.unwrap();
        }
        // Whatever the kill cut short is sent again with its key.
        for n in batch {
            if !ids.lock().unwrap().contains_key(&n) {
                let id = post_transfer(&client, &bank.url(""), n, &sent[n])
                    .await
                    .unwrap();
                ids.lock().unwrap().insert(n, id);
            }
        }
    }
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), TRANSFERS);

    // The transfer process catches up: nothing behind, nothing parked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let statuses = get_json(&client, bank.url("/subscriptions")).await;
        let process = statuses
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "bank.transfers")
            .unwrap()
            .clone();
        assert_eq!(process["parked"], 0, "{process}");
        if process["lag"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "behind: {process}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut expected: HashMap<String, (i64, u64)> = (0..ACCOUNTS)
        .map(|a| (format!("acc-{a}"), (OPENING_CENTS, 1)))
        .collect();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for (n, id) in &ids {
        let t = &sent[*n];
        let transfer = get_json(&client, bank.url(&format!("/transfers/{id}"))).await;
        assert_eq!(cents(&transfer["amount"]), t.cents, "{transfer}");
        assert_eq!(
            (&transfer["from"], &transfer["to"]),
            (&t.from.clone().into(), &t.to.clone().into())
        );
        let state = transfer["state"].as_str().unwrap().to_owned();
        let reason = transfer["reason"].as_str().unwrap_or_default();
        match state.as_str() {
            "completed" => {
                assert_ne!(t.to, "acc-gone");
                let from = expected.get_mut(&t.from).unwrap();
                *from = (from.0 - t.cents, from.1 + 1);
                let to = expected.get_mut(&t.to).unwrap();
                *to = (to.0 + t.cents, to.1 + 1);
            }
            "refunded" => {
                assert_eq!(t.to, "acc-gone", "{transfer}");
                assert!(reason.contains("not found"), "{transfer}");
                // Withdrawn and paid back: two events, no change.
                expected.get_mut(&t.from).unwrap().1 += 2;
            }
            "failed" => assert!(reason.contains("insufficient funds"), "{transfer}"),
            _ => panic!("transfer {id} did not end: {transfer}"),
        }
        *outcomes.entry(state).or_default() += 1;
    }
    let mut total = 0;
    for a in 0..ACCOUNTS {
        let id = format!("acc-{a}");
        let account = get_json(&client, bank.url(&format!("/accounts/{id}"))).await;
        let balance = cents(&account["balance"]);
        assert_eq!(
            (balance, account["version"].as_u64().unwrap()),
            expected[&id],
            "{id}: balance and number of events"
        );
        total += balance;
    }
    assert_eq!(total, ACCOUNTS as i64 * OPENING_CENTS, "money is conserved");
    assert!(
        outcomes.get("completed").is_some_and(|n| *n > 0),
        "{outcomes:?}"
    );
    eprintln!("{store}: {outcomes:?}");
    drop(bank);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_transfers_across_sigkills_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    thousand_transfers_across_sigkills(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_transfers_across_sigkills_on_postgres() {
    let database = TestDatabase::create("factum_transfers").await;
    thousand_transfers_across_sigkills(&database.url()).await;
    drop(database);
}
