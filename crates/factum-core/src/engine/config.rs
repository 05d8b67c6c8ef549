//! How an engine behaves: [`EngineConfig`] and [`SnapshotPolicy`].

use std::num::NonZeroU64;
use std::time::Duration;

/// When the engine writes a snapshot (in the same transaction as the command's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// After every command: loading is one snapshot read, and the snapshot doubles as the
    /// aggregate's primary read model.
    EveryCommand,
    /// Whenever the version crosses a multiple of N.
    EveryNEvents(NonZeroU64),
    /// Never: state is always rebuilt from events.
    Never,
}

/// How the engine behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How many times an update is decided before giving up on conflicts (at least 1);
    /// not used when [`retry_for`](Self::retry_for) is set.
    pub max_attempts: u32,
    /// Bounds retries by time instead: an update that conflicts with other processes is
    /// decided again until this much time has passed since it started, however many
    /// attempts that takes. `None`: bounded by `max_attempts`.
    pub retry_for: Option<Duration>,
    /// The first retry's backoff; doubled on every further retry, with full jitter.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// When to write snapshots.
    pub snapshot_policy: SnapshotPolicy,
    /// How many aggregates' latest state the engine keeps in memory between commands
    /// (0 disables it), least recently used first out. A stale entry is harmless: its append conflicts and is re-decided.
    pub state_cache_capacity: usize,
    /// The most bytes the cached states may take, counted as their JSON; the least
    /// recently used go first, as for the capacity.
    pub state_cache_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_attempts: 100,
            retry_for: None,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(50),
            snapshot_policy: SnapshotPolicy::EveryNEvents(NonZeroU64::MIN.saturating_add(99)),
            state_cache_capacity: 10_000,
            state_cache_bytes: 64 << 20,
        }
    }
}

impl EngineConfig {
    /// Sets the number of attempts.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Bounds retries by time (see [`retry_for`](Self::retry_for)).
    #[must_use]
    pub fn with_retry_for(mut self, limit: Duration) -> Self {
        self.retry_for = Some(limit);
        self
    }

    /// Sets the snapshot policy.
    #[must_use]
    pub fn with_snapshot_policy(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshot_policy = policy;
        self
    }

    /// Sets the backoff range.
    #[must_use]
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// Sets the state cache's byte bound.
    #[must_use]
    pub fn with_state_cache_bytes(mut self, bytes: usize) -> Self {
        self.state_cache_bytes = bytes;
        self
    }

    /// Sets the state cache capacity (0 disables it).
    #[must_use]
    pub fn with_state_cache_capacity(mut self, capacity: usize) -> Self {
        self.state_cache_capacity = capacity;
        self
    }
}
