//! Replay speed: one aggregate with 10,000 events in a SQLite file, loaded through
//! `CqrsCommandEngine::load` with snapshots off, and read raw with `read_stream`.
//!
//! Run in release mode: `cargo run --release -p factum-sqlite --example replay [EVENTS] [REPS]`.
//! It prints the median and best of `REPS` loads, in events per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use factum_core::store::{AppendRequest, NewEvent};
use factum_core::{
    Aggregate, CommandHandler, CqrsCommandEngine, CqrsContext, CqrsError, EngineConfig, Event,
    EventStore, ExpectedVersion, SnapshotPolicy,
};
use factum_sqlite::SqliteEventStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum AccountEvent {
    Opened { owner: String, initial_cents: i64 },
    Deposited { cents: i64 },
}

impl Event for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "Opened",
            Self::Deposited { .. } => "Deposited",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    id: String,
    balance: i64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Event = AccountEvent;
    type Error = CqrsError;
    fn with_aggregate_id(id: String) -> Self {
        Self { id, balance: 0 }
    }
    fn aggregate_id(&self) -> &str {
        &self.id
    }
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { initial_cents, .. } => self.balance = *initial_cents,
            AccountEvent::Deposited { cents } => self.balance += cents,
        }
    }
}

impl CommandHandler for Account {
    type CreateCommand = ();
    type UpdateCommand = ();
    type Services = ();
    async fn handle_create(
        &self,
        _: &(),
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<AccountEvent>, CqrsError> {
        Ok(Vec::new())
    }
    async fn handle_update(
        &self,
        _: &(),
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<AccountEvent>, CqrsError> {
        Ok(Vec::new())
    }
}

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn summary(events: usize, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    format!(
        "median {:>10.0} events/s ({:.2} ms), best {:>10.0} events/s",
        rate(samples[samples.len() / 2]),
        samples[samples.len() / 2].as_secs_f64() * 1e3,
        rate(samples[0])
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = arg(1, 10_000).max(1);
    let reps = arg(2, 30).max(1);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteEventStore::open(dir.path().join("replay.db")).await?);

    // Filled in appends of 1,000 events (one fsync each), as a realistic command would not.
    let ctx = CqrsContext::new()
        .with_user("bench-user")
        .with_request_id("req-0001")
        .with_metadata("ip", "10.0.0.1");
    let metadata = serde_json::to_string(&ctx.to_metadata())?;
    let mut version = 0u64;
    let mut batch = Vec::new();
    for i in 0..events {
        let event = if i == 0 {
            AccountEvent::Opened {
                owner: "bench".to_owned(),
                initial_cents: 1_000,
            }
        } else {
            AccountEvent::Deposited { cents: 1 }
        };
        batch.push(NewEvent {
            event_id: ctx.new_id(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            payload: serde_json::to_string(&event)?,
            metadata: metadata.clone(),
            recorded_at: ctx.now(),
        });
        if batch.len() == 1000 || i + 1 == events {
            let n = batch.len() as u64;
            let request = AppendRequest::new(
                Account::TYPE,
                "acc-1",
                ExpectedVersion::Exact(version),
                std::mem::take(&mut batch),
            );
            store.append(request).await?;
            version += n;
        }
    }

    let engine = CqrsCommandEngine::<Account>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::Never))
        .build()?;
    let want = 1_000 + events as i64 - 1;
    let mut loads = Vec::with_capacity(reps);
    let mut reads = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let loaded = engine
            .load("acc-1")
            .await?
            .ok_or("the account is missing")?;
        loads.push(started.elapsed());
        if (loaded.state.balance, loaded.version) != (want, events as u64) {
            return Err(format!(
                "wrong state: balance {} at version {}",
                loaded.state.balance, loaded.version
            )
            .into());
        }
        let started = Instant::now();
        let stored = store.read_stream(Account::TYPE, "acc-1", 1, None).await?;
        reads.push(started.elapsed());
        assert_eq!(stored.len(), events);
    }
    println!("SQLite replay of {events} events, {reps} runs each:");
    println!("  engine load (snapshots off): {}", summary(events, loads));
    println!("  read_stream (no decoding):   {}", summary(events, reads));
    Ok(())
}
