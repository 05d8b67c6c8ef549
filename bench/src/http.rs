//! HTTP figures: the release `bank` binary under `wrk`, next to a bare axum handler served by
//! this process in the same run.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;
use serde::Serialize;

/// The account the HTTP figures use.
pub const ACCOUNT: &str = "acc-bench";
const OPENING: f64 = 1000.0;

/// How to load.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// wrk threads (`-t`).
    pub threads: u32,
    /// wrk connections (`-c`).
    pub connections: u32,
    /// wrk duration in seconds (`-d`).
    pub seconds: u32,
    /// The `bank` binary.
    pub bank_bin: PathBuf,
    /// Where the SQLite file goes.
    pub dir: PathBuf,
}

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
pub struct WrkResult {
    /// What was loaded (`bank sqlite GET`, ...).
    pub target: String,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses").
    pub non_2xx: u64,
    /// wrk's socket errors line, if any.
    pub socket_errors: Option<String>,
    /// The check made after the run.
    pub check: String,
    /// Whether it held.
    pub correct: bool,
}

/// Whether `wrk` can be started.
pub fn wrk_available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1e3),
        "ms" => Some(number),
        "s" => Some(number * 1e3),
        "m" => Some(number * 60e3),
        _ => None,
    }
}

/// Reads wrk's `--latency` output.
pub fn parse_wrk(target: &str, out: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult {
        target: target.to_owned(),
        requests_per_s: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        non_2xx: 0,
        socket_errors: None,
        check: String::new(),
        correct: true,
    };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => result.requests_per_s = rate.parse()?,
            ["50%", latency] => result.p50_ms = parse_duration_ms(latency).unwrap_or(f64::NAN),
            ["99%", latency] => result.p99_ms = parse_duration_ms(latency).unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => result.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => result.non_2xx = n.parse()?,
            ["Socket", "errors:", ..] => result.socket_errors = Some(line.to_owned()),
            _ => {}
        }
    }
    if !result.requests_per_s.is_finite() || result.requests == 0 {
        bail!("could not read wrk's output:\n{out}");
    }
    Ok(result)
}

/// Runs wrk against `url` (with a Lua `script` for POSTs) and reads its output.
pub async fn wrk(
    cfg: &HttpConfig,
    target: &str,
    url: String,
    script: Option<PathBuf>,
) -> anyhow::Result<WrkResult> {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{}", cfg.threads))
        .arg(format!("-c{}", cfg.connections))
        .arg(format!("-d{}s", cfg.seconds))
        .arg("--latency");
    if let Some(script) = &script {
        command.arg("-s").arg(script);
    }
    command.arg(&url);
    // wrk blocks for its whole duration; the server under test may be in this process.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("cannot run wrk")?;
    if !output.status.success() {
        bail!(
            "wrk failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_wrk(target, &String::from_utf8_lossy(&output.stdout))
}

/// The bare handler: ~100 bytes of JSON, no store.
async fn bare() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "id": ACCOUNT,
        "owner": "Bench Owner",
        "balance": 1000.0,
        "version": 1,
        "note": "bare axum handler, no store",
    }))
}

/// Serves the bare handler on a free port of this process.
pub async fn serve_bare() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/accounts/{id}", get(bare));
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bare axum server stopped: {e}");
        }
    });
    Ok((addr, handle))
}

