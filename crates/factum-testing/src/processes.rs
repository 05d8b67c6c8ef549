//! Process-manager conformance: the commands a process manager runs take effect once however
//! often its events are handed over, on any store that keeps idempotency records and
//! checkpoints. Run by [`event_store_conformance_tests!`](crate::event_store_conformance_tests).

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factum_core::{
    Backoff, CqrsCommandEngine, CqrsContext, EventEnvelope, EventStore, HandlerError, Process,
    ProcessManager, StepOutcome, async_trait, process_subscription,
};

use crate::counter::{Counter, CounterCommand, CounterEvent};

/// Forwards what is added to each counter `c-*` to the counter `sink` (step `forward`),
/// then adds 1 to the counter `late` (step `notify`), which may not exist yet.
pub struct Forwarder {
    /// The engine of the counters.
    pub counters: CqrsCommandEngine<Counter>,
    /// Fail once after the first step, as a crash after its commit would.
    pub crash_once: AtomicBool,
}

impl Forwarder {
    /// A forwarder over `counters` that does not crash.
    pub fn new(counters: CqrsCommandEngine<Counter>) -> Self {
        Self {
            counters,
            crash_once: AtomicBool::new(false),
        }
    }

    /// The outcomes of one reaction to `event` (as a redelivery would run it).
    pub async fn outcomes(&self, event: &EventEnvelope<CounterEvent>) -> Vec<StepOutcome> {
        let mut process = Process::for_event(self.name(), event);
        let CounterEvent::Added { by } = event.payload else {
            return Vec::new();
        };
        let forward = process
            .update("forward", &self.counters, "sink", &CounterCommand::Add(by))
            .await
            .unwrap();
        let notify = process
            .update("notify", &self.counters, "late", &CounterCommand::Add(1))
            .await
            .unwrap();
        vec![forward, notify]
    }
}

#[async_trait]
impl ProcessManager for Forwarder {
    type Source = Counter;

    fn name(&self) -> &str {
        "forwarder"
    }

    async fn react(
        &self,
        event: &EventEnvelope<CounterEvent>,
        process: &mut Process,
    ) -> Result<(), HandlerError> {
        let CounterEvent::Added { by } = event.payload else {
            return Ok(());
        };
        if !event.aggregate_id.starts_with("c-") {
            return Ok(());
        }
        process
            .update("forward", &self.counters, "sink", &CounterCommand::Add(by))
            .await?
            .accepted()?;
        if self.crash_once.swap(false, Ordering::SeqCst) {
            return Err(HandlerError::Event("crashed after the first step".into()));
        }
        // Refused while `late` does not exist: remembered as refused.
        process
            .update("notify", &self.counters, "late", &CounterCommand::Add(1))
            .await?;
        Ok(())
    }
}

async fn engine(store: &Arc<dyn EventStore>) -> CqrsCommandEngine<Counter> {
    CqrsCommandEngine::<Counter>::builder(store.clone())
        .build()
        .unwrap()
}

/// A reaction that fails after its first step is handed over again and its step does not run
/// twice; redeliveries later change nothing, a refused step stays refused after the state
/// moved on, the commands carry the source's correlation id, user and (as causation) event
/// id, and a step name used twice in one reaction is refused.
pub async fn process_steps_take_effect_once(store: Arc<dyn EventStore>) {
    let counters = engine(&store).await;
    let ctx = CqrsContext::new();
    counters.create_with_id("sink", &(), &ctx).await.unwrap();
    counters.create_with_id("c-1", &(), &ctx).await.unwrap();
    let asked = CqrsContext::new()
        .with_user("ann")
        .with_correlation_id("corr-1");
    counters
        .update("c-1", &CounterCommand::Add(3), &asked)
        .await
        .unwrap();
    let source = counters.events("c-1", 2, None).await.unwrap().remove(0);

    let forwarder = Forwarder::new(counters.clone());
    forwarder.crash_once.store(true, Ordering::SeqCst);
    let subscription = process_subscription(forwarder, &counters)
        .unwrap()
        .with_backoff(Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        });
    subscription.catch_up().await.unwrap();
    assert_eq!(
        subscription.retries(),
        1,
        "handed over again after the crash"
    );
    assert!(subscription.parked().await.unwrap().is_empty());

    let sink = counters.events("sink", 1, None).await.unwrap();
    assert_eq!(sink.len(), 2, "{sink:?}");
    assert_eq!(sink[1].payload, CounterEvent::Added { by: 3 });
    let metadata = &sink[1].metadata;
    assert_eq!(metadata.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(metadata.causation_id, Some(source.event_id.to_string()));
    assert_eq!(metadata.user_id.as_deref(), Some("ann"));

    // `late` appears: the recorded refusal still holds for this event.
    counters.create_with_id("late", &(), &ctx).await.unwrap();
    let again = Forwarder::new(counters.clone());
    let first = again.outcomes(&source).await;
    assert_eq!(first, again.outcomes(&source).await);
    assert_eq!(
        first[0],
        StepOutcome::Accepted {
            aggregate_id: "sink".into(),
            version: 2
        }
    );
    let refusal = first[1].refusal().expect("refused");
    assert_eq!((refusal.status, refusal.code.as_str()), (404, "NOT_FOUND"));
    assert_eq!(counters.events("sink", 1, None).await.unwrap().len(), 2);
    assert_eq!(counters.events("late", 1, None).await.unwrap().len(), 1);

    // A new event's steps run: `late` exists now.
    counters
        .update("c-1", &CounterCommand::Add(4), &ctx)
        .await
        .unwrap();
    subscription.catch_up().await.unwrap();
    let sink = counters.load_latest("sink").await.unwrap().unwrap();
    assert_eq!((sink.state.total, sink.version), (7, 3));
    assert_eq!(
        counters.load_latest("late").await.unwrap().unwrap().version,
        2
    );

    // One step name, two commands: a bug, refused before anything runs.
    let mut process = Process::for_event("forwarder", &source);
    let add = CounterCommand::Add(1);
    process
        .update("twice", &counters, "sink", &add)
        .await
        .unwrap();
    let twice = process.update("twice", &counters, "sink", &add).await;
    assert!(matches!(twice, Err(HandlerError::Event(_))), "{twice:?}");
}

/// Two runners (two engines over one store, as on two nodes during a takeover) react to the
/// same events at once: each step takes effect once and both see the same outcomes.
pub async fn process_runners_race(store: Arc<dyn EventStore>) {
    let (one, two) = (engine(&store).await, engine(&store).await);
    let ctx = CqrsContext::new();
    one.create_with_id("sink", &(), &ctx).await.unwrap();
    let mut sources = Vec::new();
    for n in 1..=12u32 {
        let id = format!("c-{n}");
        one.create_with_id(&id, &(), &ctx).await.unwrap();
        one.update(&id, &CounterCommand::Add(n), &ctx)
            .await
            .unwrap();
        sources.push(one.events(&id, 2, None).await.unwrap().remove(0));
    }
    let (a, b) = (Forwarder::new(one.clone()), Forwarder::new(two.clone()));
    for source in &sources {
        let (left, right) = tokio::join!(a.outcomes(source), b.outcomes(source));
        assert_eq!(left, right, "both runners see the first outcome");
        assert!(left[1].refusal().is_some(), "{left:?}");
    }
    let sink = one.load_latest("sink").await.unwrap().unwrap();
    assert_eq!((sink.state.total, sink.version), (78, 13));
}
