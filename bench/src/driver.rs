//! One interface over both libraries, so every figure runs the very same loop for each.
//!
//! Factum retries conflicts inside its engine; cqrs-es 0.5 returns `AggregateConflict` to the
//! caller, so its driver retries with the same policy as Factum's default engine config
//! (attempts, jittered exponential backoff) to make the contention figures comparable.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bank::domain::{Account, AccountCommand, OpenAccountCommand};
use bank::money::Amount;
use cqrs_es::{AggregateContext, AggregateError, CqrsFramework, EventStore as PeerEventStore};
use factum_core::{
    CommandError as FactumError, CommandOutcome, CqrsCommandEngine, CqrsContext, EngineConfig,
};

use crate::peer::{PeerAccount, PeerCommand};

/// A command that went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// How many times it was decided (1 + the conflicts it met).
    pub attempts: u32,
}

/// A command that did not go through.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Every attempt conflicted.
    #[error("gave up after {attempts} conflicting attempts")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
    /// Anything else (a domain refusal, a store error): a bug in the benchmark or the library.
    #[error("{0}")]
    Failed(String),
}

/// What the workload needs from a library: open, deposit, read back.
#[async_trait]
pub trait BankDriver: Send + Sync + 'static {
    /// Opens account `id` with `cents`.
    async fn open(&self, id: &str, cents: i64) -> Result<Done, CommandError>;
    /// Deposits `cents` into `id`, retrying conflicts.
    async fn deposit(&self, id: &str, cents: i64) -> Result<Done, CommandError>;
    /// The balance (cents) and version of `id`, rebuilt from the store (not from a cache).
    async fn read(&self, id: &str) -> anyhow::Result<Option<(i64, u64)>>;
}

/// Factum: one engine on some store.
pub struct FactumDriver {
    engine: CqrsCommandEngine<Account>,
}

impl FactumDriver {
    /// Wraps an engine.
    pub fn new(engine: CqrsCommandEngine<Account>) -> Self {
        Self { engine }
    }

    /// The engine.
    pub fn engine(&self) -> &CqrsCommandEngine<Account> {
        &self.engine
    }
}

impl FactumDriver {
    /// Opens account `id` with `cents`: the engine's outcome.
    pub async fn open_account(
        &self,
        id: &str,
        cents: i64,
    ) -> Result<CommandOutcome<Account>, CommandError> {
        let command = OpenAccountCommand::OpenAccount {
            owner: "bench".to_owned(),
            initial_balance: Amount::from_cents(cents),
        };
        self.engine
            .create_with_id(id, &command, &CqrsContext::new())
            .await
            .map_err(|e| CommandError::Failed(e.to_string()))
    }

    /// Deposits `cents` into `id`: the engine's outcome.
    pub async fn deposit_into(
        &self,
        id: &str,
        cents: i64,
    ) -> Result<CommandOutcome<Account>, CommandError> {
        let command = AccountCommand::Deposit {
            amount: Amount::from_cents(cents),
        };
        match self.engine.update(id, &command, &CqrsContext::new()).await {
            Ok(outcome) => Ok(outcome),
            Err(FactumError::TooManyConflicts { attempts, .. }) => {
                Err(CommandError::GaveUp { attempts })
            }
            Err(e) => Err(CommandError::Failed(e.to_string())),
        }
    }
}

fn done(outcome: CommandOutcome<Account>) -> Done {
    Done {
        attempts: outcome.attempts,
    }
}

#[async_trait]
impl BankDriver for FactumDriver {
    async fn open(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
        self.open_account(id, cents).await.map(done)
    }

    async fn deposit(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
        self.deposit_into(id, cents).await.map(done)
    }

    async fn read(&self, id: &str) -> anyhow::Result<Option<(i64, u64)>> {
        Ok(self
            .engine
            .load(id)
            .await?
            .map(|loaded| (loaded.state.balance.cents(), loaded.version)))
    }
}

