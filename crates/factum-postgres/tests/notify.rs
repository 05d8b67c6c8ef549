//! Wake-ups across nodes: a commit on one node wakes the subscriptions of another through
//! LISTEN/NOTIFY, long before their poll.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{open_on, open_store, request};
use factum_core::{EventStore, ExpectedVersion, Projections, Subscription};
use factum_postgres::CommitListener;
use factum_testing::sample::event;
use factum_testing::subscriptions::Recorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_on_another_node_wakes_a_subscription_at_once() {
    let (writer_node, guard) = open_store().await;
    let reader_node = Arc::new(open_on(guard.schema()).await);
    let recorder = Arc::new(Recorder::default());
    let subscriptions = Projections::new().with_subscription(
        Subscription::new("follower", reader_node.clone(), recorder.clone()).unwrap(),
    );
    let wake = subscriptions.clone();
    let listener = CommitListener::start(&reader_node, move || wake.wake())
        .await
        .unwrap();
    // A poll far longer than the test: only a notification can wake the task in time.
    let tasks = subscriptions.spawn(Duration::from_secs(600));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut latencies = Vec::new();
    for n in 0..5u64 {
        let started = Instant::now();
        let stored = writer_node
            .append(request(
                &format!("acc-{n}"),
                ExpectedVersion::NoStream,
                vec![event(n)],
            ))
            .await
            .unwrap();
        let id = stored[0].event_id;
        while recorder.successes().get(&id) != Some(&1) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "event {n} was not handed over: the notification did not wake the node"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(started.elapsed());
    }
    eprintln!("commit-to-handler across nodes (LISTEN/NOTIFY): {latencies:?}");
    // The trigger is installed once; starting another listener replaces it harmlessly.
    let again = CommitListener::start(&writer_node, || {}).await.unwrap();
    again.stop();
    listener.stop();
    tasks.stop().await;
    drop(guard);
}
