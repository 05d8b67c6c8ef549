//! The bank over HTTP: the reference routes of the contract (the tagged-command routes of
//! `factum-http`), and the generic routes of the account under `/api`, with one OpenAPI
//! document for both, generated from the domain's own types.
//!
//! | route | does |
//! |---|---|
//! | `POST /accounts/{id}` | the command the body's `type` names: `OpenAccount` → 201, `Deposit`/`Withdraw` → 200; the account state |
//! | `GET /accounts/{id}` (`?version=N`) | the account state, now or after the first N events |
//! | `GET /accounts/{id}/events` (`?metadata=true`) | the events, or their envelopes |
//! | `/api/accounts/...` | the generic routes of `factum-http` for the account |
//! | `POST /transfers`, `GET /transfers/{id}` | a transfer between two accounts: see [`crate::domain::TransferProcess`] |
//! | `GET /views/accounts`, `/views/movements`, `/accounts/{id}/movements` | the read side: see [`views`] |
//! | `GET /projections` | how far the asynchronous projections are behind |
//! | `GET /health`, `GET /openapi.json`, `/docs` | operations and documentation |

use axum::Router;
use factum_core::AccessPolicy;
use factum_http::{Api, HttpAggregate, HttpConfig};

use crate::domain::{Account, Transfer};
use crate::views::{AccountSummary, Movement};

mod service;
pub mod views;

pub use service::Bank;

/// A client sees the account as it is: `{"id","owner","balance"}` and `opened_by` when
/// known, with its `version` beside them.
impl HttpAggregate for Account {
    const PATH: &'static str = "accounts";
    type View = Self;

    fn view(&self) -> Self {
        self.clone()
    }

    fn access_policy() -> AccessPolicy<Self> {
        crate::domain::account_access()
    }
}

/// A client sees the transfer as it is, with its `version` beside its fields.
impl HttpAggregate for Transfer {
    const PATH: &'static str = "transfers";
    type View = Self;
    fn view(&self) -> Self {
        self.clone()
    }
    fn access_policy() -> AccessPolicy<Self> {
        crate::domain::transfer_access()
    }
}

/// The bank's routes (reference, `/api`, transfers, views, subscriptions, feed, health,
/// docs) and their document, not yet turned into a router (see [`router`]).
pub fn api(bank: &Bank, config: HttpConfig) -> Result<Api, factum_http::Error> {
    let (engine, store) = (bank.engine(), bank.engine().store().clone());
    Ok(
        Api::new(config.with_title("Factum bank account service", env!("CARGO_PKG_VERSION")))
            .with_health(store.clone())
            .with_tagged_commands("", engine.clone())
            .with_aggregate("/api", engine.clone())
            .with_view::<AccountSummary>("/views", &store)?
            .with_view::<Movement>("/views", &store)?
            .with_child_view::<Movement>("", &store)?
            .with_collection("", bank.transfers().clone())
            .with_projections(bank.projections())
            .with_event_feed(&store),
    )
}

/// The bank's router, ready to serve or to test with `tower::ServiceExt::oneshot` (the
/// crate's example).
pub fn router(bank: &Bank, config: HttpConfig) -> Result<Router, factum_http::Error> {
    Ok(api(bank, config)?.into_router())
}
