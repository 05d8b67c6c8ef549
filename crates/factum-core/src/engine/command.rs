//! Running commands: create (with a given or generated id) and update (decided on the
//! aggregate's lane, batched with the other commands waiting on it, retried on conflicts
//! with other processes: see `batch`).

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
        let prepared = self.prepare(aggregate_id, &empty, events, ctx, remember)?;
        match self
            .append_batch(aggregate_id, ExpectedVersion::NoStream, vec![prepared])
            .await
        {
            Ok(mut outcomes) => Ok(outcomes.pop().unwrap_or_else(|| CommandOutcome {
                aggregate_id: aggregate_id.to_owned(),
                state: empty.state,
                version: 0,
                events: Vec::new(),
                attempts: 1,
            })),
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
}
