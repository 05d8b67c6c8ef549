//! The outbox against the NATS server at 127.0.0.1:4222 (`FACTUM_TEST_NATS_URL`): every
//! event published once, in order, with its headers; published again (a crash before the
//! checkpoint moved), the server keeps one copy. Each test uses a stream and subjects of its
//! own and deletes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::store::AppendRequest;
use factum_core::{EventStore, ExpectedVersion, InMemoryEventStore, Subscription};
use factum_nats::{NatsConfig, NatsPublisher};
use factum_testing::sample::event;

fn url() -> String {
    std::env::var("FACTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_in_the_stream_once_in_order_with_its_headers() {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let config = NatsConfig {
        stream: format!("FACTUM_TEST_{unique}"),
        subject_prefix: format!("factumtest{unique}"),
    };
    // A missing server fails the test (it never skips).
    let publisher = NatsPublisher::connect(&url(), config.clone())
        .await
        .unwrap_or_else(|e| panic!("NATS with JetStream is required at {}: {e}", url()));
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let mut stored = Vec::new();
    for n in 0..6u64 {
        let aggregate = if n % 2 == 0 { "even" } else { "odd" };
        stored.extend(
            store
                .append(AppendRequest::new(
                    "counter",
                    aggregate,
                    ExpectedVersion::Any,
                    vec![event(n)],
                ))
                .await
                .unwrap(),
        );
    }
    let first = Subscription::new("outbox", store.clone(), Arc::new(publisher.clone())).unwrap();
    assert_eq!(first.catch_up().await.unwrap(), 6);
    // A second run from scratch (a crash before any checkpoint moved) publishes them all again.
    let again =
        Subscription::new("outbox-again", store.clone(), Arc::new(publisher.clone())).unwrap();
    assert_eq!(again.catch_up().await.unwrap(), 6);

    let mut stream = publisher
        .jetstream()
        .get_stream(&config.stream)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 6, "duplicates were kept");
    for (sequence, expected) in (1u64..).zip(&stored) {
        let message = stream.get_raw_message(sequence).await.unwrap();
        assert_eq!(
            message.subject.as_str(),
            format!("{}.counter.Counted", config.subject_prefix)
        );
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header("Nats-Msg-Id"), Some(expected.event_id.to_string()));
        assert_eq!(
            header("Factum-Aggregate-Id"),
            Some(expected.aggregate_id.clone())
        );
        assert_eq!(header("Factum-Version"), Some(expected.version.to_string()));
        assert_eq!(
            header("Factum-Position"),
            Some(expected.position.to_string())
        );
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(envelope["position"], expected.position);
        assert_eq!(
            envelope["payload"],
            serde_json::from_str::<serde_json::Value>(&expected.payload).unwrap()
        );
    }
    publisher
        .jetstream()
        .delete_stream(&config.stream)
        .await
        .unwrap();
}
