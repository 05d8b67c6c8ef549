//! The bank account service: `cargo run --release -p bank`, then drive it with curl;
//! `bank rebuild-views` rebuilds its views from the event log.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use factum_core::{EventStore, ProjectionLag, Projections};
use factum_http::{HttpConfig, JwtAuth};
use indicatif::{ProgressBar, ProgressStyle};

/// The reference bank account service of Factum: every change to an account is an event.
///
/// Open an account:  curl -X POST localhost:8080/accounts/acc-001 -H 'Content-Type: application/json'
///                     -d '{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}'
/// Then Deposit / Withdraw the same way ({"type": "Deposit", "amount": 500.0}),
/// GET /accounts/acc-001, GET /accounts/acc-001/events (?metadata=true), ?version=N.
/// Views: GET /views/accounts?filter=owner:eq:Alice&sort=-balance, GET /accounts/acc-001/movements.
/// API docs: /docs (OpenAPI at /openapi.json). Health: /health. Projection lag: /projections.
/// Auth: --jwt-secret or --jwks-file/--jwks-url (see below); then an account is for the user
/// who opened it and for the `admin` role.
#[derive(Debug, Parser)]
#[command(name = "bank", version, verbatim_doc_comment)]
struct Cli {
    /// Where the events are kept: `sqlite://PATH` (a file, created with its folders if
    /// missing; durable), `memory` (lost on exit), or `postgres://user@host:port/db`.
    #[arg(
        long,
        env = "FACTUM_STORE",
        default_value = "sqlite://data/bank.db",
        global = true
    )]
    store: String,

    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Serving (the default when no subcommand is given).
#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on, HOST:PORT (port 0 picks a free one).
    #[arg(long, env = "FACTUM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,

    #[command(flatten)]
    auth: AuthArgs,

    /// The largest request body accepted, in bytes (413 above).
    #[arg(long, env = "FACTUM_BODY_LIMIT", default_value_t = factum_http::DEFAULT_BODY_LIMIT)]
    body_limit: usize,

    /// How many seconds a request may take (408 after).
    #[arg(long, env = "FACTUM_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,

    /// How long, in seconds, a command's response is remembered for repeats with the same
    /// `Idempotency-Key` header (expired keys are purged).
    #[arg(long, env = "FACTUM_IDEMPOTENCY_TTL", default_value_t = 24 * 60 * 60)]
    idempotency_ttl: u64,

    /// How many times a command on one account is decided before giving up on conflicts with
    /// other processes sharing the store (each retry reads only the newer events).
    #[arg(long, env = "FACTUM_MAX_ATTEMPTS", default_value_t = 100)]
    max_attempts: u32,

    /// How often, in milliseconds, the movements projection looks for events appended by
    /// other processes (this process's commits wake it at once).
    #[arg(long, env = "FACTUM_PROJECTION_POLL_MS", default_value_t = 500)]
    projection_poll_ms: u64,

    /// The most requests handled at once; above it a request gets 503 with Retry-After at
    /// once instead of queueing.
    #[arg(long, env = "FACTUM_MAX_IN_FLIGHT", default_value_t = factum_http::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,

    /// How many seconds a client has to send a request's headers (and how long an idle
    /// keep-alive connection stays open); the connection is closed after.
    #[arg(long, env = "FACTUM_HEADER_READ_TIMEOUT", default_value_t = 10)]
    header_read_timeout: u64,
}

/// Authentication: set a secret or a JWKS and every route but /health (and the docs, with
/// --public-docs) needs a bearer token; the token's `sub` is recorded as the user of every
/// event, and an account is then open to the user who opened it and to the `admin` role.
#[derive(Debug, Args)]
struct AuthArgs {
    /// Accept HS256 JWTs signed with this shared secret (with `exp` and `sub`).
    #[arg(long, env = "FACTUM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Accept RS256/ES256 JWTs signed with a key of the JSON Web Key Set in this file
    /// (re-read every --jwks-refresh-secs: replace the file to rotate keys).
    #[arg(long, env = "FACTUM_JWKS_FILE", conflicts_with = "jwks_url")]
    jwks_file: Option<std::path::PathBuf>,

    /// Accept RS256/ES256 JWTs signed with a key of the JSON Web Key Set at this URL
    /// (fetched at start, cached, re-read every --jwks-refresh-secs and on an unknown key id).
    #[arg(long, env = "FACTUM_JWKS_URL")]
    jwks_url: Option<String>,

    /// Require tokens to have this issuer (`iss`).
    #[arg(long, env = "FACTUM_JWT_ISSUER")]
    jwt_issuer: Option<String>,

    /// Require tokens to name this audience (`aud`).
    #[arg(long, env = "FACTUM_JWT_AUDIENCE")]
    jwt_audience: Option<String>,

