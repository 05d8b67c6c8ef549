//! The bank over HTTP: the reference routes of the contract, and the generic routes of the
//! account under `/api`, with one OpenAPI document for both.
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
//!
//! The domain imports `factum-core` and serde only, so the OpenAPI schemas of its types are
//! given here by documentation types (`*Body`, [`AccountEventDoc`]); tests check that the
//! domain's JSON fits them.

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use factum_core::{AccessPolicy, validate_aggregate_id};
use factum_http::{
    AggregateService, Api, ApiError, CommandReply, CommandSpec, EnvelopeBody, ErrorBody,
    HttpAggregate, HttpConfig, Idempotency, IfMatch, JsonBody, RequestContext, StateQuery,
    with_etag,
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, OneOfBuilder};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};

use crate::domain::{Account, AccountEvent};
use crate::money::Money;
use crate::views::{AccountSummary, Movement};

mod service;
pub mod views;

pub use service::{Bank, inline_views, projected_views};

/// What a client sees of an account: `{"id","owner","balance","version"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The account id.
    #[schema(example = "acc-001")]
    pub id: String,
    /// The owner.
    #[schema(example = "Alice")]
    pub owner: String,
    /// The balance, exact to the cent.
    #[schema(value_type = f64, example = 1300.0)]
    pub balance: Money,
    /// How many events the account has (its `ETag`).
    #[schema(example = 3)]
    pub version: u64,
    /// The user who opened it (the token's `sub`); absent when the service does not know
    /// callers (authentication off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "alice@example.com")]
    pub opened_by: Option<String>,
}

/// The body of `OpenAccount`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountBody {
    /// Who owns it: 1 to 200 characters, not blank.
    #[schema(example = "Alice")]
    pub owner: String,
    /// The opening balance: not negative, at most 2 decimals, at most 1e15.
    #[schema(example = 1000.0, minimum = 0)]
    pub initial_balance: f64,
}

/// The body of `Deposit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositBody {
    /// Above zero, at most 2 decimals, at most 1e15.
    #[schema(example = 500.0)]
    pub amount: f64,
}

/// The body of `Withdraw`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    /// Above zero, at most 2 decimals, at most 1e15; the balance may reach zero, not below.
    #[schema(example = 200.0)]
    pub amount: f64,
}

/// The body of `POST /accounts/{id}`: a command, tagged by `type`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum AccountCommandBody {
    /// Open the account (201).
    OpenAccount {
        /// Who owns it: 1 to 200 characters, not blank.
        #[schema(example = "Alice")]
        owner: String,
        /// The opening balance: not negative, at most 2 decimals, at most 1e15.
        #[schema(example = 1000.0)]
        initial_balance: f64,
    },
    /// Pay money in (200).
    Deposit {
        /// Above zero, at most 2 decimals, at most 1e15.
        #[schema(example = 500.0)]
        amount: f64,
    },
    /// Take money out (200).
    Withdraw {
        /// Above zero, at most 2 decimals, at most 1e15.
        #[schema(example = 200.0)]
        amount: f64,
    },
}

/// The JSON of an account event (the schema of [`AccountEvent`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
#[schema(as = AccountEvent)]
pub enum AccountEventDoc {
    /// The account was opened.
    AccountOpened {
        /// Who owns it.
        owner: String,
        /// The opening balance.
        initial_balance: f64,
        /// The user who opened it, when the service knows callers.
        #[serde(default)]
        opened_by: Option<String>,
    },
    /// Money was paid in.
    MoneyDeposited {
        /// How much.
        amount: f64,
    },
    /// Money was taken out.
    MoneyWithdrawn {
        /// How much.
        amount: f64,
    },
}

/// The schema of the reply of `GET /accounts/{id}/events`: the events, or with
/// `?metadata=true` their envelopes. (Written by hand: the envelope type is generic.)
#[derive(Debug)]
pub struct AccountHistory;

