//! The bank account of the workload written for the peer library, `cqrs-es` 0.5.
//!
//! Same rules as `bank::domain` (owner 1 to 200 characters, amounts above zero, no overdraft,
//! a balance limit), with amounts as integer cents, so both sides decide the same thing.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// The longest owner name accepted, in characters (as `bank::domain::MAX_OWNER_LEN`).
pub const MAX_OWNER_LEN: usize = 200;
/// The largest amount one command may carry, in cents: 10^15 units (as `bank::money`).
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000_000_000_000;

/// The account's state for `cqrs-es`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAccount {
    /// The account id (cqrs-es aggregates do not know their id: it comes with the open command).
    pub id: String,
    /// The owner; empty until opened.
    pub owner: String,
    /// The balance in cents.
    pub balance_cents: i64,
    /// Whether the account has been opened.
    pub opened: bool,
}

/// The commands (cqrs-es has one command type per aggregate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PeerCommand {
    /// Open the account.
    OpenAccount {
        /// The account id.
        id: String,
        /// Who owns it.
        owner: String,
        /// The opening balance in cents.
        initial_cents: i64,
    },
    /// Pay money in.
    Deposit {
        /// Cents.
        cents: i64,
    },
    /// Take money out.
    Withdraw {
        /// Cents.
        cents: i64,
    },
}

/// The events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PeerEvent {
    /// The account was opened.
    AccountOpened {
        /// The account id.
        id: String,
        /// Who owns it.
        owner: String,
        /// The opening balance in cents.
        initial_balance: i64,
    },
    /// Money was paid in.
    MoneyDeposited {
        /// Cents.
        amount: i64,
    },
    /// Money was taken out.
    MoneyWithdrawn {
        /// Cents.
        amount: i64,
    },
}

impl DomainEvent for PeerEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AccountOpened { .. } => "AccountOpened",
            Self::MoneyDeposited { .. } => "MoneyDeposited",
            Self::MoneyWithdrawn { .. } => "MoneyWithdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why the peer's account refuses a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    /// The withdrawal is larger than the balance.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// The account is not open.
    #[error("account not found")]
    NotFound,
    /// The account is open already.
    #[error("account already exists")]
    AlreadyExists,
    /// The amount is out of range.
    #[error("invalid amount")]
    InvalidAmount,
    /// The owner is empty or too long.
    #[error("invalid owner")]
    InvalidOwner,
    /// The balance would pass the limit.
    #[error("balance limit")]
    BalanceLimit,
}

fn amount(cents: i64) -> Result<i64, PeerError> {
    if cents <= 0 || cents > MAX_AMOUNT_CENTS {
        return Err(PeerError::InvalidAmount);
    }
    Ok(cents)
}

impl PeerAccount {
    /// Decides a command on this state: the events to record, or why not.
    pub fn decide(&self, command: PeerCommand) -> Result<PeerEvent, PeerError> {
        match command {
            PeerCommand::OpenAccount {
                id,
                owner,
                initial_cents,
            } => {
                if self.opened {
                    return Err(PeerError::AlreadyExists);
                }
                if owner.trim().is_empty() || owner.chars().count() > MAX_OWNER_LEN {
                    return Err(PeerError::InvalidOwner);
                }
                if !(0..=MAX_AMOUNT_CENTS).contains(&initial_cents) {
                    return Err(PeerError::InvalidAmount);
                }
                Ok(PeerEvent::AccountOpened {
                    id,
                    owner,
                    initial_balance: initial_cents,
                })
            }
            PeerCommand::Deposit { cents } => {
                if !self.opened {
                    return Err(PeerError::NotFound);
                }
                let cents = amount(cents)?;
                if self.balance_cents.checked_add(cents).is_none() {
                    return Err(PeerError::BalanceLimit);
                }
                Ok(PeerEvent::MoneyDeposited { amount: cents })
            }
            PeerCommand::Withdraw { cents } => {
                if !self.opened {
                    return Err(PeerError::NotFound);
                }
                let cents = amount(cents)?;
                if cents > self.balance_cents {
                    return Err(PeerError::InsufficientFunds);
                }
                Ok(PeerEvent::MoneyWithdrawn { amount: cents })
            }
        }
    }
}

impl Aggregate for PeerAccount {
    const TYPE: &'static str = "account";
    type Command = PeerCommand;
    type Event = PeerEvent;
    type Error = PeerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PeerCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), PeerError> {
        let event = self.decide(command)?;
        // cqrs-es 0.5's sink applies the event to `self` as it records it.
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::AccountOpened {
                id,
                owner,
                initial_balance,
            } => {
                self.id = id;
                self.owner = owner;
                self.balance_cents = initial_balance;
                self.opened = true;
            }
            PeerEvent::MoneyDeposited { amount } => {
                self.balance_cents = self.balance_cents.saturating_add(amount);
            }
            PeerEvent::MoneyWithdrawn { amount } => {
                self.balance_cents = self.balance_cents.saturating_sub(amount);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(cents: i64) -> PeerAccount {
        let mut account = PeerAccount::default();
        account.apply(PeerEvent::AccountOpened {
            id: "a".into(),
            owner: "Alice".into(),
            initial_balance: cents,
        });
        account
    }

    #[test]
    fn deposits_and_withdrawals_follow_the_bank_rules() {
        let mut account = opened(100);
        let event = account.decide(PeerCommand::Deposit { cents: 50 }).unwrap();
        account.apply(event);
        assert_eq!(account.balance_cents, 150);
        assert_eq!(
            account.decide(PeerCommand::Withdraw { cents: 151 }),
            Err(PeerError::InsufficientFunds)
        );
        assert_eq!(
            account.decide(PeerCommand::Deposit { cents: 0 }),
            Err(PeerError::InvalidAmount)
        );
        assert_eq!(
            PeerAccount::default().decide(PeerCommand::Deposit { cents: 1 }),
            Err(PeerError::NotFound)
        );
        let open = PeerCommand::OpenAccount {
            id: "a".into(),
            owner: "Bob".into(),
            initial_cents: 0,
        };
        assert_eq!(account.decide(open), Err(PeerError::AlreadyExists));
    }
}
