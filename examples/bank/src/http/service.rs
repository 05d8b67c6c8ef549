//! The bank wired over one store: the engine with its inline view, the asynchronous
//! projection, and their rebuild (see [`super::views`] for which view is which, and why).

use std::sync::Arc;

use factum_core::Projections;
use factum_core::{CqrsCommandEngine, EngineConfig, EventStore, Projector, ViewQuery, ViewStore};

use crate::domain::Account;
use crate::views::{AccountSummary, Movement};

/// The bank over one store: an engine that keeps the accounts view inline, and the
/// movements projection (run it with [`Projections::spawn`]; the engine wakes it after each
/// commit).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use bank::domain::OpenAccountCommand;
/// use bank::http::Bank;
/// use bank::money::Amount;
/// use factum_core::{CqrsContext, InMemoryEventStore};
///
/// let bank = Bank::open(Arc::new(InMemoryEventStore::new())).unwrap();
/// let open = OpenAccountCommand::OpenAccount { owner: "Alice".into(), initial_balance: Amount::from_cents(100) };
/// bank.engine().create_with_id("acc-001", &open, &CqrsContext::new()).await.unwrap();
/// // The accounts view is written with the events; the movements follow once projected.
/// assert_eq!(bank.views().get_view("accounts", "acc-001").await.unwrap().unwrap().version, 1);
/// assert!(bank.views().get_view("movements", "acc-001-1").await.unwrap().is_none());
/// bank.projections().catch_up().await.unwrap();
/// assert!(bank.views().get_view("movements", "acc-001-1").await.unwrap().is_some());
/// # });
/// ```
#[derive(Clone)]
pub struct Bank {
    engine: CqrsCommandEngine<Account>,
    projections: Projections,
    views: Arc<dyn ViewStore>,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("engine", &self.engine)
            .field("projections", &self.projections)
            .finish_non_exhaustive()
    }
}

impl Bank {
    /// The bank over `store`, with the default engine configuration. A store that keeps no
    /// views is an error.
    pub fn open(store: Arc<dyn EventStore>) -> factum_core::Result<Self> {
        // Commands on one account are serialized in this process; retries cover other
        // processes sharing the store.
        Self::with_config(store, EngineConfig::default())
    }

    /// The bank over `store` with this engine configuration.
    pub fn with_config(
        store: Arc<dyn EventStore>,
        config: EngineConfig,
    ) -> factum_core::Result<Self> {
        let views = store.clone().into_view_store().ok_or_else(|| {
            factum_core::Error::Validation("the bank's views need a store that keeps views".into())
        })?;
        let projections = projected_views(&store)?;
        let engine = CqrsCommandEngine::builder(store)
            .config(config)
            .inline_view::<AccountSummary>()
            .dispatcher(projections.waker::<Account>())
            .build()?;
        Ok(Self {
            engine,
            projections,
            views,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &CqrsCommandEngine<Account> {
        &self.engine
    }

    /// The asynchronous projections (movements).
    pub fn projections(&self) -> &Projections {
        &self.projections
    }

    /// The view side of the store.
    pub fn views(&self) -> &Arc<dyn ViewStore> {
        &self.views
    }

    /// Whether the inline accounts view looks like it was never built although the store
    /// has events (a store written before the view existed): then it needs a rebuild.
    pub async fn inline_views_missing(&self) -> factum_core::Result<bool> {
        if self.engine.store().head_position().await? == 0 {
            return Ok(false);
        }
        let one = ViewQuery {
            page_size: 1,
            ..ViewQuery::default()
        };
        let page = self
            .views
            .query_views(
                <AccountSummary as factum_core::View>::TYPE,
                &one,
                <AccountSummary as factum_core::View>::fields(),
            )
            .await?;
        Ok(page.total == 0)
    }
}

/// The views run as asynchronous projections: movements. Rebuilding them is safe while the
/// service runs.
pub fn projected_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<Movement>::for_store(store.clone())?))
}

/// The views kept inline by the engine (accounts), as projectors for a rebuild. Rebuild
/// them only while no command runs: see [`super::views`].
pub fn inline_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<AccountSummary>::for_store(store.clone())?))
}
