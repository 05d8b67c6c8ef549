//! The bank account service: `cargo run --release -p bank`, then drive it with curl;
//! `bank rebuild-views` rebuilds its views from the event log, `bank status` shows them.

use factum::service::{App, Service};

const ABOUT: &str = "\
The reference bank account service of Factum: every change to an account is an event.

Open an account:  curl -X POST localhost:8080/accounts/acc-001 -H 'Content-Type: application/json'
                    -d '{\"type\": \"OpenAccount\", \"owner\": \"Alice\", \"initial_balance\": 1000.0}'
Then Deposit / Withdraw the same way ({\"type\": \"Deposit\", \"amount\": 500.0}),
GET /accounts/acc-001, GET /accounts/acc-001/events (?metadata=true), ?version=N.
Views: GET /views/accounts?filter=owner:eq:Alice&sort=-balance, GET /accounts/acc-001/movements.
Transfers: POST /transfers {\"from\": \"acc-001\", \"to\": \"acc-002\", \"amount\": 10.0}, GET /transfers/ID.
API docs: /docs (OpenAPI at /openapi.json). Health: /health. Projection lag: /projections.
Auth: --jwt-secret or --jwks-file/--jwks-url (see below); then an account is for the user
who opened it and for the `admin` role.";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Service::new("bank")
        .about(ABOUT)
        .version(env!("CARGO_PKG_VERSION"))
        .default_store("sqlite://data/bank.db")
        .default_listen("127.0.0.1:8080")
        .app(|store, engine_config| {
            let bank = bank::http::Bank::with_config(store, engine_config)?;
            let subscriptions = bank.projections().clone();
            Ok(App::of_engine(bank.engine().clone(), move |_, http| {
                bank::http::api(&bank, http)
            })
            .projections(subscriptions))
        })
        .run()
        .await
}
