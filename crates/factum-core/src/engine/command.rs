//! Running commands: create (with a given or generated id) and update (retried on
//! conflicts with other processes), one at a time per aggregate in this process.

use std::time::Duration;

use crate::aggregate::{Aggregate, CommandHandler};
use crate::command_error::CommandError;
use crate::context::CqrsContext;
use crate::error::Error;
use crate::id::validate_aggregate_id;
use crate::store::ExpectedVersion;

use super::handle::CqrsCommandEngine;
use super::outcome::{CommandCall, CommandOutcome, LoadedAggregate, Remember};

/// What a command returns.
pub type CommandResult<A> = Result<CommandOutcome<A>, CommandError<<A as Aggregate>::Error>>;

impl<A: CommandHandler> CqrsCommandEngine<A> {
    /// Creates an aggregate with an id from the engine's id generator.
    pub async fn create(&self, command: &A::CreateCommand, ctx: &CqrsContext) -> CommandResult<A> {
        let aggregate_id = self.inner.id_generator.generate(command, ctx)?;
        self.create_with_id(&aggregate_id, command, ctx).await
    }

    /// Creates an aggregate with the given id. The stream must not exist yet.
    pub async fn create_with_id(
        &self,
        aggregate_id: &str,
        command: &A::CreateCommand,
        ctx: &CqrsContext,
    ) -> CommandResult<A> {
        self.create_inner(aggregate_id, command, ctx, None).await
    }

    /// Runs a create or an update command; with `remember`, the command's idempotency
    /// record is written in the same transaction as its events (if it stores any: see
    /// [`Remember`]).
    pub async fn execute(
        &self,
        call: CommandCall<'_, A>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> CommandResult<A> {
        match call {
            CommandCall::Create {
                id: Some(id),
                command,
            } => self.create_inner(id, command, ctx, remember).await,
            CommandCall::Create { id: None, command } => {
                let id = self.inner.id_generator.generate(command, ctx)?;
                self.create_inner(&id, command, ctx, remember).await
            }
            CommandCall::Update {
                id,
                command,
                expected_version,
            } => {
                self.update_inner(id, command, expected_version, ctx, remember)
                    .await
            }
        }
    }

    async fn create_inner(
        &self,
        aggregate_id: &str,
        command: &A::CreateCommand,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> CommandResult<A> {
        validate_aggregate_id(aggregate_id)?;
        let _guard = self.inner.locks.lock(aggregate_id).await;
        let empty = LoadedAggregate {
            state: A::with_aggregate_id(aggregate_id.to_owned()),
            version: 0,
        };
        let events = empty
            .state
            .handle_create(command, &self.inner.services, ctx)
            .await
            .map_err(CommandError::Domain)?;
        match self
            .commit(
                aggregate_id,
                empty,
                events,
                ExpectedVersion::NoStream,
                ctx,
                remember,
            )
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(Error::Conflict { .. }) => {
                self.count_conflict();
                Err(match A::already_exists_error(aggregate_id) {
                    Some(error) => CommandError::Domain(error),
                    None => CommandError::AlreadyExists {
                        aggregate_type: A::TYPE.to_owned(),
                        aggregate_id: aggregate_id.to_owned(),
                    },
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Runs an update command, re-deciding it on conflicts.
    pub async fn update(
        &self,
        aggregate_id: &str,
        command: &A::UpdateCommand,
        ctx: &CqrsContext,
    ) -> CommandResult<A> {
        self.update_inner(aggregate_id, command, None, ctx, None)
            .await
    }

    /// Runs an update command only if the aggregate is at `expected_version` (an HTTP
    /// `If-Match`). A mismatch is a [`CommandError::Conflict`] and is not retried.
    pub async fn update_at_version(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        command: &A::UpdateCommand,
        ctx: &CqrsContext,
    ) -> CommandResult<A> {
        self.update_inner(aggregate_id, command, Some(expected_version), ctx, None)
            .await
    }

    async fn update_inner(
        &self,
        aggregate_id: &str,
        command: &A::UpdateCommand,
        expected_version: Option<u64>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> CommandResult<A> {
        validate_aggregate_id(aggregate_id)?;
        let _guard = self.inner.locks.lock(aggregate_id).await;
        let max_attempts = self.inner.config.max_attempts.max(1);
        let mut attempt = 0;
        // After a conflict: the state the losing attempt decided on. Only the events appended
        // since are read, which keeps the window between load and append short, so a process
        // that lost a race is not starved by one that keeps winning.
        let mut stale: Option<LoadedAggregate<A>> = None;
        loop {
            attempt += 1;
            let loaded = match stale.take() {
                Some(stale) => self.catch_up(aggregate_id, stale).await?,
                None => self.cached_or_load(aggregate_id).await?,
            };
            let Some(loaded) = loaded else {
                return Err(self.not_found(aggregate_id).into());
            };
            if let Some(expected) = expected_version
                && loaded.version != expected
            {
                return Err(CommandError::Conflict {
                    aggregate_type: A::TYPE.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    expected: ExpectedVersion::Exact(expected),
                    actual: Some(loaded.version),
                });
            }
            let events = loaded
                .state
                .handle_update(command, &self.inner.services, ctx)
                .await
                .map_err(CommandError::Domain)?;
            let expected = ExpectedVersion::Exact(loaded.version);
            let base = (expected_version.is_none() && !events.is_empty()).then(|| loaded.clone());
            match self
                .commit(aggregate_id, loaded, events, expected, ctx, remember)
                .await
            {
                Ok(mut outcome) => {
                    outcome.attempts = attempt;
                    return Ok(outcome);
                }
                Err(Error::Conflict { actual, .. }) => {
                    self.count_conflict();
                    self.forget(aggregate_id);
                    if let Some(expected) = expected_version {
                        return Err(CommandError::Conflict {
                            aggregate_type: A::TYPE.to_owned(),
                            aggregate_id: aggregate_id.to_owned(),
                            expected: ExpectedVersion::Exact(expected),
                            actual,
                        });
                    }
                    if attempt >= max_attempts {
                        return Err(CommandError::TooManyConflicts {
                            aggregate_type: A::TYPE.to_owned(),
                            aggregate_id: aggregate_id.to_owned(),
                            attempts: attempt,
                        });
                    }
                    stale = base;
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(error) => {
                    self.forget(aggregate_id);
                    return Err(error.into());
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let exp = config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(config.backoff_max);
        let micros = u64::try_from(exp.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }
}
