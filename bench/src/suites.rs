//! The figures of each store, for each side: every figure is `reps` repetitions on a fresh
//! store (file, schema), reduced to the median.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bank::domain::Account;
use cqrs_es::mem_store::MemStore;
use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
use factum_core::{CqrsCommandEngine, EventStore, InMemoryEventStore};
use factum_postgres::PostgresEventStore;
use factum_sqlite::SqliteEventStore;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::driver::{BankDriver, FactumDriver, PeerDriver, RoutedDriver};
use crate::latency::{self, Wake};
use crate::nats;
use crate::peer::PeerAccount;
use crate::pg;
use crate::replay;
use crate::report::{Measurement, median};
use crate::workload::{Scale, distinct_accounts, one_account};

/// The workload's sizes and where to run it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Repetitions per figure (the median is reported).
    pub reps: usize,
    /// The in-memory figures' size (1,000 accounts × 100 commands).
    pub mem: Scale,
    /// The durable figures' size (200 accounts × 50 commands).
    pub durable: Scale,
    /// Tasks of the `par16` figures.
    pub tasks: usize,
    /// Tasks of the contention figure.
    pub contention_tasks: usize,
    /// Deposits per task of the contention figure.
    pub contention_per_task: usize,
    /// Events of the replayed account.
    pub replay_events: usize,
    /// Where SQLite files and the fsync probe's file go.
    pub dir: PathBuf,
    /// The PostgreSQL server both sides use.
    pub pg_url: String,
    /// The NATS server (JetStream) of the publish figures.
    pub nats_url: String,
    /// Paced commands of each subscription latency run (over 10 accounts).
    pub latency_commands: usize,
    /// Events each NATS publish run publishes.
    pub nats_events: usize,
}

/// Figure name → median measurement.
pub type Figures = BTreeMap<String, Measurement>;

async fn repeat<F, Fut>(reps: usize, mut run: F) -> anyhow::Result<Measurement>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Measurement>>,
{
    let mut all = Vec::with_capacity(reps);
    for rep in 0..reps.max(1) {
        all.push(run(rep).await?);
    }
    median(all).context("no repetitions")
}

fn factum(store: Arc<dyn EventStore>) -> Arc<dyn BankDriver> {
    Arc::new(FactumDriver::new(CqrsCommandEngine::<Account>::new(
        store,
        (),
    )))
}

/// Several engines on one store: several processes, as far as concurrency goes.
fn factum_engines(store: Arc<dyn EventStore>, n: usize) -> Vec<Arc<dyn BankDriver>> {
    (0..n).map(|_| factum(store.clone())).collect()
}

fn in_memory() -> Arc<dyn EventStore> {
    Arc::new(InMemoryEventStore::new())
}

/// Runs the figures every store has, through `new_driver(rep, figure)`; `engines4` adds the
/// four-engines contention figure (Factum only).
async fn common<N, NFut>(
    cfg: &Config,
    prefix: &str,
    scale: Scale,
    figures: &mut Figures,
    mut new_drivers: N,
) -> anyhow::Result<()>
where
    N: FnMut(usize) -> NFut,
    NFut: Future<Output = anyhow::Result<Vec<Arc<dyn BankDriver>>>>,
{
    let (tasks, c_tasks, c_per) = (cfg.tasks, cfg.contention_tasks, cfg.contention_per_task);
    let mut first = |n: usize| {
        let fut = new_drivers(n);
        async move { fut.await?.into_iter().next().context("no driver") }
    };
    let m = repeat(cfg.reps, |_| {
        let d = first(1);
        async move { distinct_accounts(d.await?, 1, scale).await }
    })
    .await?;
    figures.insert(format!("{prefix}_seq"), m);
    let m = repeat(cfg.reps, |_| {
        let d = first(1);
        async move { distinct_accounts(d.await?, tasks, scale).await }
    })
    .await?;
    figures.insert(format!("{prefix}_par{tasks}"), m);
    let m = repeat(cfg.reps, |_| {
        let d = first(1);
        async move { one_account(&[d.await?], c_tasks, c_per).await }
    })
    .await?;
    figures.insert(format!("{prefix}_contention"), m);
    Ok(())
}

/// Factum in memory.
pub async fn factum_mem(cfg: &Config) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    common(cfg, "mem", cfg.mem, &mut figures, |_| async {
        Ok(vec![factum(in_memory())])
    })
    .await?;
    let (c_tasks, c_per) = (cfg.contention_tasks, cfg.contention_per_task);
    let m = repeat(cfg.reps, |_| async move {
        one_account(&factum_engines(in_memory(), 4), c_tasks, c_per).await
    })
    .await?;
    figures.insert("mem_contention_4engines".into(), m);
    replay_factum(cfg, "mem", in_memory(), &mut figures).await?;
    Ok(figures)
}

