//! The engine under contention: many tasks, one account, no lost update, no error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bank::domain::{Account, AccountCommand, OpenAccountCommand};
use bank::money::{Amount, Money};
use factum_core::{
    CqrsCommandEngine, CqrsContext, EngineConfig, EventStore, InMemoryEventStore, SnapshotPolicy,
};

/// `times` deposits of one cent each on `id`, every one answered without an error.
async fn deposit_cents(engine: CqrsCommandEngine<Account>, id: &'static str, times: usize) {
    let deposit = AccountCommand::Deposit {
        amount: Amount::from_cents(1),
    };
    for _ in 0..times {
        engine
            .update(id, &deposit, &CqrsContext::new())
            .await
            .expect("no error reaches any caller");
    }
}

async fn sixteen_by_hundred(engine: CqrsCommandEngine<Account>) {
    let ctx = CqrsContext::new();
    let open = OpenAccountCommand::OpenAccount {
        owner: "Alice".into(),
        initial_balance: Amount::from_cents(100_000),
    };
    engine.create_with_id("acc-hot", &open, &ctx).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(deposit_cents(engine, "acc-hot", 100)));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = engine.load("acc-hot").await.unwrap().unwrap();
    assert_eq!(loaded.state.balance, Money::from_cents(100_000 + 1600));
    assert_eq!(loaded.version, 1601);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_deposit_a_hundred_cents_each_through_one_engine() {
    let engine = CqrsCommandEngine::<Account>::new(Arc::new(InMemoryEventStore::new()), ());
    sixteen_by_hundred(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_across_four_engines_sharing_one_store_retry_their_conflicts() {
    // Four engines stand for four processes: their keyed locks do not see each other, so
    // only the store's expected-version check and the engine's retries keep the count exact.
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let config = EngineConfig::default()
        .with_max_attempts(1000)
        .with_snapshot_policy(SnapshotPolicy::EveryCommand);
    let engines: Vec<_> = (0..4)
        .map(|_| {
            CqrsCommandEngine::<Account>::builder(store.clone())
                .config(config.clone())
                .build()
                .unwrap()
        })
        .collect();
    let ctx = CqrsContext::new();
    let open = OpenAccountCommand::OpenAccount {
        owner: "Bob".into(),
        initial_balance: Amount::from_cents(0),
    };
    engines[0]
        .create_with_id("shared", &open, &ctx)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let engine = engines[task % 4].clone();
        tasks.push(tokio::spawn(deposit_cents(engine, "shared", 50)));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = engines[3].load("shared").await.unwrap().unwrap();
    assert_eq!(loaded.state.balance, Money::from_cents(800));
    assert_eq!(loaded.version, 801);
    let conflicts: u64 = engines.iter().map(CqrsCommandEngine::conflicts).sum();
    assert!(
        conflicts > 0,
        "four engines on one aggregate should have raced at least once"
    );
}

#[tokio::test]
async fn inline_views_track_accounts_and_movements() {
    use bank::views::{AccountSummary, Movement, MovementKind};
    use factum_core::{View, ViewQuery, ViewStore};

    let store = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Account>::builder(store.clone())
        .inline_view::<AccountSummary>()
        .inline_view::<Movement>()
        .build()
        .unwrap();
    let ctx = CqrsContext::new().with_user("teller-7");
    for (id, owner, cents) in [
        ("acc-1", "Alice", 100_000),
        ("acc-2", "Bob", 500),
        ("acc-3", "Alice", 0),
    ] {
        let open = OpenAccountCommand::OpenAccount {
            owner: owner.into(),
            initial_balance: Amount::from_cents(cents),
        };
        engine.create_with_id(id, &open, &ctx).await.unwrap();
    }
    engine
        .update(
            "acc-1",
            &AccountCommand::Deposit {
                amount: Amount::from_cents(50_000),
            },
            &ctx,
        )
        .await
        .unwrap();
    engine
        .update(
            "acc-1",
            &AccountCommand::Withdraw {
                amount: Amount::from_cents(20_000),
            },
            &ctx,
        )
        .await
        .unwrap();

    let alice_rich = ViewQuery::parse(
        Some("owner:eq:Alice,balance:gt:100"),
        Some("-balance"),
        None,
        None,
        AccountSummary::fields(),
    )
    .unwrap();
    let page = store
        .query_views(AccountSummary::TYPE, &alice_rich, AccountSummary::fields())
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    let summary: AccountSummary = page.items[0].decode().unwrap();
    assert_eq!(
        (summary.id.as_str(), summary.balance, summary.version),
        ("acc-1", Money::from_cents(130_000), 3)
    );

    let movements = store.list_views_of(Movement::TYPE, "acc-1").await.unwrap();
    assert_eq!(
        movements
            .iter()
            .map(|m| m.view_id.as_str())
            .collect::<Vec<_>>(),
        vec!["acc-1-1", "acc-1-2", "acc-1-3"]
    );
    let withdrawal: Movement = movements[2].decode().unwrap();
    assert_eq!(
        (withdrawal.kind, withdrawal.amount),
        (MovementKind::Withdrawal, Money::from_cents(20_000))
    );
    assert_eq!(withdrawal.user_id.as_deref(), Some("teller-7"));
}

/// Batched deposits write the inline views of every event of the batch in its append: one
/// movement per event and the summary at the last balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_commands_keep_inline_views_exact() {
    use bank::views::{AccountSummary, Movement};
    use factum_core::{View, ViewStore};

    let store = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Account>::builder(store.clone())
        .inline_view::<AccountSummary>()
        .inline_view::<Movement>()
        .snapshot_policy(SnapshotPolicy::EveryCommand)
        .build()
        .unwrap();
    sixteen_by_hundred(engine).await;
    let movements = store
        .list_views_of(Movement::TYPE, "acc-hot")
        .await
        .unwrap();
    assert_eq!(movements.len(), 1601);
    let summary: AccountSummary = store
        .get_view(AccountSummary::TYPE, "acc-hot")
        .await
        .unwrap()
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(
        (summary.balance, summary.version),
        (Money::from_cents(101_600), 1601)
    );
}
