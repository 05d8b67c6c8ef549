//! The load binary: `factum-bench all|mem|sqlite|postgres|http|subscriptions|nats|fsync`
//! (built by `bench/run.sh`).
//!
//! Runs the bank workload against Factum and cqrs-es in the same run, prints a Markdown
//! table (Factum/peer ratios), the checks behind it, and one JSON line (last line of stdout).
//! Progress goes to stderr.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use factum_bench::http::{self, HttpConfig, WrkResult};
use factum_bench::report::{self, Row};
use factum_bench::suites::{self, Config, Figures};
use factum_bench::workload::Scale;
use factum_bench::{fsync, pg};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// Everything below.
    All,
    /// In-memory figures, both sides.
    Mem,
    /// SQLite figures (Factum only: cqrs-es 0.5 has no SQLite store), with the fsync probe.
    Sqlite,
    /// PostgreSQL figures, both sides on one server, with the fsync probe.
    Postgres,
    /// HTTP: the release `bank` binary and a bare axum handler under wrk.
    Http,
    /// Commit-to-handler latency of a subscription: SQLite in one process, PostgreSQL
    /// across two (LISTEN/NOTIFY, and polling alone).
    Subscriptions,
    /// NATS JetStream publish throughput: the factum-nats outbox and a bare async-nats loop.
    Nats,
    /// Only the fsync probe.
    Fsync,
}

/// Factum vs cqrs-es on the bank workload (see docs/benchmarks.md).
#[derive(Debug, Parser)]
#[command(name = "factum-bench", version)]
struct Cli {
    /// Which figures to run.
    #[arg(value_enum, default_value = "all")]
    what: What,
    /// Repetitions per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Accounts of the in-memory figures.
    #[arg(long, default_value_t = 1000)]
    mem_accounts: usize,
    /// Commands per account of the in-memory figures (open + deposits).
    #[arg(long, default_value_t = 100)]
    mem_commands: usize,
    /// Accounts of the durable figures.
    #[arg(long, default_value_t = 200)]
    durable_accounts: usize,
    /// Commands per account of the durable figures (open + deposits).
    #[arg(long, default_value_t = 50)]
    durable_commands: usize,
    /// Tasks of the parallel figures.
    #[arg(long, default_value_t = 16)]
    tasks: usize,
    /// Tasks of the contention figure.
    #[arg(long, default_value_t = 16)]
    contention_tasks: usize,
    /// Deposits per task of the contention figure.
    #[arg(long, default_value_t = 100)]
    contention_deposits: usize,
    /// Events of the replayed account.
    #[arg(long, default_value_t = 10_000)]
    replay_events: usize,
    /// 4 KiB appends + fdatasync of the fsync probe.
    #[arg(long, default_value_t = 2000)]
    fsync_count: usize,
    /// The PostgreSQL server (both sides; each in fresh schemas, dropped afterwards).
    #[arg(
        long,
        env = "FACTUM_BENCH_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
    /// Where SQLite files and the probe's file go (default: the system temp folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The NATS server of the publish figures (JetStream; streams of their own, deleted
    /// afterwards).
    #[arg(
        long,
        env = "FACTUM_BENCH_NATS",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// Paced commands of each subscription latency run.
    #[arg(long, default_value_t = 400)]
    latency_commands: usize,
    /// Events of each NATS publish run.
    #[arg(long, default_value_t = 5000)]
    nats_events: usize,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    http_connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    http_threads: u32,
    /// wrk duration, seconds.
    #[arg(long, default_value_t = 10)]
    http_seconds: u32,
    /// The `bank` binary (default: `bank` beside this binary, i.e. target/release/bank).
    #[arg(long)]
    bank_bin: Option<PathBuf>,
    /// A short run for iterating, not for the record: durable figures at 64 accounts × 20
    /// commands, contention at 16 × 20, fsync probe 500, wrk 5 s (overrides those flags).
    #[arg(long)]
    quick: bool,
    /// Also write the JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Internal: run the peer's in-memory figures and write them here (stdout discarded by
    /// the parent, because cqrs-es's MemStore prints two lines per command).
    #[arg(long, hide = true)]
    peer_mem_out: Option<PathBuf>,
    /// Internal: follow this PostgreSQL schema with a subscription (the latency figures'
    /// second process); prints `ready`, writes its calls to `--follow-out`.
    #[arg(long, hide = true)]
    follow_schema: Option<String>,
    /// Internal: the follower is woken by LISTEN/NOTIFY, not by its poll alone.
    #[arg(long, hide = true)]
    follow_listen: bool,
    /// Internal: the events the follower waits for.
    #[arg(long, hide = true, default_value_t = 0)]
    follow_expect: usize,
    /// Internal: where the follower writes its calls.
    #[arg(long, hide = true)]
    follow_out: Option<PathBuf>,
}

