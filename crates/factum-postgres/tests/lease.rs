//! One runner per subscription across nodes: two nodes run the same subscription under a
//! lease; only one handles events; when it dies, the other takes over within 5 s and no
//! event is missed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{SchemaGuard, database_url, open_on, open_store, request};
use factum_core::{
    Backoff, EventStore, ExpectedVersion, Projections, RunningSubscription, Subscription,
};
use factum_postgres::Leased;
use factum_testing::sample::event;
use factum_testing::subscriptions::Recorder;
use uuid::Uuid;

fn node(store: Arc<dyn EventStore>, recorder: Arc<Recorder>, schema: &str) -> Projections {
    let subscription = Subscription::new("publisher", store, recorder).unwrap();
    let leased: Arc<dyn RunningSubscription> =
        Arc::new(Leased::new(Arc::new(subscription), &database_url(), schema));
    Projections::new().with_running(leased)
}

type Nodes = (
    SchemaGuard,
    String,
    [Arc<dyn EventStore>; 2],
    [Arc<Recorder>; 2],
);

/// Two stores (two nodes) on a fresh schema, and a handler for each.
async fn two_nodes() -> Nodes {
    let (first, guard) = open_store().await;
    let schema = guard.schema().to_owned();
    let stores: [Arc<dyn EventStore>; 2] = [Arc::new(first), Arc::new(open_on(&schema).await)];
    let recorders = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    (guard, schema, stores, recorders)
}

async fn append(store: &dyn EventStore, n: u64) -> Uuid {
    store
        .append(request(
            &format!("acc-{n}"),
            ExpectedVersion::NoStream,
            vec![event(n)],
        ))
        .await
        .unwrap()[0]
        .event_id
}

async fn wait_for(what: &str, deadline: Duration, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < deadline, "{what} after {deadline:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_runs_a_subscription_and_another_takes_over_when_it_dies() {
    let (guard, schema, stores, recorders) = two_nodes().await;
    let nodes = [
        node(stores[0].clone(), recorders[0].clone(), &schema),
        node(stores[1].clone(), recorders[1].clone(), &schema),
    ];
    let poll = Duration::from_millis(200);
    let mut tasks = [Some(nodes[0].spawn(poll)), Some(nodes[1].spawn(poll))];

    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(append(&*stores[n as usize % 2], n).await);
    }
    let handled_all = |ids: &[Uuid]| {
        let (a, b) = (recorders[0].successes(), recorders[1].successes());
        ids.iter()
            .all(|id| a.contains_key(id) || b.contains_key(id))
    };
    wait_for(
        "the events were not handled",
        Duration::from_secs(30),
        || handled_all(&ids),
    )
    .await;
    let counts = [
        recorders[0].successes().len(),
        recorders[1].successes().len(),
    ];
    assert!(
        counts.contains(&0),
        "both nodes ran the subscription: {counts:?}"
    );
    let holder = usize::from(counts[0] == 0);
    let other = 1 - holder;

    // The holder dies: its tasks stop and its lease connection goes with it.
    tasks[holder].take().unwrap().stop().await;
    let [a, b] = nodes;
    drop(if holder == 0 { a } else { b });
    let started = Instant::now();
    for n in 20..30 {
        ids.push(append(&*stores[other], n).await);
    }
    let later: Vec<Uuid> = ids[20..].to_vec();
    wait_for("no node took over", Duration::from_secs(5), || {
        let got = recorders[other].successes();
        later.iter().all(|id| got.contains_key(id))
    })
    .await;
    eprintln!("takeover after the holder died: {:?}", started.elapsed());
    assert!(handled_all(&ids), "an event was missed");
    tasks[other].take().unwrap().stop().await;
    drop(guard);
}

/// Two nodes asked at once to replay a parked event: one replays it, once, whichever node
/// holds the lease; and both nodes name the holder of the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replays_on_any_node_hand_a_parked_event_over_once_and_both_name_the_holder() {
    let (guard, schema, stores, recorders) = two_nodes().await;
    let nodes: Vec<Leased> = (0..2)
        .map(|n| {
            *recorders[n].poison_aggregate.lock().unwrap() = Some("acc-1".into());
            let subscription = Subscription::new("mailer", stores[n].clone(), recorders[n].clone())
                .unwrap()
                .with_max_attempts(2)
                .with_backoff(Backoff {
                    initial: Duration::from_millis(1),
                    max: Duration::from_millis(1),
                });
            Leased::new(Arc::new(subscription), &database_url(), &schema)
                .with_node(format!("node-{n}"))
        })
        .collect();
    let poison = append(&*stores[0], 1).await;
    append(&*stores[0], 2).await;

    assert!(nodes[0].holds().await);
    assert!(!nodes[1].holds().await);
    assert_eq!(nodes[0].catch_up().await.unwrap(), 2);
    assert_eq!(
        nodes[1].catch_up().await.unwrap(),
        0,
        "the other node ran too"
    );
    for (n, node) in nodes.iter().enumerate() {
        let lease = node.lease().await.unwrap();
        assert_eq!(
            (lease.held_here, lease.holder.as_deref()),
            (n == 0, Some("node-0")),
            "node {n}"
        );
        assert_eq!(node.parked().await.unwrap().len(), 1, "node {n}");
    }

    for recorder in &recorders {
        *recorder.poison_aggregate.lock().unwrap() = None;
    }
    let (a, b) = tokio::join!(nodes[0].replay_parked(), nodes[1].replay_parked());
    let handled: Vec<u64> = [a.unwrap(), b.unwrap()]
        .into_iter()
        .flat_map(|report| report.handled)
        .collect();
    let position = nodes[0].parked().await.unwrap();
    assert!(position.is_empty(), "{position:?}");
    let handed = recorders
        .iter()
        .map(|r| r.successes().get(&poison).copied().unwrap_or(0))
        .sum::<usize>();
    assert_eq!(handed, 1, "the parked event was handed over {handed} times");
    assert_eq!(handled.len(), 1, "{handled:?}");
    drop(guard);
}
