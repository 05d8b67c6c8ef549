//! The bank wired over one store: the engine keeps the accounts view inline and wakes the
//! movements projection after each commit (see [`crate::views`] for which is which, and why).

use std::sync::Arc;

use factum_core::{CqrsCommandEngine, EngineConfig, EventStore, Projections, Projector, ViewStore};

use crate::domain::Account;
use crate::views::{AccountSummary, Movement};

/// The bank over one store: its engine, and the view side of the store. Run the movements
/// projection with `bank.projections().spawn(..)`; `tests/views.rs` shows both views at work.
#[derive(Clone)]
pub struct Bank {
    engine: CqrsCommandEngine<Account>,
    views: Arc<dyn ViewStore>,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Bank {
    /// The bank over `store` with the default engine configuration.
    pub fn open(store: Arc<dyn EventStore>) -> factum_core::Result<Self> {
        Self::with_config(store, EngineConfig::default())
    }

    /// The bank over `store` with this engine configuration; a store without views is an
    /// error.
    pub fn with_config(
        store: Arc<dyn EventStore>,
        config: EngineConfig,
    ) -> factum_core::Result<Self> {
        let views = store.clone().into_view_store();
        let engine = CqrsCommandEngine::builder(store)
            .config(config)
            .inline_view::<AccountSummary>()
            .projection::<Movement>()
            .build()?;
        let views = views.ok_or_else(|| {
            factum_core::Error::Validation("the bank's views need a store that keeps views".into())
        })?;
        Ok(Self { engine, views })
    }

    /// The engine.
    pub fn engine(&self) -> &CqrsCommandEngine<Account> {
        &self.engine
    }

    /// The asynchronous projections (movements).
    pub fn projections(&self) -> &Projections {
        self.engine.projections()
    }

    /// The view side of the store.
    pub fn views(&self) -> &Arc<dyn ViewStore> {
        &self.views
    }
}

/// The movements projection over `store`, as another process would run it.
pub fn projected_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<Movement>::for_store(store.clone())?))
}

/// The inline accounts view over `store`, as projectors for a rebuild (no command may run).
pub fn inline_views(store: &Arc<dyn EventStore>) -> factum_core::Result<Projections> {
    Ok(Projections::new().with(Projector::<AccountSummary>::for_store(store.clone())?))
}