async fn replay_factum(
    cfg: &Config,
    prefix: &str,
    store: Arc<dyn EventStore>,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let (events, snapshot) = replay::factum(store, cfg.replay_events, cfg.reps).await?;
    figures.insert(
        format!("{prefix}_replay"),
        median(events).context("no repetitions")?,
    );
    figures.insert(
        format!("{prefix}_replay_snapshot"),
        median(snapshot).context("no repetitions")?,
    );
    Ok(())
}

fn peer_mem_driver() -> Arc<dyn BankDriver> {
    let store = MemStore::<PeerAccount>::default();
    Arc::new(PeerDriver::new(store.clone(), store))
}

/// The peer in memory. Its `MemStore` prints two lines per command: run this in a child
/// process whose stdout is discarded.
pub async fn peer_mem(cfg: &Config) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    common(cfg, "mem", cfg.mem, &mut figures, |_| async {
        Ok(vec![peer_mem_driver()])
    })
    .await?;
    let store = MemStore::<PeerAccount>::default();
    replay::peer_fill(&store, cfg.replay_events).await?;
    replay::peer_last_command(store.clone()).await?;
    let mut loads = Vec::new();
    for _ in 0..cfg.reps {
        let sample = replay::peer_load(&store, cfg.replay_events).await?;
        loads.push(replay::peer_rate(cfg.replay_events, sample));
    }
    figures.insert(
        "mem_replay".into(),
        median(loads).context("no repetitions")?,
    );
    Ok(figures)
}

/// A fresh SQLite store in a new temporary folder under `base`.
async fn sqlite(base: &Path) -> anyhow::Result<(tempfile::TempDir, Arc<SqliteEventStore>)> {
    let dir = tempfile::Builder::new()
        .prefix("factum-bench-")
        .tempdir_in(base)?;
    let store = SqliteEventStore::open(dir.path().join("bench.db")).await?;
    Ok((dir, Arc::new(store)))
}

/// Adds the SQLite writer's counters: how many fsyncs the run took, and appends per fsync.
fn with_commit_stats(m: Measurement, store: &SqliteEventStore) -> Measurement {
    let stats = store.stats();
    let per_commit = if stats.commits == 0 {
        0.0
    } else {
        stats.requests as f64 / stats.commits as f64
    };
    m.with_extra("commits", stats.commits)
        .with_extra("appends_per_commit", (per_commit * 100.0).round() / 100.0)
}

/// Factum on SQLite files (the peer has no SQLite store in 0.5).
pub async fn factum_sqlite(cfg: &Config) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let base = cfg.dir.clone();
    let scale = cfg.durable;
    for (name, tasks) in [
        ("sqlite_seq".to_owned(), 1),
        (format!("sqlite_par{}", cfg.tasks), cfg.tasks),
    ] {
        let base = &base;
        let m = repeat(cfg.reps, |_| async move {
            let (_dir, store) = sqlite(base).await?;
            let m = distinct_accounts(factum(store.clone()), tasks, scale).await?;
            Ok(with_commit_stats(m, &store))
        })
        .await?;
        figures.insert(name, m);
    }
    let (c_tasks, c_per) = (cfg.contention_tasks, cfg.contention_per_task);
    for (name, engines) in [("sqlite_contention", 1), ("sqlite_contention_4engines", 4)] {
        let base = &base;
        let m = repeat(cfg.reps, |_| async move {
            let (_dir, store) = sqlite(base).await?;
            let m = one_account(&factum_engines(store.clone(), engines), c_tasks, c_per).await?;
            Ok(with_commit_stats(m, &store))
        })
        .await?;
        figures.insert(name.to_owned(), m);
    }
    let (_dir, store) = sqlite(&base).await?;
    replay_factum(cfg, "sqlite", store, &mut figures).await?;
    Ok(figures)
}

/// A Factum store in a fresh schema; the schema is dropped by [`drop_factum_pg`].
async fn factum_pg(cfg: &Config, schema: &str) -> anyhow::Result<Arc<PostgresEventStore>> {
    let admin = pg::admin(&cfg.pg_url).await?;
    pg::create_schema(&admin, schema).await?;
    admin.close().await;
    Ok(Arc::new(
        PostgresEventStore::connect_with_schema(&cfg.pg_url, schema).await?,
    ))
}

/// Drops `schema`; its pools must be closed first. (Factum's pool and the peer's are of two
/// sqlx releases, so each caller closes its own.)
async fn drop_schema(cfg: &Config, schema: &str) -> anyhow::Result<()> {
    let admin = pg::admin(&cfg.pg_url).await?;
    pg::drop_schema(&admin, schema).await?;
    admin.close().await;
    Ok(())
}

