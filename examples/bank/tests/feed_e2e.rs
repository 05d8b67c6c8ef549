//! The global feed of the real `bank` binary on a SQLite file: `GET /events` pages and
//! filters, bad parameters refused as structured 400s; and the SSE stream read across a
//! SIGKILL and restart of the service with `Last-Event-ID`, with no gap and no duplicate, on
//! a SQLite file and on PostgreSQL (a database of its own, dropped after; a missing server
//! fails the test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use factum_testing::database::TestDatabase;
use factum_testing::http::{column, fetch};
use factum_testing::server::Server;
use reqwest::Method;
use serde_json::Value;

fn start(store: &str) -> Server {
    Server::on_store(env!("CARGO_BIN_EXE_bank"), store)
}

async fn post(client: &reqwest::Client, url: &str, body: &str) {
    let reply = fetch(client, Method::POST, url, Some(body), &[])
        .await
        .unwrap();
    assert!(reply.status.is_success(), "{} {}", reply.status, reply.text);
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let reply = fetch(client, Method::GET, url, None, &[]).await.unwrap();
    (
        reply.status.as_u16(),
        serde_json::from_str(&reply.text).unwrap(),
    )
}

async fn open_and_deposit(client: &reqwest::Client, bank: &Server, id: &str, deposits: usize) {
    let url = bank.url(&format!("/accounts/{id}"));
    post(
        client,
        &url,
        r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 10.0}"#,
    )
    .await;
    for _ in 0..deposits {
        post(client, &url, r#"{"type": "Deposit", "amount": 1.5}"#).await;
    }
}

/// One SSE message: (id, event, data).
type Message = (u64, String, Value);

/// Reads `count` messages from an open SSE response.
async fn read_messages(response: &mut reqwest::Response, count: usize) -> Vec<Message> {
    let mut buffer = String::new();
    let mut messages = Vec::new();
    while messages.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<u64>().unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            // Keep-alive comments carry no id.
            if let Some(id) = id {
                messages.push((id, event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    messages
}

async fn open_stream(client: &reqwest::Client, url: &str, last: Option<u64>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_pages_filters_and_refuses_bad_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    let client = reqwest::Client::new();
    let bank = start(&store);
    open_and_deposit(&client, &bank, "acc-1", 3).await;
    open_and_deposit(&client, &bank, "acc-2", 1).await;

    let (status, page) = get_json(&client, &bank.url("/events?limit=3")).await;
    assert_eq!(status, 200, "{page}");
    let positions = column(&page["events"], "position", Value::as_u64);
    assert_eq!((positions, page["next"].as_u64()), (vec![1, 2, 3], Some(3)));
    let first = &page["events"][0];
    assert_eq!(first["aggregate_id"], "acc-1");
    assert_eq!(first["version"], 1);
    assert!(
        first["event_id"].is_string()
            && first["metadata"].is_object()
            && first["payload"].is_object(),
        "{first}"
    );
    let (_, rest) = get_json(&client, &bank.url("/events?after=3&limit=100")).await;
    let positions = column(&rest["events"], "position", Value::as_u64);
    assert_eq!((positions, rest["next"].as_u64()), (vec![4, 5, 6], Some(6)));
    let (_, end) = get_json(&client, &bank.url("/events?after=6")).await;
    assert_eq!(
        (
            end["events"].as_array().unwrap().len(),
            end["next"].as_u64()
        ),
        (0, Some(6))
    );

    // Filters: one aggregate's opening only, across aggregates.
    let opened = first["event_type"].as_str().unwrap().to_owned();
    let (_, openings) = get_json(&client, &bank.url(&format!("/events?event_type={opened}"))).await;
    let ids: Vec<&str> = openings["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["aggregate_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["acc-1", "acc-2"]);
    let (_, typed) = get_json(&client, &bank.url("/events?aggregate_type=nothing")).await;
    assert_eq!(
        (
            typed["events"].as_array().unwrap().len(),
            typed["next"].as_u64()
        ),
        (0, Some(6))
    );
    let (_, nobody) = get_json(&client, &bank.url("/events?user=nobody&correlation_id=x")).await;
    assert!(nobody["events"].as_array().unwrap().is_empty());

    for bad in [
        "limit=0",
        "limit=1001",
        "after=-1",
        "after=abc",
        // Above what a store can hold (positions are signed 64-bit there).
        "after=9223372036854775808",
        "colour=red",
        "event_type=",
        "limit=1e3",
    ] {
        let (status, body) = get_json(&client, &bank.url(&format!("/events?{bad}"))).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{bad}: {body}"
        );
        let (status, _) = get_json(&client, &bank.url(&format!("/events/stream?{bad}"))).await;
        assert_eq!(status, 400, "stream {bad}");
    }
    for bad in ["x", "9223372036854775808"] {
        let reply = client
            .get(bank.url("/events/stream"))
            .header("Last-Event-ID", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 400, "Last-Event-ID {bad}");
    }
    // The document names the routes.
    let (_, doc) = get_json(&client, &bank.url("/openapi.json")).await;
    for path in [
        "/events",
        "/events/stream",
        "/subscriptions",
        "/subscriptions/{name}/replay-parked",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let (status, subscriptions) = get_json(&client, &bank.url("/subscriptions")).await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = subscriptions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("movements", "projection"), ("bank.transfers", "handler")],
        "{subscriptions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_resumes_across_a_sigkill_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    resumes_across_a_sigkill(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_the_stream_resumes_across_a_sigkill_with_no_gap_and_no_duplicate() {
    let database = TestDatabase::create("factum_feed_sse").await;
    resumes_across_a_sigkill(&database.url()).await;
}

async fn resumes_across_a_sigkill(store: &str) {
    let client = reqwest::Client::new();
    let bank = start(store);
    open_and_deposit(&client, &bank, "acc-1", 4).await;

    // Live: the stream sends what is there, then what comes.
    let mut stream = open_stream(&client, &bank.url("/events/stream"), None).await;
    let mut seen = read_messages(&mut stream, 3).await;
    open_and_deposit(&client, &bank, "acc-2", 2).await;
    let more = read_messages(&mut stream, 2).await;
    seen.extend(more);
    drop(stream);
    bank.kill().unwrap();

    let bank = start(store);
    open_and_deposit(&client, &bank, "acc-3", 1).await;
    let last = seen.last().unwrap().0;
    let mut stream = open_stream(&client, &bank.url("/events/stream"), Some(last)).await;
    let (_, all) = get_json(&client, &bank.url("/events?limit=1000")).await;
    let positions = column(&all["events"], "position", Value::as_u64);
    let total = positions.len();
    assert_eq!(total, 10, "{all}");
    seen.extend(read_messages(&mut stream, total - seen.len()).await);

    // Every stored event once, in order (positions are dense on SQLite, not on PostgreSQL).
    let ids: Vec<u64> = seen.iter().map(|m| m.0).collect();
    assert_eq!(ids, positions, "a gap or a duplicate");
    for ((id, event, data), expected) in seen.iter().zip(all["events"].as_array().unwrap()) {
        assert_eq!(data, expected, "message {id}");
        assert_eq!(event, expected["event_type"].as_str().unwrap());
    }
    // `?after=` resumes the same way.
    let mut stream = open_stream(
        &client,
        &bank.url(&format!("/events/stream?after={}", positions[total - 2])),
        None,
    )
    .await;
    assert_eq!(
        read_messages(&mut stream, 1).await[0].0,
        positions[total - 1]
    );
}
