//! One aggregate's lane in this process: the commands waiting on it, decided one after the
//! other against the evolving state and appended together (hot-aggregate batching).
//!
//! A command takes the lane's decision lock, decides on the state after every command
//! decided before it (committed or still pending), queues its prepared events and releases
//! the lock; then it takes the commit lock, and unless a committer before it has already
//! answered it, appends everything queued (up to a batch boundary) in one append and
//! answers each command of the batch. A batch that does not commit sends every command
//! built on it back to decide again: the state it was decided on is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, oneshot};

use crate::aggregate::Aggregate;
use crate::context::Metadata;
use crate::error::Result;
use crate::idempotency::IdempotencyRecord;
use crate::store::NewEvent;

use super::outcome::{CommandOutcome, LoadedAggregate};

/// One command's decision, ready to append: its events typed and encoded, the state after
/// them, and the idempotency record it writes (if any).
pub(super) struct Prepared<A: Aggregate> {
    /// The version the command was decided on.
    pub(super) base_version: u64,
    /// The state after its events.
    pub(super) state: A,
    pub(super) events: Vec<A::Event>,
    pub(super) new_events: Vec<NewEvent>,
    /// The metadata of the command's own context, kept with its own events.
    pub(super) metadata: Metadata,
    pub(super) idempotency: Option<IdempotencyRecord>,
}

impl<A: Aggregate> Prepared<A> {
    /// The version after the command's events.
    pub(super) fn version(&self) -> u64 {
        self.base_version + self.events.len() as u64
    }
}

/// What a queued command is told.
pub(super) enum Reply<A: Aggregate> {
    /// Its batch committed (or failed, as a batch of one).
    Done(Result<CommandOutcome<A>>),
    /// Its batch, or one it was decided after, did not commit: decide again. `conflict`:
    /// another process appended first (back off, count an attempt); `alone`: the batch
    /// failed for another reason, so decide again and commit alone, where the failure can
    /// only be the command's own.
    Redo { conflict: bool, alone: bool },
}

/// A queued command.
pub(super) struct Entry<A: Aggregate> {
    pub(super) ticket: u64,
    pub(super) prepared: Prepared<A>,
    /// Commits in a batch of its own.
    pub(super) alone: bool,
    pub(super) reply: oneshot::Sender<Reply<A>>,
}

/// The state commands are decided on, behind the decision lock.
pub(super) struct Tentative<A> {
    /// The state after every decided command, committed or queued; `None`: load it.
    pub(super) state: Option<LoadedAggregate<A>>,
    /// After a conflict: the last state this process committed, to catch up from.
    pub(super) stale: Option<LoadedAggregate<A>>,
}

/// One aggregate's lane.
pub(super) struct Lane<A: Aggregate> {
    pub(super) decide: AsyncMutex<Tentative<A>>,
    /// Held while a batch is appended, so the batches of one aggregate commit in order.
    pub(super) commit: Arc<AsyncMutex<()>>,
    pub(super) queue: Mutex<VecDeque<Entry<A>>>,
    next_ticket: Mutex<u64>,
    /// When an append of this lane last conflicted with another process.
    contended: Mutex<Option<Instant>>,
}

impl<A: Aggregate> Lane<A> {
    fn new() -> Self {
        Self {
            decide: AsyncMutex::new(Tentative {
                state: None,
                stale: None,
            }),
            commit: Arc::new(AsyncMutex::new(())),
            queue: Mutex::new(VecDeque::new()),
            next_ticket: Mutex::new(0),
            contended: Mutex::new(None),
        }
    }

    pub(super) fn mark_contended(&self) {
        *self.contended.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Whether an append of this lane conflicted within `window`.
    pub(super) fn contended_within(&self, window: Duration) -> bool {
        self.contended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < window)
    }

    pub(super) fn ticket(&self) -> u64 {
        let mut next = self.next_ticket.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        *next
    }

    /// Queues a decided command (call with the decision lock held, so the queue is in
    /// decision order).
    pub(super) fn push(&self, entry: Entry<A>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(entry);
    }

    /// The next batch: the queue's head, up to the first command that commits alone or the
    /// second one with an idempotency record (an append writes at most one).
    pub(super) fn take_batch(&self) -> Vec<Entry<A>> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Vec::new();
        let mut remembers = false;
        while let Some(next) = queue.front() {
            let remembering = next.prepared.idempotency.is_some();
            let fits = batch.is_empty() || !(next.alone || remembering && remembers);
            if !fits {
                break;
            }
            remembers |= remembering;
            let alone = next.alone;
            if let Some(entry) = queue.pop_front() {
                batch.push(entry);
            }
            if alone {
                break;
            }
        }
        batch
    }

    /// Empties the queue (call with the decision lock held).
    pub(super) fn drain(&self) -> Vec<Entry<A>> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect()
    }
}

type LaneMap<A> = Mutex<HashMap<String, Arc<Lane<A>>>>;

/// The lanes of the aggregates commands are running on; a lane lives only while a command
/// uses it, so an idle aggregate costs nothing (its committed state is in the state cache).
pub(super) struct Lanes<A: Aggregate> {
    lanes: Arc<LaneMap<A>>,
}

impl<A: Aggregate> Default for Lanes<A> {
    fn default() -> Self {
        Self {
            lanes: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// A command's (or a spawned committer's) hold on a lane; the last one out removes it.
pub(super) struct LaneGuard<A: Aggregate> {
    key: String,
    pub(super) lane: Arc<Lane<A>>,
    lanes: Arc<LaneMap<A>>,
}

impl<A: Aggregate> Lanes<A> {
    pub(super) fn join(&self, aggregate_id: &str) -> LaneGuard<A> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lane = match lanes.get(aggregate_id) {
            Some(lane) => lane.clone(),
            None => {
                let lane = Arc::new(Lane::new());
                lanes.insert(aggregate_id.to_owned(), lane.clone());
                lane
            }
        };
        LaneGuard {
            key: aggregate_id.to_owned(),
            lane,
            lanes: self.lanes.clone(),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl<A: Aggregate> Clone for LaneGuard<A> {
    fn clone(&self) -> Self {
        let _map = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        Self {
            key: self.key.clone(),
            lane: self.lane.clone(),
            lanes: self.lanes.clone(),
        }
    }
}

impl<A: Aggregate> Drop for LaneGuard<A> {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        // Two references left (the map's and ours): nobody else uses the lane. New holds
        // are taken under the map lock, which we hold, so this cannot race.
        if Arc::strong_count(&self.lane) == 2 {
            lanes.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    struct Nothing;
    impl Aggregate for Nothing {
        const TYPE: &'static str = "nothing";
        type Event = NothingHappened;
        type Error = crate::CqrsError;
        fn with_aggregate_id(_: String) -> Self {
            Nothing
        }
        fn aggregate_id(&self) -> &str {
            ""
        }
        fn apply(&mut self, _: &NothingHappened) {}
    }
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct NothingHappened;
    impl crate::Event for NothingHappened {
        fn event_type(&self) -> &'static str {
            "NothingHappened"
        }
    }

    #[test]
    fn a_lane_lives_while_someone_holds_it() {
        let lanes = Lanes::<Nothing>::default();
        let a = lanes.join("a");
        let again = lanes.join("a");
        assert!(Arc::ptr_eq(&a.lane, &again.lane), "one lane per aggregate");
        let spawned = a.clone();
        let _b = lanes.join("b");
        assert_eq!(lanes.len(), 2);
        drop((a, again));
        assert_eq!(lanes.len(), 2, "a committer's hold keeps its lane");
        drop(spawned);
        assert_eq!(lanes.len(), 1);
    }
}