impl PartialSchema for AccountHistory {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ArrayBuilder::new().items(Ref::from_schema_name(AccountEventDoc::name())))
            .item(ArrayBuilder::new().items(Ref::from_schema_name(
                EnvelopeBody::<AccountEventDoc>::name(),
            )))
            .description(Some(
                "The events, oldest first; with ?metadata=true each in its envelope",
            ))
            .into()
    }
}

impl ToSchema for AccountHistory {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            AccountEventDoc::name().into_owned(),
            AccountEventDoc::schema(),
        ));
        schemas.push((
            EnvelopeBody::<AccountEventDoc>::name().into_owned(),
            EnvelopeBody::<AccountEventDoc>::schema(),
        ));
    }
}

impl HttpAggregate for Account {
    const PATH: &'static str = "accounts";
    type View = AccountView;
    type EventSchema = AccountEventDoc;

    fn view(&self, version: u64) -> AccountView {
        AccountView {
            id: self.id.clone(),
            owner: self.owner.clone(),
            balance: self.balance,
            version,
            opened_by: self.opened_by.clone(),
        }
    }

    fn create_commands() -> Vec<CommandSpec> {
        vec![CommandSpec::new::<OpenAccountBody>(
            "OpenAccount",
            "Open an account with an owner and an opening balance",
        )]
    }

    fn update_commands() -> Vec<CommandSpec> {
        vec![
            CommandSpec::new::<DepositBody>("Deposit", "Pay money into an account"),
            CommandSpec::new::<WithdrawBody>("Withdraw", "Take money out of an account"),
        ]
    }

    fn access_policy() -> AccessPolicy<Self> {
        crate::domain::account_access()
    }
}

/// Query of `GET /accounts/{id}/events`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `true`: envelopes with ids, version, position, time, user and request ids.
    pub metadata: Option<bool>,
}

/// Runs the command the body names on the account in the path.
#[utoipa::path(
    post,
    path = "/accounts/{id}",
    tag = "accounts",
    summary = "Run a command on an account: OpenAccount (201), Deposit or Withdraw (200)",
    params(
        ("id" = String, Path, description = "The account id: 1 to 128 of [A-Za-z0-9._:-]", pattern = r"^[A-Za-z0-9._:-]{1,128}$"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "Run only at this version (the ETag, \"3\"); else 412", pattern = r#"^(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19}))$"#),
    ),
    request_body(content = AccountCommandBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Opened", body = AccountView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 200, description = "Deposited or withdrawn", body = AccountView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "ACCOUNT_INSUFFICIENT_FUNDS, ACCOUNT_INVALID_AMOUNT, ACCOUNT_INVALID_OWNER, or VALIDATION_ERROR (id, JSON, type, fields)", body = ErrorBody),
        (status = 404, description = "ACCOUNT_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ACCOUNT_ALREADY_EXISTS", body = ErrorBody),
        (status = 412, description = "If-Match does not hold", body = ErrorBody),
        (status = 413, description = "Body over the limit (64 KiB by default)", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
    )
)]
async fn post_account(
    State(service): State<AggregateService<Account>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
    IfMatch(precondition): IfMatch,
    Idempotency(idempotency): Idempotency,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    validate_aggregate_id(&id)?;
    let name = service.command_name_in(&body)?.to_owned();
    let command = service.parse(&name, body)?;
    service
        .execute_idempotent(
            Some(&id),
            command,
            precondition,
            &ctx,
            idempotency.as_ref(),
            |created, _id, account: &Account, version| {
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok(CommandReply::json(status, &account.view(version))?
                    .with_header(axum::http::header::ETAG, &factum_http::etag(version)))
            },
        )
        .await
}