impl Cli {
    fn apply_quick(&mut self) {
        if self.quick {
            self.durable_accounts = 64;
            self.durable_commands = 20;
            self.contention_deposits = 20;
            self.fsync_count = 500;
            self.http_seconds = 5;
            self.latency_commands = 100;
            self.nats_events = 1000;
        }
    }

    fn config(&self) -> Config {
        Config {
            reps: self.reps.max(1),
            mem: Scale {
                accounts: self.mem_accounts,
                commands_per_account: self.mem_commands.max(1),
            },
            durable: Scale {
                accounts: self.durable_accounts,
                commands_per_account: self.durable_commands.max(1),
            },
            tasks: self.tasks.max(1),
            contention_tasks: self.contention_tasks.max(1),
            contention_per_task: self.contention_deposits,
            replay_events: self.replay_events.max(2),
            dir: self.dir.clone().unwrap_or_else(std::env::temp_dir),
            pg_url: self.pg_url.clone(),
            nats_url: self.nats_url.clone(),
            latency_commands: self.latency_commands,
            nats_events: self.nats_events,
        }
    }

    fn runs(&self, what: What) -> bool {
        self.what == What::All || self.what == what
    }
}

/// Figures in the order they are printed; others follow alphabetically.
const ORDER: &[&str] = &[
    "mem_seq",
    "mem_par16",
    "mem_contention",
    "mem_contention_4engines",
    "mem_replay",
    "mem_replay_snapshot",
    "sqlite_seq",
    "sqlite_par16",
    "sqlite_contention",
    "sqlite_contention_4engines",
    "sqlite_replay",
    "sqlite_replay_snapshot",
    "postgres_seq",
    "postgres_par16",
    "postgres_3nodes_par16",
    "postgres_contention",
    "postgres_contention_4engines",
    "postgres_replay",
    "postgres_replay_snapshot",
    "sqlite_subscription_latency",
    "postgres_2proc_latency_notify",
    "postgres_2proc_latency_poll",
    "nats_publish",
];

fn note(figure: &str) -> Option<&'static str> {
    Some(match figure {
        "sqlite_subscription_latency" => {
            "Factum only: p50 commit-to-handler latency of a subscription in the writer's process (woken by its engine), paced commands"
        }
        "postgres_2proc_latency_notify" => {
            "Factum only: p50 commit-to-handler latency, writer and subscription in two processes, woken by LISTEN/NOTIFY"
        }
        "postgres_2proc_latency_poll" => {
            "Factum only: the same without LISTEN/NOTIFY: the subscription's 500 ms poll alone (the service's default)"
        }
        "nats_publish" => {
            "peer: a bare async-nats loop publishing the same messages, each acknowledgement awaited (its pipelined rate in its details)"
        }
        f if f.starts_with("sqlite_") => "cqrs-es 0.5 has no SQLite event store: Factum only",
        f if f.ends_with("_4engines") => {
            "Factum only: 4 engines on one store stand for 4 processes; conflicts retried by the engine"
        }
        "mem_contention" => {
            "cqrs-es MemStore has no optimistic concurrency check: concurrent commits on one aggregate can overwrite each other"
        }
        "mem_replay_snapshot" => "cqrs-es MemStore has no snapshots",
        "postgres_replay_snapshot" => {
            "peer: cqrs-es snapshot store, load time only; its state is WRONG (it applies a command's events twice into the snapshot)"
        }
        "postgres_replay" => "peer: cqrs-es plain event store (the mode whose state is right)",
        "postgres_3nodes_par16" => {
            "Factum only: 3 store handles (own pool and writer each) on one schema stand for 3 processes, 16 clients each, 48 accounts; compare with postgres_par16"
        }
        _ => return None,
    })
}

