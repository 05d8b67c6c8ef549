//! The bank account domain: the account (two kinds of command, three events), and the
//! transfer between two accounts, carried out by a process manager ([`TransferProcess`]).
//!
//! Imports `factum-core` and serde only; storage and HTTP are wired elsewhere.

use factum_core::{
    Access, AccessPolicy, Aggregate, CommandHandler, Commands, CqrsCommandEngine, CqrsContext,
    Event, EventEnvelope, HandlerError, Process, ProcessManager, Projections, async_trait,
    define_domain_errors, process_subscription, validate_aggregate_id,
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
        |ctx: &CqrsContext, _: Access<'_>, account: Option<&Account>| {
            account.is_none_or(|account| may_act_on(ctx, account.opened_by.as_deref()))
        },
    )
}

/// Whether the caller may act on what `owner` opened: an admin, or the owner; anyone when
/// the service does not know callers (an anonymous context: authentication off).
fn may_act_on(ctx: &CqrsContext, owner: Option<&str>) -> bool {
    ctx.user_id().is_none()
        || ctx.has_role(ADMIN_ROLE)
        || owner.is_some_and(|owner| Some(owner) == ctx.user_id())
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

/// The money an amount stands for, or why it is not valid here.
fn money(amount: &Amount, positive: bool) -> Result<Money, String> {
    let money = amount.to_money().map_err(|problem| problem.to_string())?;
    if positive && !money.is_positive() {
        return Err("amount must be greater than zero".to_owned());
    }
    Ok(money)
}

fn account_money(
    amount: &Amount,
    field: &'static str,
    positive: bool,
) -> Result<Money, AccountError> {
    money(amount, positive).map_err(|reason| AccountError::InvalidAmount { field, reason })
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
        let initial_balance = account_money(initial_balance, "initial_balance", false)?;
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
                let amount = account_money(amount, "amount", true)?;
                if self.balance.checked_add(amount).is_none() {
                    return Err(AccountError::BalanceLimit {
                        balance: self.balance,
                        amount,
                    });
                }
                Ok(vec![AccountEvent::MoneyDeposited { amount }])
            }
            AccountCommand::Withdraw { amount } => {
                let amount = account_money(amount, "amount", true)?;
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

define_domain_errors! {
    /// Why the bank refuses a transfer.
    pub enum TransferError {
        domain: "TRANSFER",
        prefix: 11,
        /// `from` and `to` name the same account.
        SameAccount { id: String } =
            (1, 400, "TRANSFER_SAME_ACCOUNT", "a transfer moves money between two accounts; from and to are both '{id}'"),
        /// An account id is not a valid id.
        InvalidAccount { field: &'static str, reason: String } =
            (2, 400, "TRANSFER_INVALID_ACCOUNT", "invalid {field}: {reason}"),
        /// The amount is not a valid amount of money to transfer.
        InvalidAmount { reason: String } = (3, 400, "TRANSFER_INVALID_AMOUNT", "invalid amount: {reason}"),
        /// The account to take the money from does not exist.
        UnknownAccount { id: String } = (4, 404, "TRANSFER_UNKNOWN_ACCOUNT", "account '{id}' not found"),
        /// The caller may not take money out of this account.
        Forbidden { id: String } =
            (5, 403, "TRANSFER_FORBIDDEN", "you may not move money out of account '{id}'"),
        /// No transfer has this id.
        NotFound { id: String } = (6, 404, "TRANSFER_NOT_FOUND", "transfer '{id}' not found"),
        /// A step of the transfer process that does not follow from the transfer's state.
        OutOfOrder { step: &'static str } =
            (7, 409, "TRANSFER_OUT_OF_ORDER", "the transfer is not in a state where {step} applies"),
        /// The accounts cannot be read now.
        Unavailable = (8, 503, "TRANSFER_ACCOUNTS_UNAVAILABLE", "the accounts cannot be read now; retry"),
    }
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TransferState {
    /// Asked for; nothing has moved yet.
    Requested,
    /// Taken out of `from`, not yet paid into `to`.
    Debited,
    /// Paid into `to`: done.
    Completed,
    /// `to` refused the deposit; the money went back into `from` (see `reason`): done.
    Refunded,
    /// `from` refused the withdrawal (see `reason`); nothing moved: done.
    Failed,
}

/// What happened to a transfer.
#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TransferEvent {
    /// A transfer was asked for.
    TransferRequested {
        /// The account the money comes from.
        from: String,
        /// The account the money goes to.
        to: String,
        /// How much.
        amount: Money,
        /// The user who asked (the token's `sub`), when the service knows callers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_by: Option<String>,
    },
    /// The amount was taken out of `from`.
    TransferDebited,
    /// The amount was paid into `to`.
    TransferCompleted,
    /// `to` refused the deposit and the amount was paid back into `from`.
    TransferRefunded {
        /// Why `to` refused it.
        reason: String,
    },
    /// `from` refused the withdrawal.
    TransferFailed {
        /// Why.
        reason: String,
    },
}

/// Asks for a transfer (the create command; the service picks the transfer's id).
#[derive(Commands, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TransferRequest {
    /// Move an amount from one account to another.
    RequestTransfer {
        /// The account to take the money from: an open account the caller may act on.
        from: String,
        /// The account to pay it into (if it refuses, the money goes back to `from`).
        to: String,
        /// Above zero, at most 2 decimals, at most 10^15.
        amount: Amount,
    },
}

/// What the transfer process records on a transfer (the update commands: only
/// [`TransferProcess`] runs them, they are not served over HTTP).
#[derive(Commands, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TransferStep {
    /// The withdrawal from `from` went through.
    RecordDebit {},
    /// The deposit into `to` went through.
    RecordCompletion {},
    /// The deposit was refused and the amount paid back into `from`.
    RecordRefund {
        /// Why the deposit was refused.
        reason: String,
    },
    /// The withdrawal was refused.
    RecordFailure {
        /// Why.
        reason: String,
    },
}

/// A transfer of money between two accounts, and what a client sees of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transfer {
    /// The transfer id (chosen by the service).
    pub id: String,
    /// The account the money comes from.
    pub from: String,
    /// The account the money goes to.
    pub to: String,
    /// How much, exact to the cent.
    pub amount: Money,
    /// Where it is.
    pub state: TransferState,
    /// Why it was refunded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The user who asked for it, when the service knows callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Who may read a transfer (with authentication on): the user who asked for it, and admins.
pub fn transfer_access() -> AccessPolicy<Transfer> {
    AccessPolicy::new().rule(
        |ctx: &CqrsContext, _: Access<'_>, transfer: Option<&Transfer>| {
            transfer.is_none_or(|transfer| may_act_on(ctx, transfer.requested_by.as_deref()))
        },
    )
}

impl Aggregate for Transfer {
    const TYPE: &'static str = "transfer";
    type Event = TransferEvent;
    type Error = TransferError;

    fn apply(&mut self, event: &TransferEvent) {
        let (state, reason) = match event {
            TransferEvent::TransferRequested {
                from,
                to,
                amount,
                requested_by,
            } => {
                (self.from, self.to) = (from.clone(), to.clone());
                self.amount = *amount;
                self.requested_by.clone_from(requested_by);
                (TransferState::Requested, None)
            }
            TransferEvent::TransferDebited => (TransferState::Debited, None),
            TransferEvent::TransferCompleted => (TransferState::Completed, None),
            TransferEvent::TransferRefunded { reason } => (TransferState::Refunded, Some(reason)),
            TransferEvent::TransferFailed { reason } => (TransferState::Failed, Some(reason)),
        };
        self.state = state;
        self.reason = reason.cloned();
    }

    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            from: String::new(),
            to: String::new(),
            amount: Money::ZERO,
            state: TransferState::Requested,
            reason: None,
            requested_by: None,
        }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }
}

