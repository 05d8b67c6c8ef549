//! The connection loop: accepts TCP connections and serves each with hyper's HTTP/1 (as
//! axum's own `serve` did here), with a timer so that a connection that does not send a
//! complete request head in time is closed.
//!
//! axum's `serve` gives hyper no timer, and hyper's header-read timeout needs one: there a
//! client that sends half its headers (or opens a connection and says nothing) holds the
//! connection forever. hyper starts the clock whenever it waits for a request head, at the
//! start of a connection and again after each response, so the same bound also closes idle
//! keep-alive connections.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use crate::error::{Error, Result};

/// The default bound on receiving a request head, and on an idle keep-alive connection.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server treats its connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long a client has to send a complete request head, counted from when the server
    /// starts waiting for it: on a new connection, and after each response on a kept-alive
    /// one (so this is the idle timeout too). The connection is closed after it.
    pub header_read_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

impl ServeConfig {
    /// Sets the header-read (and idle) timeout, at least 1 ms.
    #[must_use]
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }
}

/// Serves `router` on `listener` until `signal` completes, then stops accepting, lets the
/// requests in flight finish, and returns.
pub async fn serve_with_config(
    listener: tokio::net::TcpListener,
    router: Router,
    config: ServeConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|req: Request<Incoming>| req.map(axum::body::Body::new)),
        );
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok::<(), Error>(())
}

/// Errors of one accepted connection, not of the listener.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
