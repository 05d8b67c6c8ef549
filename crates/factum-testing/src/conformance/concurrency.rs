//! Concurrent appends: racing on one aggregate, and positions across many.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sample::event;
use factum_core::{Error, EventStore, ExpectedVersion};

use super::requests::*;

/// Many tasks racing on one aggregate with exact expectations: every version is written
/// exactly once, losers get `Conflict`, and nothing is lost.
pub async fn concurrent_appends_to_one_aggregate(store: Arc<dyn EventStore>) {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 10;
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let (store, conflicts) = (store.clone(), conflicts.clone());
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            while done < PER_TASK {
                let version = store.stream_version(TYPE, "hot").await.unwrap();
                match store
                    .append(request(
                        "hot",
                        ExpectedVersion::Exact(version),
                        vec![event(task * 1000 + done)],
                    ))
                    .await
                {
                    Ok(stored) => {
                        assert_eq!(stored[0].version, version + 1);
                        done += 1;
                    }
                    Err(Error::Conflict { .. }) => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let events = store.read_stream(TYPE, "hot", 1, None).await.unwrap();
    assert_eq!(events.len() as u64, TASKS * PER_TASK);
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=TASKS * PER_TASK).collect::<Vec<_>>()
    );
    let distinct: HashSet<u64> = events.iter().map(payload_n).collect();
    assert_eq!(
        distinct.len() as u64,
        TASKS * PER_TASK,
        "every acknowledged append is stored once"
    );
}

/// Concurrent appends to many aggregates get unique, strictly growing positions.
pub async fn concurrent_appends_to_many_aggregates(store: Arc<dyn EventStore>) {
    let mut handles = Vec::new();
    for task in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let id = format!("agg-{task}");
            for round in 0..10 {
                append(&*store, &id, ExpectedVersion::Exact(round * 2), 2)
                    .await
                    .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(all.len(), 320);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    for task in 0..16 {
        let stream = store
            .read_stream(TYPE, &format!("agg-{task}"), 1, None)
            .await
            .unwrap();
        assert_eq!(
            stream.iter().map(|e| e.version).collect::<Vec<_>>(),
            (1..=20).collect::<Vec<_>>()
        );
        assert!(stream.windows(2).all(|w| w[0].position < w[1].position));
    }
}
