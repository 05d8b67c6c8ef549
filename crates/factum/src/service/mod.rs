//! A service binary in a few lines: [`Service`] owns the command line (with the binary's own
//! help text and defaults), opening the store by URL, serving with graceful shutdown, the
//! asynchronous projections, the exit codes, and the `rebuild-views` and `status`
//! subcommands. The binary gives its name, its defaults and its wiring ([`App`]):
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::process::ExitCode;
//! use factum::http::Api;
//! use factum::service::{App, Service};
//!
//! let service = Service::new("demo")
//!     .about("A demo service")
//!     .default_store("memory")
//!     .default_listen("127.0.0.1:0")
//!     .app(|_store, _engine_config| Ok(App::new(|http| Ok(Api::new(http)))));
//! // A binary calls `.run().await`, which reads the process's arguments.
//! assert_eq!(service.run_from(["demo", "status"]).await, ExitCode::SUCCESS);
//! # });
//! ```
//!
//! What it runs, by command line:
//!
//! - no subcommand: serve. The store is claimed for this process ([`claim_store`]), the
//!   engine configured from the options ([`EngineConfig`]), the app's routes built with the
//!   HTTP options (limits, `--jwt-secret`/`--jwks-file`/`--jwks-url` auth), its projections
//!   spawned, and one line printed on stdout, `NAME listening on http://ADDRESS (store: ...,
//!   auth: ...)`, which scripts and tests read. SIGTERM or Ctrl-C stops accepting, lets the
//!   requests in flight finish and exits 0. A start on inline views whose rebuild was left
//!   unfinished is refused.
//!   On PostgreSQL every projection and subscription runs under a lease, on one node at a
//!   time (`factum_postgres::Leased`); its poll is then at most one second.
//! - `rebuild-views [--include-inline]`: rebuilds the projections (and the inline views,
//!   claiming the store) from the first event, with a progress bar on a terminal.
//! - `status`: the log's head and each view's state, read-only, beside a running service.
//!
//! Every option has an environment variable (`--listen`/`FACTUM_LISTEN`,
//! `--store`/`FACTUM_STORE`, `--log-format`/`FACTUM_LOG_FORMAT`, ...). A failure prints one
//! line, `NAME: what: why`, on stderr and exits with [`ServiceError::exit_code`]:
//! [`EXIT_STORE_IN_USE`], [`EXIT_REBUILD_UNFINISHED`], or 1.
//!
//! [`claim_store`]: crate::claim_store
//! [`EngineConfig`]: factum_core::EngineConfig

mod app;
mod commands;
mod leases;
mod options;
mod publish;
mod wakeups;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches};
use factum_core::{EngineConfig, EventStore};

pub use app::App;
use commands::AppFactory;
use options::Options;

use crate::ServiceError;

/// Exit code: the store is served by another process (a SQLite file is served by one
/// process at a time).
pub const EXIT_STORE_IN_USE: u8 = 3;

/// Exit code: a rebuild of inline views was interrupted; run it again before serving.
pub const EXIT_REBUILD_UNFINISHED: u8 = 4;

/// The default of `--listen` unless [`Service::default_listen`] sets one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A service binary, configured by builder and checked when it runs (see the [module
/// docs](self)).
pub struct Service {
    name: String,
    about: Option<String>,
    long_about: Option<String>,
    version: String,
    default_store: Option<String>,
    default_listen: String,
    app: Option<Box<AppFactory>>,
}

factum_core::debug_fields! { Service { name, default_store, default_listen, app.is_some(), .. } }