/// A `bank` process, killed when dropped.
pub struct BankProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for BankProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    // Bound and released at once: a small race with other processes, fine on a test box.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Starts `bank --listen ADDR --store STORE` and waits until it answers.
pub async fn start_bank(bin: &Path, store: &str) -> anyhow::Result<BankProcess> {
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p bank`",
            bin.display()
        );
    }
    let addr = free_port()?;
    let child = Command::new(bin)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--store")
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let bank = BankProcess { child, addr };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("http://{addr}/accounts/{ACCOUNT}");
        if client.get(&url).send().await.is_ok() {
            return Ok(bank);
        }
        if Instant::now() > deadline {
            bail!("bank on {addr} did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An account's balance (in cents) and version, from `GET /accounts/{id}`.
pub async fn state(addr: SocketAddr, id: &str) -> anyhow::Result<(i64, u64)> {
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/accounts/{id}"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let balance = body["balance"].as_f64().context("no balance")?;
    let version = body["version"].as_u64().context("no version")?;
    Ok(((balance * 100.0).round() as i64, version))
}

/// Opens account `id` with the opening balance.
pub async fn open(addr: SocketAddr, id: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/accounts/{id}"))
        .json(&serde_json::json!({"type": "OpenAccount", "owner": "Bench", "initial_balance": OPENING}))
        .send()
        .await?;
    if response.status().as_u16() != 201 {
        bail!(
            "opening the account: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// The Lua script that makes wrk POST a deposit of 0.01.
pub const DEPOSIT_LUA: &str = r#"wrk.method = "POST"
wrk.body = '{"type":"Deposit","amount":0.01}'
wrk.headers["Content-Type"] = "application/json"
"#;

/// Accounts the spread POST figure deposits into, round-robin.
pub const SPREAD_ACCOUNTS: usize = 64;

/// The id of spread account `i`.
pub fn spread_account(i: usize) -> String {
    format!("{ACCOUNT}-{i}")
}

/// The Lua script that makes wrk POST deposits of 0.01 round-robin over the spread accounts
/// (one counter per wrk thread).
pub fn spread_deposit_lua() -> String {
    format!(
        r#"{DEPOSIT_LUA}local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/accounts/{ACCOUNT}-" .. (n % {SPREAD_ACCOUNTS}))
end
"#
    )
}

/// POST deposits spread over [`SPREAD_ACCOUNTS`] accounts (so group commit can batch
/// them); checks every account's final state against wrk's count.
pub async fn bank_spread_post(
    cfg: &HttpConfig,
    label: &str,
    bank: &BankProcess,
    script: &Path,
) -> anyhow::Result<WrkResult> {
    for i in 0..SPREAD_ACCOUNTS {
        open(bank.addr, &spread_account(i)).await?;
    }
    let url = format!("http://{}/accounts/{}", bank.addr, spread_account(0));
    let mut post = wrk(
        cfg,
        &format!("bank {label} POST deposit, {SPREAD_ACCOUNTS} accounts"),
        url,
        Some(script.to_owned()),
    )
    .await?;
    let mut deposits = 0;
    let mut exact = true;
    for i in 0..SPREAD_ACCOUNTS {
        let (cents, version) = state(bank.addr, &spread_account(i)).await?;
        let n = version.saturating_sub(1);
        deposits += n;
        exact &= cents == (OPENING * 100.0).round() as i64 + n as i64;
    }
    check_deposits(cfg, &mut post, deposits, exact);
    Ok(post)
}

/// Compares the deposits the server holds with the 2xx wrk counted.
fn check_deposits(cfg: &HttpConfig, post: &mut WrkResult, deposits: u64, exact: bool) {
    let acknowledged = post.requests.saturating_sub(post.non_2xx);
    // wrk stops with up to one request in flight per connection, which the server may
    // still have committed: the server's count may exceed wrk's by at most that.
    let in_range =
        deposits >= acknowledged && deposits <= acknowledged + u64::from(cfg.connections);
    post.correct = post.non_2xx == 0 && in_range && exact;
    post.check = format!(
        "{} non-2xx; server has {deposits} deposits, wrk counted {acknowledged} 2xx{}; balances {}",
        post.non_2xx,
        if in_range { "" } else { " (OUT OF RANGE)" },
        if exact { "exact" } else { "WRONG" }
    );
}

/// GET, then POST deposits to one account, against one `bank` process on `store` (then,
/// with `spread_script`, POST deposits spread over many accounts); checks the final state.
pub async fn bank_runs(
    cfg: &HttpConfig,
    label: &str,
    store: &str,
    script: &Path,
    spread_script: Option<&Path>,
) -> anyhow::Result<Vec<WrkResult>> {
    let bank = start_bank(&cfg.bank_bin, store).await?;
    open(bank.addr, ACCOUNT).await?;
    let url = format!("http://{}/accounts/{ACCOUNT}", bank.addr);
    let mut get = wrk(cfg, &format!("bank {label} GET"), url.clone(), None).await?;
    get.check = format!("{} non-2xx", get.non_2xx);
    get.correct = get.non_2xx == 0;
    let mut post = wrk(
        cfg,
        &format!("bank {label} POST deposit, 1 account"),
        url,
        Some(script.to_owned()),
    )
    .await?;
    let (cents, version) = state(bank.addr, ACCOUNT).await?;
    let deposits = version.saturating_sub(1);
    let exact = cents == (OPENING * 100.0).round() as i64 + deposits as i64;
    check_deposits(cfg, &mut post, deposits, exact);
    let mut results = vec![get, post];
    if let Some(spread) = spread_script {
        results.push(bank_spread_post(cfg, label, &bank, spread).await?);
    }
    drop(bank);
    Ok(results)
}

/// All HTTP figures: bare axum, then bank on SQLite and in memory.
pub async fn run(cfg: &HttpConfig) -> anyhow::Result<Vec<WrkResult>> {
    if !wrk_available() {
        bail!("wrk is not installed (Debian: apt-get install -y wrk); HTTP figures skipped");
    }
    let dir = tempfile::Builder::new()
        .prefix("factum-bench-http-")
        .tempdir_in(&cfg.dir)?;
    let script = dir.path().join("deposit.lua");
    std::fs::write(&script, DEPOSIT_LUA)?;
    let spread = dir.path().join("deposit-spread.lua");
    std::fs::write(&spread, spread_deposit_lua())?;
    let mut results = Vec::new();
    let (addr, server) = serve_bare().await?;
    let mut bare = wrk(
        cfg,
        "bare axum GET (~100 B JSON)",
        format!("http://{addr}/accounts/{ACCOUNT}"),
        None,
    )
    .await?;
    server.abort();
    bare.check = format!("{} non-2xx", bare.non_2xx);
    bare.correct = bare.non_2xx == 0;
    results.push(bare);
    let sqlite = format!("sqlite://{}", dir.path().join("bank.db").display());
    results.extend(bank_runs(cfg, "sqlite", &sqlite, &script, Some(&spread)).await?);
    results.extend(bank_runs(cfg, "memory", "memory", &script, None).await?);
    Ok(results)
}

/// The HTTP table, with each figure's ratio to bare axum.
pub fn table(results: &[WrkResult]) -> String {
    let bare = results.first().map_or(f64::NAN, |r| r.requests_per_s);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | requests/s | p50 ms | p99 ms | requests | non-2xx | / bare axum | check |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {} | {} | {:.2} | {} |",
            r.target,
            crate::report::thousands(r.requests_per_s),
            r.p50_ms,
            r.p99_ms,
            r.requests,
            r.non_2xx,
            r.requests_per_s / bare,
            r.check
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 10s test @ http://127.0.0.1:1/accounts/a
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms    2.34ms  50.00ms   90.00%
  Latency Distribution
     50%  850.00us
     75%    1.50ms
     90%    2.00ms
     99%    1.20s
  400000 requests in 10.00s, 50.00MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  40000.50
Transfer/sec:      5.00MB
";
        let r = parse_wrk("t", out).unwrap();
        assert_eq!(r.requests, 400_000);
        assert_eq!(r.non_2xx, 12);
        assert!((r.requests_per_s - 40000.5).abs() < 1e-9);
        assert!((r.p50_ms - 0.85).abs() < 1e-9);
        assert!((r.p99_ms - 1200.0).abs() < 1e-9);
        assert!(parse_wrk("t", "garbage").is_err());
    }
}
