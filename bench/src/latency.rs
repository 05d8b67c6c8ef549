//! Commit-to-handler latency of a durable subscription: how long after an append returns
//! (the commit is durable) the subscription's handler is called with its event.
//!
//! The writer ([`write`]) notes the wall-clock time at which each command was acknowledged,
//! by the positions of its events; the handler ([`Arrivals`]) notes when it is called, by
//! position. Both use the system clock, so the two may live in two processes of one machine
//! (the PostgreSQL figures: a follower child process, woken by LISTEN/NOTIFY or by polling
//! only). Commands are paced (one every [`PACE`]) so that the figure is the latency of a
//! wake-up, not of a queue behind a burst.
//!
//! A handler can be called before the writer's command has returned (the commit is visible
//! to readers a moment before its caller hears of it): such an event counts as 0 ms and the
//! number of them is reported.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use async_trait::async_trait;
use bank::domain::Account;
use factum_core::store::StoredEvent;
use factum_core::{
    CqrsCommandEngine, EventHandler, EventStore, HandlerError, Projections, Subscription,
};
use serde::{Deserialize, Serialize};

use crate::driver::FactumDriver;
use crate::report::{Measurement, percentile_ms};
use crate::workload::{OPENING_CENTS, account_id};

/// The pause between two commands of the writer.
pub const PACE: Duration = Duration::from_millis(5);

/// The subscription's name.
pub const NAME: &str = "bench.latency";

/// Microseconds since the Unix epoch (the same clock in every process of the machine).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A handler that notes when it is called, by position.
#[derive(Default)]
pub struct Arrivals {
    seen: Mutex<Vec<(u64, i64)>>,
}