/// The retry policy the peer's driver applies, copied from Factum's default engine config.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// First backoff.
    pub base: Duration,
    /// Longest backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let config = EngineConfig::default();
        Self {
            max_attempts: config.max_attempts,
            base: config.backoff_base,
            max: config.backoff_max,
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        let micros = u64::try_from(exp.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }
}

/// cqrs-es: a framework on a store, and a second handle on the same store for reading back.
pub struct PeerDriver<ES: PeerEventStore<PeerAccount>> {
    cqrs: CqrsFramework<PeerAccount, ES>,
    reader: ES,
    retry: RetryPolicy,
}

impl<ES: PeerEventStore<PeerAccount>> PeerDriver<ES> {
    /// `store` runs the commands, `reader` (the same data) reads them back.
    pub fn new(store: ES, reader: ES) -> Self {
        Self {
            cqrs: CqrsFramework::new(store, Vec::new(), ()),
            reader,
            retry: RetryPolicy::default(),
        }
    }

    async fn execute(&self, id: &str, command: PeerCommand) -> Result<Done, CommandError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.cqrs.execute(id, command.clone()).await {
                Ok(()) => return Ok(Done { attempts: attempt }),
                Err(AggregateError::AggregateConflict) => {
                    if attempt >= self.retry.max_attempts {
                        return Err(CommandError::GaveUp { attempts: attempt });
                    }
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                Err(e) => return Err(CommandError::Failed(e.to_string())),
            }
        }
    }
}

#[async_trait]
impl<ES> BankDriver for PeerDriver<ES>
where
    ES: PeerEventStore<PeerAccount> + 'static,
    ES::AC: Send,
{
    async fn open(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
        let command = PeerCommand::OpenAccount {
            id: id.to_owned(),
            owner: "bench".to_owned(),
            initial_cents: cents,
        };
        self.execute(id, command).await
    }

    async fn deposit(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
        self.execute(id, PeerCommand::Deposit { cents }).await
    }

    async fn read(&self, id: &str) -> anyhow::Result<Option<(i64, u64)>> {
        let events = self
            .reader
            .load_events(id)
            .await
            .map_err(|e| anyhow::anyhow!("peer load_events: {e}"))?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let version = u64::try_from(last.sequence)?;
        let mut context = self
            .reader
            .load_aggregate(id)
            .await
            .map_err(|e| anyhow::anyhow!("peer load_aggregate: {e}"))?;
        Ok(Some((context.aggregate().balance_cents, version)))
    }
}

/// Several drivers standing for several processes on one store: account `acc-N` goes to
/// driver `N % drivers` (so with `3 × k` tasks of [`distinct_accounts`], task `t`'s accounts
/// all go to driver `t % 3`: each driver serves `k` clients of its own).
///
/// [`distinct_accounts`]: crate::workload::distinct_accounts
pub struct RoutedDriver {
    drivers: Vec<Arc<dyn BankDriver>>,
}

impl RoutedDriver {
    /// Routes over `drivers` (at least one).
    pub fn new(drivers: Vec<Arc<dyn BankDriver>>) -> Self {
        Self { drivers }
    }

    fn route(&self, id: &str) -> Result<&Arc<dyn BankDriver>, CommandError> {
        let digits = id.trim_start_matches(|c: char| !c.is_ascii_digit());
        let n: usize = digits.parse().unwrap_or(0);
        self.drivers
            .get(n % self.drivers.len().max(1))
            .ok_or_else(|| CommandError::Failed("no driver to route to".to_owned()))
    }
}

#[async_trait]
impl BankDriver for RoutedDriver {
    async fn open(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
        self.route(id)?.open(id, cents).await
    }

    async fn deposit(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
        self.route(id)?.deposit(id, cents).await
    }

    async fn read(&self, id: &str) -> anyhow::Result<Option<(i64, u64)>> {
        self.route(id).map_err(anyhow::Error::from)?.read(id).await
    }
}
