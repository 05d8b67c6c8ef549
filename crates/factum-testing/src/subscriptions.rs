//! Subscription conformance: durable event handlers on any store that keeps checkpoints,
//! run by [`event_store_conformance_tests!`](crate::event_store_conformance_tests).

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum_core::store::{AppendRequest, StoredEvent};
use factum_core::{
    Backoff, Error, EventHandler, EventStore, ExpectedVersion, HandlerError, Projections,
    StartFrom, Subscription, SubscriptionFilter, async_trait,
};
use uuid::Uuid;

use crate::sample::event;

/// A handler that records what it was handed, and fails on the events of one aggregate
/// while its fault is on.
#[derive(Default)]
pub struct Recorder {
    /// Each call, in order: (event id, whether it succeeded).
    pub calls: Mutex<Vec<(Uuid, bool)>>,
    /// The aggregate whose events fail.
    pub poison_aggregate: Mutex<Option<String>>,
    /// Fail with [`HandlerError::Unavailable`] instead of a fault of the event.
    pub down: AtomicBool,
}

impl Recorder {
    /// How many times each event was handled successfully.
    pub fn successes(&self) -> HashMap<Uuid, usize> {
        let mut counts = HashMap::new();
        for (id, ok) in self.calls.lock().unwrap().iter() {
            if *ok {
                *counts.entry(*id).or_default() += 1;
            }
        }
        counts
    }

    /// How many calls were made for `id`, failed ones included.
    pub fn calls_for(&self, id: Uuid) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| *e == id)
            .count()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &StoredEvent) -> Result<(), HandlerError> {
        if self.down.load(Ordering::SeqCst) {
            self.calls.lock().unwrap().push((event.event_id, false));
            return Err(HandlerError::Unavailable("the broker is down".into()));
        }
        let poisoned =
            self.poison_aggregate.lock().unwrap().as_deref() == Some(&*event.aggregate_id);
        self.calls.lock().unwrap().push((event.event_id, !poisoned));
        if poisoned {
            return Err(HandlerError::Event(format!(
                "cannot take {}",
                event.aggregate_id
            )));
        }
        Ok(())
    }
}

async fn append(store: &dyn EventStore, aggregate_type: &str, id: &str, n: u64) -> StoredEvent {
    store
        .append(AppendRequest::new(
            aggregate_type,
            id,
            ExpectedVersion::Any,
            vec![event(n)],
        ))
        .await
        .unwrap()
        .remove(0)
}

fn quick(subscription: Subscription) -> Subscription {
    subscription.with_max_attempts(3).with_backoff(Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(4),
    })
}

/// A handler that fails on one event parks it after N attempts and every later event is
/// still handled once; replaying it after the fault is fixed handles it once, and a second
/// replay has nothing left to do. A restarted subscription resumes from its checkpoint.
pub async fn subscription_parks_and_replays(store: Arc<dyn EventStore>) {
    let recorder = Arc::new(Recorder::default());
    *recorder.poison_aggregate.lock().unwrap() = Some("poison".into());
    let make = || {
        quick(
            Subscription::new("mailer", store.clone(), recorder.clone())
                .unwrap()
                .with_batch_size(3),
        )
    };
    let subscription = make();
    let mut good = Vec::new();
    for n in 0..4 {
        good.push(
            append(&*store, "counter", &format!("c-{n}"), n)
                .await
                .event_id,
        );
    }
    let poison = append(&*store, "counter", "poison", 9).await;
    for n in 4..8 {
        good.push(
            append(&*store, "counter", &format!("c-{n}"), n)
                .await
                .event_id,
        );
    }
    let read = subscription.catch_up().await.unwrap();
    assert_eq!(read, 9);

    let parked = subscription.parked().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        (parked[0].position, parked[0].event.event_id),
        (poison.position, poison.event_id)
    );
    assert_eq!(
        (parked[0].attempts, parked[0].projection.as_str()),
        (3, "mailer")
    );
    assert!(
        parked[0].error.contains("cannot take poison"),
        "{}",
        parked[0].error
    );
    assert_eq!(recorder.calls_for(poison.event_id), 3);
    assert_eq!(subscription.retries(), 2);
    let successes = recorder.successes();
    assert!(
        good.iter().all(|id| successes.get(id) == Some(&1)),
        "{successes:?}"
    );
    assert_eq!(subscription.lag().await.unwrap().behind(), 0);

    // Later events go on; a restart resumes from the checkpoint without handing anything twice.
    let later = append(&*store, "counter", "c-9", 10).await.event_id;
    let restarted = make();
    assert_eq!(restarted.catch_up().await.unwrap(), 1);
    assert_eq!(recorder.successes().get(&later), Some(&1));
    assert_eq!(restarted.parked().await.unwrap(), parked);

    // Still failing: the replay leaves it parked.
    let report = restarted.replay_parked().await.unwrap();
    assert!(report.handled.is_empty());
    assert_eq!(report.failed.len(), 1);
    assert_eq!(restarted.parked().await.unwrap().len(), 1);

    // Fixed: handled once, forgotten; another replay finds nothing.
    *recorder.poison_aggregate.lock().unwrap() = None;
    let report = restarted.replay_parked().await.unwrap();
    assert_eq!(report.handled, vec![poison.position]);
    assert!(restarted.parked().await.unwrap().is_empty());
    assert!(restarted.replay_parked().await.unwrap().handled.is_empty());
    assert_eq!(recorder.successes().get(&poison.event_id), Some(&1));
    let successes = recorder.successes();
    assert!(successes.values().all(|n| *n == 1), "{successes:?}");
    assert_eq!(successes.len(), good.len() + 2);
}

