//! The to-do list service: `cargo run --release -p todolist`, then drive it with curl;
//! `todolist rebuild-views` rebuilds its views from the event log.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use factum_core::{EventStore, ProjectionLag, Projections};
use factum_http::{HttpConfig, JwtAuth};
use indicatif::{ProgressBar, ProgressStyle};
use todolist::http::TodoService;

/// The to-do list service of Factum: lists of to-dos, every change an event.
///
/// Create a list:  curl -X POST localhost:8081/lists/home/commands/CreateList -H 'Content-Type: application/json'
///                   -d '{"name": "Home"}'
/// Then AddTodo ({"todo_id": "tap", "title": "Fix the tap"}), AssignTodo ({"todo_id": "tap",
/// "assignee": "bob"}), ResolveTodo / RemoveTodo ({"todo_id": "tap"}) the same way;
/// GET /lists/home, GET /lists/home/events.
/// Views: GET /views/lists, GET /views/todos?filter=assignee:eq:bob,resolved:eq:false&sort=title,
/// GET /lists/home/todos.
/// API docs: /docs (OpenAPI at /openapi.json). Health: /health. Projection lag: /projections.
#[derive(Debug, Parser)]
#[command(name = "todolist", version, verbatim_doc_comment)]
struct Cli {
    /// Where the events are kept: `sqlite://PATH` (a file, created with its folders if
    /// missing; durable), `memory` (lost on exit), or `postgres://user@host:port/db`.
    #[arg(
        long,
        env = "FACTUM_STORE",
        default_value = "sqlite://data/todolist.db",
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
    #[arg(long, env = "FACTUM_LISTEN", default_value = "127.0.0.1:8081")]
    listen: String,

    /// Require a bearer token (an HS256 JWT signed with this secret, with `exp` and `sub`) on
    /// every list and view route; `sub` is recorded as the user of every event. Unset: anyone, anonymous.
    #[arg(long, env = "FACTUM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

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

    /// How often, in milliseconds, the to-do projection looks for events appended by
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

/// Exit code: the SQLite file is served by another process.
const EXIT_STORE_IN_USE: u8 = 3;
/// Exit code: an inline-view rebuild was interrupted; run it again before serving.
const EXIT_REBUILD_UNFINISHED: u8 = 4;

/// Serving refused: an inline-view rebuild started and did not finish.
#[derive(Debug, thiserror::Error)]
#[error(
    "the rebuild of the inline view(s) {0} was interrupted, so they are incomplete: \
     run `todolist rebuild-views --include-inline` again (it redoes the rebuild) before serving"
)]
struct UnfinishedRebuild(String);

#[derive(Debug, Subcommand)]
enum Command {
    /// Rebuild the views from the first event, with a progress bar.
    ///
    /// The to-do projection is rebuilt safely while the service runs: the service's projector
    /// notices the reset and follows the rebuild. The list summaries are kept inline by every
    /// command, so they are rebuilt only with --include-inline, and then no command may run
    /// meanwhile: stop the service first.
    RebuildViews {
        /// Also rebuild the inline view (list summaries). Stop the service first.
        #[arg(long)]
        include_inline: bool,
    },
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
            eprintln!("todolist: {error:#}");
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
    // the store for this process.
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
    }
}

async fn serve(store: Arc<dyn EventStore>, url: &str, args: ServeArgs) -> anyhow::Result<()> {
    let unfinished = todolist::http::inline_views(&store)?
        .unfinished_rebuilds()
        .await?;
    if !unfinished.is_empty() {
        // Refused rather than finished here, as the bank does: see its `serve`.
        return Err(UnfinishedRebuild(unfinished.join(", ")).into());
    }
    let service = TodoService::open(store).context("cannot set up the to-do views")?;
    let mut config = HttpConfig::default()
        .with_body_limit(args.body_limit)
        .with_request_timeout(Duration::from_secs(args.request_timeout.max(1)))
        .with_max_in_flight(args.max_in_flight)
        .with_idempotency_ttl(Duration::from_secs(args.idempotency_ttl.max(1)));
    if let Some(secret) = &args.jwt_secret {
        config = config.with_auth(JwtAuth::hs256(secret).context("--jwt-secret")?);
    }
    let app = service.router(config)?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("the listener has no address")?;
    let projections = service
        .projections()
        .spawn(Duration::from_millis(args.projection_poll_ms.max(1)));
    // One line on stdout, so scripts (and the end-to-end test) learn the address.
    println!(
        "todolist listening on http://{address} (store: {}, auth: {})",
        printable_store(url),
        if args.jwt_secret.is_some() {
            "JWT"
        } else {
            "none"
        }
    );
    std::io::stdout().flush().context("stdout")?;
    tracing::info!(%address, store = printable_store(url), "to-do list service started");

    let serve_config = factum_http::ServeConfig::default()
        .with_header_read_timeout(Duration::from_secs(args.header_read_timeout.max(1)));
    let served =
        factum_http::serve_with_config(listener, app, serve_config, factum_http::shutdown_signal())
            .await;
    projections.stop().await;
    served?;
    tracing::info!("to-do list service stopped");
    Ok(())
}

/// Rebuilds the projections (and the inline views if asked), each with a progress bar on a
/// terminal and a summary line on stdout.
async fn rebuild(store: Arc<dyn EventStore>, include_inline: bool) -> anyhow::Result<()> {
    let mut sets: Vec<Projections> = Vec::new();
    if include_inline {
        sets.push(todolist::http::inline_views(&store)?);
    }
    sets.push(todolist::http::projected_views(&store)?);
    for set in sets {
        rebuild_with_progress(&set).await?;
    }
    if !include_inline {
        println!(
            "list_summaries: kept inline, not rebuilt (use --include-inline with the service stopped)"
        );
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
