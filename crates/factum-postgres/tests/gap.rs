//! The gap test: while 8 writers append 20,000 events across many aggregates, a reader that
//! follows `read_all` from position 0 in small pages sees every event exactly once, in
//! strictly increasing position order. A store that let a higher position become visible
//! before a lower one would make the reader skip the lower one and fail here. (Positions are
//! not dense on PostgreSQL: the reader checks that it saw exactly the written events.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, open_on, open_store, request};
use factum_core::{EventStore, ExpectedVersion};
use serde_json::json;

const WRITERS: usize = 8;
const TOTAL_EVENTS: usize = 20_000;
const AGGREGATES_PER_WRITER: usize = 50;
const PAGE: usize = 50;
/// A bound, not a pacing: the test fails if the reader has not caught up by then.
const DEADLINE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_read_all_sees_every_event_exactly_once_in_order() {
    let (store, guard) = open_store().await;
    let store = Arc::new(store);
    // Each writer is its own node (its own pool and writer task), so their transactions
    // really race for positions in the database; within one store handle, appends would be
    // committed one group at a time.
    let mut nodes = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        nodes.push(open_on(guard.schema()).await);
    }
    let started = Instant::now();

    let writers: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(writer, store)| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut last_position = 0;
                let mut versions = [0_u64; AGGREGATES_PER_WRITER];
                let mut written = 0;
                let mut round = 0;
                let quota = TOTAL_EVENTS / WRITERS;
                while written < quota {
                    // Batches of 1 to 6 events, round-robin over this writer's aggregates,
                    // with exact expected versions (each aggregate has one writer).
                    let batch = (1 + (round % 6)).min(quota - written);
                    let aggregate = round % AGGREGATES_PER_WRITER;
                    let events: Vec<_> = (0..batch)
                        .map(|_| event("Tick", json!({"writer": writer})))
                        .collect();
                    ids.extend(events.iter().map(|e| e.event_id));
                    let id = format!("w{writer}-a{aggregate}");
                    let expected = ExpectedVersion::Exact(versions[aggregate]);
                    let stored = store.append(request(&id, expected, events)).await.unwrap();
                    versions[aggregate] += batch as u64;
                    last_position = last_position.max(stored.last().unwrap().position);
                    assert_eq!(stored.last().map(|e| e.version), Some(versions[aggregate]));
                    written += batch;
                    round += 1;
                }
                (ids, last_position)
            })
        })
        .collect();

    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::with_capacity(TOTAL_EVENTS);
            let mut checkpoint = 0;
            let mut pages = 0_u64;
            while seen.len() < TOTAL_EVENTS {
                assert!(
                    started.elapsed() < DEADLINE,
                    "the reader saw {} of {TOTAL_EVENTS} events before the deadline",
                    seen.len()
                );
                let page = store.read_all(checkpoint, PAGE).await.unwrap();
                pages += 1;
                if page.len() < PAGE {
                    // Caught up with the writers: pace the polling (this only spaces reads
                    // out; a later read still starts from the checkpoint).
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                for stored in page {
                    assert!(
                        stored.position > checkpoint,
                        "position {} after {checkpoint}",
                        stored.position
                    );
                    assert!(seen.insert(stored.event_id), "event seen twice");
                    checkpoint = stored.position;
                }
            }
            (seen, checkpoint, pages)
        })
    };

    let mut written = HashSet::new();
    let mut head = 0;
    for writer in writers {
        let (ids, last) = writer.await.unwrap();
        written.extend(ids);
        head = head.max(last);
    }
    let writing_took = started.elapsed();
    let (seen, last, pages) = reader.await.unwrap();
    let took = started.elapsed();
    assert_eq!(written.len(), TOTAL_EVENTS);
    assert_eq!(seen, written, "the reader saw exactly the written events");
    assert_eq!(last, head, "the reader ends at the last written event");
    assert_eq!(store.head_position().await.unwrap(), head);
    assert!(store.read_all(last, PAGE).await.unwrap().is_empty());
    println!(
        "gap test: {TOTAL_EVENTS} events by {WRITERS} writers in {writing_took:?}; \
         reader done after {took:?} in {pages} reads"
    );
}
