//! Process managers: subscriptions that react to events by running commands on other
//! aggregates, with an exactly-once **effect** although events are delivered at least once.
//!
//! A [`ProcessManager`] follows the events of one aggregate type (a [`Subscription`] named
//! after it, see [`process_subscription`]). For each event it runs commands through engines,
//! each as a named **step** of its reaction ([`Process::run`]). Every command a step runs
//! carries the source event's correlation id and, as its causation id, the source event's id;
//! the user who caused the source event is carried over too.
//!
//! # Why each command takes effect once
//!
//! A subscription hands an event over again after a crash between the handler's return and
//! the checkpoint's move, and during a takeover by another node. So every step gets a
//! deterministic idempotency key, `{source event id}/{step}`, in the scope
//! `process:{manager name}`, and runs through the idempotency machinery of the store of the
//! engine that runs it (see [`crate::idempotency`]):
//!
//! - A step whose command stores events writes its record **in the same transaction as the
//!   events** ([`Remember`]): the effect and the memory of it commit together or not at all.
//! - A step whose command is refused (a business rule, an unknown aggregate) records the
//!   refusal alone (`remember_idempotency`, insert if absent): a refusal is an outcome too, so
//!   a redelivery is refused again even if the state has moved on since, and the decisions
//!   the manager takes from it stay the same.
//! - Before running, a step looks its key up; a recorded outcome is handed back
//!   ([`StepOutcome`]) and nothing runs. Two runners at once: the store lets one record win
//!   (a second append under the key is refused and stores nothing), and the loser hands back
//!   the winner's outcome.
//! - Transient failures (a store down, lost races) are not recorded: the subscription tries
//!   the event again later, and the step runs then.
//!
//! So a reaction run twice on one event gives the same outcomes and stores each effect once,
//! provided the reaction is deterministic given those outcomes (the same steps, in the same
//! order, on the same aggregates: a step recorded for another aggregate is refused as a
//! bug). Records of processes are kept [`PROCESS_RECORD_TTL`] (ten years).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use factum_core::*;
//! use serde::{Deserialize, Serialize};
//!
//! // A note pad: each note written is an event.
//! #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type")]
//! enum PadEvent { Opened, Noted { text: String } }
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Pad { id: String, notes: usize }
//! impl Aggregate for Pad {
//!     const TYPE: &'static str = "pad";
//!     type Event = PadEvent;
//!     type Error = CqrsError;
//!     fn with_aggregate_id(id: String) -> Self { Self { id, notes: 0 } }
//!     fn aggregate_id(&self) -> &str { &self.id }
//!     fn apply(&mut self, e: &PadEvent) { if let PadEvent::Noted { .. } = e { self.notes += 1 } }
//! }
//! impl CommandHandler for Pad {
//!     type CreateCommand = ();
//!     type UpdateCommand = String;
//!     type Services = ();
//!     async fn handle_create(&self, _: &(), _: &(), _: &CqrsContext) -> Result<Vec<PadEvent>, CqrsError> {
//!         Ok(vec![PadEvent::Opened])
//!     }
//!     async fn handle_update(&self, text: &String, _: &(), _: &CqrsContext) -> Result<Vec<PadEvent>, CqrsError> {
//!         Ok(vec![PadEvent::Noted { text: text.clone() }])
//!     }
//! }
//!
//! // Every note written on a pad is copied to the pad "log".
//! struct CopyToLog { pads: CqrsCommandEngine<Pad> }
//! #[async_trait]
//! impl ProcessManager for CopyToLog {
//!     type Source = Pad;
//!     fn name(&self) -> &str { "copy-to-log" }
//!     async fn react(&self, event: &EventEnvelope<PadEvent>, process: &mut Process) -> Result<(), HandlerError> {
//!         if let (PadEvent::Noted { text }, false) = (&event.payload, event.aggregate_id == "log") {
//!             process.update("copy", &self.pads, "log", &format!("{}: {text}", event.aggregate_id)).await?.accepted()?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
//! let pads = CqrsCommandEngine::<Pad>::builder(store.clone()).build().unwrap();
//! let ctx = CqrsContext::new();
//! pads.create_with_id("log", &(), &ctx).await.unwrap();
//! pads.create_with_id("p-1", &(), &ctx).await.unwrap();
//! pads.update("p-1", &"hello".to_owned(), &ctx.clone().with_correlation_id("c-9")).await.unwrap();
//!
//! let copier = process_subscription(CopyToLog { pads: pads.clone() }, &pads).unwrap();
//! copier.catch_up().await.unwrap();
//! // The same event handed over again (as after a crash before the checkpoint moved).
//! let source = pads.events("p-1", 2, None).await.unwrap().remove(0);
//! let again = CopyToLog { pads: pads.clone() };
//! again.react(&source, &mut Process::for_event(again.name(), &source)).await.unwrap();
//!
//! let log = pads.events("log", 1, None).await.unwrap();
//! assert_eq!(log.len(), 2, "one copy");
//! assert_eq!(log[1].payload, PadEvent::Noted { text: "p-1: hello".into() });
//! assert_eq!(log[1].metadata.correlation_id.as_deref(), Some("c-9"));
//! assert_eq!(log[1].metadata.causation_id, Some(source.event_id.to_string()));
//! # });
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, CommandHandler};
use crate::command_error::CommandError;
use crate::context::CqrsContext;
use crate::engine::{CommandCall, CqrsCommandEngine, Remember};
use crate::envelope::EventEnvelope;
use crate::error::{CqrsError, Result};
use crate::idempotency::{IdempotencyRecord, validate_idempotency_key};
use crate::store::{EventStore, StoredEvent};
use crate::subscription::{EventHandler, HandlerError, Subscription, SubscriptionFilter};
use crate::upcast::Upcasters;

