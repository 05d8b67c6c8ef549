//! Exact money over the whole contract range (issue 9, findings 1, 2 and 4), through the
//! bank's router on SQLite and PostgreSQL: every accepted amount reads back exactly from the
//! state, the events, the snapshot after a reopen, a replay from events, the accounts view and
//! the movements view; amounts out of range or with a third decimal, and bodies with a
//! repeated key, are 400s that store nothing.
//!
//! PostgreSQL is `FACTUM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test owns a schema, dropped at the end. Without a server the PostgreSQL tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use bank::domain::Account;
use bank::http::Bank;
use factum::postgres::PostgresEventStore;
use factum::postgres::sqlx::{self, Connection};
use factum::sqlite::SqliteEventStore;
use factum_core::json::{self, Decimal, NUMBER_MARKER};
use factum_core::{CqrsCommandEngine, EngineConfig, EventStore, SnapshotPolicy};
use factum_http::HttpConfig;
use serde_json::Value;

type Open = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn EventStore>>>>>;

/// The three amounts of finding 1 and the boundaries of finding 2 that must be accepted.
const ACCEPTED: &[&str] = &[
    "909183074016497.9",
    "43707753092916.88",
    "93213944218088.35",
    "999999999999999.99",
    "1000000000000000",
    "1e15",
    "0.01",
    "1000.0",
];

/// Amounts that must be refused with ACCOUNT_INVALID_AMOUNT.
const REFUSED: &[&str] = &[
    "1000000000000000.01",
    "1.0000000000000000000001",
    "0.001",
    "999999999999999.999",
    "1e16",
    "1e400",
    "1e-400",
    "-0.01",
    "18446744073709551616",
];

async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let reply = factum_testing::http::call(app, method, uri, body, &[]).await;
    // Read exactly: a number no f64 holds comes back as a marker holding its text.
    let value =
        json::from_str(&reply.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.text));
    (reply.status, value)
}

/// The exact decimal a JSON value stands for.
fn exact(value: &Value) -> Decimal {
    match value {
        Value::Number(n) => Decimal::parse(&n.to_string()).unwrap(),
        Value::Object(map) => Decimal::parse(map[NUMBER_MARKER].as_str().unwrap()).unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).unwrap()
}

fn bank_on(store: Arc<dyn EventStore>) -> (Bank, Router) {
    let config = EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand);
    let bank = Bank::with_config(store, config).unwrap();
    let app = bank::http::router(&bank, HttpConfig::default()).unwrap();
    (bank, app)
}

/// What one account should read back as: its movements' amounts in order and its balance.
struct Expected {
    id: String,
    amounts: Vec<String>,
    balance: Decimal,
}

/// Checks an account everywhere it can be read.
async fn check(bank: &Bank, app: &Router, store: &Arc<dyn EventStore>, expected: &Expected) {
    let id = &expected.id;
    let (status, state) = send(app, Method::GET, &format!("/accounts/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(
        exact(&state["balance"]),
        expected.balance,
        "{id} state: {state}"
    );

    let (_, events) = send(app, Method::GET, &format!("/accounts/{id}/events"), None).await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), expected.amounts.len());
    for (event, amount) in events.iter().zip(&expected.amounts) {
        let stored = event
            .get("initial_balance")
            .or_else(|| event.get("amount"))
            .unwrap_or_else(|| panic!("no amount in {event}"));
        assert_eq!(exact(stored), dec(amount), "{id} event: {event}");
    }

    let (_, record) = send(app, Method::GET, &format!("/views/accounts/{id}"), None).await;
    assert_eq!(
        exact(&record["balance"]),
        expected.balance,
        "{id} view: {record}"
    );

    bank.projections().catch_up().await.unwrap();
    let (_, page) = send(app, Method::GET, &format!("/accounts/{id}/movements"), None).await;
    let moved: Vec<Decimal> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| exact(&m["amount"]))
        .collect();
    let wanted: Vec<Decimal> = expected.amounts.iter().map(|a| dec(a)).collect();
    assert_eq!(moved, wanted, "{id} movements: {page}");

    let snapshot = store.load_snapshot("account", id).await.unwrap().unwrap();
    let account: Account = json::from_str(&snapshot.state).unwrap();
    assert_eq!(
        dec(&account.balance.json_text()),
        expected.balance,
        "{id} snapshot: {}",
        snapshot.state
    );
    // A replay from the events alone, without the snapshot.
    let replay = CqrsCommandEngine::<Account>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::Never))
        .build()
        .unwrap();
    let loaded = replay.load(id).await.unwrap().unwrap();
    assert_eq!(
        dec(&loaded.state.balance.json_text()),
        expected.balance,
        "{id} replay"
    );
}

fn sum(amounts: &[String]) -> Decimal {
    let cents: i128 = amounts
        .iter()
        .map(|a| dec(a).scaled_integer(2).unwrap())
        .sum();
    dec(&format!("{}.{:02}", cents / 100, cents % 100))
}