/// The accounts' engine, as the transfers' handlers see it.
type Accounts = CqrsCommandEngine<Account>;
/// What a transfer's handler decides.
type Decision = Result<Vec<TransferEvent>, TransferError>;

impl CommandHandler for Transfer {
    type CreateCommand = TransferRequest;
    type UpdateCommand = TransferStep;
    /// The accounts: a transfer is refused at once when `from` is not an open account the
    /// caller may act on.
    type Services = Accounts;

    async fn handle_create(
        &self,
        command: &TransferRequest,
        accounts: &Accounts,
        ctx: &CqrsContext,
    ) -> Decision {
        let TransferRequest::RequestTransfer { from, to, amount } = command;
        for (field, id) in [("from", from), ("to", to)] {
            validate_aggregate_id(id).map_err(|error| TransferError::InvalidAccount {
                field,
                reason: error.to_string(),
            })?;
        }
        if from == to {
            return Err(TransferError::SameAccount { id: from.clone() });
        }
        let amount =
            money(amount, true).map_err(|reason| TransferError::InvalidAmount { reason })?;
        // Who opened an account never changes: the cached state is enough.
        let account = accounts
            .load_cached(from)
            .await
            .map_err(|_| TransferError::Unavailable)?
            .ok_or_else(|| TransferError::UnknownAccount { id: from.clone() })?;
        if !may_act_on(ctx, account.state.opened_by.as_deref()) {
            return Err(TransferError::Forbidden { id: from.clone() });
        }
        Ok(vec![TransferEvent::TransferRequested {
            from: from.clone(),
            to: to.clone(),
            amount,
            requested_by: ctx.user_id().map(str::to_owned),
        }])
    }

