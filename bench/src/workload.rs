//! The workload's loops, the same for both libraries (through [`BankDriver`]).
//!
//! Distinct accounts: account `i` belongs to task `i % tasks`; each task opens its accounts,
//! then deposits into them round-robin (deposit `r` is `r` cents), so consecutive commands of
//! one task touch different accounts, as independent clients would. Afterwards every account
//! is read back from the store and its balance and version compared with the expected ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use crate::driver::{BankDriver, CommandError};
use crate::report::Measurement;

/// The opening balance of every account, in cents.
pub const OPENING_CENTS: i64 = 100_000;

/// How many accounts and commands per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Accounts.
    pub accounts: usize,
    /// Commands per account: one open, then deposits.
    pub commands_per_account: usize,
}

impl Scale {
    /// Total commands.
    pub fn commands(&self) -> usize {
        self.accounts * self.commands_per_account
    }

    /// The balance every account must end with.
    pub fn expected_balance(&self) -> i64 {
        let deposits = self.commands_per_account.saturating_sub(1) as i64;
        OPENING_CENTS + deposits * (deposits + 1) / 2
    }
}

/// The id of account `i`.
pub fn account_id(i: usize) -> String {
    format!("acc-{i:05}")
}

/// Runs `scale` from `tasks` tasks on distinct accounts; commands/s with latencies, and the
/// check of every account's final state.
pub async fn distinct_accounts(
    driver: Arc<dyn BankDriver>,
    tasks: usize,
    scale: Scale,
) -> anyhow::Result<Measurement> {
    let tasks = tasks.max(1);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let driver = driver.clone();
        set.spawn(async move {
            let ids: Vec<String> = (task..scale.accounts)
                .step_by(tasks)
                .map(account_id)
                .collect();
            let mut latencies = Vec::with_capacity(ids.len() * scale.commands_per_account);
            for id in &ids {
                let t = Instant::now();
                driver.open(id, OPENING_CENTS).await?;
                latencies.push(micros(t.elapsed()));
            }
            for round in 1..scale.commands_per_account {
                for id in &ids {
                    let t = Instant::now();
                    driver.deposit(id, round as i64).await?;
                    latencies.push(micros(t.elapsed()));
                }
            }
            Ok::<_, CommandError>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(scale.commands());
    while let Some(joined) = set.join_next().await {
        latencies.extend(joined.context("task panicked")??);
    }
    let elapsed = started.elapsed();
    if latencies.len() != scale.commands() {
        bail!("ran {} commands, not {}", latencies.len(), scale.commands());
    }
    let (correct, check) = check_accounts(driver.as_ref(), scale).await?;
    let rate = scale.commands() as f64 / elapsed.as_secs_f64();
    Ok(Measurement::rate(rate, "commands/s", correct, check).with_latencies(&mut latencies))
}

/// Reads every account back and compares it with what the workload must have left.
pub async fn check_accounts(
    driver: &dyn BankDriver,
    scale: Scale,
) -> anyhow::Result<(bool, String)> {
    let want_balance = scale.expected_balance();
    let want_version = scale.commands_per_account as u64;
    let mut good = 0;
    let mut first_bad = None;
    for i in 0..scale.accounts {
        let id = account_id(i);
        let got = driver.read(&id).await?;
        if got == Some((want_balance, want_version)) {
            good += 1;
        } else if first_bad.is_none() {
            first_bad = Some(format!(
                "{id}: got {got:?}, want ({want_balance}, {want_version})"
            ));
        }
    }
    let mut check = format!(
        "{good}/{} accounts at balance {want_balance} cents, version {want_version}",
        scale.accounts
    );
    if let Some(bad) = first_bad {
        check.push_str(&format!("; first wrong: {bad}"));
    }
    Ok((good == scale.accounts, check))
}

/// The counts of a contention run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Contention {
    /// Deposits that went through.
    pub successes: u64,
    /// Conflicts met (each one re-decided or, on the last attempt, given up).
    pub conflicts: u64,
    /// Deposits given up after too many conflicts.
    pub gave_up: u64,
}

/// `tasks` tasks × `per_task` deposits of 1 cent on ONE account. Task `t` uses
/// `drivers[t % drivers.len()]` (several drivers on one store stand for several processes).
pub async fn one_account(
    drivers: &[Arc<dyn BankDriver>],
    tasks: usize,
    per_task: usize,
) -> anyhow::Result<Measurement> {
    let Some(first) = drivers.first() else {
        bail!("no driver");
    };
    let id = "acc-hot";
    first.open(id, OPENING_CENTS).await?;
    let started = Instant::now();
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let driver = drivers[task % drivers.len()].clone();
        set.spawn(async move {
            let mut counts = Contention::default();
            for _ in 0..per_task {
                match driver.deposit(id, 1).await {
                    Ok(done) => {
                        counts.successes += 1;
                        counts.conflicts += u64::from(done.attempts.saturating_sub(1));
                    }
                    Err(CommandError::GaveUp { attempts }) => {
                        counts.gave_up += 1;
                        counts.conflicts += u64::from(attempts);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(counts)
        });
    }
    let mut total = Contention::default();
    while let Some(joined) = set.join_next().await {
        let counts = joined.context("task panicked")??;
        total.successes += counts.successes;
        total.conflicts += counts.conflicts;
        total.gave_up += counts.gave_up;
    }
    let elapsed = started.elapsed();
    let want = (OPENING_CENTS + total.successes as i64, 1 + total.successes);
    let got = first.read(id).await?;
    let correct = got == Some(want);
    let check = format!(
        "{} ok, {} conflicts, {} gave up; final (balance, version) {got:?}, want {want:?}{}",
        total.successes,
        total.conflicts,
        total.gave_up,
        if correct { "" } else { ": LOST UPDATES" }
    );
    let rate = total.successes as f64 / elapsed.as_secs_f64();
    Ok(Measurement::rate(rate, "commands/s", correct, check)
        .with_extra("successes", total.successes)
        .with_extra("conflicts", total.conflicts)
        .with_extra("gave_up", total.gave_up)
        .with_extra("final_balance_correct", correct))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use bank::domain::Account;
    use factum_core::{CqrsCommandEngine, InMemoryEventStore};

    use super::*;
    use crate::driver::{Done, FactumDriver};

    fn factum() -> Arc<dyn BankDriver> {
        let engine = CqrsCommandEngine::<Account>::new(Arc::new(InMemoryEventStore::new()), ());
        Arc::new(FactumDriver::new(engine))
    }

    /// Acknowledges every third deposit without doing it: the checks must catch it.
    struct Lossy {
        inner: Arc<dyn BankDriver>,
        count: AtomicU64,
    }

    #[async_trait]
    impl BankDriver for Lossy {
        async fn open(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
            self.inner.open(id, cents).await
        }
        async fn deposit(&self, id: &str, cents: i64) -> Result<Done, CommandError> {
            if self.count.fetch_add(1, Ordering::Relaxed) % 3 == 2 {
                return Ok(Done { attempts: 1 });
            }
            self.inner.deposit(id, cents).await
        }
        async fn read(&self, id: &str) -> anyhow::Result<Option<(i64, u64)>> {
            self.inner.read(id).await
        }
    }

    const SMALL: Scale = Scale {
        accounts: 5,
        commands_per_account: 4,
    };

    #[tokio::test]
    async fn distinct_accounts_checks_every_account() {
        let m = distinct_accounts(factum(), 3, SMALL).await.unwrap();
        assert!(m.correct, "{}", m.check);
        assert!(m.value > 0.0);
        assert!(m.p50_ms.is_some() && m.p99_ms.is_some());

        let lossy = Arc::new(Lossy {
            inner: factum(),
            count: AtomicU64::new(0),
        });
        let m = distinct_accounts(lossy, 3, SMALL).await.unwrap();
        assert!(!m.correct, "{}", m.check);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_account_counts_and_checks() {
        let m = one_account(&[factum()], 4, 5).await.unwrap();
        assert!(m.correct, "{}", m.check);
        assert_eq!(m.extra["successes"], 20);

        let lossy: Arc<dyn BankDriver> = Arc::new(Lossy {
            inner: factum(),
            count: AtomicU64::new(0),
        });
        let m = one_account(&[lossy], 4, 5).await.unwrap();
        assert!(!m.correct, "{}", m.check);
    }

    #[test]
    fn expected_balance_sums_the_round_robin_deposits() {
        let scale = Scale {
            accounts: 2,
            commands_per_account: 4,
        };
        // deposits 1, 2, 3 cents after opening
        assert_eq!(scale.expected_balance(), OPENING_CENTS + 6);
        assert_eq!(scale.commands(), 8);
        assert_eq!(account_id(7), "acc-00007");
    }
}