/// Runs `body` on a fresh Factum schema, then drops it whatever happened.
async fn with_factum_pg<F, Fut, T>(cfg: &Config, n: usize, body: F) -> anyhow::Result<T>
where
    F: FnOnce(Arc<PostgresEventStore>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let schema = pg::schema_name("factum", n);
    let store = factum_pg(cfg, &schema).await?;
    let pool = store.pool().clone();
    let result = body(store).await;
    pool.close().await;
    drop_schema(cfg, &schema).await?;
    result
}

type PgPeerStore = PersistedEventStore<PostgresEventRepository, PeerAccount>;

/// The peer's plain event store on `pool` (the mode whose state is right).
fn peer_event_store(pool: &PgPool) -> PgPeerStore {
    PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone()))
}

/// Runs `body` on a fresh peer schema (tables per postgres-es's README), then drops it.
async fn with_peer_pg<F, Fut, T>(cfg: &Config, n: usize, body: F) -> anyhow::Result<T>
where
    F: FnOnce(PgPool) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let schema = pg::schema_name("peer", n);
    let admin = pg::admin(&cfg.pg_url).await?;
    pg::create_schema(&admin, &schema).await?;
    admin.close().await;
    let pool = pg::peer_pool(&cfg.pg_url, &schema).await?;
    let result = async {
        pg::create_peer_tables(&pool).await?;
        body(pool.clone()).await
    }
    .await;
    pool.close().await;
    drop_schema(cfg, &schema).await?;
    result
}

fn peer_pg_driver(pool: &PgPool) -> Arc<dyn BankDriver> {
    Arc::new(PeerDriver::new(
        peer_event_store(pool),
        peer_event_store(pool),
    ))
}

/// Both sides on the same PostgreSQL server, each in its own fresh schema per repetition.
pub async fn postgres(cfg: &Config) -> anyhow::Result<(Figures, Figures)> {
    let mut f = Figures::new();
    let mut p = Figures::new();
    let scale = cfg.durable;
    let (c_tasks, c_per) = (cfg.contention_tasks, cfg.contention_per_task);
    let mut n = 0;
    let figures = [
        ("postgres_seq".to_owned(), 1),
        (format!("postgres_par{}", cfg.tasks), cfg.tasks),
    ];
    for (name, tasks) in figures {
        let m = repeat(cfg.reps, |_| {
            n += 1;
            with_factum_pg(cfg, n, move |store| async move {
                distinct_accounts(factum(store), tasks, scale).await
            })
        })
        .await?;
        f.insert(name.clone(), m);
        let m = repeat(cfg.reps, |_| {
            n += 1;
            with_peer_pg(cfg, n, move |pool| async move {
                distinct_accounts(peer_pg_driver(&pool), tasks, scale).await
            })
        })
        .await?;
        p.insert(name, m);
    }
    // Three nodes (a store handle each: its own pool and writer, as three processes would
    // have) on one schema, each with `tasks` clients on accounts of its own.
    let nodes = 3;
    let m = repeat(cfg.reps, |_| {
        n += 1;
        with_factum_pg(cfg, n, move |store| async move {
            let mut drivers = vec![factum(store.clone())];
            for _ in 1..nodes {
                let node = PostgresEventStore::connect_with_schema(&cfg.pg_url, store.schema());
                drivers.push(factum(Arc::new(node.await?)));
            }
            let clients = nodes * cfg.tasks;
            let scale = Scale {
                accounts: clients,
                commands_per_account: (scale.commands() / clients).max(2),
            };
            distinct_accounts(Arc::new(RoutedDriver::new(drivers)), clients, scale).await
        })
    })
    .await?;
    f.insert(format!("postgres_{nodes}nodes_par{}", cfg.tasks), m);
    for (name, engines) in [
        ("postgres_contention", 1),
        ("postgres_contention_4engines", 4),
    ] {
        let m = repeat(cfg.reps, |_| {
            n += 1;
            with_factum_pg(cfg, n, move |store| async move {
                one_account(&factum_engines(store, engines), c_tasks, c_per).await
            })
        })
        .await?;
        f.insert(name.to_owned(), m);
    }
    let m = repeat(cfg.reps, |_| {
        n += 1;
        with_peer_pg(cfg, n, move |pool| async move {
            one_account(&[peer_pg_driver(&pool)], c_tasks, c_per).await
        })
    })
    .await?;
    p.insert("postgres_contention".into(), m);

    // Replay: one schema per side, filled once, loaded `reps` times each way.
    n += 1;
    let factum_figures = &mut f;
    with_factum_pg(cfg, n, move |store| async move {
        replay_factum(cfg, "postgres", store, factum_figures).await
    })
    .await?;
    n += 1;
    let events = cfg.replay_events;
    let reps = cfg.reps;
    let (replay_fig, snapshot_fig) = with_peer_pg(cfg, n, move |pool| async move {
        let plain = peer_event_store(&pool);
        replay::peer_fill(&plain, events).await?;
        // The last command through the snapshot store, which writes the snapshot at
        // version `events` (its size).
        let snapshots = PersistedEventStore::new_snapshot_store(
            PostgresEventRepository::new(pool.clone()),
            events,
        );
        replay::peer_last_command(snapshots).await?;
        let snapshots: PgPeerStore = PersistedEventStore::new_snapshot_store(
            PostgresEventRepository::new(pool.clone()),
            events,
        );
        let mut by_events = Vec::new();
        let mut by_snapshot = Vec::new();
        for _ in 0..reps {
            let m = replay::peer_rate(events, replay::peer_load(&plain, events).await?);
            // The repository's share: the rows as serialized events, no decoding.
            let t = std::time::Instant::now();
            let read = PostgresEventRepository::new(pool.clone())
                .get_events::<PeerAccount>(replay::REPLAY_ID)
                .await
                .map_err(|e| anyhow::anyhow!("peer get_events: {e}"))?;
            let read_ms = replay::round3(t.elapsed().as_secs_f64() * 1e3);
            let mut m = m.with_extra("store_read_ms", read_ms);
            m.correct &= read.len() == events;
            by_events.push(m);
            let (elapsed, correct, check) = replay::peer_load(&snapshots, events).await?;
            by_snapshot.push(Measurement::millis(elapsed, correct, check));
        }
        Ok((
            median(by_events).context("no repetitions")?,
            median(by_snapshot).context("no repetitions")?,
        ))
    })
    .await?;
    p.insert("postgres_replay".into(), replay_fig);
    p.insert("postgres_replay_snapshot".into(), snapshot_fig);
    Ok((f, p))
}

