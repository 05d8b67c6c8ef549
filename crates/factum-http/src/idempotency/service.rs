//! [`AggregateService::execute_idempotent`]: a command of the generic routes (or of a
//! service's own routes built on [`AggregateService`]) run under an idempotency key.

use axum::response::{IntoResponse, Response};
use factum_core::{CqrsContext, Remember};

use super::{CommandReply, IdempotentRequest, Ran};
use crate::aggregate::HttpAggregate;
use crate::error::ApiError;
use crate::extract::Precondition;
use crate::service::{AggregateService, Executed, ParsedCommand};

impl<A: HttpAggregate> AggregateService<A> {
    /// Runs a command and answers with `render`'s reply; with an idempotency key, as the
    /// [`idempotency`](crate::idempotency) module describes: a repeat gets the first answer
    /// back, and the answer of a command that stores events is remembered in the same
    /// transaction as the events. `render` gets whether the command created the aggregate,
    /// its id, its new state and version.
    pub async fn execute_idempotent<R>(
        &self,
        id: Option<&str>,
        command: ParsedCommand<A>,
        precondition: Option<Precondition>,
        ctx: &CqrsContext,
        idempotency: Option<&IdempotentRequest>,
        render: R,
    ) -> Result<Response, ApiError>
    where
        R: Fn(bool, &str, &A, u64) -> serde_json::Result<CommandReply> + Send + Sync,
    {
        let created = matches!(command, ParsedCommand::Create { .. });
        let reply_of = |executed: &Executed<A>| {
            let outcome = &executed.outcome;
            render(
                executed.created,
                &outcome.aggregate_id,
                &outcome.state,
                outcome.version,
            )
            .map_err(|error| {
                tracing::error!(%error, "cannot render a command's reply");
                ApiError::internal()
            })
        };
        let Some(idempotency) = idempotency else {
            let executed = self.execute(id, command, precondition, ctx).await?;
            return Ok(reply_of(&executed)?.into_response());
        };
        let store = self.engine().store().clone();
        // The reply rendered into the record: the first answer is those very bytes.
        let recorded: std::sync::Mutex<Option<CommandReply>> = std::sync::Mutex::new(None);
        idempotency
            .run(&store, ctx, |record| async {
                let remember = Remember {
                    record,
                    render: Box::new(|id: &str, state: &A, version: u64| {
                        let reply = render(created, id, state, version).map_err(|source| {
                            factum_core::Error::Serialization {
                                what: format!("the reply to a {} command", A::TYPE),
                                source,
                            }
                        })?;
                        let encoded =
                            crate::idempotency::encode_reply(&reply).map_err(|source| {
                                factum_core::Error::Serialization {
                                    what: format!("the reply to a {} command", A::TYPE),
                                    source,
                                }
                            })?;
                        let status = reply.status.as_u16();
                        *recorded.lock().unwrap_or_else(|p| p.into_inner()) = Some(reply);
                        Ok((status, encoded))
                    }),
                };
                let executed = match self
                    .execute_remembering(id, command, precondition, ctx, Some(&remember))
                    .await
                {
                    Ok(executed) => executed,
                    Err(error) => return Ran::Failed(error),
                };
                if !executed.outcome.events.is_empty() {
                    let reply = recorded.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(reply) = reply {
                        return Ran::Recorded(reply);
                    }
                }
                match reply_of(&executed) {
                    Ok(reply) if executed.outcome.events.is_empty() => Ran::Unrecorded(reply),
                    Ok(reply) => Ran::Recorded(reply),
                    Err(error) => Ran::Failed(error),
                }
            })
            .await
    }
}