impl Arrivals {
    /// How many calls so far.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it was never called.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (position, µs since the epoch) of every call, in call order.
    pub fn calls(&self) -> Vec<(u64, i64)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `count` calls were made, for at most `deadline`.
    pub async fn wait_for(&self, count: usize, deadline: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + deadline;
        while self.len() < count {
            if Instant::now() > until {
                bail!("the handler saw {} of {count} events in time", self.len());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Arrivals {
    async fn handle(&self, event: &StoredEvent) -> Result<(), HandlerError> {
        let at = now_micros();
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((event.position, at));
        Ok(())
    }
}

/// The subscription over `store` with `handler`, in a runtime of its own.
pub fn subscriptions(
    store: Arc<dyn EventStore>,
    handler: Arc<Arrivals>,
) -> anyhow::Result<Projections> {
    let subscription = Subscription::new(NAME, store, handler)?;
    Ok(Projections::new().with_subscription(subscription))
}

/// The writer: `commands` commands (`accounts` opens, then 1-cent deposits round-robin)
/// through `engine`, `pause` after each; returns when each was acknowledged, by the positions
/// of its events (µs since the epoch).
pub async fn write(
    engine: CqrsCommandEngine<Account>,
    accounts: usize,
    commands: usize,
    pause: Duration,
) -> anyhow::Result<HashMap<u64, i64>> {
    let driver = FactumDriver::new(engine);
    let mut committed = HashMap::with_capacity(commands);
    for i in 0..commands {
        let id = account_id(i % accounts.max(1));
        let outcome = if i < accounts {
            driver.open_account(&id, OPENING_CENTS).await?
        } else {
            driver.deposit_into(&id, 1).await?
        };
        let at = now_micros();
        committed.extend(outcome.events.iter().map(|e| (e.position, at)));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(committed)
}

/// The latencies of `calls` against `committed`: p50/p99 (ms) as a measurement, correct when
/// every committed event was handled exactly once.
pub fn measure(committed: &HashMap<u64, i64>, calls: &[(u64, i64)]) -> Measurement {
    let mut latencies = Vec::with_capacity(calls.len());
    let mut early = 0usize;
    let mut handled: HashMap<u64, usize> = HashMap::new();
    for (position, at) in calls {
        *handled.entry(*position).or_default() += 1;
        if let Some(done) = committed.get(position) {
            let micros = at - done;
            if micros < 0 {
                early += 1;
            }
            latencies.push(u32::try_from(micros.max(0)).unwrap_or(u32::MAX));
        }
    }
    let twice = handled.values().filter(|n| **n > 1).count();
    let missed = committed
        .keys()
        .filter(|p| !handled.contains_key(p))
        .count();
    let correct = twice == 0 && missed == 0 && !committed.is_empty();
    let check = format!(
        "{} events committed, {} handled ({missed} missed, {twice} twice); {early} handled before their command returned (counted as 0 ms)",
        committed.len(),
        handled.len()
    );
    let p50 = percentile_ms(&mut latencies, 50.0).unwrap_or(f64::NAN);
    let mut m = Measurement::millis(Duration::from_secs_f64(p50.max(0.0) / 1e3), correct, check)
        .with_latencies(&mut latencies);
    m.value = p50;
    m.reps = vec![p50];
    m
}

/// One in-process run on a fresh SQLite file under `dir`: the writer's engine wakes the
/// subscription at each commit.
pub async fn sqlite_in_process(
    dir: &Path,
    accounts: usize,
    commands: usize,
) -> anyhow::Result<Measurement> {
    let tmp = tempfile::Builder::new()
        .prefix("factum-bench-")
        .tempdir_in(dir)?;
    let store: Arc<dyn EventStore> =
        Arc::new(factum_sqlite::SqliteEventStore::open(tmp.path().join("latency.db")).await?);
    let arrivals = Arc::new(Arrivals::default());
    let projections = subscriptions(store.clone(), arrivals.clone())?;
    let tasks = projections.spawn(Duration::from_millis(500));
    let engine = CqrsCommandEngine::<Account>::builder(store)
        .dispatcher(projections.waker::<Account>())
        .build()?;
    let written = write(engine, accounts, commands, PACE).await;
    let waited = arrivals.wait_for(commands, Duration::from_secs(60)).await;
    tasks.stop().await;
    let committed = written?;
    waited?;
    Ok(measure(&committed, &arrivals.calls()))
}

/// What the follower process writes back.
#[derive(Debug, Serialize, Deserialize)]
pub struct FollowerReport {
    /// (position, µs since the epoch) of every handler call.
    pub calls: Vec<(u64, i64)>,
}

/// The follower process: a subscription over the PostgreSQL schema `schema`, woken by
/// LISTEN/NOTIFY (`listen`) or by its poll alone; prints `ready` once it listens, then
/// writes its report to `out` after `expect` calls.
pub async fn follow_postgres(
    url: &str,
    schema: &str,
    listen: bool,
    poll: Duration,
    expect: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let store =
        Arc::new(factum_postgres::PostgresEventStore::connect_with_schema(url, schema).await?);
    let arrivals = Arc::new(Arrivals::default());
    let projections = subscriptions(store.clone(), arrivals.clone())?;
    let listener = if listen {
        let wake = projections.clone();
        Some(factum_postgres::CommitListener::start(&store, move || wake.wake()).await?)
    } else {
        None
    };
    let tasks = projections.spawn(poll);
    println!("ready");
    let waited = arrivals.wait_for(expect, Duration::from_secs(120)).await;
    tasks.stop().await;
    drop(listener);
    waited?;
    let report = FollowerReport {
        calls: arrivals.calls(),
    };
    std::fs::write(out, serde_json::to_string(&report)?).context("cannot write the report")?;
    Ok(())
}

/// How the PostgreSQL follower is woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// LISTEN/NOTIFY (with the poll as its fallback).
    Notify,
    /// Its poll alone, every `poll`.
    Poll,
}

/// The service runner's default poll interval (`--projection-poll-ms`).
pub const SERVICE_POLL: Duration = Duration::from_millis(500);

/// One run across two processes on a fresh schema: this process writes, a child process
/// (this binary, `--follow-schema`) follows.
pub async fn postgres_two_processes(
    url: &str,
    schema: &str,
    wake: Wake,
    accounts: usize,
    commands: usize,
) -> anyhow::Result<Measurement> {
    let store =
        Arc::new(factum_postgres::PostgresEventStore::connect_with_schema(url, schema).await?);
    let out = tempfile::NamedTempFile::new()?;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .args(["--pg-url", url, "--follow-schema", schema])
        .args(["--follow-expect", &commands.to_string()])
        .arg("--follow-out")
        .arg(out.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    if wake == Wake::Notify {
        command.arg("--follow-listen");
    }
    let mut child = command.spawn().context("cannot start the follower")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await??;
    if ready.trim() != "ready" {
        let _ = child.kill();
        bail!("the follower did not start: {ready:?}");
    }
    let engine = CqrsCommandEngine::<Account>::new(store.clone(), ());
    let written = write(engine, accounts, commands, PACE).await;
    if written.is_err() {
        let _ = child.kill();
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    store.pool().close().await;
    let committed = written?;
    if !status.success() {
        bail!("the follower failed: {status}");
    }
    let report: FollowerReport = serde_json::from_str(&std::fs::read_to_string(out.path())?)?;
    Ok(measure(&committed, &report.calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_count_misses_duplicates_and_early_calls() {
        let committed = HashMap::from([(1, 1_000), (2, 2_000), (3, 3_000)]);
        let m = measure(&committed, &[(1, 1_500), (2, 1_900), (2, 2_100)]);
        assert!(!m.correct, "{}", m.check);
        assert!(m.check.contains("1 missed, 1 twice"), "{}", m.check);
        assert!(m.check.contains("1 handled before"), "{}", m.check);

        let m = measure(&committed, &[(1, 1_500), (2, 2_700), (3, 4_000)]);
        assert!(m.correct, "{}", m.check);
        assert_eq!((m.p50_ms, m.p99_ms), (Some(0.7), Some(1.0)));
        assert_eq!(m.value, 0.7);
    }
}
