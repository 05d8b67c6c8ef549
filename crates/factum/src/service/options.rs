//! The command line of a service binary: every option, its environment variable and its
//! default, and what they turn into (the HTTP configuration, the JWT verifier, the logs).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use factum_core::EngineConfig;
use factum_http::{HttpConfig, JwtAuth, ServeConfig};

use crate::ServiceError;

/// A service binary's command line. The name, help texts and the defaults of `--store` and
/// `--listen` are the binary's, set on the clap command by the service builder.
#[derive(Debug, Parser)]
pub(crate) struct Options {
    /// Where the events are kept: `sqlite://PATH` (a file, created with its folders if
    /// missing; durable), `memory` (lost on exit), `postgres://user@host:port/db`, or
    /// `mongodb://host:port/db`.
    #[arg(long, env = "FACTUM_STORE", global = true)]
    pub(crate) store: String,

    /// How log lines are written to stderr: `text`, or `json` (one object per line).
    #[arg(
        long,
        env = "FACTUM_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub(crate) log_format: LogFormat,

    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (colored on a terminal).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Serving (the default when no subcommand is given).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on, HOST:PORT (port 0 picks a free one).
    #[arg(long, env = "FACTUM_LISTEN")]
    pub(crate) listen: String,

    #[command(flatten)]
    pub(crate) auth: AuthArgs,

    /// The largest request body accepted, in bytes (413 above).
    #[arg(long, env = "FACTUM_BODY_LIMIT", default_value_t = factum_http::DEFAULT_BODY_LIMIT)]
    pub(crate) body_limit: usize,

    /// How many seconds a request may take (408 after).
    #[arg(long, env = "FACTUM_REQUEST_TIMEOUT", default_value_t = 30)]
    pub(crate) request_timeout: u64,

    /// How long, in seconds, a command's response is remembered for repeats with the same
    /// `Idempotency-Key` header (expired keys are purged).
    #[arg(long, env = "FACTUM_IDEMPOTENCY_TTL", default_value_t = 24 * 60 * 60)]
    pub(crate) idempotency_ttl: u64,

    /// How many times a command on one aggregate is decided before giving up on conflicts
    /// with other processes sharing the store (each retry reads only the newer events).
    #[arg(long, env = "FACTUM_MAX_ATTEMPTS", default_value_t = 100)]
    pub(crate) max_attempts: u32,

    /// How often, in milliseconds, the asynchronous projections look for events appended by
    /// other processes (this process's commits wake them at once).
    #[arg(long, env = "FACTUM_PROJECTION_POLL_MS", default_value_t = 500)]
    pub(crate) projection_poll_ms: u64,

    /// The most requests handled at once; above it a request gets 503 with Retry-After at
    /// once instead of queueing.
    #[arg(long, env = "FACTUM_MAX_IN_FLIGHT", default_value_t = factum_http::DEFAULT_MAX_IN_FLIGHT)]
    pub(crate) max_in_flight: usize,

    /// How many seconds a client has to send a request's headers (and how long an idle
    /// keep-alive connection stays open); the connection is closed after.
    #[arg(long, env = "FACTUM_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub(crate) header_read_timeout: u64,

    /// Publishes every committed event to NATS JetStream (stream --publish-stream, subjects
    /// `<--publish-subject-prefix>.<aggregate_type>.<event_type>`), e.g.
    /// `nats://127.0.0.1:4222`.
    #[arg(long, env = "FACTUM_PUBLISH")]
    pub(crate) publish: Option<String>,

    /// The JetStream stream --publish publishes to (created if missing). Streams of one
    /// server may not share subjects: give each its own --publish-subject-prefix.
    #[arg(long, env = "FACTUM_PUBLISH_STREAM", default_value = "FACTUM")]
    pub(crate) publish_stream: String,

    /// The first tokens of the subjects --publish publishes on.
    #[arg(long, env = "FACTUM_PUBLISH_SUBJECT_PREFIX", default_value = "factum")]
    pub(crate) publish_subject_prefix: String,
}