/// How long the record of a process step is kept: ten years, so that any redelivery or
/// replay of a parked event finds it.
pub const PROCESS_RECORD_TTL: chrono::Duration = chrono::Duration::days(3660);

/// Reacts to the events of one aggregate type by running commands (see the module docs).
#[async_trait]
pub trait ProcessManager: Send + Sync + 'static {
    /// The aggregate whose events it follows.
    type Source: CommandHandler;

    /// Its name: the name of its subscription (its checkpoint) and the scope of its steps'
    /// idempotency keys. Never rename a running process manager: it would run every step
    /// of every event again.
    fn name(&self) -> &str;

    /// Reacts to one event, running each command through [`Process::run`] under a step name
    /// of its own. May be called again for the same event: it must then take the same
    /// steps, which hand back their first outcomes and run nothing.
    async fn react(
        &self,
        event: &EventEnvelope<<Self::Source as Aggregate>::Event>,
        process: &mut Process,
    ) -> std::result::Result<(), HandlerError>;
}

/// What a step came to, as recorded: the same on every delivery of the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The command ran (and stored its events, if it had any).
    Accepted {
        /// The aggregate it ran on.
        aggregate_id: String,
        /// The aggregate's version after it.
        version: u64,
    },
    /// The command was refused (a business rule, an unknown aggregate): nothing was stored.
    Refused {
        /// Why, as a client would see it.
        error: CqrsError,
    },
}

impl StepOutcome {
    /// The aggregate and version of an accepted step; a refusal becomes a
    /// [`HandlerError::Event`] (for steps that must not be refused: the event is parked).
    pub fn accepted(self) -> std::result::Result<(String, u64), HandlerError> {
        match self {
            Self::Accepted {
                aggregate_id,
                version,
            } => Ok((aggregate_id, version)),
            Self::Refused { error } => Err(HandlerError::Event(format!(
                "a step that must succeed was refused: {} ({})",
                error.message, error.code
            ))),
        }
    }

