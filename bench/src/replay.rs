//! Replay: one account with 10,000 stored events, loaded from events alone, then with a
//! snapshot.
//!
//! Setting up 10,000 events one command (one fsync) at a time would take longer than the whole
//! run, so the first `events - 1` are appended in large batches through each library's own
//! store interface; the last one is a real command through a snapshotting engine/framework,
//! so that the library itself writes the snapshot at version `events`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bank::domain::{Account, AccountCommand, AccountEvent};
use bank::money::{Amount, Money};
use cqrs_es::{AggregateContext, CqrsFramework, EventStore as PeerEventStore};
use factum_core::store::{AppendRequest, NewEvent};
use factum_core::{
    CqrsCommandEngine, CqrsContext, EngineConfig, Event, EventStore, ExpectedVersion,
    SnapshotPolicy,
};

use crate::peer::{PeerAccount, PeerCommand, PeerEvent};
use crate::report::Measurement;
use crate::workload::OPENING_CENTS;

/// The replayed account's id.
pub const REPLAY_ID: &str = "acc-replay";

/// The balance after opening and `events - 1` deposits of 1 cent.
pub fn replay_balance(events: usize) -> i64 {
    OPENING_CENTS + events as i64 - 1
}

/// Factum: fills `store`, then times `reps` loads each way.
pub async fn factum(
    store: Arc<dyn EventStore>,
    events: usize,
    reps: usize,
) -> anyhow::Result<(Vec<Measurement>, Vec<Measurement>)> {
    let ctx = CqrsContext::new();
    let metadata = serde_json::to_string(&ctx.to_metadata())?;
    let mut version = 0u64;
    let mut batch = Vec::new();
    for i in 0..events.saturating_sub(1) {
        let event = if i == 0 {
            AccountEvent::AccountOpened {
                owner: "bench".to_owned(),
                initial_balance: Money::from_cents(OPENING_CENTS),
                opened_by: None,
            }
        } else {
            AccountEvent::MoneyDeposited {
                amount: Money::from_cents(1),
            }
        };
        batch.push(NewEvent {
            event_id: ctx.new_id(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            payload: serde_json::to_string(&event)?,
            metadata: metadata.clone(),
            recorded_at: ctx.now(),
        });
        if batch.len() == 1000 || i + 2 == events {
            let n = batch.len() as u64;
            store
                .append(AppendRequest::new(
                    "account",
                    REPLAY_ID,
                    ExpectedVersion::Exact(version),
                    std::mem::take(&mut batch),
                ))
                .await?;
            version += n;
        }
    }
    // The last event through an engine that snapshots every command.
    let snapshotting = CqrsCommandEngine::<Account>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand))
        .build()?;
    let deposit = AccountCommand::Deposit {
        amount: Amount::from_cents(1),
    };
    snapshotting.update(REPLAY_ID, &deposit, &ctx).await?;

    let want = (replay_balance(events), events as u64);
    let from_events = CqrsCommandEngine::<Account>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::Never))
        .build()?;
    let mut by_events = Vec::new();
    let mut by_snapshot = Vec::new();
    for _ in 0..reps {
        let (elapsed, correct, check) = factum_load(&from_events, want).await?;
        let rate = events as f64 / elapsed.as_secs_f64();
        // The store's share of the load: reading the serialized events, no decoding.
        let t = Instant::now();
        let read = store.read_stream("account", REPLAY_ID, 1, None).await?;
        let read_ms = t.elapsed().as_secs_f64() * 1e3;
        let correct = correct && read.len() == events;
        by_events.push(
            Measurement::rate(rate, "events/s", correct, check)
                .with_extra("ms", round3(elapsed.as_secs_f64() * 1e3))
                .with_extra("store_read_ms", round3(read_ms)),
        );
        let (elapsed, correct, check) = factum_load(&snapshotting, want).await?;
        by_snapshot.push(Measurement::millis(elapsed, correct, check));
    }
    Ok((by_events, by_snapshot))
}

/// `x` to 3 decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

async fn factum_load(
    engine: &CqrsCommandEngine<Account>,
    want: (i64, u64),
) -> anyhow::Result<(std::time::Duration, bool, String)> {
    let t = Instant::now();
    let loaded = engine
        .load(REPLAY_ID)
        .await?
        .context("replayed account missing")?;
    let elapsed = t.elapsed();
    let got = (loaded.state.balance.cents(), loaded.version);
    let check = format!("loaded (balance, version) {got:?}, want {want:?}");
    Ok((elapsed, got == want, check))
}

/// The events the peer's account starts with: opened, then deposits of 1 cent.
pub fn peer_events(count: usize) -> Vec<PeerEvent> {
    (0..count)
        .map(|i| {
            if i == 0 {
                PeerEvent::AccountOpened {
                    id: REPLAY_ID.to_owned(),
                    owner: "bench".to_owned(),
                    initial_balance: OPENING_CENTS,
                }
            } else {
                PeerEvent::MoneyDeposited { amount: 1 }
            }
        })
        .collect()
}

/// The peer: commits the first `events - 1` events in one commit through `store`.
pub async fn peer_fill<ES>(store: &ES, events: usize) -> anyhow::Result<()>
where
    ES: PeerEventStore<PeerAccount>,
{
    let context = store
        .load_aggregate(REPLAY_ID)
        .await
        .map_err(|e| anyhow::anyhow!("peer load: {e}"))?;
    store
        .commit(
            peer_events(events.saturating_sub(1)),
            context,
            Default::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("peer commit: {e}"))?;
    Ok(())
}

/// Runs the last deposit through a framework on `store`.
pub async fn peer_last_command<ES>(store: ES) -> anyhow::Result<()>
where
    ES: PeerEventStore<PeerAccount>,
{
    CqrsFramework::new(store, Vec::new(), ())
        .execute(REPLAY_ID, PeerCommand::Deposit { cents: 1 })
        .await
        .map_err(|e| anyhow::anyhow!("peer deposit: {e}"))
}

/// Times one `load_aggregate` through `store`; compares with the expected state.
pub async fn peer_load<ES>(
    store: &ES,
    events: usize,
) -> anyhow::Result<(std::time::Duration, bool, String)>
where
    ES: PeerEventStore<PeerAccount>,
{
    let t = Instant::now();
    let mut context = store
        .load_aggregate(REPLAY_ID)
        .await
        .map_err(|e| anyhow::anyhow!("peer load: {e}"))?;
    let elapsed = t.elapsed();
    let account: &mut PeerAccount = context.aggregate();
    let got = account.balance_cents;
    let want = replay_balance(events);
    if !account.opened {
        bail!("peer's replayed account is not open");
    }
    let correct = got == want;
    let check = if correct {
        format!("loaded balance {got}, want {want}")
    } else {
        format!(
            "STATE WRONG: loaded balance {got}, want {want} (off by {})",
            got - want
        )
    };
    Ok((elapsed, correct, check))
}

/// One peer replay figure: events/s when loading from events alone.
pub fn peer_rate(events: usize, sample: (std::time::Duration, bool, String)) -> Measurement {
    let (elapsed, correct, check) = sample;
    Measurement::rate(
        events as f64 / elapsed.as_secs_f64(),
        "events/s",
        correct,
        check,
    )
    .with_extra("ms", round3(elapsed.as_secs_f64() * 1e3))
}
