//! The bank's read side over HTTP, and how each view is kept up to date.
//!
//! | route | does |
//! |---|---|
//! | `GET /views/accounts?filter=owner:eq:Alice&sort=-balance` | accounts by owner and balance (also `version`) |
//! | `GET /views/accounts/{id}` | one account's record: `{"id","owner","balance","version"}` |
//! | `GET /views/movements?filter=kind:eq:deposit` | every movement (by `account_id`, `kind`, `amount`, `version`) |
//! | `GET /views/movements/{account}-{version}` | one movement |
//! | `GET /accounts/{id}/movements` | one account's movements, oldest first (same query string) |
//! | `GET /projections`, `GET /projections/movements` | how far the movements projection is behind |
//!
//! With authentication on, `/views/accounts` shows each caller the accounts they opened (an
//! `admin` all of them), `/views/movements` is for admins, and `/accounts/{id}/movements`
//! for the account's opener and admins (403 for anyone else).
//!
//! ## Inline or asynchronous, per view
//!
//! - **accounts** ([`AccountSummary`]) is kept **inline**: its record is written in the same
//!   transaction as the command's events, so `GET /views/accounts?...` answered after a
//!   command's reply always includes it (a client that just deposited finds the new balance
//!   when it queries by balance). It is one small record per account, read and rewritten by
//!   each command on that account.
//! - **movements** ([`Movement`]) runs as an **asynchronous projection**: it is append-only
//!   history, one record per event, the largest view, and nobody needs it in the same
//!   instant as the command; keeping it out of the append keeps commands lean. The service
//!   follows the log (woken by each commit, polling for other processes' events) and
//!   reports its lag at `/projections/movements`.
//!
//! The choice decides how a view is **rebuilt** (`bank rebuild-views`): a projection commits
//! each batch with its checkpoint, refused if the checkpoint moved, so rebuilding it while
//! the service runs is safe (the service's runner re-reads from 0). An inline view is written
//! by every command from its current record, so a command landing during its rebuild would
//! compute from a half-rebuilt record: `bank rebuild-views --include-inline` is for a stopped
//! service (or one taking no commands).

use factum_core::{CqrsContext, Filter, FilterOp, FilterValue};
use factum_http::HttpView;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::ADMIN_ROLE;
use crate::http::AccountView;
use crate::views::{AccountSummary, Movement};

impl HttpView for AccountSummary {
    const PATH: &'static str = "accounts";
    // A record is exactly what `GET /accounts/{id}` shows.
    type Schema = AccountView;

    /// A caller sees the accounts they opened; an admin sees all (the rule of
    /// [`account_access`](crate::domain::account_access)), filtered in the store's query.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        match ctx.user_id() {
            Some(user) if !ctx.has_role(ADMIN_ROLE) => vec![Filter {
                field: "opened_by".to_owned(),
                op: FilterOp::Eq,
                value: FilterValue::Text(user.to_owned()),
            }],
            _ => Vec::new(),
        }
    }
}

impl HttpView for Movement {
    const PATH: &'static str = "movements";
    type Schema = MovementDoc;

    /// Every account's movements at once are for admins: a movement record does not say
    /// who opened its account. Others read their accounts' movements at
    /// `/accounts/{id}/movements`, which checks the account's rule.
    fn read_roles() -> &'static [&'static str] {
        &[ADMIN_ROLE]
    }

    fn default_sort() -> &'static str {
        "account_id,version"
    }
}

/// The JSON of a movement record (the schema of [`Movement`]).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Movement)]
pub struct MovementDoc {
    /// The account.
    #[schema(example = "acc-001")]
    pub account_id: String,
    /// The account version this movement made.
    #[schema(example = 2)]
    pub version: u64,
    /// `opening`, `deposit` or `withdrawal`.
    pub kind: MovementKindDoc,
    /// The amount moved, never negative, exact to the cent.
    #[schema(example = 500.0)]
    pub amount: f64,
    /// When it was recorded (RFC 3339).
    #[schema(example = "2025-01-01T12:00:00+00:00")]
    pub recorded_at: String,
    /// Who made it; `null` for anonymous callers.
    pub user_id: Option<String>,
}

/// What kind of movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MovementKind)]
pub enum MovementKindDoc {
    /// The opening balance.
    Opening,
    /// Money in.
    Deposit,
    /// Money out.
    Withdrawal,
}

#[cfg(test)]
mod tests {
    use factum_core::{CqrsContext, EventEnvelope, Metadata, View};

    use super::*;
    use crate::domain::AccountEvent;
    use crate::money::Money;

    fn envelope(version: u64, payload: AccountEvent) -> EventEnvelope<AccountEvent> {
        EventEnvelope {
            event_id: CqrsContext::new().new_id(),
            aggregate_type: "account".into(),
            aggregate_id: "acc-001".into(),
            version,
            position: version,
            recorded_at: CqrsContext::new().now(),
            event_type: factum_core::Event::event_type(&payload).into(),
            metadata: Metadata::default(),
            payload,
        }
    }

    #[test]
    fn records_fit_their_documented_schemas() {
        let events = [
            AccountEvent::AccountOpened {
                owner: "Alice".into(),
                initial_balance: Money::from_cents(100_000),
                opened_by: None,
            },
            AccountEvent::MoneyDeposited {
                amount: Money::from_cents(50_001),
            },
            AccountEvent::MoneyWithdrawn {
                amount: Money::from_cents(20_000),
            },
        ];
        let mut summary = AccountSummary::default();
        let kinds = [
            MovementKindDoc::Opening,
            MovementKindDoc::Deposit,
            MovementKindDoc::Withdrawal,
        ];
        for ((version, event), kind) in (1..).zip(events).zip(kinds) {
            let envelope = envelope(version, event);
            summary = summary.update(&envelope).unwrap();
            let movement = Movement::default().update(&envelope).unwrap();
            let doc: MovementDoc =
                serde_json::from_value(serde_json::to_value(&movement).unwrap()).unwrap();
            assert_eq!((doc.kind, doc.version), (kind, version));
            assert_eq!(doc.amount, movement.amount.to_f64());
        }
        let doc: AccountView =
            serde_json::from_value(serde_json::to_value(&summary).unwrap()).unwrap();
        assert_eq!(doc.balance, Money::from_cents(130_001));
        assert_eq!(doc.version, 3);
    }
}
