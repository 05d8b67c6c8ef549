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
//! | `GET /views/accounts`, `/views/movements`, `/accounts/{id}/movements` | the read side: see [`views`] |
//! | `GET /projections` | how far the asynchronous projections are behind |
//! | `GET /health`, `GET /openapi.json`, `/docs` | operations and documentation |

use axum::Router;
use factum_core::{AccessPolicy, CqrsCommandEngine};
use factum_http::{Api, HttpAggregate, HttpConfig};

use crate::domain::Account;
use crate::views::{AccountSummary, Movement};

mod service;
pub mod views;

pub use service::{Bank, inline_views, projected_views};

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

/// The bank's service: reference routes, the account's generic routes under `/api`, the
/// view routes, `/projections`, `/health`, `/openapi.json` and `/docs`, not yet turned into a
/// router (see [`router`]).
pub fn api(
    engine: &CqrsCommandEngine<Account>,
    config: HttpConfig,
) -> Result<Api, factum_http::Error> {
    let store = engine.store().clone();
    Ok(
        Api::new(config.with_title("Factum bank account service", env!("CARGO_PKG_VERSION")))
            .with_health(store.clone())
            .with_tagged_commands("", engine.clone())
            .with_aggregate("/api", engine.clone())
            .with_view::<AccountSummary>("/views", &store)?
            .with_view::<Movement>("/views", &store)?
            .with_child_view::<Movement>("", &store)?
            .with_projections(engine.projections())
            .with_event_feed(&store),
    )
}

/// The bank's router, ready to serve or to test with `tower::ServiceExt::oneshot` (the
/// crate's example).
pub fn router(bank: &Bank, config: HttpConfig) -> Result<Router, factum_http::Error> {
    Ok(api(bank.engine(), config)?.into_router())
}
