//! Hot-aggregate batching: an update is decided on its aggregate's lane (see `lane`) and
//! committed in a batch with every command decided while the batch before it was being
//! appended, so N commands waiting on one aggregate cost one append, not N.

use std::time::{Duration, Instant};

use tokio::sync::oneshot::{self, error::TryRecvError};

use crate::aggregate::CommandHandler;
use crate::command_error::CommandError;
use crate::context::CqrsContext;
use crate::error::Error;
use crate::id::validate_aggregate_id;
use crate::store::ExpectedVersion;

use super::command::CommandResult;
use super::handle::CqrsCommandEngine;
use super::lane::{Entry, LaneGuard, Reply};
use super::outcome::Remember;

/// How long after a conflict an aggregate counts as shared with another process: its
/// committer then yields briefly after each batch, so a process that lost is not starved by
/// one that keeps winning.
const CONTENDED_FOR: Duration = Duration::from_millis(200);

/// The shortest pause a tokio timer gives.
const MIN_TIMER: Duration = Duration::from_millis(1);

/// One update, as decided: its ticket in the lane and where its reply comes.
pub(super) struct Queued<A: CommandHandler> {
    ticket: u64,
    reply: oneshot::Receiver<Reply<A>>,
}

impl<A: CommandHandler> CqrsCommandEngine<A> {
    /// Decides `command` on the state after every command queued before it, and queues it
    /// (`alone`: to commit in a batch of its own). A refusal refuses only this command.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn decide_queued(
        &self,
        lane: &LaneGuard<A>,
        aggregate_id: &str,
        command: &A::UpdateCommand,
        expected_version: Option<u64>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
        alone: bool,
    ) -> Result<Queued<A>, CommandError<A::Error>> {
        let mut tentative = lane.lane.decide.lock().await;
        if tentative.state.is_none() {
            tentative.state = match tentative.stale.take() {
                // Only the events appended since the lost race: the window between reading
                // and appending stays short, so the retry is likely to win.
                Some(stale) => self.catch_up(aggregate_id, stale).await?,
                None => self.cached_or_load(aggregate_id).await?,
            };
        }
        let Some(current) = tentative.state.as_mut() else {
            return Err(self.not_found(aggregate_id).into());
        };
        if let Some(expected) = expected_version
            && current.version != expected
        {
            return Err(CommandError::Conflict {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                expected: ExpectedVersion::Exact(expected),
                actual: Some(current.version),
            });
        }
        let events = current
            .state
            .handle_update(command, &self.inner.services, ctx)
            .await
            .map_err(CommandError::Domain)?;
        let prepared = self.prepare(aggregate_id, current, events, ctx, remember)?;
        for event in &prepared.events {
            current.state.apply(event);
        }
        current.version = prepared.version();
        let (reply, receiver) = oneshot::channel();
        let ticket = lane.lane.ticket();
        lane.lane.push(Entry {
            ticket,
            prepared,
            alone,
            reply,
        });
        Ok(Queued {
            ticket,
            reply: receiver,
        })
    }

    /// Waits for the reply to a queued command, committing the batches at the head of the
    /// lane's queue when it is this command's turn to.
    pub(super) async fn await_reply(
        &self,
        lane: &LaneGuard<A>,
        aggregate_id: &str,
        mut queued: Queued<A>,
    ) -> Reply<A> {
        loop {
            let turn = lane.lane.commit.clone().lock_owned().await;
            match queued.reply.try_recv() {
                Ok(reply) => return reply,
                Err(TryRecvError::Closed) => return interrupted(),
                Err(TryRecvError::Empty) => {}
            }
            let batch = lane.lane.take_batch();
            let ours = batch.iter().any(|entry| entry.ticket == queued.ticket);
            // Empty: never, as a committer answers everything it takes before it lets the
            // next one in; waiting then reports the lost answer.
            let wait = ours || batch.is_empty();
            if batch.len() == 1 && ours {
                // Only this command: if its caller goes away mid-append, nobody else loses
                // an answer, and the lane recovers from the expected-version check.
                self.commit_batch(lane, aggregate_id, batch).await;
                drop(turn);
            } else if !batch.is_empty() {
                // Other callers wait on this batch: it must finish even if this caller goes
                // away, so it runs on its own task.
                let (engine, lane, id) = (self.clone(), lane.clone(), aggregate_id.to_owned());
                tokio::spawn(async move {
                    engine.commit_batch(&lane, &id, batch).await;
                    drop(turn);
                });
            } else {
                drop(turn);
            }
            if wait {
                return (&mut queued.reply).await.unwrap_or_else(|_| interrupted());
            }
        }
    }

    /// Appends one batch and answers each of its commands. A batch that fails sends back to
    /// decide again its own commands and every command queued after it (they were decided
    /// on its state).
    async fn commit_batch(&self, lane: &LaneGuard<A>, aggregate_id: &str, batch: Vec<Entry<A>>) {
        let Some(first) = batch.first() else {
            return;
        };
        let expected = ExpectedVersion::Exact(first.prepared.base_version);
        let size = batch.len();
        let (prepared, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|e| (e.prepared, e.reply)).unzip();
        let appending = Instant::now();
        match self.append_batch(aggregate_id, expected, prepared).await {
            Ok(outcomes) => {
                let took = appending.elapsed();
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Reply::Done(Ok(outcome)));
                }
                if lane.lane.contended_within(CONTENDED_FOR) {
                    self.yield_after_win(took).await;
                }
            }
            Err(error) => {
                let conflict = matches!(error, Error::Conflict { .. });
                let later = {
                    let mut tentative = lane.lane.decide.lock().await;
                    tentative.stale = if conflict {
                        self.count_conflict();
                        lane.lane.mark_contended();
                        self.cached(aggregate_id)
                    } else {
                        None
                    };
                    tentative.state = None;
                    self.forget(aggregate_id);
                    lane.lane.drain()
                };
                let mut replies = replies.into_iter();
                if size == 1
                    && !conflict
                    && let Some(reply) = replies.next()
                {
                    let _ = reply.send(Reply::Done(Err(error)));
                }
                for reply in replies {
                    let _ = reply.send(Reply::Redo {
                        conflict,
                        alone: !conflict,
                    });
                }
                for entry in later {
                    let _ = entry.reply.send(Reply::Redo {
                        conflict: false,
                        alone: false,
                    });
                }
            }
        }
    }

    /// Runs an update on its aggregate's lane, re-deciding it after conflicts with other
    /// processes until the engine's retry bound.
    pub(super) async fn update_inner(
        &self,
        aggregate_id: &str,
        command: &A::UpdateCommand,
        expected_version: Option<u64>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> CommandResult<A> {
        validate_aggregate_id(aggregate_id)?;
        let lane = self.inner.lanes.join(aggregate_id);
        let started = Instant::now();
        let (mut decisions, mut conflicts, mut alone) = (0u32, 0u32, false);
        loop {
            decisions = decisions.saturating_add(1);
            let queued = self
                .decide_queued(
                    &lane,
                    aggregate_id,
                    command,
                    expected_version,
                    ctx,
                    remember,
                    alone,
                )
                .await?;
            match self.await_reply(&lane, aggregate_id, queued).await {
                Reply::Done(Ok(mut outcome)) => {
                    outcome.attempts = decisions;
                    return Ok(outcome);
                }
                Reply::Done(Err(error)) => return Err(error.into()),
                Reply::Redo {
                    conflict,
                    alone: redo_alone,
                } => {
                    alone |= redo_alone;
                    // With an expected version, deciding again reports the conflict.
                    if conflict && expected_version.is_none() {
                        conflicts = conflicts.saturating_add(1);
                        if self.out_of_retries(conflicts, started) {
                            return Err(CommandError::TooManyConflicts {
                                aggregate_type: A::TYPE.to_owned(),
                                aggregate_id: aggregate_id.to_owned(),
                                attempts: decisions,
                            });
                        }
                        tokio::time::sleep(self.backoff(conflicts)).await;
                    }
                }
            }
        }
    }

    fn out_of_retries(&self, conflicts: u32, started: Instant) -> bool {
        match self.inner.config.retry_for {
            Some(limit) => started.elapsed() >= limit,
            None => conflicts >= self.inner.config.max_attempts.max(1),
        }
    }

    /// Leaves a contended aggregate to the others for about as long as the winning append
    /// took (at most one backoff): long enough for a process that lost to read and append,
    /// and no timer at all where appends take microseconds (a timer sleeps a millisecond at
    /// least, which throttled in-memory engines to a thousand batches a second).
    async fn yield_after_win(&self, append_took: Duration) {
        if append_took < MIN_TIMER {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(append_took.min(self.backoff(1).max(MIN_TIMER))).await;
        }
    }

    /// A jittered backoff: `backoff_base` doubled per retry up to `backoff_max`, times a
    /// random factor in [0, 1].
    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let config = &self.inner.config;
        let exp = config
            .backoff_base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(config.backoff_max);
        let micros = u64::try_from(exp.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }
}

fn interrupted<A: CommandHandler>() -> Reply<A> {
    Reply::Done(Err(Error::Unavailable(
        "the append of this command was interrupted; its outcome is unknown".to_owned(),
    )))
}
