//! Three real `bank` processes on one PostgreSQL database (issue 5): 16 clients spread across
//! the nodes deposit 0.01 a hundred times each into one account. Every reply must be 200, no
//! deposit may be lost or applied twice, and every node must then read the exact balance and
//! version, from the events and from the inline accounts view; the movements projection, run
//! under a lease by one node at a time against one checkpoint, must end with exactly one
//! record per event, read the same from every node.
//!
//! Correctness here can only come from the database: each node serializes commands on an
//! account in its own process, but the three processes only share PostgreSQL, so concurrent
//! deposits from different nodes conflict there and are retried by each node's engine.
//!
//! The test owns a database of its own (`TestDatabase`: `factum_multinode_...`, dropped
//! `WITH (FORCE)` by a guard, also when the test fails) on the server of
//! `FACTUM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), and fails
//! when that server is missing. The nodes are killed when their guards drop.
//!
//! The same runs with two nodes on one MongoDB database (issue 13), on the server of
//! `factum_testing::mongo` (nx-27017 unless `MONGODB_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factum_testing::database::TestDatabase;
use factum_testing::http::{Reply, fetch};
use factum_testing::server::Server;
use reqwest::Method;
use serde_json::{Value, json};

const CLIENTS: usize = 16;
const DEPOSITS_PER_CLIENT: usize = 100;
const ACCOUNT: &str = "acc-multi";

/// What a node's debug log of `factum_postgres` showed.
#[derive(Default)]
struct LogCounts {
    /// Appends that lost to another node's append (then retried by the engine).
    append_conflicts: AtomicU64,
    /// Projection batches refused because another node's runner moved the checkpoint.
    projection_refusals: AtomicU64,
}

/// A running `bank` process, killed (SIGKILL) and reaped when dropped.
struct Node {
    server: Server,
    logs: Arc<LogCounts>,
}

impl Node {
    /// Starts a process; [`Node::ready`] waits until it listens. Starting all nodes before
    /// waiting makes them migrate the fresh database at the same moment.
    fn spawn(store: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_bank"))
            // One node can keep winning the race for the account while another retries
            // (its catch-up read makes its window longer): a generous retry budget keeps
            // every deposit acknowledged, which is what this test is about.
            .args([
                "--listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--max-attempts",
                "2000",
                "--request-timeout",
                "300",
            ])
            .env("RUST_LOG", "warn,factum_postgres=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the bank binary starts")
    }

    /// Reads the address the process prints, and follows its log on a thread (counting
    /// conflicts, passing warnings and errors on to the test's output).
    fn ready(mut child: Child, index: usize) -> Self {
        let logs = Arc::new(LogCounts::default());
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("append conflict") {
                        logs.append_conflicts.fetch_add(1, Ordering::Relaxed);
                    } else if line.contains("projection batch refused") {
                        logs.projection_refusals.fetch_add(1, Ordering::Relaxed);
                    } else if !line.contains("DEBUG") {
                        eprintln!("node {index}: {line}");
                    }
                }
            });
        }
        let server = Server::ready("bank", child);
        Self { server, logs }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> (u16, Value) {
    let reply = fetch(client, Method::POST, url, Some(body), &[])
        .await
        .unwrap();
    (reply.status.as_u16(), text_or_json(reply))
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let reply = fetch(client, Method::GET, url, None, &[]).await.unwrap();
    (reply.status.as_u16(), text_or_json(reply))
}

/// The body as JSON, or as a JSON string when it is not JSON.
fn text_or_json(reply: Reply) -> Value {
    serde_json::from_str(&reply.text).unwrap_or(Value::String(reply.text))
}

/// Waits until a node's movements projection has applied every event up to `head`.
async fn movements_caught_up(client: &reqwest::Client, node: &Node, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, lag) = get(client, &node.url("/projections/movements")).await;
        assert_eq!(status, 200, "{lag}");
        if lag["behind"] == 0 && lag["head"].as_u64().unwrap_or(0) >= head {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the movements projection never caught up: {lag}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_sixteen_clients_one_account_lose_nothing() {
    // Declared first, dropped last: after every node is killed.
    let database = TestDatabase::create("factum_multinode").await;
    sixteen_clients_on_nodes(&database.url(), 3).await;
    drop(database);
}

// Known defect, open in issue 13: on MongoDB an inline view can lose an update when two
// nodes append to one aggregate (a run ended with the state exact at version 1601 and the
// accounts view at version 1601 one deposit short): the view change is applied after the
// commit document, from a view record the other node had not finished writing. Events and
// states are exact; run `cargo test -p bank --test multinode -- --ignored` to see it.
#[ignore = "known defect (issue 13): MongoDB inline views can lose an update across two nodes"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_mongodb_sixteen_clients_one_account_lose_nothing() {
    sixteen_clients_on_nodes(&factum_testing::mongo::database_url("bank_multinode"), 2).await;
}

