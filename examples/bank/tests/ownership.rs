//! One owner per SQLite file, with real `bank` processes: a second server on the same file
//! is refused at start (exit code 3, a clear message) while read-only commands work beside
//! the first; and an inline-view rebuild killed midway (SIGKILL) is detected: the service
//! refuses to start on the incomplete view (exit code 4) until `rebuild-views
//! --include-inline` has redone it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use factum_core::CqrsContext;
use factum_testing::http::fetch;
use factum_testing::server::Server;
use reqwest::Method;
use serde_json::json;

const BANK: &str = env!("CARGO_BIN_EXE_bank");

fn bank(store: &str, args: &[&str]) -> Output {
    Command::new(BANK)
        .args(["--store", store, "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_file_is_refused_and_read_only_commands_work_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    let first = Server::start(BANK, &["--listen", "127.0.0.1:0", "--store", &store], &[]);
    let client = reqwest::Client::new();
    let open = async |url: String| {
        let body = r#"{"type": "OpenAccount", "owner": "Ann", "initial_balance": 5}"#;
        let reply = fetch(&client, Method::POST, &url, Some(body), &[]).await;
        reply.unwrap().status
    };
    assert_eq!(open(first.url("/accounts/a-1")).await, 201);

    let second = bank(&store, &[]);
    assert_eq!(second.status.code(), Some(3), "{second:?}");
    let message = text(&second.stderr);
    assert!(
        message.contains("in use by another serving process")
            && message.contains(&format!("pid {}", first.id())),
        "{message}"
    );
    let rebuild_inline = bank(&store, &["rebuild-views", "--include-inline"]);
    assert_eq!(rebuild_inline.status.code(), Some(3), "{rebuild_inline:?}");

    // Beside it: the status, and rebuilding the asynchronous projections.
    let status = bank(&store, &["status"]);
    assert!(status.status.success(), "{status:?}");
    assert!(
        text(&status.stdout).contains("head: 1"),
        "{}",
        text(&status.stdout)
    );
    let rebuild = bank(&store, &["rebuild-views"]);
    assert!(rebuild.status.success(), "{rebuild:?}");
    assert!(text(&rebuild.stdout).contains("movements: rebuilt from 1 events"));

    // The first still serves; once it is gone (killed: the OS drops its lock), another may.
    assert_eq!(open(first.url("/accounts/a-2")).await, 201);
    first.kill().unwrap();
    let next = Server::start(BANK, &["--listen", "127.0.0.1:0", "--store", &store], &[]);
    let url = next.url("/accounts/a-2");
    let state = fetch(&client, Method::GET, &url, None, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(state["version"], 1);
}

/// Fills a store with `accounts` accounts of `deposits + 1` events each, through the bank's
/// own engine (so the inline view is right to begin with).
async fn fill(store: &str, accounts: usize, deposits: usize) {
    let store = factum::open_store(store).await.unwrap();
    let bank =
        Arc::new(bank::http::Bank::with_config(store, factum::EngineConfig::default()).unwrap());
    let open: bank::domain::OpenAccountCommand = serde_json::from_value(
        json!({"type": "OpenAccount", "owner": "Rita", "initial_balance": 0}),
    )
    .unwrap();
    let deposit: bank::domain::AccountCommand =
        serde_json::from_value(json!({"type": "Deposit", "amount": 1})).unwrap();
    let tasks: Vec<_> = (0..accounts)
        .map(|a| {
            let (bank, open, deposit) = (bank.clone(), open.clone(), deposit.clone());
            tokio::spawn(async move {
                let id = format!("r-{a:04}");
                let ctx = CqrsContext::new();
                bank.engine()
                    .create_with_id(&id, &open, &ctx)
                    .await
                    .unwrap();
                for _ in 0..deposits {
                    bank.engine().update(&id, &deposit, &ctx).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inline_rebuild_killed_midway_stops_the_service_from_starting_until_it_is_redone() {
    const ACCOUNTS: usize = 400;
    const DEPOSITS: usize = 49;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bank.db").display());
    fill(&store, ACCOUNTS, DEPOSITS).await;
    let head = (ACCOUNTS * (DEPOSITS + 1)) as u64;

    // Watch the rebuild through the store from this process, and kill it once it has
    // written part of the view.
    let watcher = factum::open_store(&store).await.unwrap();
    let views = watcher.clone().into_view_store().unwrap();
    let mut rebuild = Command::new(BANK)
        .args(["--store", &store, "rebuild-views", "--include-inline"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let killed_at = loop {
        let at = views
            .projection_checkpoint("accounts")
            .await
            .unwrap()
            .position;
        if at > 0 && at < head {
            rebuild.kill().unwrap();
            rebuild.wait().unwrap();
            break at;
        }
        assert!(
            rebuild.try_wait().unwrap().is_none(),
            "the rebuild finished before it could be interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let left = views
        .projection_checkpoint("accounts")
        .await
        .unwrap()
        .position;
    assert!(
        left < head,
        "killed at {killed_at}, the view is at {left} of {head}"
    );
    // The view is wrong, silently: fewer events folded in than stored.
    let all = factum_core::ViewQuery {
        page_size: 1000,
        ..factum_core::ViewQuery::default()
    };
    let fields = <bank::views::AccountSummary as factum_core::View>::fields();
    let page = views.query_views("accounts", &all, fields).await.unwrap();
    let folded: u64 = page.items.iter().map(|record| record.version).sum();
    assert!(
        folded < head,
        "the killed rebuild folded {folded} of {head} events"
    );
    drop(views);
    drop(watcher);

    // The service refuses to start on it, saying what to do; the status says so too.
    let refused = bank(&store, &[]);
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    assert!(
        text(&refused.stderr).contains("rebuild-views --include-inline"),
        "{}",
        text(&refused.stderr)
    );
    assert!(text(&bank(&store, &["status"]).stdout).contains("REBUILD UNFINISHED"));

    // Redone, the view is whole again and the service starts.
    let redone = bank(&store, &["rebuild-views", "--include-inline"]);
    assert!(redone.status.success(), "{redone:?}");
    assert!(text(&redone.stdout).contains(&format!("accounts: rebuilt from {head} events")));
    let service = Server::start(BANK, &["--listen", "127.0.0.1:0", "--store", &store], &[]);
    let client = reqwest::Client::new();
    let view = async |path: &str| {
        let url = service.url(path);
        fetch(&client, Method::GET, &url, None, &[])
            .await
            .unwrap()
            .json()
    };
    let page = view("/views/accounts?page_size=1").await;
    assert_eq!(page["total"], ACCOUNTS, "{page}");
    let one = view("/views/accounts/r-0123").await;
    assert_eq!(one["version"], DEPOSITS + 1, "{one}");
}
