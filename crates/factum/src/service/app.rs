//! What a service's wiring gives the runner: its HTTP surface (built once the options are
//! known), the projections it runs, and the views its engine keeps inline.

use factum_core::{CommandHandler, CqrsCommandEngine, Projections};
use factum_http::{Api, HttpConfig};

/// Builds the service's [`Api`] from the HTTP configuration the options made.
type ApiFactory = Box<dyn FnOnce(HttpConfig) -> Result<Api, factum_http::Error> + Send>;

/// A service's wiring over one store, as [`Service::app`](super::Service::app) returns it.
///
/// - the [`Api`], made by a closure that gets the [`HttpConfig`] of the options (auth,
///   limits): called only to serve, so `rebuild-views` and `status` never fetch a JWKS or
///   build routes;
/// - the asynchronous [`projections`](Self::projections): run while serving (give the
///   engine their [`waker`](Projections::waker)), rebuilt by `rebuild-views`, reported by
///   `status`;
/// - the views kept [`inline`](Self::inline_views) by the engine, as projections for
///   `rebuild-views --include-inline` and for the start-up check that no rebuild of them was
///   left unfinished.
pub struct App {
    pub(crate) api: ApiFactory,
    pub(crate) projections: Projections,
    pub(crate) inline_views: Projections,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("projections", &self.projections)
            .field("inline_views", &self.inline_views)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A service whose routes `api` builds (with [`Api::new`] over the configuration it is
    /// given); it has no projection and no inline view until added.
    pub fn new(
        api: impl FnOnce(HttpConfig) -> Result<Api, factum_http::Error> + Send + 'static,
    ) -> Self {
        Self {
            api: Box::new(api),
            projections: Projections::new(),
            inline_views: Projections::new(),
        }
    }

    /// A service over `engine`: the projections and the inline views are the ones its
    /// builder was given ([`EngineBuilder::projection`](factum_core::EngineBuilder::projection),
    /// [`inline_view`](factum_core::EngineBuilder::inline_view)).
    /// `api` builds the routes over the engine.
    pub fn of_engine<A: CommandHandler>(
        engine: CqrsCommandEngine<A>,
        api: impl FnOnce(&CqrsCommandEngine<A>, HttpConfig) -> Result<Api, factum_http::Error>
        + Send
        + 'static,
    ) -> Self {
        let projections = engine.projections().clone();
        let inline_views = engine.inline_projections().clone();
        Self::new(move |http| api(&engine, http))
            .projections(projections)
            .inline_views(inline_views)
    }

    factum_core::setters! {
        /// The asynchronous projections. Serve their lag too, with [`Api::with_projections`].
        pub fn projections(projections: Projections) => projections = projections;
        /// The views the engine keeps inline, as projectors (for rebuilds only: nothing runs
        /// them while serving).
        pub fn inline_views(views: Projections) => inline_views = views;
    }
}