/// 16 clients x 100 deposits on one account through `nodes` processes on `store`.
async fn sixteen_clients_on_nodes(store: &str, nodes: usize) {
    let children: Vec<Child> = (0..nodes).map(|_| Node::spawn(store)).collect();
    let nodes: Arc<Vec<Node>> = Arc::new(
        children
            .into_iter()
            .enumerate()
            .map(|(index, child)| Node::ready(child, index))
            .collect(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let (status, opened) = post(
        &client,
        &nodes[0].url(&format!("/accounts/{ACCOUNT}")),
        r#"{"type": "OpenAccount", "owner": "Multi", "initial_balance": 100.0}"#,
    )
    .await;
    assert_eq!(
        (status, opened),
        (
            201,
            json!({"id": ACCOUNT, "owner": "Multi", "balance": 100.0, "version": 1})
        )
    );

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let nodes = nodes.clone();
            let count = nodes.len();
            tokio::spawn(async move {
                // A client of its own (its own connections), on node c % nodes.
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let url = nodes[c % count].url(&format!("/accounts/{ACCOUNT}"));
                let mut versions = Vec::with_capacity(DEPOSITS_PER_CLIENT);
                let mut failures = Vec::new();
                let mut slowest = Duration::ZERO;
                // Every deposit is sent even after a failure, so a failing run still reports
                // how many failed and how contended the nodes were.
                for d in 0..DEPOSITS_PER_CLIENT {
                    let sent = Instant::now();
                    let (status, reply) =
                        post(&client, &url, r#"{"type": "Deposit", "amount": 0.01}"#).await;
                    slowest = slowest.max(sent.elapsed());
                    match reply["version"].as_u64() {
                        Some(version) if status == 200 => versions.push(version),
                        _ => failures.push(format!("client {c}, deposit {d}: {status} {reply}")),
                    }
                }
                (versions, failures, slowest)
            })
        })
        .collect();
    let mut versions = Vec::with_capacity(CLIENTS * DEPOSITS_PER_CLIENT);
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for client in clients {
        let (mine, failed, slow) = client.await.unwrap();
        // A client's own deposits are acknowledged in order.
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        versions.extend(mine);
        failures.extend(failed);
        slowest = slowest.max(slow);
    }
    let elapsed = started.elapsed();
    let deposits = (CLIENTS * DEPOSITS_PER_CLIENT) as u64;
    let counts = |count: fn(&LogCounts) -> &AtomicU64| -> Vec<u64> {
        nodes
            .iter()
            .map(|n| count(&n.logs).load(Ordering::Relaxed))
            .collect()
    };
    eprintln!(
        "multinode: {deposits} deposits from {CLIENTS} clients on {} nodes of {store} in {elapsed:.2?} \
         ({:.0}/s, slowest reply {slowest:.2?}), {} not acknowledged; append conflicts \
         retried per node {:?}",
        nodes.len(),
        deposits as f64 / elapsed.as_secs_f64(),
        failures.len(),
        counts(|l| &l.append_conflicts),
    );
    // A refusal (409) stores nothing; anything else leaves the outcome unknown.
    let unknown: Vec<&String> = failures.iter().filter(|f| !f.contains(": 409 ")).collect();
    assert!(unknown.is_empty(), "deposits failed: {unknown:#?}");

    // Each acknowledged deposit got its own version: none lost, none applied twice. (Checked
    // before the 200s are asserted, so a run with refusals still shows that nothing was lost.)
    let acknowledged = versions.len() as u64;
    let last = 1 + acknowledged;
    versions.sort_unstable();
    assert_eq!(versions, (2..=last).collect::<Vec<u64>>());
    // In cents, as the bank keeps money.
    let balance = (10_000 + acknowledged) as f64 / 100.0;
    let expected = json!({"id": ACCOUNT, "owner": "Multi", "balance": balance, "version": last});
    for (index, node) in nodes.iter().enumerate() {
        let account = get(&client, &node.url(&format!("/accounts/{ACCOUNT}"))).await;
        assert_eq!(account, (200, expected.clone()), "node {index}, state");
        // The inline view was written with each deposit's event: exact at once, everywhere.
        let view = get(&client, &node.url(&format!("/views/accounts/{ACCOUNT}"))).await;
        assert_eq!(view, (200, expected.clone()), "node {index}, accounts view");
        let (status, events) =
            get(&client, &node.url(&format!("/accounts/{ACCOUNT}/events"))).await;
        assert_eq!(status, 200);
        let events = events.as_array().unwrap();
        assert_eq!(events.len() as u64, last, "node {index}, events");
        assert_eq!(
            events
                .iter()
                .filter(|e| *e == &json!({"type": "MoneyDeposited", "amount": 0.01}))
                .count() as u64,
            acknowledged
        );
    }
    // One runner at a time (the lease), one checkpoint: one movement per event, none twice.
    for (index, node) in nodes.iter().enumerate() {
        movements_caught_up(&client, node, last).await;
        let (status, movements) = get(
            &client,
            &node.url(&format!("/accounts/{ACCOUNT}/movements?page_size=1")),
        )
        .await;
        assert_eq!(status, 200, "{movements}");
        assert_eq!(movements["total"], last, "node {index}, movements");
    }

    eprintln!(
        "multinode: movements batches refused per node (another runner moved the checkpoint) {:?}",
        counts(|l| &l.projection_refusals),
    );
    assert!(
        failures.is_empty(),
        "{} of {deposits} deposits were refused instead of acknowledged with 200 (nothing was \
         lost: the state above matched the acknowledged ones), first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    drop(nodes);
}
