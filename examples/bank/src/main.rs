//! The bank account service: `cargo run --release -p bank`, then drive it with curl.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use factum_core::{CqrsCommandEngine, EngineConfig};
use factum_http::{HttpConfig, JwtAuth};

/// The reference bank account service of Factum: every change to an account is an event.
///
/// Open an account:  curl -X POST localhost:8080/accounts/acc-001 -H 'Content-Type: application/json'
///                     -d '{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}'
/// Then Deposit / Withdraw the same way ({"type": "Deposit", "amount": 500.0}),
/// GET /accounts/acc-001, GET /accounts/acc-001/events (?metadata=true), ?version=N.
/// API docs: /docs (OpenAPI at /openapi.json). Health: /health.
#[derive(Debug, Parser)]
#[command(name = "bank", version, verbatim_doc_comment)]
struct Cli {
    /// The address to listen on, HOST:PORT (port 0 picks a free one).
    #[arg(long, env = "FACTUM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,

    /// Where the events are kept: `sqlite://PATH` (a file, created with its folders if
    /// missing; durable), `memory` (lost on exit), or `postgres://user@host:port/db`.
    #[arg(long, env = "FACTUM_STORE", default_value = "sqlite://data/bank.db")]
    store: String,

    /// Require a bearer token (an HS256 JWT signed with this secret, with `exp` and `sub`) on
    /// account routes; `sub` is recorded as the user of every event. Unset: anyone, anonymous.
    #[arg(long, env = "FACTUM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// The largest request body accepted, in bytes (413 above).
    #[arg(long, env = "FACTUM_BODY_LIMIT", default_value_t = factum_http::DEFAULT_BODY_LIMIT)]
    body_limit: usize,

    /// How many seconds a request may take (408 after).
    #[arg(long, env = "FACTUM_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
}

/// The store URL as it may be printed: a PostgreSQL URL can hold a password.
fn printable_store(url: &str) -> &str {
    if url.starts_with("postgres") {
        "postgres"
    } else {
        url
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One readable line with its causes, whatever RUST_BACKTRACE says.
            eprintln!("bank: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let store = factum::open_store(&cli.store).await.with_context(|| {
        format!(
            "cannot open the event store {}",
            printable_store(&cli.store)
        )
    })?;
    // Commands on one account are serialized in this process; retries cover other processes
    // sharing the store.
    let engine = CqrsCommandEngine::new(store, ())
        .with_config(EngineConfig::default().with_max_attempts(20));

    let mut config = HttpConfig::default()
        .with_body_limit(cli.body_limit)
        .with_request_timeout(Duration::from_secs(cli.request_timeout.max(1)));
    if let Some(secret) = &cli.jwt_secret {
        config = config.with_auth(JwtAuth::hs256(secret).context("--jwt-secret")?);
    }
    let app = bank::http::router(engine, config);

    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let address = listener
        .local_addr()
        .context("the listener has no address")?;
    // One line on stdout, so scripts (and the end-to-end test) learn the address.
    println!(
        "bank listening on http://{address} (store: {}, auth: {})",
        printable_store(&cli.store),
        if cli.jwt_secret.is_some() {
            "JWT"
        } else {
            "none"
        }
    );
    std::io::stdout().flush().context("stdout")?;
    tracing::info!(%address, store = printable_store(&cli.store), "bank service started");

    factum_http::serve(listener, app).await?;
    tracing::info!("bank service stopped");
    Ok(())
}