fn rows(factum: &Figures, peer: &Figures) -> Vec<Row> {
    let mut names: Vec<String> = ORDER
        .iter()
        .filter(|n| factum.contains_key(**n) || peer.contains_key(**n))
        .map(|n| (*n).to_owned())
        .collect();
    let extra: BTreeSet<&String> = factum
        .keys()
        .chain(peer.keys())
        .filter(|n| !ORDER.contains(&n.as_str()))
        .collect();
    names.extend(extra.into_iter().cloned());
    names
        .into_iter()
        .map(|name| {
            let row = Row::new(&name, factum.get(&name).cloned(), peer.get(&name).cloned());
            match note(&name) {
                Some(n) => row.note(n),
                None => row,
            }
        })
        .collect()
}

/// Runs the peer's in-memory figures in a child process with stdout discarded.
fn peer_mem_in_child(cli: &Cli) -> anyhow::Result<Figures> {
    let out = tempfile::NamedTempFile::new()?;
    let exe = std::env::current_exe()?;
    let status = Command::new(exe)
        .arg("mem")
        .args(["--reps", &cli.reps.to_string()])
        .args(["--mem-accounts", &cli.mem_accounts.to_string()])
        .args(["--mem-commands", &cli.mem_commands.to_string()])
        .args(["--tasks", &cli.tasks.to_string()])
        .args(["--contention-tasks", &cli.contention_tasks.to_string()])
        .args([
            "--contention-deposits",
            &cli.contention_deposits.to_string(),
        ])
        .args(["--replay-events", &cli.replay_events.to_string()])
        .arg("--peer-mem-out")
        .arg(out.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .context("cannot start the peer's child process")?;
    if !status.success() {
        bail!("the peer's in-memory child process failed: {status}");
    }
    let text = std::fs::read_to_string(out.path())?;
    Ok(serde_json::from_str(&text)?)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn probe(cfg: &Config, count: usize, when: &str) -> anyhow::Result<f64> {
    eprintln!("[bench] fsync probe ({when}): {count} x (4 KiB append + fdatasync)");
    let dir = cfg.dir.clone();
    let rate = tokio::task::spawn_blocking(move || fsync::probe(&dir, count)).await??;
    eprintln!("[bench] fsync probe ({when}): {rate:.0} fsyncs/s");
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    cli.apply_quick();
    let cfg = cli.config();

    if let Some(schema) = &cli.follow_schema {
        let out = cli.follow_out.clone().context("--follow-out is missing")?;
        let wake = factum_bench::latency::SERVICE_POLL;
        return factum_bench::latency::follow_postgres(
            &cli.pg_url,
            schema,
            cli.follow_listen,
            wake,
            cli.follow_expect,
            &out,
        )
        .await;
    }
    if let Some(out) = &cli.peer_mem_out {
        let figures = suites::peer_mem(&cfg).await?;
        std::fs::write(out, serde_json::to_string(&figures)?)?;
        return Ok(());
    }

    let started = Instant::now();
    let load_start = loadavg();
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    eprintln!(
        "[bench] {:?}, {} reps, {nproc} CPUs, load {load_start}",
        cli.what, cfg.reps
    );
    let mut factum = Figures::new();
    let mut peer = Figures::new();
    let mut fsyncs = serde_json::Map::new();
    let mut http_results: Vec<WrkResult> = Vec::new();
    let mut http_error = None;

    if cli.runs(What::Mem) {
        eprintln!("[bench] in memory: Factum");
        factum.extend(suites::factum_mem(&cfg).await?);
        eprintln!("[bench] in memory: cqrs-es (child process, stdout discarded)");
        let child_cli = &cli;
        peer.extend(tokio::task::block_in_place(|| {
            peer_mem_in_child(child_cli)
        })?);
    }
    let durable = cli.runs(What::Sqlite)
        || cli.runs(What::Postgres)
        || cli.runs(What::Subscriptions)
        || cli.what == What::Fsync;
    if durable {
        fsyncs.insert(
            "before".into(),
            json!(probe(&cfg, cli.fsync_count, "before").await?),
        );
    }
    if cli.runs(What::Sqlite) {
        eprintln!("[bench] SQLite: Factum");
        factum.extend(suites::factum_sqlite(&cfg).await?);
    }
    if cli.runs(What::Postgres) {
        // Fail loudly, never skip: the figures need the server.
        let admin = pg::admin(&cfg.pg_url).await?;
        admin.close().await;
        eprintln!("[bench] PostgreSQL: Factum and cqrs-es/postgres-es");
        let (f, p) = suites::postgres(&cfg).await?;
        factum.extend(f);
        peer.extend(p);
    }
    if cli.runs(What::Subscriptions) {
        eprintln!("[bench] subscriptions: commit-to-handler latency");
        factum.extend(suites::subscriptions(&cfg).await?);
    }
    if cli.runs(What::Nats) {
        eprintln!(
            "[bench] NATS JetStream: outbox and bare async-nats at {}",
            cfg.nats_url
        );
        let (f, p) = suites::nats_publish(&cfg).await?;
        factum.extend(f);
        peer.extend(p);
    }
    if durable && cli.what != What::Fsync {
        fsyncs.insert(
            "after".into(),
            json!(probe(&cfg, cli.fsync_count, "after").await?),
        );
    }
    if cli.runs(What::Http) {
        let bank_bin = match &cli.bank_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("bank"),
        };
        let http_cfg = HttpConfig {
            threads: cli.http_threads,
            connections: cli.http_connections,
            seconds: cli.http_seconds,
            bank_bin,
            dir: cfg.dir.clone(),
        };
        eprintln!("[bench] HTTP: bare axum, bank on SQLite, bank in memory (wrk)");
        match http::run(&http_cfg).await {
            Ok(results) => http_results = results,
            Err(e) if cli.what == What::All => {
                eprintln!("[bench] HTTP figures failed: {e:#}");
                http_error = Some(format!("{e:#}"));
            }
            Err(e) => return Err(e),
        }
    }

    let rows = rows(&factum, &peer);
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&report::table(&rows));
        out.push('\n');
    }
    if !fsyncs.is_empty() {
        let text: Vec<String> = fsyncs
            .iter()
            .map(|(k, v)| format!("{k} {:.0}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        out.push_str(&format!(
            "fsyncs/s (4 KiB append + fdatasync x {}): {}\n\n",
            cli.fsync_count,
            text.join(", ")
        ));
    }
    if !http_results.is_empty() {
        out.push_str(&http::table(&http_results));
        out.push('\n');
    }
    if let Some(e) = &http_error {
        out.push_str(&format!("HTTP figures not measured: {e}\n\n"));
    }
    if !rows.is_empty() {
        out.push_str("Checks and details:\n");
        out.push_str(&report::details(&rows));
        out.push('\n');
    }
    let factum_correct = rows
        .iter()
        .filter_map(|r| r.factum.as_ref())
        .all(|m| m.correct);
    let peer_wrong: Vec<&str> = rows
        .iter()
        .filter(|r| r.peer.as_ref().is_some_and(|m| !m.correct))
        .map(|r| r.figure.as_str())
        .collect();
    out.push_str(&format!(
        "Factum state correct in every figure: {factum_correct}; peer state wrong in: {}\n",
        if peer_wrong.is_empty() {
            "none".to_owned()
        } else {
            peer_wrong.join(", ")
        }
    ));
    let load_end = loadavg();
    out.push_str(&format!(
        "{nproc} CPUs; load average {load_start} at start, {load_end} at end; {:.0} s\n",
        started.elapsed().as_secs_f64()
    ));
    print!("{out}");
    let line = json!({
        "bench": "factum-bench",
        "what": format!("{:?}", cli.what).to_lowercase(),
        "nproc": nproc,
        "reps": cfg.reps,
        "quick": cli.quick,
        "workload": {
            "mem": [cfg.mem.accounts, cfg.mem.commands_per_account],
            "durable": [cfg.durable.accounts, cfg.durable.commands_per_account],
            "tasks": cfg.tasks,
            "contention": [cfg.contention_tasks, cfg.contention_per_task],
            "replay_events": cfg.replay_events,
            "fsync_count": cli.fsync_count,
            "wrk": [cli.http_threads, cli.http_connections, cli.http_seconds],
        },
        "loadavg": {"start": load_start, "end": load_end},
        "fsyncs_per_s": fsyncs,
        "figures": rows,
        "http": http_results,
        "http_error": http_error,
        "factum_states_correct": factum_correct,
        "peer_states_wrong": peer_wrong,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let line = serde_json::to_string(&line)?;
    println!("{line}");
    if let Some(path) = &cli.json_out {
        std::fs::write(path, format!("{line}\n"))?;
    }
    Ok(())
}
