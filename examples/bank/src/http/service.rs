//! The bank over one store: the accounts keep their view inline and wake the movements
//! projection (see [`crate::views`]); the transfers' engine and process run beside them.

use std::sync::Arc;

use factum_core::{CqrsCommandEngine, EngineConfig, EventStore, Projections, Result};

use crate::domain::{Account, Transfer, TransferProcess};
use crate::views::{AccountSummary, Movement};

/// The bank over one store: its engines and subscriptions (the movements projection, the
/// transfer process); run them with `bank.projections().spawn(..)`.
#[derive(Debug, Clone)]
pub struct Bank {
    process: TransferProcess,
    projections: Projections,
}

impl Bank {
    /// The bank over `store` with the default engine configuration.
    pub fn open(store: Arc<dyn EventStore>) -> Result<Self> {
        Self::with_config(store, EngineConfig::default())
    }

    /// The bank over `store` with this engine configuration; a store without views is an
    /// error.
    pub fn with_config(store: Arc<dyn EventStore>, config: EngineConfig) -> Result<Self> {
        let accounts = CqrsCommandEngine::builder(store.clone())
            .config(config.clone())
            .inline_view::<AccountSummary>()
            .projection::<Movement>()
            .build()?;
        let transfers = CqrsCommandEngine::builder(store)
            .config(config)
            .services(accounts.clone())
            .dispatcher(accounts.projections().waker())
            .build()?;
        let process = TransferProcess::new(accounts, transfers);
        let projections = process.subscriptions()?;
        Ok(Self {
            process,
            projections,
        })
    }

    /// The accounts' engine.
    pub fn engine(&self) -> &CqrsCommandEngine<Account> {
        &self.process.accounts
    }

    /// The transfers' engine.
    pub fn transfers(&self) -> &CqrsCommandEngine<Transfer> {
        &self.process.transfers
    }

    /// The asynchronous subscriptions: the movements projection and the transfer process.
    pub fn projections(&self) -> &Projections {
        &self.projections
    }
}