    /// Why the step was refused, if it was.
    pub fn refusal(&self) -> Option<&CqrsError> {
        match self {
            Self::Accepted { .. } => None,
            Self::Refused { error } => Some(error),
        }
    }
}

/// One reaction to one event: runs its steps, each at most once whatever the deliveries.
#[derive(Debug)]
pub struct Process {
    scope: String,
    event_id: Uuid,
    correlation_id: String,
    user_id: Option<String>,
    steps: HashSet<String>,
}

impl Process {
    /// The reaction of process manager `manager` to `event`.
    pub fn for_event<E>(manager: &str, event: &EventEnvelope<E>) -> Self {
        let metadata = &event.metadata;
        Self {
            scope: format!("process:{manager}"),
            event_id: event.event_id,
            correlation_id: metadata
                .correlation_id
                .clone()
                .or_else(|| metadata.request_id.clone())
                .unwrap_or_else(|| event.event_id.to_string()),
            user_id: metadata.user_id.clone(),
            steps: HashSet::new(),
        }
    }

    /// The context a step's command runs in: the source event's correlation id and user,
    /// the source event's id as causation id.
    pub fn context(&self) -> CqrsContext {
        let ctx = CqrsContext::new()
            .with_correlation_id(self.correlation_id.clone())
            .with_causation_id(self.event_id.to_string());
        match &self.user_id {
            Some(user) => ctx.with_user(user.clone()),
            None => ctx,
        }
    }

    /// Runs update `command` on aggregate `id` as step `step` (see [`run`](Self::run)).
    pub async fn update<A: CommandHandler>(
        &mut self,
        step: &str,
        engine: &CqrsCommandEngine<A>,
        id: &str,
        command: &A::UpdateCommand,
    ) -> std::result::Result<StepOutcome, HandlerError> {
        let call = CommandCall::Update {
            id,
            command,
            expected_version: None,
        };
        self.run(step, engine, call).await
    }