/// The account state, now or at a past version.
#[utoipa::path(
    get,
    path = "/accounts/{id}",
    tag = "accounts",
    summary = "The state of an account; ?version=N gives the state after its first N events",
    params(("id" = String, Path, description = "The account id", pattern = r"^[A-Za-z0-9._:-]{1,128}$"), StateQuery),
    responses(
        (status = 200, description = "The account", body = AccountView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "Invalid id or version (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "ACCOUNT_NOT_FOUND, or NOT_FOUND for a version the account has not reached", body = ErrorBody),
    )
)]
async fn get_account(
    State(service): State<AggregateService<Account>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let loaded = service.load(&id, query.version, &ctx).await?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        loaded.state.view(loaded.version),
    ))
}

/// The account's events.
#[utoipa::path(
    get,
    path = "/accounts/{id}/events",
    tag = "accounts",
    summary = "The events of an account, oldest first; ?metadata=true gives envelopes",
    params(("id" = String, Path, description = "The account id", pattern = r"^[A-Za-z0-9._:-]{1,128}$"), HistoryQuery),
    responses(
        (status = 200, description = "The events (or envelopes)", body = AccountHistory),
        (status = 400, description = "Invalid id or query (VALIDATION_ERROR)", body = ErrorBody),
        (status = 404, description = "ACCOUNT_NOT_FOUND", body = ErrorBody),
    )
)]
async fn get_events(
    State(service): State<AggregateService<Account>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let events = service.history(&id, 1, None, &ctx).await?;
    Ok(if query.metadata.unwrap_or(false) {
        let envelopes: Vec<EnvelopeBody<AccountEvent>> =
            events.into_iter().map(EnvelopeBody::from).collect();
        axum::Json(envelopes).into_response()
    } else {
        let events: Vec<AccountEvent> = events.into_iter().map(|e| e.payload).collect();
        axum::Json(events).into_response()
    })
}

/// `/accounts/` (an empty id) is a route of its own: the router would otherwise answer 404.
async fn empty_id(RequestContext(_ctx): RequestContext) -> ApiError {
    ApiError::validation("aggregate id must not be empty")
}

#[derive(OpenApi)]
#[openapi(
    paths(post_account, get_account, get_events),
    components(schemas(AccountView, AccountCommandBody, AccountEventDoc, AccountHistory, ErrorBody)),
    tags((name = "accounts", description = "The reference bank account routes"))
)]
struct ReferenceDoc;

