//! Concurrent appends: racing on one aggregate, and positions across many.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use crate::sample::event;
use factum_core::store::StoredEvent;
use factum_core::{Error, EventStore, ExpectedVersion};

use super::requests::*;

/// Many tasks racing on one aggregate with exact expectations: every version is written
/// exactly once, losers get `Conflict`, and nothing is lost.
pub async fn concurrent_appends_to_one_aggregate(store: Arc<dyn EventStore>) {
    race_on_one_aggregate(&[store], 16, 10).await;
}

/// `tasks` tasks, spread over `stores` (one store, or several opened on one database), each
/// append `per_task` events one at a time to aggregate `hot` with exact expectations,
/// retrying on `Conflict`. Checks that every version is written exactly once and every
/// acknowledged append is stored once; returns the stream.
pub async fn race_on_one_aggregate(
    stores: &[Arc<dyn EventStore>],
    tasks: u64,
    per_task: u64,
) -> Vec<StoredEvent> {
    let mut handles = Vec::new();
    for (task, store) in (0..tasks).zip(stores.iter().cycle()) {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            while done < per_task {
                let version = store.stream_version(TYPE, "hot").await.unwrap();
                let next = vec![event(task * 1000 + done)];
                match store
                    .append(request("hot", ExpectedVersion::Exact(version), next))
                    .await
                {
                    Ok(stored) => {
                        assert_eq!(stored[0].version, version + 1);
                        done += 1;
                    }
                    Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let events = stores[0].read_stream(TYPE, "hot", 1, None).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=tasks * per_task).collect::<Vec<_>>()
    );
    let distinct: HashSet<u64> = events.iter().map(payload_n).collect();
    assert_eq!(
        distinct.len() as u64,
        tasks * per_task,
        "every acknowledged append is stored once"
    );
    events
}

/// Concurrent appends to many aggregates get unique, strictly growing positions.
pub async fn concurrent_appends_to_many_aggregates(store: Arc<dyn EventStore>) {
    let mut handles = Vec::new();
    for task in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let id = format!("agg-{task}");
            for round in 0..10 {
                appended(&*store, &id, ExpectedVersion::Exact(round * 2), 2).await;
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let all = all_after(&*store, 0, 10_000).await;
    assert_eq!(all.len(), 320);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    for task in 0..16 {
        let stream = stream(&*store, &format!("agg-{task}"), 1, None).await;
        assert_eq!(
            stream.iter().map(|e| e.version).collect::<Vec<_>>(),
            (1..=20).collect::<Vec<_>>()
        );
        assert!(stream.windows(2).all(|w| w[0].position < w[1].position));
    }
}