    /// The claim holding the caller's roles: an array, or a space-separated string such as
    /// `scope`; a dotted name reaches into an object (`realm_access.roles`).
    #[arg(long, env = "FACTUM_JWT_ROLES_CLAIM", default_value = factum_http::DEFAULT_ROLES_CLAIM)]
    jwt_roles_claim: String,

    /// How often the JWKS is re-read, in seconds.
    #[arg(long, env = "FACTUM_JWKS_REFRESH_SECS", default_value_t = 300)]
    jwks_refresh_secs: u64,

    /// With auth on, serve /docs and /openapi.json without a token.
    #[arg(long, env = "FACTUM_PUBLIC_DOCS")]
    public_docs: bool,
}

impl AuthArgs {
    /// The verifier, if any source of keys is given; issuer, audience or JWKS options
    /// without a key source are an error rather than a silently open service.
    async fn verifier(&self) -> anyhow::Result<Option<JwtAuth>> {
        if self.jwt_secret.is_none() && self.jwks_file.is_none() && self.jwks_url.is_none() {
            if self.jwt_issuer.is_some() || self.jwt_audience.is_some() {
                anyhow::bail!(
                    "--jwt-issuer/--jwt-audience need --jwt-secret, --jwks-file or --jwks-url"
                );
            }
            return Ok(None);
        }
        let mut builder = JwtAuth::builder()
            .roles_claim(&self.jwt_roles_claim)
            .jwks_refresh(Duration::from_secs(self.jwks_refresh_secs.max(1)))
            .jwks_min_refetch(Duration::from_secs(self.jwks_refresh_secs.clamp(1, 10)));
        if let Some(secret) = &self.jwt_secret {
            builder = builder.hs256(secret);
        }
        if let Some(path) = &self.jwks_file {
            builder = builder.jwks_file(path);
        }
        if let Some(url) = &self.jwks_url {
            builder = builder.jwks_url(url);
        }
        if let Some(issuer) = &self.jwt_issuer {
            builder = builder.issuer(issuer);
        }
        if let Some(audience) = &self.jwt_audience {
            builder = builder.audience(audience);
        }
        let auth = builder.build().context("authentication settings")?;
        if let Some(url) = &self.jwks_url {
            // A wrong URL shows now, not as 503s on the first requests.
            let keys = auth
                .load_keys()
                .await
                .with_context(|| format!("--jwks-url {url}"))?;
            tracing::info!(keys, "JWKS loaded");
        }
        Ok(Some(auth))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rebuild the views from the first event, with a progress bar.
    ///
    /// The movements projection is rebuilt safely while the service runs: the service's
    /// projector notices the reset and follows the rebuild. The accounts view is kept inline
    /// by every command, so it is rebuilt only with --include-inline, and then no command may
    /// run meanwhile: stop the service first.
    RebuildViews {
        /// Also rebuild the inline view (accounts). Stop the service first (a running
        /// service on a SQLite file makes this refuse with exit code 3).
        #[arg(long)]
        include_inline: bool,
    },
    /// Print the log's head and each view's state (read-only; works beside the service).
    Status,
}

/// Exit code: the SQLite file is served by another process.
const EXIT_STORE_IN_USE: u8 = 3;
/// Exit code: an inline-view rebuild was interrupted; run it again before serving.
const EXIT_REBUILD_UNFINISHED: u8 = 4;

/// Serving refused: an inline-view rebuild started and did not finish.
#[derive(Debug, thiserror::Error)]
#[error(
    "the rebuild of the inline view(s) {0} was interrupted, so they are incomplete: \
     run `bank rebuild-views --include-inline` again (it redoes the rebuild) before serving"
)]
struct UnfinishedRebuild(String);

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
            if error
                .downcast_ref::<factum::ServiceError>()
                .is_some_and(factum::ServiceError::is_in_use)
            {
                std::process::ExitCode::from(EXIT_STORE_IN_USE)
            } else if error.is::<UnfinishedRebuild>() {
                std::process::ExitCode::from(EXIT_REBUILD_UNFINISHED)
            } else {
                std::process::ExitCode::FAILURE
            }
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

    // Serving, and rebuilding the inline view (which no command may write meanwhile), claim
    // the store for this process; the other commands run beside a service.
    let _claim = match cli.command {
        None
        | Some(Command::RebuildViews {
            include_inline: true,
        }) => Some(factum::claim_store(&cli.store)?),
        _ => None,
    };
    let store = factum::open_store(&cli.store).await.with_context(|| {
        format!(
            "cannot open the event store {}",
            printable_store(&cli.store)
        )
    })?;
    match cli.command {
        None => serve(store, &cli.store, cli.serve).await,
        Some(Command::RebuildViews { include_inline }) => rebuild(store, include_inline).await,
        Some(Command::Status) => status(store).await,
    }
}

