//! Micro-benchmarks: deciding and applying one command, event (de)serialization, a whole
//! in-memory command through the engine, and replaying 10,000 events from memory.
//!
//! `cargo bench -p factum-bench --bench micro` (kept short: small samples, 2 s each).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bank::domain::{Account, AccountCommand, AccountEvent, OpenAccountCommand};
use bank::money::{Amount, Money};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum_bench::peer::{PeerAccount, PeerCommand, PeerEvent};
use factum_bench::replay;
use factum_core::{
    Aggregate, CommandHandler, CqrsCommandEngine, CqrsContext, EngineConfig, InMemoryEventStore,
    SnapshotPolicy,
};

fn opened() -> Account {
    let mut account = Account::with_aggregate_id("acc-1".to_owned());
    account.apply(&AccountEvent::AccountOpened {
        owner: "Alice".to_owned(),
        initial_balance: Money::from_cents(100_000),
        opened_by: None,
    });
    account
}

/// The output of a future that needs nothing to wait for (a handler that awaits no service),
/// polled once with a no-op waker: the cost measured is the decision, not an executor.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the bank's handlers await nothing"),
    }
}

fn decide_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_apply");
    let ctx = CqrsContext::new();
    let deposit = AccountCommand::Deposit {
        amount: Amount::from_cents(1_234),
    };
    let mut account = opened();
    group.bench_function("factum", |b| {
        b.iter(|| {
            let events = ready(account.handle_update(black_box(&deposit), &(), &ctx)).unwrap();
            for event in &events {
                account.apply(event);
            }
        })
    });
    let mut peer = PeerAccount::default();
    cqrs_es::Aggregate::apply(
        &mut peer,
        PeerEvent::AccountOpened {
            id: "acc-1".into(),
            owner: "Alice".into(),
            initial_balance: 100_000,
        },
    );
    group.bench_function("cqrs-es", |b| {
        b.iter(|| {
            let event = peer
                .decide(black_box(PeerCommand::Deposit { cents: 1_234 }))
                .unwrap();
            cqrs_es::Aggregate::apply(&mut peer, event);
        })
    });
    group.finish();
}

fn serde_events(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_json");
    let event = AccountEvent::MoneyDeposited {
        amount: Money::from_cents(1_234),
    };
    let text = serde_json::to_string(&event).unwrap();
    group.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_string(black_box(&event)).unwrap())
    });
    group.bench_function("deserialize", |b| {
        b.iter(|| serde_json::from_str::<AccountEvent>(black_box(&text)).unwrap())
    });
    group.finish();
}

fn engine_command(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = CqrsCommandEngine::<Account>::new(Arc::new(InMemoryEventStore::new()), ());
    let open = OpenAccountCommand::OpenAccount {
        owner: "Alice".to_owned(),
        initial_balance: Amount::from_cents(100_000),
    };
    rt.block_on(engine.create_with_id("acc-1", &open, &CqrsContext::new()))
        .unwrap();
    let deposit = AccountCommand::Deposit {
        amount: Amount::from_cents(1),
    };
    c.bench_function("engine_update_in_memory", |b| {
        b.to_async(&rt).iter(|| async {
            engine
                .update("acc-1", &deposit, &CqrsContext::new())
                .await
                .unwrap()
        })
    });
}

fn replay_10k(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(InMemoryEventStore::new());
    rt.block_on(replay::factum(store.clone(), 10_000, 1))
        .unwrap();
    let engine = CqrsCommandEngine::<Account>::builder(store)
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::Never))
        .build()
        .unwrap();
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k_events_from_memory", |b| {
        b.to_async(&rt).iter(|| async {
            let loaded = engine.load(replay::REPLAY_ID).await.unwrap().unwrap();
            assert_eq!(loaded.version, 10_000);
            loaded
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = decide_apply, serde_events, engine_command, replay_10k
}
criterion_main!(benches);
