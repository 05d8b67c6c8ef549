//! What a service binary does once its options are parsed: serve (the default),
//! `rebuild-views` and `status`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use factum_core::{EventStore, ProjectionLag, Projections};
use indicatif::{ProgressBar, ProgressStyle};

use super::app::App;
use super::options::{Command, Options, ServeArgs};
use crate::ServiceError;

/// Builds the service's wiring over a store.
pub(crate) type AppFactory = dyn Fn(Arc<dyn EventStore>, factum_core::EngineConfig) -> factum_core::Result<App>
    + Send
    + Sync;

/// Runs the command the options name, as service `name`.
pub(crate) async fn run(
    name: &str,
    options: Options,
    app: &AppFactory,
) -> Result<(), ServiceError> {
    let _claim = if options.claims_store() {
        Some(crate::claim_store(&options.store)?)
    } else {
        None
    };
    let printable = printable_store(&options.store);
    let store = crate::open_store(&options.store)
        .await
        .map_err(|e| ServiceError::failed(format!("cannot open the event store {printable}"), e))?;
    let app = app(store.clone(), options.serve.engine_config())
        .map_err(|e| ServiceError::failed(format!("cannot set up the {name} service"), e))?;
    match options.command {
        None => serve(name, &options.store, store, &options.serve, app).await,
        Some(Command::RebuildViews { include_inline }) => rebuild(&app, include_inline).await,
        Some(Command::Status) => status(&store, &app).await,
    }
}

/// The store URL as it may be printed: a PostgreSQL or MongoDB URL can hold a password.
fn printable_store(url: &str) -> &str {
    if url.starts_with("postgres") {
        "postgres"
    } else if url.starts_with("mongodb") {
        "mongodb"
    } else {
        url
    }
}

/// Serves until SIGTERM or Ctrl-C, running the projections meanwhile; prints one line with
/// the address on stdout once listening.
async fn serve(
    name: &str,
    store_url: &str,
    store: Arc<dyn EventStore>,
    args: &ServeArgs,
    app: App,
) -> Result<(), ServiceError> {
    let unfinished = app
        .inline_views
        .unfinished_rebuilds()
        .await
        .map_err(|e| ServiceError::failed("cannot read the inline views' rebuild state", e))?;
    if !unfinished.is_empty() {
        // Refused rather than finished here: a rebuild needs the service down anyway, a
        // start that silently replays the whole log could take any time, and the operator
        // should learn that the rebuild was killed.
        return Err(ServiceError::UnfinishedRebuild {
            service: name.to_owned(),
            views: unfinished,
        });
    }
    warn_of_unbuilt_inline_views(name, &store, &app.inline_views).await?;
    let auth = args.auth.verifier().await?;
    let auth_mode = if auth.is_some() { "JWT" } else { "none" };
    let router = (app.api)(args.http_config(auth))
        .map_err(|e| ServiceError::failed("cannot build the routes", e))?
        .into_router();

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| ServiceError::failed(format!("cannot listen on {}", args.listen), e))?;
    let address = listener
        .local_addr()
        .map_err(|e| ServiceError::failed("the listener has no address", e))?;
    let printable = printable_store(store_url);
    let subscriptions =
        super::publish::with_publisher(args, &store, app.projections.clone()).await?;
    let node = format!("{name} {address} pid {}", std::process::id());
    let poll = if super::leases::lease(store_url, &subscriptions, &node)? {
        args.projection_poll().min(super::leases::LEASE_POLL)
    } else {
        args.projection_poll()
    };
    let projections = subscriptions.spawn(poll);
    let _wakeups = super::wakeups::listen(store_url, &subscriptions).await?;
    // One line on stdout, so scripts (and the end-to-end tests) learn the address.
    println!("{name} listening on http://{address} (store: {printable}, auth: {auth_mode})");
    std::io::stdout()
        .flush()
        .map_err(|e| ServiceError::failed("stdout", e))?;
    tracing::info!(%address, store = printable, "{name} service started");

    let served = factum_http::serve_with_config(
        listener,
        router,
        args.serve_config(),
        factum_http::shutdown_signal(),
    )
    .await;
    projections.stop().await;
    served.map_err(|e| ServiceError::failed("serving failed", e))?;
    tracing::info!("{name} service stopped");
    Ok(())
}

/// Warns about inline views that look never built although the store has events (a store
/// written before the view existed): they need a rebuild.
async fn warn_of_unbuilt_inline_views(
    name: &str,
    store: &Arc<dyn EventStore>,
    views: &Projections,
) -> Result<(), ServiceError> {
    let read = |e: factum_core::Error| ServiceError::failed("cannot read the inline views", e);
    if views.is_empty() || store.head_position().await.map_err(read)? == 0 {
        return Ok(());
    }
    for view in views.iter() {
        if view.is_empty().await.map_err(read)? {
            tracing::warn!(
                "the {} view is empty but the store has events (written before views existed?): \
                 stop the service and run `{name} rebuild-views --include-inline`",
                view.name()
            );
        }
    }
    Ok(())
}

/// Rebuilds the projections (and the inline views if asked), each with a progress bar on a
/// terminal and a summary line on stdout.
async fn rebuild(app: &App, include_inline: bool) -> Result<(), ServiceError> {
    if include_inline {
        rebuild_with_progress(&app.inline_views).await?;
    }
    rebuild_with_progress(&app.projections).await?;
    if !include_inline {
        for view in app.inline_views.iter() {
            println!(
                "{}: kept inline, not rebuilt (use --include-inline with the service stopped)",
                view.name()
            );
        }
    }
    Ok(())
}

async fn rebuild_with_progress(set: &Projections) -> Result<(), ServiceError> {
    let style = ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)",
    )
    .map_err(|e| ServiceError::failed("progress bar template", e))?
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
            .map_err(|e| ServiceError::failed(format!("rebuilding {name}"), e))?;
        bar.finish_and_clear();
        println!(
            "{name}: rebuilt from {read} events in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Prints the log's head and each view's checkpoint, and any unfinished rebuild.
async fn status(store: &Arc<dyn EventStore>, app: &App) -> Result<(), ServiceError> {
    let read = |e: factum_core::Error| ServiceError::failed("cannot read the store", e);
    println!("head: {}", store.head_position().await.map_err(read)?);
    let unfinished = app.inline_views.unfinished_rebuilds().await.map_err(read)?;
    for view in app.inline_views.iter() {
        let name = view.name();
        if unfinished.iter().any(|n| n == name) {
            println!("{name}: inline, REBUILD UNFINISHED (run rebuild-views --include-inline)");
        } else {
            println!("{name}: inline");
        }
    }
    for projection in app.projections.iter() {
        let lag = projection.lag().await.map_err(read)?;
        println!(
            "{}: projected, at {} of {}",
            projection.name(),
            lag.checkpoint,
            lag.head
        );
    }
    Ok(())
}
