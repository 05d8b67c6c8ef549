//! What is stored reads back: the engine refuses, before appending, a command whose event,
//! snapshot or inline view record would not decode to what was written, and stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Cents written through an `f64`, as money once was: above 2^53 / 100 the digits go.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FloatCents(i64);

impl Serialize for FloatCents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for FloatCents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self((f64::deserialize(d)? * 100.0).round() as i64))
    }
}

/// A count that reads back rounded down to tens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Tens(u64);

impl Serialize for Tens {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Tens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(u64::deserialize(d)? / 10 * 10))
    }
}

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum LedgerEvent {
    Opened,
    Posted { amount: FloatCents },
    Noted { count: Tens },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ledger {
    id: String,
    /// The count plus one: a snapshot of it reads back wrong unless it ends in 0.
    shadow: Tens,
}

#[derive(Debug)]
enum LedgerCommand {
    Post(i64),
    Note(u64),
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "ledger";
    type Event = LedgerEvent;
    type Error = CqrsError;
    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            shadow: Tens(0),
        }
    }
    fn aggregate_id(&self) -> &str {
        &self.id
    }
    fn apply(&mut self, event: &LedgerEvent) {
        if let LedgerEvent::Noted { count } = event {
            self.shadow = Tens(count.0 + 1);
        }
    }
}

impl CommandHandler for Ledger {
    type CreateCommand = ();
    type UpdateCommand = LedgerCommand;
    type Services = ();
    async fn handle_create(
        &self,
        _: &(),
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<LedgerEvent>, CqrsError> {
        Ok(vec![LedgerEvent::Opened])
    }
    async fn handle_update(
        &self,
        command: &LedgerCommand,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<LedgerEvent>, CqrsError> {
        Ok(vec![match command {
            LedgerCommand::Post(cents) => LedgerEvent::Posted {
                amount: FloatCents(*cents),
            },
            LedgerCommand::Note(count) => LedgerEvent::Noted {
                count: Tens(*count),
            },
        }])
    }
}

/// A view holding the last posted amount in tens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct LastPost {
    tens: Tens,
}

impl View for LastPost {
    const TYPE: &'static str = "last_post";
    const KIND: ViewKind = ViewKind::PerAggregate;
    type Aggregate = Ledger;
    fn update(&self, envelope: &EventEnvelope<LedgerEvent>) -> Option<Self> {
        match envelope.payload {
            LedgerEvent::Posted { amount } => Some(Self {
                tens: Tens(amount.0.unsigned_abs()),
            }),
            _ => None,
        }
    }
}

async fn refused(
    engine: &CqrsCommandEngine<Ledger>,
    store: &InMemoryEventStore,
    command: LedgerCommand,
) -> (String, String) {
    let head = store.head_position().await.unwrap();
    let snapshot = store.load_snapshot("ledger", "l-1").await.unwrap();
    let error = engine
        .update("l-1", &command, &CqrsContext::new())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "UNREPRESENTABLE_VALUE", "{error}");
    assert_eq!(error.status(), 400);
    assert_eq!(store.head_position().await.unwrap(), head, "nothing stored");
    assert_eq!(
        store.load_snapshot("ledger", "l-1").await.unwrap(),
        snapshot
    );
    let CommandError::Unrepresentable { what, path, .. } = &error else {
        panic!("{error:?}");
    };
    let details = error.to_cqrs_error().details.unwrap();
    assert_eq!(details["path"], path.as_str());
    (what.clone(), path.clone())
}

/// Creates ledger `l-1`.
async fn create_l1(engine: &CqrsCommandEngine<Ledger>) {
    engine
        .create_with_id("l-1", &(), &CqrsContext::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn commands_whose_values_would_not_read_back_are_refused_and_store_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Ledger>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand))
        .build()
        .unwrap();
    create_l1(&engine).await;

    // 93213944218088.35 through an f64: the event decodes to other cents.
    let (what, path) = refused(&engine, &store, LedgerCommand::Post(9_321_394_421_808_835)).await;
    assert_eq!((what.as_str(), path.as_str()), ("Posted event", "$"));
    // Small amounts survive an f64 and are stored.
    engine
        .update("l-1", &LedgerCommand::Post(1_234), &CqrsContext::new())
        .await
        .unwrap();
    // A field that reads back otherwise is named.
    let (what, path) = refused(&engine, &store, LedgerCommand::Note(15)).await;
    assert_eq!((what.as_str(), path.as_str()), ("Noted event", "$.count"));
    // The event reads back, the snapshot (shadow 21) does not.
    let (what, path) = refused(&engine, &store, LedgerCommand::Note(20)).await;
    assert_eq!(
        (what.as_str(), path.as_str()),
        ("ledger snapshot", "$.shadow")
    );
    let loaded = engine.load("l-1").await.unwrap().unwrap();
    assert_eq!(loaded.version, 2);
}

#[tokio::test]
async fn inline_view_records_that_would_not_read_back_refuse_the_command() {
    let store = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Ledger>::builder(store.clone())
        .inline_view::<LastPost>()
        .build()
        .unwrap();
    create_l1(&engine).await;
    engine
        .update("l-1", &LedgerCommand::Post(1_230), &CqrsContext::new())
        .await
        .unwrap();
    let (what, path) = refused(&engine, &store, LedgerCommand::Post(1_234)).await;
    assert_eq!(
        (what.as_str(), path.as_str()),
        ("last_post view record \"l-1\"", "$.tens")
    );
    let record = store.get_view("last_post", "l-1").await.unwrap().unwrap();
    assert_eq!(
        record.decode::<LastPost>().unwrap(),
        LastPost { tens: Tens(1_230) }
    );
}