    /// Runs `call` through `engine` as step `step` of this reaction, once: the first run's
    /// outcome is recorded in the engine's store (with the command's events, see the module
    /// docs) and handed back on every later delivery without running anything.
    ///
    /// A step name used twice in one reaction, or recorded for another aggregate than
    /// `call`'s, is a [`HandlerError::Event`]; a store that is down, or a command that kept
    /// losing races, a [`HandlerError::Unavailable`] (nothing recorded: tried again later).
    pub async fn run<A: CommandHandler>(
        &mut self,
        step: &str,
        engine: &CqrsCommandEngine<A>,
        call: CommandCall<'_, A>,
    ) -> std::result::Result<StepOutcome, HandlerError> {
        let key = format!("{}/{step}", self.event_id);
        validate_idempotency_key(&key)?;
        if !self.steps.insert(step.to_owned()) {
            return Err(HandlerError::Event(format!(
                "step {step:?} runs twice in one reaction to event {}",
                self.event_id
            )));
        }
        let target = match &call {
            CommandCall::Create { id, .. } => format!("{}:{}", A::TYPE, id.unwrap_or_default()),
            CommandCall::Update { id, .. } => format!("{}:{id}", A::TYPE),
        };
        let store = engine.store();
        let ctx = self.context();
        // Whole microseconds: what every store keeps.
        let now = ctx.now().trunc_subsecs(6);
        if let Some(record) = store.find_idempotency(&self.scope, &key, now).await? {
            return recorded(&record, &target);
        }
        let template = IdempotencyRecord {
            scope: self.scope.clone(),
            key,
            request_hash: target.clone(),
            status: 0,
            response: String::new(),
            created_at: now,
            expires_at: now
                .checked_add_signed(PROCESS_RECORD_TTL)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        let remember = Remember {
            record: template.clone(),
            render: Box::new(|id: &str, _: &A, version| accepted_response(id, version)),
        };
        let (status, response) = match engine.execute(call, &ctx, Some(&remember)).await {
            // Recorded with the events.
            Ok(outcome) if !outcome.events.is_empty() => {
                return Ok(StepOutcome::Accepted {
                    aggregate_id: outcome.aggregate_id,
                    version: outcome.version,
                });
            }
            Ok(outcome) => accepted_response(&outcome.aggregate_id, outcome.version)?,
            Err(error) => {
                // Another runner may have won the key: its outcome is the answer.
                if let Some(record) = store
                    .find_idempotency(&self.scope, &template.key, now)
                    .await?
                {
                    return recorded(&record, &target);
                }
                let error = refusal(error)?;
                (error.status, encode(&StepOutcome::Refused { error })?)
            }
        };
        let mine = IdempotencyRecord {
            status,
            response,
            ..template
        };
        let held = store.remember_idempotency(mine).await?;
        recorded(&held, &target)
    }
}

/// The status and response recorded for an accepted step.
fn accepted_response(aggregate_id: &str, version: u64) -> Result<(u16, String)> {
    let outcome = StepOutcome::Accepted {
        aggregate_id: aggregate_id.to_owned(),
        version,
    };
    Ok((200, encode(&outcome)?))
}

fn encode(outcome: &StepOutcome) -> Result<String> {
    serde_json::to_string(outcome).map_err(|e| crate::Error::serialization("a process step", e))
}

/// The outcome a record holds, if it is the record of this step's target.
fn recorded(
    record: &IdempotencyRecord,
    target: &str,
) -> std::result::Result<StepOutcome, HandlerError> {
    if record.request_hash != target {
        return Err(HandlerError::Event(format!(
            "step {} was recorded for {:?}, now it runs on {target:?}: a process manager must \
             take the same steps on every delivery",
            record.key, record.request_hash
        )));
    }
    crate::json::from_str(&record.response)
        .map_err(|e| HandlerError::Event(format!("unreadable record of step {}: {e}", record.key)))
}

/// A command's failure as a recorded refusal, or the handler error of a transient one.
fn refusal<E: crate::DomainError>(
    error: CommandError<E>,
) -> std::result::Result<CqrsError, HandlerError> {
    match error {
        CommandError::TooManyConflicts { .. } => Err(HandlerError::Unavailable(error.to_string())),
        CommandError::Store(error) => Err(error.into()),
        other => Ok(other.to_cqrs_error()),
    }
}

/// The [`EventHandler`] of a process manager: decodes each event and hands it over.
struct ProcessHandler<P> {
    manager: P,
    upcasters: Upcasters,
}

#[async_trait]
impl<P: ProcessManager> EventHandler for ProcessHandler<P> {
    async fn handle(&self, event: &StoredEvent) -> std::result::Result<(), HandlerError> {
        let envelope = self.upcasters.decode(event)?;
        let mut process = Process::for_event(self.manager.name(), &envelope);
        self.manager.react(&envelope, &mut process).await
    }
}

/// The subscription that runs `manager` over the events of its source aggregate type, read
/// from `source`'s store and decoded with its upcasters. Run it like any subscription
/// ([`Subscriptions::with_subscription`](crate::Subscriptions::with_subscription)); a step
/// that keeps failing parks the event (replay it once the fault is fixed: the steps that
/// ran are not run again).
pub fn process_subscription<P: ProcessManager>(
    manager: P,
    source: &CqrsCommandEngine<P::Source>,
) -> Result<Subscription> {
    let name = manager.name().to_owned();
    let store: Arc<dyn EventStore> = source.store().clone();
    let handler = Arc::new(ProcessHandler {
        manager,
        upcasters: source.upcasters().clone(),
    });
    Ok(
        Subscription::new(name, store, handler)?.with_filter(SubscriptionFilter {
            aggregate_types: vec![<P::Source as Aggregate>::TYPE.to_owned()],
            event_types: Vec::new(),
        }),
    )
}
