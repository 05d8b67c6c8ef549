//! Committing decisions: prepare each command (encode its events, check that they read
//! back, compute the state after them), then append a batch of them at once with the
//! inline view changes and the snapshot, cache the new state and dispatch the events.

use std::sync::atomic::Ordering;

use crate::aggregate::{CommandHandler, Event};
use crate::context::{CqrsContext, Metadata};
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::idempotency::IdempotencyRecord;
use crate::json;
use crate::store::{AppendRequest, ExpectedVersion};
use crate::store::{NewEvent, Snapshot, StoredEvent};
use crate::view::ViewChange;

use super::config::SnapshotPolicy;
use super::dispatch::DispatchFailure;
use super::handle::CqrsCommandEngine;
use super::lane::Prepared;
use super::outcome::{CommandOutcome, LoadedAggregate, Remember};

impl<A: CommandHandler> CqrsCommandEngine<A> {
    /// Decides nothing, changes nothing: encodes a command's events with its context's
    /// metadata and checks that they read back, then computes the state after them and the
    /// idempotency record it writes. `current` is left as it is, so a failure refuses only
    /// this command.
    pub(super) fn prepare(
        &self,
        aggregate_id: &str,
        current: &LoadedAggregate<A>,
        events: Vec<A::Event>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<Prepared<A>> {
        let metadata = ctx.to_metadata();
        let mut new_events = Vec::with_capacity(events.len());
        if !events.is_empty() {
            let metadata_json = serde_json::to_string(&metadata)
                .map_err(|e| Error::serialization("metadata", e))?;
            let recorded_at = ctx.now();
            for event in &events {
                let payload = serde_json::to_string(event)
                    .map_err(|e| Error::serialization(event.event_type(), e))?;
                json::check_value_reads_back(event, &payload).map_err(|mismatch| {
                    Error::unrepresentable(format!("{} event", event.event_type()), mismatch)
                })?;
                new_events.push(NewEvent {
                    event_id: ctx.new_id(),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload,
                    metadata: metadata_json.clone(),
                    recorded_at,
                });
            }
        }
        let mut state = current.state.clone();
        for event in &events {
            state.apply(event);
        }
        let version = current.version + events.len() as u64;
        // A command that stores no events writes no record (see `Remember`).
        let idempotency = match remember {
            Some(remember) if !events.is_empty() => {
                let (status, response) = (remember.render)(aggregate_id, &state, version)?;
                Some(IdempotencyRecord {
                    status,
                    response,
                    ..remember.record.clone()
                })
            }
            _ => None,
        };
        Ok(Prepared {
            base_version: current.version,
            state,
            events,
            new_events,
            metadata,
            idempotency,
        })
    }

    /// Appends a batch of prepared commands, decided one after the other on one aggregate,
    /// in one append (with the snapshot the policy asks for over the whole batch and the
    /// inline view changes of all its events); caches the last state, dispatches each
    /// command's events and returns each command's outcome, in order.
    pub(super) async fn append_batch(
        &self,
        aggregate_id: &str,
        expected: ExpectedVersion,
        batch: Vec<Prepared<A>>,
    ) -> Result<Vec<CommandOutcome<A>>> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(Vec::new());
        };
        let (old_version, new_version) = (first.base_version, last.version());
        if old_version == new_version {
            return Ok(batch
                .into_iter()
                .map(|p| outcome(aggregate_id, p, Vec::new()))
                .collect());
        }
        let snapshot = if self.should_snapshot(old_version, new_version) {
            let text = serde_json::to_string(&last.state)
                .map_err(|e| Error::serialization(format!("{} snapshot", A::TYPE), e))?;
            reads_back::<A>(&text, || format!("{} snapshot", A::TYPE))?;
            Some(Snapshot {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: new_version,
                state: text,
                taken_at: batch
                    .iter()
                    .rev()
                    .find_map(|p| p.new_events.last())
                    .map_or_else(chrono::Utc::now, |e| e.recorded_at),
            })
        } else {
            None
        };
        let view_changes = self.inline_view_changes(aggregate_id, &batch).await?;
        let mut idempotency = None;
        let mut events = Vec::with_capacity(batch.iter().map(|p| p.new_events.len()).sum());
        for prepared in &batch {
            events.extend(prepared.new_events.iter().cloned());
            idempotency = idempotency.or_else(|| prepared.idempotency.clone());
        }
        let stored = self
            .inner
            .store
            .append(AppendRequest {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                expected,
                events,
                snapshot,
                view_changes,
                idempotency,
            })
            .await?;
        self.remember(aggregate_id, &last.state, new_version);
        let mut stored = stored.into_iter();
        let mut outcomes = Vec::with_capacity(batch.len());
        for prepared in batch {
            let envelopes: Vec<EventEnvelope<A::Event>> = stored
                .by_ref()
                .take(prepared.events.len())
                .zip(prepared.events.iter().cloned())
                .map(|(stored, payload)| envelope(stored, prepared.metadata.clone(), payload))
                .collect();
            self.dispatch(aggregate_id, &envelopes).await;
            outcomes.push(outcome(aggregate_id, prepared, envelopes));
        }
        Ok(outcomes)
    }

    async fn inline_view_changes(
        &self,
        aggregate_id: &str,
        batch: &[Prepared<A>],
    ) -> Result<Vec<ViewChange>> {
        let Some(views) = self.inner.store.as_view_store() else {
            return Ok(Vec::new());
        };
        if self.inner.inline_views.is_empty() {
            return Ok(Vec::new());
        }
        let mut pending: Vec<EventEnvelope<A::Event>> = Vec::new();
        for prepared in batch {
            for (offset, (new, payload)) in
                prepared.new_events.iter().zip(&prepared.events).enumerate()
            {
                pending.push(EventEnvelope {
                    event_id: new.event_id,
                    aggregate_type: A::TYPE.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    version: prepared.base_version + offset as u64 + 1,
                    position: 0,
                    recorded_at: new.recorded_at,
                    event_type: new.event_type.clone(),
                    metadata: prepared.metadata.clone(),
                    payload: payload.clone(),
                });
            }
        }
        let mut changes = Vec::new();
        for view in &self.inner.inline_views {
            changes.extend(view.changes(views, &pending).await?);
        }
        Ok(changes)
    }

    fn should_snapshot(&self, old_version: u64, new_version: u64) -> bool {
        match self.inner.config.snapshot_policy {
            SnapshotPolicy::EveryCommand => true,
            SnapshotPolicy::EveryNEvents(n) => old_version / n.get() != new_version / n.get(),
            SnapshotPolicy::Never => false,
        }
    }

    async fn dispatch(&self, aggregate_id: &str, envelopes: &[EventEnvelope<A::Event>]) {
        let (Some(first), Some(last)) = (envelopes.first(), envelopes.last()) else {
            return;
        };
        for dispatcher in &self.inner.dispatchers {
            if let Err(error) = dispatcher.dispatch(aggregate_id, envelopes).await {
                self.inner.dispatch_failures.fetch_add(1, Ordering::Relaxed);
                let failure = DispatchFailure {
                    dispatcher: dispatcher.name().to_owned(),
                    aggregate_type: A::TYPE,
                    aggregate_id: aggregate_id.to_owned(),
                    versions: first.version..=last.version,
                    error,
                };
                tracing::error!(
                    dispatcher = %failure.dispatcher,
                    aggregate_type = A::TYPE,
                    aggregate_id,
                    from_version = first.version,
                    to_version = last.version,
                    error = %failure.error,
                    "dispatcher failed after commit"
                );
                if let Some(handler) = &self.inner.on_dispatch_error {
                    handler(&failure);
                }
            }
        }
    }
}

/// Refuses to store `text` unless it decodes as `T` into a value that serializes back to
/// the same JSON: what is stored always reads back (see [`json::check_reads_back`]).
fn reads_back<T: serde::Serialize + serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<()> {
    json::check_reads_back::<T>(text).map_err(|mismatch| Error::unrepresentable(what(), mismatch))
}

fn outcome<A: CommandHandler>(
    aggregate_id: &str,
    prepared: Prepared<A>,
    events: Vec<EventEnvelope<A::Event>>,
) -> CommandOutcome<A> {
    CommandOutcome {
        aggregate_id: aggregate_id.to_owned(),
        version: events.last().map_or(prepared.base_version, |e| e.version),
        state: prepared.state,
        events,
        attempts: 1,
    }
}

fn envelope<E: Event>(stored: StoredEvent, metadata: Metadata, payload: E) -> EventEnvelope<E> {
    EventEnvelope {
        event_id: stored.event_id,
        aggregate_type: stored.aggregate_type,
        aggregate_id: stored.aggregate_id,
        version: stored.version,
        position: stored.position,
        recorded_at: stored.recorded_at,
        event_type: stored.event_type,
        metadata,
        payload,
    }
}