async fn serve(store: Arc<dyn EventStore>, url: &str, args: ServeArgs) -> anyhow::Result<()> {
    let engine_config = factum::EngineConfig::default().with_max_attempts(args.max_attempts);
    let bank = bank::http::Bank::with_config(store, engine_config)
        .context("cannot set up the bank's views")?;
    let unfinished = bank::http::inline_views(bank.engine().store())?
        .unfinished_rebuilds()
        .await?;
    if !unfinished.is_empty() {
        // Refused rather than finished here: a rebuild needs the service down anyway, a
        // start that silently replays the whole log could take any time, and the operator
        // should learn that the rebuild was killed.
        return Err(UnfinishedRebuild(unfinished.join(", ")).into());
    }
    if bank.inline_views_missing().await? {
        tracing::warn!(
            "the accounts view is empty but the store has events (written before views existed?): \
             stop the service and run `bank rebuild-views --include-inline`"
        );
    }
    let mut config = HttpConfig::default()
        .with_body_limit(args.body_limit)
        .with_request_timeout(Duration::from_secs(args.request_timeout.max(1)))
        .with_max_in_flight(args.max_in_flight)
        .with_idempotency_ttl(Duration::from_secs(args.idempotency_ttl.max(1)));
    let auth = args.auth.verifier().await?;
    let auth_mode = match &auth {
        None => "none",
        Some(_) => "JWT",
    };
    if let Some(auth) = auth {
        config = config
            .with_auth(auth)
            .with_public_docs(args.auth.public_docs);
    }
    let app = bank::http::router(&bank, config)?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("the listener has no address")?;
    let projections = bank
        .projections()
        .spawn(Duration::from_millis(args.projection_poll_ms.max(1)));
    // One line on stdout, so scripts (and the end-to-end test) learn the address.
    println!(
        "bank listening on http://{address} (store: {}, auth: {})",
        printable_store(url),
        auth_mode
    );
    std::io::stdout().flush().context("stdout")?;
    tracing::info!(%address, store = printable_store(url), "bank service started");

    let serve_config = factum_http::ServeConfig::default()
        .with_header_read_timeout(Duration::from_secs(args.header_read_timeout.max(1)));
    let served =
        factum_http::serve_with_config(listener, app, serve_config, factum_http::shutdown_signal())
            .await;
    projections.stop().await;
    served?;
    tracing::info!("bank service stopped");
    Ok(())
}

/// Rebuilds the projections (and the inline views if asked), each with a progress bar on a
/// terminal and a summary line on stdout.
async fn rebuild(store: Arc<dyn EventStore>, include_inline: bool) -> anyhow::Result<()> {
    let mut sets: Vec<Projections> = Vec::new();
    if include_inline {
        sets.push(bank::http::inline_views(&store)?);
    }
    sets.push(bank::http::projected_views(&store)?);
    for set in sets {
        rebuild_with_progress(&set).await?;
    }
    if !include_inline {
        println!(
            "accounts: kept inline, not rebuilt (use --include-inline with the service stopped)"
        );
    }
    Ok(())
}

/// Prints the log's head and each view's checkpoint, and any unfinished rebuild.
async fn status(store: Arc<dyn EventStore>) -> anyhow::Result<()> {
    println!("head: {}", store.head_position().await?);
    let inline = bank::http::inline_views(&store)?;
    let unfinished = inline.unfinished_rebuilds().await?;
    for (set, kind) in [
        (inline, "inline"),
        (bank::http::projected_views(&store)?, "projected"),
    ] {
        for projection in set.iter() {
            let name = projection.name();
            if kind == "inline" && unfinished.iter().any(|n| n == name) {
                println!("{name}: inline, REBUILD UNFINISHED (run rebuild-views --include-inline)");
            } else if kind == "inline" {
                println!("{name}: inline");
            } else {
                let lag = projection.lag().await?;
                println!("{name}: projected, at {} of {}", lag.checkpoint, lag.head);
            }
        }
    }
    Ok(())
}

async fn rebuild_with_progress(set: &Projections) -> anyhow::Result<()> {
    let style = ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)",
    )
    .context("progress bar template")?
    .progress_chars("=> ");
    for projection in set.iter() {
        let name = projection.name();
        // Drawn on a terminal only; scripts get the summary line below.
        let bar = ProgressBar::new(0)
            .with_style(style.clone())
            .with_message(name.to_owned());
        let started = Instant::now();
        let read = projection
            .rebuild(&mut |lag: ProjectionLag| {
                bar.set_length(lag.head);
                bar.set_position(lag.checkpoint);
            })
            .await
            .with_context(|| format!("rebuilding {name}"))?;
        bar.finish_and_clear();
        println!(
            "{name}: rebuilt from {read} events in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