impl Service {
    /// A service named `name`: the binary's name in its help, its messages and its
    /// stdout line. Its store defaults to `sqlite://data/NAME.db`, its address to
    /// [`DEFAULT_LISTEN`].
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            about: None,
            long_about: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_store: None,
            default_listen: DEFAULT_LISTEN.to_owned(),
            app: None,
        }
    }

    /// The binary's description: its first paragraph is what `-h` shows, the whole text
    /// (printed as written, line breaks kept) what `--help` shows above the options.
    #[must_use]
    pub fn about(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        let first = text.trim().split("\n\n").next().unwrap_or_default().trim();
        self.long_about = (first.len() < text.trim().len()).then(|| text.trim().to_owned());
        self.about = Some(first.to_owned());
        self
    }

    factum_core::setters! {
        /// The version `--version` prints (factum's by default; give the binary's with
        /// `env!("CARGO_PKG_VERSION")`).
        pub fn version(version: impl Into<String>) => version = version.into();
        /// The default of `--store`: a store URL this build can open (`memory`,
        /// `sqlite://PATH`, `postgres://...`).
        pub fn default_store(url: impl Into<String>) => default_store = Some(url.into());
        /// The default of `--listen`, `HOST:PORT`.
        pub fn default_listen(address: impl Into<String>) => default_listen = address.into();
    }

    /// The service's wiring: given the store the options name and the engine configuration
    /// they make, its [`App`]. Called once per run, before any subcommand.
    #[must_use]
    pub fn app<F>(mut self, app: F) -> Self
    where
        F: Fn(Arc<dyn EventStore>, EngineConfig) -> factum_core::Result<App>
            + Send
            + Sync
            + 'static,
    {
        self.app = Some(Box::new(app));
        self
    }

    /// Runs the service with the process's arguments; returns the exit code for `main`.
    pub async fn run(self) -> ExitCode {
        self.run_from(std::env::args_os()).await
    }

    /// Runs the service with these arguments (the first is the program's name).
    pub async fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let name = self.name.clone();
        let service = match self.build() {
            Ok(service) => service,
            Err(error) => return report(&name, &error),
        };
        let options = match service.parse(args) {
            Ok(options) => options,
            Err(error) => {
                // --help and --version are "errors" that exit 0; usage errors exit 2.
                if let Err(io) = error.print() {
                    eprintln!("{name}: {io}");
                }
                return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
            }
        };
        options::init_logging(options.log_format);
        match commands::run(&service.name, options, &*service.app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => report(&name, &error),
        }
    }

    /// Checks the settings and makes the command line.
    fn build(self) -> Result<Built, ServiceError> {
        let name = self.name;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return Err(ServiceError::Config(format!(
                "a service name is letters, digits, '-', '_' or '.': {name:?}"
            )));
        }
        let Some(app) = self.app else {
            return Err(ServiceError::Config(format!(
                "service {name} has no app: give its wiring with Service::app"
            )));
        };
        let store = self
            .default_store
            .unwrap_or_else(|| format!("sqlite://data/{name}.db"));
        crate::store_kind(&store).map_err(|error| {
            ServiceError::Config(format!("the default store of {name}: {error}"))
        })?;
        if !is_host_port(&self.default_listen) {
            return Err(ServiceError::Config(format!(
                "the default address of {name} is not HOST:PORT: {:?}",
                self.default_listen
            )));
        }
        let mut command = Options::command()
            .name(name.clone())
            .bin_name(name.clone())
            .version(self.version)
            .mut_arg("store", |arg| arg.required(false).default_value(store))
            .mut_arg("listen", |arg| {
                arg.required(false).default_value(self.default_listen)
            });
        if let Some(about) = self.about {
            command = command.about(about);
        }
        if let Some(text) = self.long_about {
            command = command.long_about(text);
        }
        Ok(Built { name, command, app })
    }
}

/// Whether `address` is `HOST:PORT` (a name or an IP address, and a port number).
fn is_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// A checked [`Service`].
struct Built {
    name: String,
    command: clap::Command,
    app: Box<AppFactory>,
}

impl Built {
    fn parse<I, T>(&self, args: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = self.command.clone().try_get_matches_from(args)?;
        Options::from_arg_matches(&matches)
    }
}

/// Prints one line with the error and its causes; returns its exit code.
fn report(name: &str, error: &ServiceError) -> ExitCode {
    let mut line = format!("{name}: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        line.push_str(&format!(": {error}"));
        cause = error.source();
    }
    eprintln!("{line}");
    ExitCode::from(error.exit_code())
}

#[cfg(test)]
mod tests;