/// Authentication: set a secret or a JWKS and every route but /health (and the docs, with
/// --public-docs) needs a bearer token; the token's `sub` is recorded as the user of every
/// event, and its roles decide what the caller may do.
#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    /// Accept HS256 JWTs signed with this shared secret (with `exp` and `sub`).
    #[arg(long, env = "FACTUM_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,

    /// Accept RS256/ES256 JWTs signed with a key of the JSON Web Key Set in this file
    /// (re-read every --jwks-refresh-secs: replace the file to rotate keys).
    #[arg(long, env = "FACTUM_JWKS_FILE", conflicts_with = "jwks_url")]
    pub(crate) jwks_file: Option<std::path::PathBuf>,

    /// Accept RS256/ES256 JWTs signed with a key of the JSON Web Key Set at this URL
    /// (fetched at start, cached, re-read every --jwks-refresh-secs and on an unknown key id).
    #[arg(long, env = "FACTUM_JWKS_URL")]
    pub(crate) jwks_url: Option<String>,

    /// Require tokens to have this issuer (`iss`).
    #[arg(long, env = "FACTUM_JWT_ISSUER")]
    pub(crate) jwt_issuer: Option<String>,

    /// Require tokens to name this audience (`aud`).
    #[arg(long, env = "FACTUM_JWT_AUDIENCE")]
    pub(crate) jwt_audience: Option<String>,

    /// The claim holding the caller's roles: an array, or a space-separated string such as
    /// `scope`; a dotted name reaches into an object (`realm_access.roles`).
    #[arg(long, env = "FACTUM_JWT_ROLES_CLAIM", default_value = factum_http::DEFAULT_ROLES_CLAIM)]
    pub(crate) jwt_roles_claim: String,

    /// How often the JWKS is re-read, in seconds.
    #[arg(long, env = "FACTUM_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub(crate) jwks_refresh_secs: u64,

    /// With auth on, serve /docs and /openapi.json without a token.
    #[arg(long, env = "FACTUM_PUBLIC_DOCS")]
    pub(crate) public_docs: bool,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Rebuild the views from the first event, with a progress bar.
    ///
    /// The asynchronous projections are rebuilt safely while the service runs: the service's
    /// projectors notice the reset and follow the rebuild. The views kept inline are written
    /// by every command, so they are rebuilt only with --include-inline, and then no command
    /// may run meanwhile: stop the service first.
    RebuildViews {
        /// Also rebuild the inline views. Stop the service first (a running service on a
        /// SQLite file makes this refuse with exit code 3).
        #[arg(long)]
        include_inline: bool,
    },
    /// Print the log's head and each view's state (read-only; works beside the service).
    Status,
}

impl Options {
    /// Whether this run claims the store for itself: serving, and rebuilding the inline
    /// views (which no command may write meanwhile). The other commands run beside a service.
    pub(crate) fn claims_store(&self) -> bool {
        matches!(
            self.command,
            None | Some(Command::RebuildViews {
                include_inline: true
            })
        )
    }
}

impl ServeArgs {
    /// The engine's configuration.
    pub(crate) fn engine_config(&self) -> EngineConfig {
        EngineConfig::default().with_max_attempts(self.max_attempts)
    }

    /// The HTTP configuration, with `auth` if any.
    pub(crate) fn http_config(&self, auth: Option<JwtAuth>) -> HttpConfig {
        let config = HttpConfig::default()
            .with_body_limit(self.body_limit)
            .with_request_timeout(Duration::from_secs(self.request_timeout.max(1)))
            .with_max_in_flight(self.max_in_flight)
            .with_idempotency_ttl(Duration::from_secs(self.idempotency_ttl.max(1)));
        match auth {
            Some(auth) => config
                .with_auth(auth)
                .with_public_docs(self.auth.public_docs),
            None => config,
        }
    }

    /// How connections are served.
    pub(crate) fn serve_config(&self) -> ServeConfig {
        ServeConfig::default()
            .with_header_read_timeout(Duration::from_secs(self.header_read_timeout.max(1)))
    }

    /// How often the projections poll.
    pub(crate) fn projection_poll(&self) -> Duration {
        Duration::from_millis(self.projection_poll_ms.max(1))
    }
}

impl AuthArgs {
    /// The verifier, if any source of keys is given; issuer or audience options without a
    /// key source are an error rather than a silently open service.
    pub(crate) async fn verifier(&self) -> Result<Option<JwtAuth>, ServiceError> {
        if self.jwt_secret.is_none() && self.jwks_file.is_none() && self.jwks_url.is_none() {
            if self.jwt_issuer.is_some() || self.jwt_audience.is_some() {
                return Err(ServiceError::Config(
                    "--jwt-issuer/--jwt-audience need --jwt-secret, --jwks-file or --jwks-url"
                        .into(),
                ));
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
        let auth = builder
            .build()
            .map_err(|e| ServiceError::failed("authentication settings", e))?;
        if let Some(url) = &self.jwks_url {
            // A wrong URL shows now, not as 503s on the first requests.
            let keys = auth
                .load_keys()
                .await
                .map_err(|e| ServiceError::failed(format!("--jwks-url {url}"), e))?;
            tracing::info!(keys, "JWKS loaded");
        }
        Ok(Some(auth))
    }
}

/// Sends the logs to stderr, filtered by `RUST_LOG` (`info` when unset). A subscriber set
/// before (by a test, or a program embedding the service) is kept.
pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => logs.json().try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already set; keeping it");
    }
}
