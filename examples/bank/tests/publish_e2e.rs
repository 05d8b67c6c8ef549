//! The NATS JetStream outbox of the real `bank` binary (`--publish`), on the NATS server of
//! `FACTUM_TEST_NATS_URL` (default `nats://127.0.0.1:4222`) with a stream of each test's own
//! (`TestStream`, deleted when the test ends):
//!
//! - SIGKILLed while it publishes under load, then restarted, on SQLite and on PostgreSQL:
//!   every committed event is in the stream exactly once, in position order (and so in
//!   version order per aggregate);
//! - three processes on one PostgreSQL database, all with `--publish`: the publisher runs
//!   on exactly one (every node's `GET /subscriptions` names the same holder, and the stream
//!   holds each event once, in position order); SIGKILLed, another takes over within 5 s and
//!   no event is missed.
//!
//! A missing NATS or PostgreSQL server fails these tests; they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use factum_testing::database::TestDatabase;
use factum_testing::http::fetch;
use factum_testing::nats::TestStream;
use factum_testing::server::Server;
use reqwest::Method;
use serde_json::Value;

/// The publisher's subscription, as `GET /subscriptions` names it.
const PUBLISHER: &str = "factum.publisher.nats";

fn spawn(store: &str, stream: &TestStream) -> std::process::Child {
    let mut args = vec!["--listen", "127.0.0.1:0", "--store", store];
    let publish = stream.service_args();
    args.extend(publish.iter().map(String::as_str));
    Server::spawn(env!("CARGO_BIN_EXE_bank"), &args, &[])
}

fn start(store: &str, stream: &TestStream) -> Server {
    Server::ready("bank", spawn(store, stream))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let reply = fetch(client, Method::GET, url, None, &[]).await.unwrap();
    assert_eq!(reply.status.as_u16(), 200, "{url}: {}", reply.text);
    serde_json::from_str(&reply.text).unwrap()
}

/// The publisher's entry of a node's `GET /subscriptions`.
async fn publisher_status(client: &reqwest::Client, base: &str) -> Value {
    let all = get_json(client, &format!("{base}/subscriptions")).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == PUBLISHER)
        .unwrap_or_else(|| panic!("no publisher in {all}"))
        .clone()
}

/// Clients that open an account each and deposit into it until stopped, on the nodes of
/// `nodes` (changed as nodes die and start); a failed request (a node killed under it) is
/// tried again on the next node.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<Vec<(String, u64)>>>,
}

type Nodes = Arc<RwLock<Vec<String>>>;