/// Filters by aggregate type and event type move the checkpoint past what they drop; a
/// subscription starting from now skips the past, even on a restart before anything new.
pub async fn subscription_filters_and_starts_from_now(store: Arc<dyn EventStore>) {
    append(&*store, "counter", "c-1", 1).await;
    let other = append(&*store, "other", "o-1", 2).await;
    let recorder = Arc::new(Recorder::default());
    let filtered = Subscription::new("counters", store.clone(), recorder.clone())
        .unwrap()
        .with_filter(SubscriptionFilter {
            aggregate_types: vec!["counter".into()],
            event_types: vec!["Counted".into()],
        });
    assert_eq!(filtered.catch_up().await.unwrap(), 2);
    assert_eq!(recorder.calls.lock().unwrap().len(), 1);
    assert_eq!(filtered.lag().await.unwrap().behind(), 0);
    let none = Subscription::new("nothing", store.clone(), recorder.clone())
        .unwrap()
        .with_filter(SubscriptionFilter {
            aggregate_types: Vec::new(),
            event_types: vec!["NoSuchEvent".into()],
        });
    none.catch_up().await.unwrap();
    assert_eq!(recorder.calls.lock().unwrap().len(), 1);
    // Positions grow but need not be dense (PostgreSQL's follow the transaction ids).
    assert_eq!(none.lag().await.unwrap().checkpoint, other.position);

    let fresh = Arc::new(Recorder::default());
    let from_now = || {
        Subscription::new("from-now", store.clone(), fresh.clone())
            .unwrap()
            .starting_from(StartFrom::Now)
    };
    assert_eq!(from_now().catch_up().await.unwrap(), 0);
    assert!(fresh.calls.lock().unwrap().is_empty());
    let new = append(&*store, "counter", "c-2", 3).await;
    // A restart after placing the checkpoint does not jump to the head again.
    assert_eq!(from_now().catch_up().await.unwrap(), 1);
    assert_eq!(*fresh.calls.lock().unwrap(), vec![(new.event_id, true)]);
}

/// A handler whose dependency is down parks nothing: the subscription stops before the
/// event, keeps what it handled, and hands the event over when the dependency is back.
/// Run by the runtime, it is woken by the waker and reports its status.
pub async fn subscription_waits_out_an_unavailable_handler(store: Arc<dyn EventStore>) {
    let recorder = Arc::new(Recorder::default());
    let first = append(&*store, "counter", "c-1", 1).await;
    let subscription =
        quick(Subscription::new("publisher", store.clone(), recorder.clone()).unwrap());
    assert_eq!(subscription.catch_up().await.unwrap(), 1);
    recorder.down.store(true, Ordering::SeqCst);
    let second = append(&*store, "counter", "c-2", 2).await;
    let failed = subscription.catch_up().await;
    assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");
    assert!(subscription.parked().await.unwrap().is_empty());
    assert_eq!(subscription.lag().await.unwrap().checkpoint, first.position);
    recorder.down.store(false, Ordering::SeqCst);

    let runtime = Projections::new().with_subscription(subscription);
    let waker = runtime.waker::<crate::counter::Counter>();
    let tasks = runtime.spawn(Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorder.successes().get(&second.event_id) != Some(&1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was not handed over"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A new event is handled after a wake-up, long before the minute's poll.
    let third = append(&*store, "counter", "c-3", 3).await;
    waker.dispatch("c-3", &[]).await.unwrap();
    while recorder.successes().get(&third.event_id) != Some(&1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wake-up was lost"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The checkpoint moves just after the handler returns: wait for it, not for a guess.
    let statuses = loop {
        let statuses = runtime.subscription_statuses().await.unwrap();
        assert_eq!(statuses.len(), 1);
        if statuses[0].position == third.position {
            break statuses;
        }
        assert!(statuses[0].position < third.position, "{statuses:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint never moved past the handled event: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(
        (statuses[0].name.as_str(), statuses[0].parked),
        ("publisher", 0)
    );
    assert!(
        runtime.statuses().await.unwrap().is_empty(),
        "a handler is not a view"
    );
    tasks.stop().await;
}