/// The findings' amounts and the boundaries, then a reopen of the store.
async fn findings_and_boundaries(open: Open) {
    let store = open().await;
    let (bank, app) = bank_on(store.clone());
    let mut accounts = Vec::new();
    for (n, amount) in ACCEPTED.iter().enumerate() {
        let id = format!("acc-{n}");
        let body = format!(r#"{{"type":"OpenAccount","owner":"A","initial_balance":{amount}}}"#);
        let (status, reply) =
            send(&app, Method::POST, &format!("/accounts/{id}"), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{amount}: {reply}");
        assert_eq!(exact(&reply["balance"]), dec(amount), "{amount}: {reply}");
        accounts.push(Expected {
            id,
            amounts: vec![(*amount).to_owned()],
            balance: dec(amount),
        });
    }
    // Finding 1's deposit.
    let deposit = r#"{"type":"Deposit","amount":995401231716425.9}"#;
    let (status, reply) = send(&app, Method::POST, "/accounts/acc-6", Some(deposit)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    accounts[6].amounts.push("995401231716425.9".to_owned());
    accounts[6].balance = dec("995401231716425.91");
    assert_eq!(exact(&reply["balance"]), accounts[6].balance);

    let head = store.head_position().await.unwrap();
    for amount in REFUSED {
        let body = format!(r#"{{"type":"OpenAccount","owner":"A","initial_balance":{amount}}}"#);
        let (status, reply) = send(&app, Method::POST, "/accounts/refused", Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {reply}");
        assert_eq!(reply["code"], "ACCOUNT_INVALID_AMOUNT", "{amount}: {reply}");
        let body = format!(r#"{{"type":"Deposit","amount":{amount}}}"#);
        let (status, reply) = send(&app, Method::POST, "/accounts/acc-6", Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {reply}");
    }
    // Finding 4: a repeated key is refused, naming it; nothing is withdrawn.
    let twice = r#"{"type":"Deposit","type":"Withdraw","amount":1}"#;
    let (status, reply) = send(&app, Method::POST, "/accounts/acc-6", Some(twice)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("\"type\""),
        "{reply}"
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/accounts/acc-6/commands/Deposit",
        Some(r#"{"amount":1,"amount":2}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(store.head_position().await.unwrap(), head, "nothing stored");

    for account in &accounts {
        check(&bank, &app, &store, account).await;
    }
    drop((bank, app, store));
    // A restart: a new store handle, engine and projections over the same data.
    let store = open().await;
    let (bank, app) = bank_on(store.clone());
    for account in &accounts {
        check(&bank, &app, &store, account).await;
    }
}

/// A random amount with 1 to 17 digits of cents: 0.01 ..= 1e15, every magnitude alike.
fn random_amount(rng: &mut fastrand::Rng) -> String {
    let digits = rng.u32(1..=17);
    let cents = rng
        .i64(10i64.pow(digits - 1)..10i64.pow(digits))
        .min(100_000_000_000_000_000);
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Random amounts across the range, through HTTP, the store, a reopen, a replay, the snapshot
/// and both views; out-of-range and third-decimal amounts are 400s.
async fn random_amounts(open: Open, seed: u64, cases: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let store = open().await;
    let (bank, app) = bank_on(store.clone());
    let mut accounts = Vec::new();
    for n in 0..cases {
        let id = format!("rnd-{n}");
        let (first, second) = (random_amount(&mut rng), random_amount(&mut rng));
        let body = format!(r#"{{"type":"OpenAccount","owner":"R","initial_balance":{first}}}"#);
        let (status, reply) =
            send(&app, Method::POST, &format!("/accounts/{id}"), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{first}: {reply}");
        let body = format!(r#"{{"type":"Deposit","amount":{second}}}"#);
        let (status, reply) =
            send(&app, Method::POST, &format!("/accounts/{id}"), Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{second}: {reply}");
        let amounts = vec![first, second];
        assert_eq!(exact(&reply["balance"]), sum(&amounts));
        accounts.push(Expected {
            id,
            balance: sum(&amounts),
            amounts,
        });

        let over = format!(
            "{}.{:02}",
            1_000_000_000_000_000 + rng.i64(0..1_000_000),
            rng.u8(1..100)
        );
        let third = format!("{}{}", random_amount(&mut rng), rng.u8(1..10));
        for bad in [over, third] {
            let body = format!(r#"{{"type":"Deposit","amount":{bad}}}"#);
            let (status, reply) = send(&app, Method::POST, "/accounts/rnd-0", Some(&body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {reply}");
            assert_eq!(reply["code"], "ACCOUNT_INVALID_AMOUNT");
        }
    }
    drop((bank, app, store));
    let store = open().await;
    let (bank, app) = bank_on(store.clone());
    for account in &accounts {
        check(&bank, &app, &store, account).await;
    }
}

fn sqlite() -> (Open, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let open: Open = Box::new(move || {
        let path = path.clone();
        Box::pin(async move {
            let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(path).await.unwrap());
            store
        })
    });
    (open, dir)
}

fn database_url() -> String {
    std::env::var("FACTUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Drops the test's schema when dropped.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&database_url()).await.unwrap();
                // A schema name this test generated (a plain identifier).
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            });
        })
        .join();
    }
}

fn postgres() -> (Open, Schema) {
    let schema = format!("bank_exact_{}", uuid_like());
    let name = schema.clone();
    let open: Open = Box::new(move || {
        let name = name.clone();
        Box::pin(async move {
            let url = database_url();
            let store = PostgresEventStore::connect_with_schema(&url, &name)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL is required at {url}: {e}"));
            let store: Arc<dyn EventStore> = Arc::new(store);
            store
        })
    });
    (open, Schema(schema))
}

fn uuid_like() -> String {
    let mut rng = fastrand::Rng::new();
    (0..16).map(|_| char::from(b'a' + rng.u8(0..26))).collect()
}

#[tokio::test]
async fn sqlite_findings_and_boundaries_read_back_exactly() {
    let (open, _dir) = sqlite();
    findings_and_boundaries(open).await;
}

#[tokio::test]
async fn postgres_findings_and_boundaries_read_back_exactly() {
    let (open, _schema) = postgres();
    findings_and_boundaries(open).await;
}

#[tokio::test]
async fn sqlite_random_amounts_across_the_range_read_back_exactly() {
    let (open, _dir) = sqlite();
    random_amounts(open, 2026, 40).await;
}

#[tokio::test]
async fn postgres_random_amounts_across_the_range_read_back_exactly() {
    let (open, _schema) = postgres();
    random_amounts(open, 9, 40).await;
}
