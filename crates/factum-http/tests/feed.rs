//! The feed and subscription routes in process: auth on every one of them, and
//! `GET /subscriptions` / `POST /subscriptions/{name}/replay-parked` on a handler that
//! parked an event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use factum_core::store::AppendRequest;
use factum_core::{
    Backoff, EventStore, ExpectedVersion, InMemoryEventStore, Projections, Subscription,
};
use factum_http::{Api, HttpConfig, JwtAuth};
use factum_testing::http::{get, post};
use factum_testing::sample::event;
use factum_testing::subscriptions::Recorder;

fn api(
    store: &Arc<dyn EventStore>,
    subscriptions: &Projections,
    config: HttpConfig,
) -> axum::Router {
    Api::new(config)
        .with_projections(subscriptions)
        .with_event_feed(store)
        .into_router()
}

#[tokio::test]
async fn every_feed_and_subscription_route_needs_a_token_when_auth_is_on() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let config = HttpConfig::default().with_auth(JwtAuth::hs256("s3cret").unwrap());
    let app = api(&store, &Projections::new(), config);
    for uri in [
        "/events",
        "/events?after=0",
        "/events/stream",
        "/subscriptions",
    ] {
        let reply = get(&app, uri).await;
        reply.error(401, "UNAUTHORIZED");
    }
    post(&app, "/subscriptions/x/replay-parked", "")
        .await
        .error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn subscriptions_report_and_replay_their_parked_events() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let recorder = Arc::new(Recorder::default());
    *recorder.poison_aggregate.lock().unwrap() = Some("poison".into());
    let subscriptions = Projections::new().with_subscription(
        Subscription::new("mailer", store.clone(), recorder.clone())
            .unwrap()
            .with_max_attempts(2)
            .with_backoff(Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(1),
            }),
    );
    let app = api(&store, &subscriptions, HttpConfig::default());
    let mut poison_position = 0;
    for (n, id) in ["a", "poison", "b"].into_iter().enumerate() {
        let stored = store
            .append(AppendRequest::new(
                "counter",
                id,
                ExpectedVersion::NoStream,
                vec![event(n as u64)],
            ))
            .await
            .unwrap();
        if id == "poison" {
            poison_position = stored[0].position;
        }
    }
    subscriptions.catch_up().await.unwrap();

    let listed = get(&app, "/subscriptions").await.json();
    assert_eq!(
        listed,
        serde_json::json!([{
            "name": "mailer", "kind": "handler", "position": 3, "head": 3, "lag": 0,
            "retries": 1, "parked": 1, "last_error": "cannot take poison"
        }])
    );
    // Still failing: nothing handled.
    let report = post(&app, "/subscriptions/mailer/replay-parked", "")
        .await
        .json();
    assert_eq!(report["handled"], serde_json::json!([]));
    assert_eq!(report["failed"][0]["position"], poison_position);
    *recorder.poison_aggregate.lock().unwrap() = None;
    let report = post(&app, "/subscriptions/mailer/replay-parked", "")
        .await
        .json();
    assert_eq!(
        report,
        serde_json::json!({"handled": [poison_position], "failed": []})
    );
    assert_eq!(get(&app, "/subscriptions").await.json()[0]["parked"], 0);
    let missing = post(&app, "/subscriptions/nope/replay-parked", "")
        .await
        .error(404, "NOT_FOUND");
    assert!(missing.contains("runs: mailer"), "{missing}");
}
