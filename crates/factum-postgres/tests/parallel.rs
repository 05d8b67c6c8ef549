//! Appends commit in parallel: an append whose transaction is held open does not stop
//! another node's append to another stream from committing, and the feed still never shows
//! an event before one at a lower position that may yet commit.
//!
//! In its own test binary: the held transaction holds back every reader of the cluster
//! while it is open, so it should not overlap the other tests of this crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{database_url, event, open_on, open_store, request};
use factum_core::{Error, EventStore, ExpectedVersion};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Row};

/// A bound, not a pacing: an append waiting for the held transaction would hit it.
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_append_transaction_does_not_hold_back_appends_to_other_streams() {
    let (node_a, guard) = open_store().await;
    let node_b = open_on(guard.schema()).await;

    // Node A's append of stream "held", in a transaction left open: the store's own append
    // function, called as the writer calls it, but not committed yet.
    let mut held = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let mut tx = held.begin().await.unwrap();
    // The schema is this test's own generated identifier.
    let call = format!(
        "SELECT event_position FROM \"{}\".append_events(
            ARRAY['account'], ARRAY['held'], ARRAY[0::bigint], ARRAY[0::bigint], ARRAY[1],
            ARRAY[NULL::bigint], ARRAY[NULL::text], ARRAY[NULL::timestamptz],
            ARRAY[NULL::smallint], ARRAY[gen_random_uuid()], ARRAY['Held'], ARRAY[1::bigint],
            ARRAY['{{}}'], ARRAY['{{}}'], ARRAY[now()], ARRAY[0::smallint], ARRAY[0],
            '{{}}'::boolean[], '{{}}'::text[], '{{}}'::text[], '{{}}'::text[], '{{}}'::bigint[],
            '{{}}'::text[])",
        guard.schema()
    );
    let row = sqlx::query(AssertSqlSafe(call))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let held_position = u64::try_from(row.get::<i64, _>(0)).unwrap();

    // Node B appends to another stream and commits while A's transaction is open: with a
    // store-wide lock it would wait for A's commit, which comes only after it.
    let free = tokio::time::timeout(
        BOUND,
        node_b.append(request(
            "free",
            ExpectedVersion::NoStream,
            vec![event("E", json!({}))],
        )),
    )
    .await
    .expect("an append to another stream commits while A's transaction is open")
    .unwrap();
    // A took its transaction id first, so its event comes first in the feed although it
    // commits later; until it ends, readers show neither.
    assert!(held_position < free[0].position);
    assert!(
        node_a.read_all(0, 10).await.unwrap().is_empty(),
        "no event is shown while one at a lower position may still commit"
    );

    // An append to the held stream waits for A's lock, then sees A's event: a conflict.
    let contender = tokio::spawn({
        let node_b = node_b.clone();
        async move {
            node_b
                .append(request(
                    "held",
                    ExpectedVersion::NoStream,
                    vec![event("E", json!({}))],
                ))
                .await
        }
    });
    tx.commit().await.unwrap();
    let contended = tokio::time::timeout(BOUND, contender)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            contended,
            Err(Error::Conflict {
                actual: Some(1),
                ..
            })
        ),
        "{contended:?}"
    );

    let all = node_a.read_all(0, 10).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|e| (e.aggregate_id.as_str(), e.position))
            .collect::<Vec<_>>(),
        [("held", held_position), ("free", free[0].position)]
    );
    assert_eq!(node_b.head_position().await.unwrap(), free[0].position);
}