    async fn handle_update(&self, step: &TransferStep, _: &Accounts, _: &CqrsContext) -> Decision {
        use TransferState::{Debited, Requested};
        let (from_state, event) = match step {
            TransferStep::RecordDebit {} => (Requested, TransferEvent::TransferDebited),
            TransferStep::RecordCompletion {} => (Debited, TransferEvent::TransferCompleted),
            TransferStep::RecordRefund { reason } => (
                Debited,
                TransferEvent::TransferRefunded {
                    reason: reason.clone(),
                },
            ),
            TransferStep::RecordFailure { reason } => (
                Requested,
                TransferEvent::TransferFailed {
                    reason: reason.clone(),
                },
            ),
        };
        if self.state != from_state {
            return Err(TransferError::OutOfOrder { step: step.name() });
        }
        Ok(vec![event])
    }

    fn not_found_error(aggregate_id: &str) -> Option<TransferError> {
        Some(TransferError::NotFound {
            id: aggregate_id.to_owned(),
        })
    }
}

/// The transfer process: on `TransferRequested` it withdraws the amount from `from` and
/// records the debit (or, if the withdrawal is refused, the failure and why); on
/// `TransferDebited` it deposits into `to` and records the completion, or, if the deposit is
/// refused, pays the amount back into `from` and records the refund and why.
///
/// Each of these commands is a step of `factum_core::process`: it takes effect once however
/// often the event is handed over (a crash, a restart), and a refusal, once recorded, is the
/// answer on every later delivery, so the process decides the same way each time. A refund
/// pays back what just left that account, so no rule refuses it; if one ever did, the event
/// would be parked (see `GET /subscriptions`) until a replay after the fix.
#[derive(Debug, Clone)]
pub struct TransferProcess {
    /// The accounts' engine.
    pub accounts: CqrsCommandEngine<Account>,
    /// The transfers' engine.
    pub transfers: CqrsCommandEngine<Transfer>,
}

impl TransferProcess {
    /// The process over these engines.
    pub fn new(
        accounts: CqrsCommandEngine<Account>,
        transfers: CqrsCommandEngine<Transfer>,
    ) -> Self {
        Self {
            accounts,
            transfers,
        }
    }

    /// The accounts' subscriptions (their projections) with this process's added, to run
    /// together; the accounts' engine wakes them all after its commits.
    pub fn subscriptions(&self) -> factum_core::Result<Projections> {
        let process = process_subscription(self.clone(), &self.transfers)?;
        Ok(self
            .accounts
            .projections()
            .clone()
            .with_subscription(process))
    }
}

#[async_trait]
impl ProcessManager for TransferProcess {
    type Source = Transfer;

    fn name(&self) -> &str {
        "bank.transfers"
    }

    async fn react(
        &self,
        event: &EventEnvelope<TransferEvent>,
        process: &mut Process,
    ) -> Result<(), HandlerError> {
        let id = &event.aggregate_id;
        let record = match &event.payload {
            TransferEvent::TransferRequested { from, amount, .. } => {
                let withdraw = AccountCommand::Withdraw {
                    amount: Amount::from(*amount),
                };
                let withdrawn = process
                    .update("withdraw", &self.accounts, from, &withdraw)
                    .await?;
                match withdrawn.refusal() {
                    None => TransferStep::RecordDebit {},
                    Some(refusal) => TransferStep::RecordFailure {
                        reason: refusal.message.clone(),
                    },
                }
            }
            TransferEvent::TransferDebited => {
                let transfer =
                    self.transfers.load_cached(id).await?.ok_or_else(|| {
                        HandlerError::Event(format!("transfer {id} has no events"))
                    })?;
                let Transfer {
                    from, to, amount, ..
                } = transfer.state;
                let deposit = AccountCommand::Deposit {
                    amount: Amount::from(amount),
                };
                let deposited = process
                    .update("deposit", &self.accounts, &to, &deposit)
                    .await?;
                match deposited.refusal() {
                    None => TransferStep::RecordCompletion {},
                    Some(refusal) => {
                        process
                            .update("refund", &self.accounts, &from, &deposit)
                            .await?
                            .accepted()?;
                        TransferStep::RecordRefund {
                            reason: refusal.message.clone(),
                        }
                    }
                }
            }
            _ => return Ok(()),
        };
        process
            .update("record", &self.transfers, id, &record)
            .await?
            .accepted()?;
        Ok(())
    }
}
