//! Loading an aggregate: the snapshot plus newer events, upcast; from the state cache when
//! this process has it; at a past version (time travel); and its history.

use crate::aggregate::CommandHandler;
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::id::validate_aggregate_id;
use crate::json;

use super::config::SnapshotPolicy;
use super::handle::CqrsCommandEngine;
use super::outcome::LoadedAggregate;

impl<A: CommandHandler> CqrsCommandEngine<A> {
    pub(super) fn not_found(&self, aggregate_id: &str) -> Error {
        match A::not_found_error(aggregate_id) {
            Some(error) => Error::domain(error),
            None => Error::AggregateNotFound {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
            },
        }
    }

    /// Applies the events stored after `stale.version`; a full load if there are none (the
    /// conflict then came from something else than a newer event, so trust nothing cached).
    pub(super) async fn catch_up(
        &self,
        aggregate_id: &str,
        stale: LoadedAggregate<A>,
    ) -> Result<Option<LoadedAggregate<A>>> {
        let LoadedAggregate {
            mut state,
            mut version,
        } = stale;
        let newer = self
            .inner
            .store
            .read_stream(A::TYPE, aggregate_id, version + 1, None)
            .await?;
        if newer.is_empty() {
            return self.load(aggregate_id).await;
        }
        for event in &newer {
            state.apply(&self.inner.upcasters.decode_payload::<A::Event>(event)?);
            version = event.version;
        }
        Ok(Some(LoadedAggregate { state, version }))
    }

    pub(super) async fn cached_or_load(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<LoadedAggregate<A>>> {
        if let Some(cached) = self.cached(aggregate_id) {
            return Ok(Some(cached));
        }
        self.load(aggregate_id).await
    }

    /// The state this process last committed for the aggregate (its state cache), else the
    /// current state from the store. Cheaper than [`load`](Self::load) but possibly behind
    /// commands of other processes: for checks on facts that commands do not change (who
    /// created the aggregate), such as an authorization rule.
    pub async fn load_cached(&self, aggregate_id: &str) -> Result<Option<LoadedAggregate<A>>> {
        validate_aggregate_id(aggregate_id)?;
        self.cached_or_load(aggregate_id).await
    }

    /// The current state, from the state cache when the store confirms the cached version:
    /// without touching the store when it knows stream versions in memory
    /// ([`EventStore::known_stream_version`](crate::EventStore::known_stream_version)), else
    /// with one version read; otherwise loaded (and cached). For reads of the current state
    /// (an HTTP `GET`): never older than a command that has returned.
    pub async fn load_latest(&self, aggregate_id: &str) -> Result<Option<LoadedAggregate<A>>> {
        validate_aggregate_id(aggregate_id)?;
        if let Some(cached) = self.cached(aggregate_id) {
            let store = &self.inner.store;
            let current = match store.known_stream_version(A::TYPE, aggregate_id) {
                Some(version) => version,
                None => store.stream_version(A::TYPE, aggregate_id).await?,
            };
            if current == cached.version {
                return Ok(Some(cached));
            }
        }
        let loaded = self.load(aggregate_id).await?;
        if let Some(loaded) = &loaded {
            self.remember_newer(aggregate_id, &loaded.state, loaded.version);
        }
        Ok(loaded)
    }

    /// Loads the current state from the store: the snapshot (if any) plus newer events.
    /// `None` if the aggregate has no events.
    pub async fn load(&self, aggregate_id: &str) -> Result<Option<LoadedAggregate<A>>> {
        validate_aggregate_id(aggregate_id)?;
        let (mut state, mut version) = match self.snapshot_state(aggregate_id, None).await? {
            Some(loaded) => (loaded.state, loaded.version),
            None => (A::with_aggregate_id(aggregate_id.to_owned()), 0),
        };
        let stored = self
            .inner
            .store
            .read_stream(A::TYPE, aggregate_id, version + 1, None)
            .await?;
        for event in &stored {
            state.apply(&self.inner.upcasters.decode_payload::<A::Event>(event)?);
            version = event.version;
        }
        Ok((version > 0).then_some(LoadedAggregate { state, version }))
    }

    /// The state after the first `version` events (time travel).
    pub async fn load_at_version(
        &self,
        aggregate_id: &str,
        version: u64,
    ) -> Result<LoadedAggregate<A>> {
        validate_aggregate_id(aggregate_id)?;
        if version == 0 {
            return Err(Error::Validation("version must be at least 1".to_owned()));
        }
        let (mut state, mut reached) =
            match self.snapshot_state(aggregate_id, Some(version)).await? {
                Some(loaded) => (loaded.state, loaded.version),
                None => (A::with_aggregate_id(aggregate_id.to_owned()), 0),
            };
        let wanted = usize::try_from(version - reached).unwrap_or(usize::MAX);
        let stored = self
            .inner
            .store
            .read_stream(A::TYPE, aggregate_id, reached + 1, Some(wanted))
            .await?;
        for event in &stored {
            state.apply(&self.inner.upcasters.decode_payload::<A::Event>(event)?);
            reached = event.version;
        }
        if reached == version {
            return Ok(LoadedAggregate { state, version });
        }
        let current = self
            .inner
            .store
            .stream_version(A::TYPE, aggregate_id)
            .await?;
        if current == 0 {
            return Err(self.not_found(aggregate_id));
        }
        Err(Error::VersionNotFound {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            requested: version,
            current,
        })
    }

    /// The stored snapshot's state, if the policy uses snapshots, one exists, it is not past
    /// `at_most`, and it still deserializes (a snapshot of an older state shape is skipped
    /// and the state rebuilt from events).
    async fn snapshot_state(
        &self,
        aggregate_id: &str,
        at_most: Option<u64>,
    ) -> Result<Option<LoadedAggregate<A>>> {
        if self.inner.config.snapshot_policy == SnapshotPolicy::Never {
            return Ok(None);
        }
        let Some(snapshot) = self
            .inner
            .store
            .load_snapshot(A::TYPE, aggregate_id)
            .await?
        else {
            return Ok(None);
        };
        if at_most.is_some_and(|limit| snapshot.version > limit) {
            return Ok(None);
        }
        match json::from_str::<A>(&snapshot.state) {
            Ok(state) => Ok(Some(LoadedAggregate {
                state,
                version: snapshot.version,
            })),
            Err(error) => {
                tracing::warn!(aggregate_type = A::TYPE, aggregate_id, %error, "snapshot unreadable; replaying events");
                Ok(None)
            }
        }
    }

    /// One aggregate's events with version `>= from_version`, typed and upcast.
    pub async fn events(
        &self,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> Result<Vec<EventEnvelope<A::Event>>> {
        validate_aggregate_id(aggregate_id)?;
        self.inner
            .store
            .read_stream(A::TYPE, aggregate_id, from_version.max(1), limit)
            .await?
            .iter()
            .map(|stored| self.inner.upcasters.decode(stored))
            .collect()
    }
}