/// Marks each variant of [`AccountCommandBody`] closed (`additionalProperties: false`), as
/// serde's `deny_unknown_fields` on the enum makes it: utoipa does not carry the attribute
/// over to the variants of a tagged enum.
fn close_command_variants(doc: &mut utoipa::openapi::OpenApi) {
    let schema = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(AccountCommandBody::name().as_ref()));
    if let Some(RefOr::T(Schema::OneOf(one_of))) = schema {
        for variant in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = variant {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// The bank's service: reference routes, the account's generic routes under `/api`, the
/// view routes, `/projections`, `/health`, `/openapi.json` and `/docs`, not yet turned into a
/// router (see [`router`]).
pub fn api(bank: &Bank, config: HttpConfig) -> Result<Api, factum_http::Error> {
    let engine = bank.engine().clone();
    let store = engine.store().clone();
    let service = AggregateService::new(engine.clone());
    let reference = Router::new()
        .route("/accounts/{id}", post(post_account).get(get_account))
        .route("/accounts/{id}/events", get(get_events))
        .route("/accounts/", post(empty_id).get(empty_id))
        .with_state(service);
    // With auth on, the document marks these routes (as every protected one) with the
    // bearer scheme and their 401/403 answers.
    let mut doc = ReferenceDoc::openapi();
    close_command_variants(&mut doc);
    Ok(
        Api::new(config.with_title("Factum bank account service", env!("CARGO_PKG_VERSION")))
            .with_health(store.clone())
            .with_routes(reference, doc)
            .with_aggregate("/api", engine)
            .with_view::<AccountSummary>("/views", &store)?
            .with_view::<Movement>("/views", &store)?
            .with_child_view::<Movement>("", &store)?
            .with_projections(bank.projections()),
    )
}

/// The bank's router, ready to serve or to test with `tower::ServiceExt::oneshot`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use axum::body::{Body, to_bytes};
/// use axum::http::Request;
/// use factum_core::InMemoryEventStore;
/// use tower::ServiceExt;
///
/// let bank = bank::http::Bank::open(Arc::new(InMemoryEventStore::new())).unwrap();
/// let app = bank::http::router(&bank, factum_http::HttpConfig::default()).unwrap();
/// let open = Request::post("/accounts/acc-001")
///     .header("content-type", "application/json")
///     .body(Body::from(r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}"#))
///     .unwrap();
/// let response = app.oneshot(open).await.unwrap();
/// assert_eq!(response.status(), 201);
/// let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
/// assert_eq!(body, r#"{"id":"acc-001","owner":"Alice","balance":1000.0,"version":1}"#);
/// # });
/// ```
pub fn router(bank: &Bank, config: HttpConfig) -> Result<Router, factum_http::Error> {
    Ok(api(bank, config)?.into_router())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_events_fit_their_documented_schema() {
        let events = [
            AccountEvent::AccountOpened {
                owner: "Alice".into(),
                initial_balance: Money::from_cents(100_050),
                opened_by: None,
            },
            AccountEvent::MoneyDeposited {
                amount: Money::from_cents(1),
            },
            AccountEvent::MoneyWithdrawn {
                amount: Money::from_cents(20_000),
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            let doc: AccountEventDoc = serde_json::from_value(json.clone()).unwrap();
            let name = format!("{doc:?}");
            assert!(
                name.starts_with(factum_core::Event::event_type(&event)),
                "{name} / {json}"
            );
        }
    }

    #[test]
    fn documented_command_bodies_are_what_the_domain_reads() {
        use crate::domain::{AccountCommand, OpenAccountCommand};
        let open = serde_json::json!({"type": "OpenAccount", "owner": "A", "initial_balance": 1.5});
        assert!(serde_json::from_value::<AccountCommandBody>(open.clone()).is_ok());
        let body = serde_json::json!({"owner": "A", "initial_balance": 1.5});
        assert!(serde_json::from_value::<OpenAccountBody>(body).is_ok());
        let OpenAccountCommand::OpenAccount {
            owner,
            initial_balance,
        } = serde_json::from_value(open).unwrap();
        assert_eq!(owner, "A");
        assert_eq!(initial_balance.to_money(), Ok(Money::from_cents(150)));

        let amount_of = |command: AccountCommand| match command {
            AccountCommand::Deposit { amount } => ("Deposit", amount.to_money()),
            AccountCommand::Withdraw { amount } => ("Withdraw", amount.to_money()),
        };
        let deposit = serde_json::json!({"type": "Deposit", "amount": 2});
        assert!(serde_json::from_value::<AccountCommandBody>(deposit.clone()).is_ok());
        assert!(serde_json::from_value::<DepositBody>(serde_json::json!({"amount": 2})).is_ok());
        assert_eq!(
            amount_of(serde_json::from_value(deposit).unwrap()),
            ("Deposit", Ok(Money::from_cents(200)))
        );
        let withdraw = serde_json::json!({"type": "Withdraw", "amount": 0.5});
        assert!(serde_json::from_value::<AccountCommandBody>(withdraw.clone()).is_ok());
        assert!(serde_json::from_value::<WithdrawBody>(serde_json::json!({"amount": 0.5})).is_ok());
        assert_eq!(
            amount_of(serde_json::from_value(withdraw).unwrap()),
            ("Withdraw", Ok(Money::from_cents(50)))
        );
        // The generic routes list exactly the domain's commands.
        let names: Vec<_> = Account::create_commands()
            .iter()
            .chain(&Account::update_commands())
            .map(CommandSpec::name)
            .collect();
        assert_eq!(names, ["OpenAccount", "Deposit", "Withdraw"]);
    }
}