/// Commit-to-handler latency of a subscription (see [`latency`]): in one process on SQLite,
/// and across two processes on PostgreSQL, woken by LISTEN/NOTIFY and by the service's
/// 500 ms poll alone.
pub async fn subscriptions(cfg: &Config) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let (accounts, commands) = (10, cfg.latency_commands.max(10));
    let dir = &cfg.dir;
    let m = repeat(cfg.reps, |_| {
        latency::sqlite_in_process(dir, accounts, commands)
    })
    .await?;
    figures.insert("sqlite_subscription_latency".into(), m);
    let mut n = 0;
    for (name, wake) in [
        ("postgres_2proc_latency_notify", Wake::Notify),
        ("postgres_2proc_latency_poll", Wake::Poll),
    ] {
        let m = repeat(cfg.reps, |_| {
            n += 1;
            let schema = pg::schema_name("latency", n);
            async move {
                let admin = pg::admin(&cfg.pg_url).await?;
                pg::create_schema(&admin, &schema).await?;
                admin.close().await;
                let result =
                    latency::postgres_two_processes(&cfg.pg_url, &schema, wake, accounts, commands)
                        .await;
                drop_schema(cfg, &schema).await?;
                result
            }
        })
        .await?;
        figures.insert(name.to_owned(), m);
    }
    Ok(figures)
}

/// NATS JetStream publish throughput (see [`nats`]): the outbox as Factum's figure, the
/// bare `async-nats` loop as the peer's (its pipelined variant in its details); the
/// repetitions of the two alternate.
pub async fn nats_publish(cfg: &Config) -> anyhow::Result<(Figures, Figures)> {
    let events = cfg.nats_events.max(1);
    let store = nats::filled_store(events).await?;
    let stored = nats::all_events(store.as_ref()).await?;
    let (mut outbox, mut bare, mut pipelined) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..cfg.reps.max(1) {
        outbox.push(nats::outbox(&cfg.nats_url, store.clone(), events, rep).await?);
        bare.push(nats::bare(&cfg.nats_url, &stored, 1, rep).await?);
        pipelined.push(nats::bare(&cfg.nats_url, &stored, nats::WINDOW, rep).await?);
    }
    let pipelined = median(pipelined).context("no repetitions")?;
    let bare = median(bare)
        .context("no repetitions")?
        .with_extra("pipelined_events_per_s", pipelined.value.round())
        .with_extra("pipelined_window", nats::WINDOW);
    let name = "nats_publish".to_owned();
    let factum = Figures::from([(name.clone(), median(outbox).context("no repetitions")?)]);
    Ok((factum, Figures::from([(name, bare)])))
}
