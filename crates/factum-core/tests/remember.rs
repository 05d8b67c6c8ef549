//! The engine writes an idempotency record with a command's events, its response rendered
//! from the state and version about to be committed; a command that stores nothing writes
//! none, and a taken key stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use factum_core::*;
use factum_testing::counter::{Counter, CounterCommand};

fn remember(key: &str) -> Remember<'static, Counter> {
    let now = Utc::now();
    Remember {
        record: IdempotencyRecord {
            scope: String::new(),
            key: key.to_owned(),
            request_hash: "h".to_owned(),
            status: 0,
            response: String::new(),
            created_at: now,
            expires_at: now + Duration::hours(1),
        },
        render: Box::new(|id: &str, state: &Counter, version: u64| {
            Ok((200, format!("{id}:{}@{version}", state.total)))
        }),
    }
}

/// Runs `command` on counter `c-1`, remembered under `key`.
async fn update(
    engine: &CqrsCommandEngine<Counter>,
    command: &CounterCommand,
    key: &str,
) -> CommandResult<Counter> {
    let call = CommandCall::Update {
        id: "c-1",
        command,
        expected_version: None,
    };
    engine
        .execute(call, &CqrsContext::new(), Some(&remember(key)))
        .await
}

#[tokio::test]
async fn the_record_is_written_with_the_events_and_only_then() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Counter>::new(store.clone(), ());
    let ctx = CqrsContext::new();
    let create = CommandCall::Create {
        id: Some("c-1"),
        command: &(),
    };
    engine
        .execute(create, &ctx, Some(&remember("k-0")))
        .await
        .unwrap();
    let outcome = update(&engine, &CounterCommand::Add(5), "k-1")
        .await
        .unwrap();
    assert_eq!(outcome.version, 2);
    let later = Utc::now() + Duration::seconds(1);
    let record = store
        .find_idempotency("", "k-1", later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.status, record.response.as_str()), (200, "c-1:5@2"));
    assert_eq!(
        store
            .find_idempotency("", "k-0", later)
            .await
            .unwrap()
            .unwrap()
            .response,
        "c-1:0@1"
    );

    // Nothing to store, or refused: no record (the caller remembers those alone).
    let nothing = update(&engine, &CounterCommand::Add(0), "k-2")
        .await
        .unwrap();
    assert!(nothing.events.is_empty());
    assert!(
        update(&engine, &CounterCommand::Refuse, "k-3")
            .await
            .is_err()
    );
    for key in ["k-2", "k-3"] {
        assert_eq!(store.find_idempotency("", key, later).await.unwrap(), None);
    }

    // A taken key: the command stores nothing and says so.
    let taken = update(&engine, &CounterCommand::Add(7), "k-1").await;
    assert!(
        matches!(taken, Err(CommandError::Store(Error::IdempotencyKeyTaken { ref key, .. })) if key == "k-1"),
        "{taken:?}"
    );
    assert_eq!(store.stream_version("counter", "c-1").await.unwrap(), 2);
    assert_eq!(engine.load("c-1").await.unwrap().unwrap().state.total, 5);
}
