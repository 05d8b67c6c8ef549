//! The crash test: a child process appends through the engine as fast as it can and prints
//! each acknowledged command; the parent kills it with SIGKILL at a random moment, reopens
//! the store and checks that every acknowledged event is there, that positions and versions
//! are contiguous, that no command is partly stored, and that the inline view written with
//! the events agrees with them exactly. Twenty cycles on one file, so each
//! child also starts from a store a crash left behind.
//!
//! The child is this same test binary, re-run with the `crash_child` test selected and the
//! database path in an environment variable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use factum_core::{
    Aggregate, CqrsCommandEngine, CqrsContext, EngineConfig, EventEnvelope, EventStore,
    SnapshotPolicy, View, ViewKind, ViewStore,
};
use factum_sqlite::SqliteEventStore;
use factum_testing::counter::{Counter, CounterCommand, CounterEvent};
use serde::{Deserialize, Serialize};

const DB_ENV: &str = "FACTUM_CRASH_TEST_DB";
const CYCLES: usize = 20;
const TASKS: usize = 4;

/// Each counter's number of steps, kept inline: after any crash it must equal what the stored
/// events say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StepCount {
    steps: u64,
}

impl View for StepCount {
    const TYPE: &'static str = "crash_step_counts";
    const KIND: ViewKind = ViewKind::PerAggregate;
    type Aggregate = Counter;
    fn update(&self, envelope: &EventEnvelope<CounterEvent>) -> Option<Self> {
        let steps = match envelope.payload {
            CounterEvent::Step { .. } => self.steps + 1,
            CounterEvent::Created | CounterEvent::Added { .. } => self.steps,
        };
        Some(Self { steps })
    }
}

/// The child: appends from a few tasks until killed, printing `ACK id version request` for
/// every command the engine acknowledged.
#[test]
#[ignore = "the child process of `acknowledged_appends_survive_sigkill`"]
fn crash_child() {
    let path = std::env::var(DB_ENV).expect("the database path in FACTUM_CRASH_TEST_DB");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SqliteEventStore::open(&path).await.unwrap());
        let config = EngineConfig::default()
            .with_snapshot_policy(SnapshotPolicy::EveryNEvents(10.try_into().unwrap()));
        let engine = CqrsCommandEngine::<Counter>::builder(store)
            .config(config)
            .inline_view::<StepCount>()
            .build()
            .unwrap();
        let run = fastrand::u64(..);
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("counter-{task}");
                if engine.load(&id).await.unwrap().is_none() {
                    let ctx = CqrsContext::new().with_request_id(format!("{run}-{task}-create"));
                    let created = engine.create_with_id(&id, &(), &ctx).await.unwrap();
                    ack(&id, created.version, ctx.request_id());
                }
                for seq in 0u64.. {
                    let ctx = CqrsContext::new().with_request_id(format!("{run}-{task}-{seq}"));
                    let of = 2 + u32::from(seq % 2 == 1);
                    let outcome = engine
                        .update(&id, &CounterCommand::Steps(of), &ctx)
                        .await
                        .unwrap();
                    ack(&id, outcome.version, ctx.request_id());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn ack(id: &str, version: u64, request_id: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {id} {version} {request_id}").unwrap();
    out.flush().unwrap();
}

struct Ack {
    aggregate_id: String,
    version: u64,
    request_id: String,
}

/// Runs one child until a random moment after its first acknowledgement, kills it with
/// SIGKILL, and returns every acknowledgement it printed.
fn run_and_kill(path: &Path) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env(DB_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ACK ") && lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    match received.recv_timeout(Duration::from_secs(20)) {
        Ok(first) => acked.push(first),
        Err(error) => {
            let _ = child.kill();
            panic!("the child acknowledged nothing: {error}");
        }
    }
    std::thread::sleep(Duration::from_millis(fastrand::u64(0..250)));
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush, no clean shutdown.
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    reader.join().unwrap();
    acked.extend(received.try_iter());
    acked
        .iter()
        .map(|line| {
            let mut parts = line.split(' ').skip(1);
            let (Some(id), Some(version), Some(request)) =
                (parts.next(), parts.next(), parts.next())
            else {
                panic!("malformed line {line:?}");
            };
            Ack {
                aggregate_id: id.to_owned(),
                version: version.parse().unwrap(),
                request_id: request.to_owned(),
            }
        })
        .collect()
}

/// Reopens the store and checks it against every acknowledgement so far.
async fn check(path: &Path, acked: &[Ack]) -> usize {
    let store = SqliteEventStore::open(path).await.unwrap();
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "positions are contiguous from 1"
    );

    let mut streams: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut commands: HashMap<String, Vec<(u64, CounterEvent)>> = HashMap::new();
    for event in &all {
        streams
            .entry(&event.aggregate_id)
            .or_default()
            .push(event.version);
        let request = event.parse_metadata().unwrap().request_id.unwrap();
        let payload: CounterEvent = serde_json::from_str(&event.payload).unwrap();
        commands
            .entry(request)
            .or_default()
            .push((event.version, payload));
    }
    for (id, versions) in &streams {
        assert_eq!(
            *versions,
            (1..=versions.len() as u64).collect::<Vec<_>>(),
            "{id}: versions are contiguous"
        );
        let record = store
            .get_view(StepCount::TYPE, id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id}: the inline view record is missing"));
        let steps = all
            .iter()
            .filter(|e| e.aggregate_id == *id && e.event_type == "Step")
            .count() as u64;
        assert_eq!(
            (record.decode::<StepCount>().unwrap().steps, record.version),
            (steps, versions.len() as u64),
            "{id}: the inline view matches the stored events"
        );
    }
    for (request, events) in &commands {
        let parts: Vec<u32> = events
            .iter()
            .filter_map(|(_, e)| match e {
                CounterEvent::Step { part, .. } => Some(*part),
                CounterEvent::Created | CounterEvent::Added { .. } => None,
            })
            .collect();
        if let Some((_, CounterEvent::Step { of, .. })) = events.first() {
            assert_eq!(
                parts,
                (1..=*of).collect::<Vec<_>>(),
                "command {request} is stored whole"
            );
        }
        assert!(
            events.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "command {request}'s events are consecutive"
        );
    }
    for ack in acked {
        let events = &commands
            .get(&ack.request_id)
            .unwrap_or_else(|| panic!("acknowledged command {} is lost", ack.request_id));
        assert_eq!(
            events.last().map(|(v, _)| *v),
            Some(ack.version),
            "command {} ends at the acknowledged version",
            ack.request_id
        );
        let current = store
            .stream_version(Counter::TYPE, &ack.aggregate_id)
            .await
            .unwrap();
        assert!(current >= ack.version);
    }
    store.close().await;
    all.len()
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut acked = Vec::new();
    let mut stored = 0;
    for cycle in 0..CYCLES {
        let new = run_and_kill(&path);
        assert!(!new.is_empty());
        acked.extend(new);
        let now = runtime.block_on(check(&path, &acked));
        assert!(now >= stored, "cycle {cycle}: events disappeared");
        stored = now;
    }
    println!(
        "{CYCLES} kills: {} acknowledged commands, {stored} events stored, all checked, in {:.1?}",
        acked.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
