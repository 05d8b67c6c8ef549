//! The bank account domain: one aggregate, two kinds of command, three events.
//!
//! Imports `factum-core` and serde only; storage and HTTP are wired elsewhere.

use factum_core::{
    Access, AccessPolicy, Aggregate, CommandHandler, Commands, CqrsContext, Event,
    define_domain_errors,
};
use serde::{Deserialize, Serialize};

use crate::money::{Amount, Money};

/// The longest owner name accepted, in characters.
pub const MAX_OWNER_LEN: usize = 200;

define_domain_errors! {
    /// Why the bank refuses a command.
    pub enum AccountError {
        domain: "ACCOUNT",
        prefix: 10,
        /// The withdrawal is larger than the balance.
        InsufficientFunds { balance: Money, requested: Money } =
            (1, 400, "ACCOUNT_INSUFFICIENT_FUNDS", "insufficient funds: balance is {balance}, withdrawal is {requested}"),
        /// No account has this id.
        NotFound { id: String } = (2, 404, "ACCOUNT_NOT_FOUND", "account '{id}' not found"),
        /// An account with this id is already open.
        AlreadyExists { id: String } = (3, 409, "ACCOUNT_ALREADY_EXISTS", "account '{id}' already exists"),
        /// The amount is not a valid amount of money for this command.
        InvalidAmount { field: &'static str, reason: String } =
            (4, 400, "ACCOUNT_INVALID_AMOUNT", "invalid {field}: {reason}"),
        /// The owner name is empty or too long.
        InvalidOwner { reason: &'static str } = (5, 400, "ACCOUNT_INVALID_OWNER", "invalid owner: {reason}"),
        /// The balance would leave the range the bank can represent.
        BalanceLimit { balance: Money, amount: Money } =
            (6, 400, "ACCOUNT_BALANCE_LIMIT", "a deposit of {amount} would take the balance of {balance} past the limit"),
    }
}

/// What happened to an account.
/// Each event is stored under its serde tag (`#[derive(Event)]`).
#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AccountEvent {
    /// The account was opened.
    AccountOpened {
        /// Who owns it.
        owner: String,
        /// The opening balance.
        initial_balance: Money,
        /// The user who opened it (the token's `sub`), when the service knows callers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        opened_by: Option<String>,
    },
    /// Money was paid in.
    MoneyDeposited {
        /// How much.
        amount: Money,
    },
    /// Money was taken out.
    MoneyWithdrawn {
        /// How much.
        amount: Money,
    },
}

/// Opens an account (the create command). Its name is its serde tag (`#[derive(Commands)]`).
#[derive(Commands, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OpenAccountCommand {
    /// Open an account with an owner and an opening balance.
    OpenAccount {
        /// Who owns it: 1 to 200 characters, not blank.
        owner: String,
        /// The opening balance: not negative, at most 2 decimals, at most 10^15.
        initial_balance: Amount,
    },
}

/// Moves money on an open account (the update commands).
#[derive(Commands, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AccountCommand {
    /// Pay money in.
    Deposit {
        /// Above zero, at most 2 decimals, at most 10^15.
        amount: Amount,
    },
    /// Take money out; the balance may reach zero, not below.
    Withdraw {
        /// Above zero, at most 2 decimals, at most 10^15.
        amount: Amount,
    },
}

/// A bank account: its state is the fold of its events, and what a client sees of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// The account id.
    pub id: String,
    /// The owner.
    pub owner: String,
    /// The balance, exact to the cent.
    pub balance: Money,
    /// The user who opened it (the token's `sub`); absent when the service did not know
    /// callers (authentication off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
}

/// The role that may act on and read every account.
pub const ADMIN_ROLE: &str = "admin";

/// Who may act on and read an account (with authentication on): the user who opened it, and
/// callers with the [`ADMIN_ROLE`]; anyone may open a new one. An account opened by an
/// anonymous caller (before authentication was turned on) is the admins' alone.
pub fn account_access() -> AccessPolicy<Account> {
    AccessPolicy::new().rule(
        |ctx: &CqrsContext, _: Access<'_>, account: Option<&Account>| match account {
            None => true,
            Some(account) => {
                ctx.has_role(ADMIN_ROLE)
                    || account
                        .opened_by
                        .as_deref()
                        .is_some_and(|opener| Some(opener) == ctx.user_id())
            }
        },
    )
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Event = AccountEvent;
    type Error = AccountError;

    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            owner: String::new(),
            balance: Money::ZERO,
            opened_by: None,
        }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened {
                owner,
                initial_balance,
                opened_by,
            } => {
                self.owner.clone_from(owner);
                self.balance = *initial_balance;
                self.opened_by.clone_from(opened_by);
            }
            // The handler proved these stay in range before the event was recorded.
            AccountEvent::MoneyDeposited { amount } => {
                self.balance = self.balance.checked_add(*amount).unwrap_or(self.balance);
            }
            AccountEvent::MoneyWithdrawn { amount } => {
                self.balance = self.balance.checked_sub(*amount).unwrap_or(self.balance);
            }
        }
    }
}

fn money(amount: &Amount, field: &'static str, positive: bool) -> Result<Money, AccountError> {
    let invalid = |reason: String| AccountError::InvalidAmount { field, reason };
    let money = amount
        .to_money()
        .map_err(|problem| invalid(problem.to_string()))?;
    if positive && !money.is_positive() {
        return Err(invalid("amount must be greater than zero".to_owned()));
    }
    Ok(money)
}

impl CommandHandler for Account {
    type CreateCommand = OpenAccountCommand;
    type UpdateCommand = AccountCommand;
    type Services = ();

    async fn handle_create(
        &self,
        command: &OpenAccountCommand,
        _services: &(),
        ctx: &CqrsContext,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        let OpenAccountCommand::OpenAccount {
            owner,
            initial_balance,
        } = command;
        if owner.trim().is_empty() {
            return Err(AccountError::InvalidOwner {
                reason: "owner must not be empty",
            });
        }
        if owner.chars().count() > MAX_OWNER_LEN {
            return Err(AccountError::InvalidOwner {
                reason: "owner must be at most 200 characters",
            });
        }
        let initial_balance = money(initial_balance, "initial_balance", false)?;
        Ok(vec![AccountEvent::AccountOpened {
            owner: owner.clone(),
            initial_balance,
            opened_by: ctx.user_id().map(str::to_owned),
        }])
    }

    async fn handle_update(
        &self,
        command: &AccountCommand,
        _services: &(),
        _ctx: &CqrsContext,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Deposit { amount } => {
                let amount = money(amount, "amount", true)?;
                if self.balance.checked_add(amount).is_none() {
                    return Err(AccountError::BalanceLimit {
                        balance: self.balance,
                        amount,
                    });
                }
                Ok(vec![AccountEvent::MoneyDeposited { amount }])
            }
            AccountCommand::Withdraw { amount } => {
                let amount = money(amount, "amount", true)?;
                if amount > self.balance {
                    return Err(AccountError::InsufficientFunds {
                        balance: self.balance,
                        requested: amount,
                    });
                }
                Ok(vec![AccountEvent::MoneyWithdrawn { amount }])
            }
        }
    }

    fn not_found_error(aggregate_id: &str) -> Option<AccountError> {
        Some(AccountError::NotFound {
            id: aggregate_id.to_owned(),
        })
    }

    fn already_exists_error(aggregate_id: &str) -> Option<AccountError> {
        Some(AccountError::AlreadyExists {
            id: aggregate_id.to_owned(),
        })
    }
}
