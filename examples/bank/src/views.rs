//! The bank's read side: an accounts view queryable by owner and balance, and a movements
//! view with one record per event of an account (id `{account}-{version}`).
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

use factum_core::{EventEnvelope, FieldKind, View, ViewField, ViewKind};
use serde::{Deserialize, Serialize};

use crate::domain::{Account, AccountEvent};
use crate::money::Money;

/// One record per account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountSummary {
    /// The account id.
    pub id: String,
    /// The owner.
    pub owner: String,
    /// The balance.
    pub balance: Money,
    /// The account's version.
    pub version: u64,
    /// The user who opened it, if known: what the view shows each caller is filtered on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
}

impl View for AccountSummary {
    const TYPE: &'static str = "accounts";
    const KIND: ViewKind = ViewKind::PerAggregate;
    type Aggregate = Account;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("owner", FieldKind::Text),
            ViewField::new("balance", FieldKind::Number),
            ViewField::new("version", FieldKind::Number),
            ViewField::new("opened_by", FieldKind::Text),
        ];
        FIELDS
    }

    fn update(&self, envelope: &EventEnvelope<AccountEvent>) -> Option<Self> {
        let mut next = self.clone();
        next.id.clone_from(&envelope.aggregate_id);
        next.version = envelope.version;
        match &envelope.payload {
            AccountEvent::AccountOpened {
                owner,
                initial_balance,
                opened_by,
            } => {
                next.owner.clone_from(owner);
                next.balance = *initial_balance;
                next.opened_by.clone_from(opened_by);
            }
            AccountEvent::MoneyDeposited { amount } => {
                next.balance = next.balance.checked_add(*amount).unwrap_or(next.balance);
            }
            AccountEvent::MoneyWithdrawn { amount } => {
                next.balance = next.balance.checked_sub(*amount).unwrap_or(next.balance);
            }
        }
        Some(next)
    }
}

/// What kind of movement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MovementKind {
    /// The opening balance.
    #[default]
    Opening,
    /// Money in.
    Deposit,
    /// Money out.
    Withdrawal,
}

/// One record per event of an account: a child view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Movement {
    /// The account.
    pub account_id: String,
    /// The account version this movement made.
    pub version: u64,
    /// Opening, deposit or withdrawal.
    pub kind: MovementKind,
    /// The amount moved (never negative).
    pub amount: Money,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// Who made it, if known.
    pub user_id: Option<String>,
}

impl View for Movement {
    const TYPE: &'static str = "movements";
    const KIND: ViewKind = ViewKind::ChildOfAggregate;
    type Aggregate = Account;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("account_id", FieldKind::Text),
            ViewField::new("kind", FieldKind::Text),
            ViewField::new("amount", FieldKind::Number),
            ViewField::new("version", FieldKind::Number),
        ];
        FIELDS
    }

    fn update(&self, envelope: &EventEnvelope<AccountEvent>) -> Option<Self> {
        let (kind, amount) = match &envelope.payload {
            AccountEvent::AccountOpened {
                initial_balance, ..
            } => (MovementKind::Opening, *initial_balance),
            AccountEvent::MoneyDeposited { amount } => (MovementKind::Deposit, *amount),
            AccountEvent::MoneyWithdrawn { amount } => (MovementKind::Withdrawal, *amount),
        };
        Some(Self {
            account_id: envelope.aggregate_id.clone(),
            version: envelope.version,
            kind,
            amount,
            recorded_at: envelope.recorded_at.to_rfc3339(),
            user_id: envelope.metadata.user_id.clone(),
        })
    }
}