impl Load {
    fn start(nodes: &Nodes, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let clients = (0..clients)
            .map(|c| {
                let (nodes, stop, acknowledged) =
                    (nodes.clone(), stop.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let account = format!("acc-{c}");
                    let mut acked = Vec::new();
                    let mut opened = false;
                    let mut turn = c;
                    while !stop.load(Ordering::Relaxed) {
                        let node = {
                            let nodes = nodes.read().unwrap();
                            turn += 1;
                            (!nodes.is_empty()).then(|| nodes[turn % nodes.len()].clone())
                        };
                        let Some(node) = node else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let body = if opened {
                            r#"{"type": "Deposit", "amount": 1.25}"#
                        } else {
                            r#"{"type": "OpenAccount", "owner": "Load", "initial_balance": 10.0}"#
                        };
                        let url = format!("{node}/accounts/{account}");
                        match fetch(&client, Method::POST, &url, Some(body), &[]).await {
                            Ok(reply) if reply.status.is_success() => {
                                opened = true;
                                acked.push((
                                    account.clone(),
                                    reply.json()["version"].as_u64().unwrap(),
                                ));
                                acknowledged.fetch_add(1, Ordering::Relaxed);
                            }
                            // Opened by a request whose reply the kill lost.
                            Ok(reply) if reply.status == 409 && !opened => opened = true,
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                    acked
                })
            })
            .collect();
        Self {
            stop,
            acknowledged,
            clients,
        }
    }

    /// Waits until `more` commands more than now were acknowledged.
    async fn wait_for(&self, more: u64) {
        let target = self.acknowledged.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acknowledged.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients: every (account, version) a reply acknowledged.
    async fn stop(self) -> Vec<(String, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for client in self.clients {
            acked.extend(client.await.unwrap());
        }
        acked
    }
}

/// Every event of the log, by position, through `GET /events`.
async fn feed(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = get_json(client, &format!("{base}/events?after={after}&limit=1000")).await;
        let batch = page["events"].as_array().unwrap();
        if batch.is_empty() {
            return events;
        }
        events.extend(batch.iter().cloned());
        after = page["next"].as_u64().unwrap();
    }
}

/// Waits until the publisher is caught up with the log's head, then checks that the stream
/// holds every event of the log once, in position order, and every acknowledged command.
async fn assert_the_stream_is_the_log(
    client: &reqwest::Client,
    base: &str,
    stream: &TestStream,
    acked: &[(String, u64)],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = publisher_status(client, base).await;
        if status["lag"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the publisher never caught up: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = feed(client, base).await;
    let messages = stream.messages().await;
    assert_eq!(
        messages
            .iter()
            .map(|m| m.event_id.as_str())
            .collect::<Vec<_>>(),
        events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        "the stream is not the log, once each in position order ({} messages, {} events)",
        messages.len(),
        events.len()
    );
    for (message, event) in messages.iter().zip(&events) {
        assert_eq!(
            (
                message.aggregate_id.as_str(),
                message.version,
                message.position
            ),
            (
                event["aggregate_id"].as_str().unwrap(),
                event["version"].as_u64().unwrap(),
                event["position"].as_u64().unwrap()
            )
        );
        assert!(message.subject.starts_with(stream.prefix()), "{message:?}");
    }
    let stored: HashSet<(String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["aggregate_id"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    let lost: Vec<_> = acked.iter().filter(|a| !stored.contains(a)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    eprintln!(
        "publish: {} events, {} acknowledged commands, all in the stream once, in order",
        events.len(),
        acked.len()
    );
}

async fn sigkilled_while_publishing_then_restarted(store: &str) {
    let stream = TestStream::new().await;
    let client = reqwest::Client::new();
    let mut bank = start(store, &stream);
    let nodes: Nodes = Arc::new(RwLock::new(vec![bank.url("")]));
    let load = Load::start(&nodes, 4);
    for kill in 0..3 {
        load.wait_for(150).await;
        let status = publisher_status(&client, &bank.url("")).await;
        nodes.write().unwrap().clear();
        bank.kill().unwrap();
        eprintln!(
            "publish: kill {kill}, the publisher's lag {}",
            status["lag"]
        );
        bank = start(store, &stream);
        *nodes.write().unwrap() = vec![bank.url("")];
    }
    load.wait_for(100).await;
    let acked = load.stop().await;
    assert_the_stream_is_the_log(&client, &bank.url(""), &stream, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_every_event_is_published_once_across_sigkills() {
    let database = TestDatabase::create("factum_publish_kill").await;
    sigkilled_while_publishing_then_restarted(&database.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_every_event_is_published_once_across_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    sigkilled_while_publishing_then_restarted(&store).await;
}

/// Which of `nodes` (by index, `None` for a dead one) holds the publisher's lease: exactly
/// one says it does, and every node names the same holder, that one.
async fn the_holder(client: &reqwest::Client, nodes: &[Option<Server>]) -> Option<usize> {
    let mut holders = Vec::new();
    let mut names = HashSet::new();
    for (index, node) in nodes.iter().enumerate() {
        let Some(node) = node else { continue };
        let lease = publisher_status(client, &node.url("")).await["lease"].clone();
        assert!(
            lease.is_object(),
            "the publisher runs under no lease: {lease}"
        );
        if lease["held_here"] == true {
            holders.push(index);
        }
        names.insert(lease["holder"].as_str().map(str::to_owned));
    }
    assert!(
        holders.len() <= 1,
        "several nodes run the publisher: {holders:?}"
    );
    let holder = *holders.first()?;
    let address = nodes[holder].as_ref().unwrap().address().to_owned();
    assert!(
        names.len() == 1
            && names
                .iter()
                .all(|n| n.as_deref().is_some_and(|n| n.contains(&address))),
        "the nodes do not agree that {address} holds the lease: {names:?}"
    );
    Some(holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_publisher_and_a_takeover_within_five_seconds() {
    let database = TestDatabase::create("factum_publish_nodes").await;
    let stream = TestStream::new().await;
    let client = reqwest::Client::new();
    let children: Vec<_> = (0..3).map(|_| spawn(&database.url(), &stream)).collect();
    let mut nodes: Vec<Option<Server>> = children
        .into_iter()
        .map(|child| Some(Server::ready("bank", child)))
        .collect();
    let urls: Nodes = Arc::new(RwLock::new(
        nodes.iter().flatten().map(|n| n.url("")).collect(),
    ));
    let load = Load::start(&urls, 6);
    let mut holder = None;
    for _ in 0..3 {
        load.wait_for(100).await;
        let now = the_holder(&client, &nodes).await;
        assert!(now.is_some(), "no node runs the publisher");
        assert!(
            holder.is_none() || holder == now,
            "the lease moved: {holder:?} {now:?}"
        );
        holder = now;
    }
    let holder = holder.unwrap();
    let before = stream.messages().await;
    assert!(!before.is_empty(), "nothing was published");

    // The holder dies; a command committed on another node right after must reach the
    // stream through another publisher within 5 s.
    let dead = nodes[holder].take().unwrap();
    let dead_url = dead.url("");
    urls.write().unwrap().retain(|u| *u != dead_url);
    dead.kill().unwrap();
    let killed = Instant::now();
    let survivor = nodes.iter().flatten().next().unwrap().url("");
    let reply = fetch(
        &client,
        Method::POST,
        &format!("{survivor}/accounts/after-kill"),
        Some(r#"{"type": "OpenAccount", "owner": "Late", "initial_balance": 1.0}"#),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let mut seen = before.last().unwrap().sequence;
    let takeover = loop {
        let new = stream.messages_after(seen).await;
        if new.iter().any(|m| m.aggregate_id == "after-kill") {
            break killed.elapsed();
        }
        seen = new.last().map_or(seen, |m| m.sequence);
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no node took over the publisher"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("publish: another node published a new event {takeover:.2?} after the kill");
    assert!(
        takeover < Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
    let successor = the_holder(&client, &nodes).await;
    assert!(
        successor.is_some_and(|s| s != holder),
        "no live node holds the lease: {successor:?}"
    );

    load.wait_for(100).await;
    let acked = load.stop().await;
    assert_the_stream_is_the_log(&client, &survivor, &stream, &acked).await;
    drop(nodes);
    drop(database);
}
