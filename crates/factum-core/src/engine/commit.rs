//! Committing a decision: apply the events, check that everything to be stored reads back,
//! compute the inline view changes and the snapshot, append it all at once, cache the new
//! state and dispatch the committed events.

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
use super::outcome::{CommandOutcome, LoadedAggregate, Remember};

impl<A: CommandHandler> CqrsCommandEngine<A> {
    /// Applies, appends (with the snapshot the policy asks for), caches and dispatches.
    pub(super) async fn commit(
        &self,
        aggregate_id: &str,
        loaded: LoadedAggregate<A>,
        events: Vec<A::Event>,
        expected: ExpectedVersion,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<CommandOutcome<A>> {
        let LoadedAggregate {
            mut state,
            version: old_version,
        } = loaded;
        if events.is_empty() {
            return Ok(CommandOutcome {
                aggregate_id: aggregate_id.to_owned(),
                state,
                version: old_version,
                events: Vec::new(),
                attempts: 1,
            });
        }
        let metadata = ctx.to_metadata();
        let metadata_json =
            serde_json::to_string(&metadata).map_err(|e| Error::serialization("metadata", e))?;
        let recorded_at = ctx.now();
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            state.apply(event);
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
        let new_version = old_version + events.len() as u64;
        let snapshot = if self.should_snapshot(old_version, new_version) {
            let text = serde_json::to_string(&state)
                .map_err(|e| Error::serialization(format!("{} snapshot", A::TYPE), e))?;
            reads_back::<A>(&text, || format!("{} snapshot", A::TYPE))?;
            Some(Snapshot {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: new_version,
                state: text,
                taken_at: recorded_at,
            })
        } else {
            None
        };
        let view_changes = self
            .inline_view_changes(aggregate_id, old_version, &new_events, &events, &metadata)
            .await?;
        let idempotency = match remember {
            Some(remember) => {
                let (status, response) = (remember.render)(aggregate_id, &state, new_version)?;
                Some(IdempotencyRecord {
                    status,
                    response,
                    ..remember.record.clone()
                })
            }
            None => None,
        };
        let stored = self
            .inner
            .store
            .append(AppendRequest {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                expected,
                events: new_events,
                snapshot,
                view_changes,
                idempotency,
            })
            .await?;
        let envelopes: Vec<EventEnvelope<A::Event>> = stored
            .into_iter()
            .zip(events)
            .map(|(stored, payload)| envelope(stored, metadata.clone(), payload))
            .collect();
        let version = envelopes.last().map_or(new_version, |e| e.version);
        self.remember(aggregate_id, &state, version);
        self.dispatch(aggregate_id, &envelopes).await;
        Ok(CommandOutcome {
            aggregate_id: aggregate_id.to_owned(),
            state,
            version,
            events: envelopes,
            attempts: 1,
        })
    }

    async fn inline_view_changes(
        &self,
        aggregate_id: &str,
        old_version: u64,
        new_events: &[NewEvent],
        events: &[A::Event],
        metadata: &Metadata,
    ) -> Result<Vec<ViewChange>> {
        let Some(views) = self.inner.store.as_view_store() else {
            return Ok(Vec::new());
        };
        if self.inner.inline_views.is_empty() {
            return Ok(Vec::new());
        }
        let pending: Vec<EventEnvelope<A::Event>> = new_events
            .iter()
            .zip(events)
            .enumerate()
            .map(|(offset, (new, payload))| EventEnvelope {
                event_id: new.event_id,
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: old_version + offset as u64 + 1,
                position: 0,
                recorded_at: new.recorded_at,
                event_type: new.event_type.clone(),
                metadata: metadata.clone(),
                payload: payload.clone(),
            })
            .collect();
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
