//! The reference bank account service of Factum: a bank account whose every change is an
//! event. [`domain`] is the model (it imports `factum-core` and serde only); [`money`] keeps
//! amounts exact.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bank::domain::{Account, AccountCommand, OpenAccountCommand};
//! use bank::money::{Amount, Money};
//! use factum_core::{CqrsCommandEngine, CqrsContext, InMemoryEventStore};
//!
//! let engine = CqrsCommandEngine::<Account>::new(Arc::new(InMemoryEventStore::new()), ());
//! let ctx = CqrsContext::new();
//! let open = OpenAccountCommand::OpenAccount {
//!     owner: "Alice".into(),
//!     initial_balance: Amount::from_cents(100_000),
//! };
//! engine.create_with_id("acc-001", &open, &ctx).await.unwrap();
//! let deposit = AccountCommand::Deposit { amount: Amount::from_cents(50_000) };
//! let outcome = engine.update("acc-001", &deposit, &ctx).await.unwrap();
//! assert_eq!(outcome.state.balance, Money::from_cents(150_000));
//! assert_eq!(outcome.version, 2);
//! # });
//! ```

pub mod domain;
#[cfg(feature = "openapi")]
pub mod http;
pub mod money;
pub mod views;
