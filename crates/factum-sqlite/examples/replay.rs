//! Replay speed: one aggregate with 10,000 events in a SQLite file, loaded through
//! `CqrsCommandEngine::load` with snapshots off, and read raw with `read_stream`.
//!
//! Run in release mode: `cargo run --release -p factum-sqlite --example replay [EVENTS] [REPS]`.
//! It prints the median and best of `REPS` loads, in events per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use factum_core::store::{AppendRequest, NewEvent};
use factum_core::{
    Aggregate, CqrsCommandEngine, CqrsContext, EngineConfig, Event, EventStore, ExpectedVersion,
    SnapshotPolicy,
};
use factum_sqlite::SqliteEventStore;
use factum_testing::counter::{Counter, CounterEvent};

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
            CounterEvent::Created
        } else {
            CounterEvent::Added { by: 1 }
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
                Counter::TYPE,
                "c-1",
                ExpectedVersion::Exact(version),
                std::mem::take(&mut batch),
            );
            store.append(request).await?;
            version += n;
        }
    }

    let engine = CqrsCommandEngine::<Counter>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::Never))
        .build()?;
    let want = events as u64 - 1;
    let mut loads = Vec::with_capacity(reps);
    let mut reads = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let loaded = engine.load("c-1").await?.ok_or("the counter is missing")?;
        loads.push(started.elapsed());
        if (loaded.state.total, loaded.version) != (want, events as u64) {
            return Err(format!(
                "wrong state: total {} at version {}",
                loaded.state.total, loaded.version
            )
            .into());
        }
        let started = Instant::now();
        let stored = store.read_stream(Counter::TYPE, "c-1", 1, None).await?;
        reads.push(started.elapsed());
        assert_eq!(stored.len(), events);
    }
    println!("SQLite replay of {events} events, {reps} runs each:");
    println!("  engine load (snapshots off): {}", summary(events, loads));
    println!("  read_stream (no decoding):   {}", summary(events, reads));
    Ok(())
}
