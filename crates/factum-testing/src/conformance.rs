//! The event-store conformance suite: every backend runs these same cases, through
//! [`event_store_conformance_tests!`](crate::event_store_conformance_tests).
//!
//! Each case takes a fresh, empty store and panics on a violation of the
//! [`EventStore`] contract.

// This module is test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use factum_core::store::{AppendRequest, NewEvent, Snapshot, StoredEvent};

use crate::sample::{at, event};
use factum_core::{
    Error, Event, EventStore, ExpectedVersion, FieldKind, Filter, FilterOp, FilterValue,
    MAX_PAGE_SIZE, Metadata, Page, ProjectionBatch, ProjectionCheckpoint, SortKey, Upcasters,
    ViewChange, ViewField, ViewQuery, ViewRecord, ViewStore,
};
use serde::{Deserialize, Serialize};

const TYPE: &str = "conformance";

fn request(id: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new(TYPE, id, expected, events)
}

async fn append(
    store: &dyn EventStore,
    id: &str,
    expected: ExpectedVersion,
    count: u64,
) -> Result<Vec<StoredEvent>, Error> {
    store
        .append(request(id, expected, (1..=count).map(event).collect()))
        .await
}

fn payload_n(stored: &StoredEvent) -> u64 {
    serde_json::from_str::<serde_json::Value>(&stored.payload)
        .ok()
        .and_then(|v| v.get("n").and_then(serde_json::Value::as_u64))
        .unwrap_or(u64::MAX)
}

fn assert_conflict(result: Result<Vec<StoredEvent>, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::Conflict { .. })),
        "{what}: expected a Conflict, got {result:?}"
    );
}

/// Appended events come back from `read_stream` as stored, with versions 1.. and every field.
pub async fn append_and_read_stream(store: Arc<dyn EventStore>) {
    let events: Vec<NewEvent> = (1..=3).map(event).collect();
    let stored = store
        .append(request("a-1", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    let read = store.read_stream(TYPE, "a-1", 1, None).await.unwrap();
    assert_eq!(read, stored, "read_stream returns what append returned");
    for (i, (new, stored)) in events.iter().zip(&read).enumerate() {
        assert_eq!(stored.version, i as u64 + 1);
        assert_eq!(stored.event_id, new.event_id);
        assert_eq!(stored.aggregate_type, TYPE);
        assert_eq!(stored.aggregate_id, "a-1");
        assert_eq!(stored.event_type, new.event_type);
        assert_eq!(stored.schema_version, new.schema_version);
        let (got, want): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&stored.payload).unwrap(),
            serde_json::from_str(&new.payload).unwrap(),
        );
        assert_eq!(got, want, "payload round-trips as the same JSON");
        assert_eq!(
            stored.parse_metadata().unwrap(),
            serde_json::from_str::<Metadata>(&new.metadata).unwrap(),
            "metadata round-trips"
        );
        assert_eq!(
            stored.recorded_at, new.recorded_at,
            "recorded_at keeps microseconds"
        );
    }
    assert_eq!(store.stream_version(TYPE, "a-1").await.unwrap(), 3);
    assert_eq!(store.stream_version(TYPE, "nobody").await.unwrap(), 0);
    assert!(
        store
            .read_stream(TYPE, "nobody", 1, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `read_stream` honours `from_version` and `limit`.
pub async fn read_stream_from_version_with_limit(store: Arc<dyn EventStore>) {
    append(&*store, "a-1", ExpectedVersion::NoStream, 10)
        .await
        .unwrap();
    let tail = store.read_stream(TYPE, "a-1", 4, None).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.version).collect::<Vec<_>>(),
        (4..=10).collect::<Vec<_>>()
    );
    let page = store.read_stream(TYPE, "a-1", 4, Some(3)).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert!(
        store
            .read_stream(TYPE, "a-1", 11, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.read_stream(TYPE, "a-1", 0, Some(1)).await.unwrap()[0].version,
        1
    );
}

/// Streams are keyed by aggregate type and id together.
pub async fn streams_are_isolated_by_type_and_id(store: Arc<dyn EventStore>) {
    append(&*store, "same", ExpectedVersion::NoStream, 2)
        .await
        .unwrap();
    let other_type = store
        .append(AppendRequest {
            aggregate_type: "other".to_owned(),
            ..request("same", ExpectedVersion::NoStream, vec![event(1)])
        })
        .await
        .unwrap();
    assert_eq!(other_type[0].version, 1);
    append(&*store, "else", ExpectedVersion::NoStream, 1)
        .await
        .unwrap();
    assert_eq!(store.stream_version(TYPE, "same").await.unwrap(), 2);
    assert_eq!(store.stream_version("other", "same").await.unwrap(), 1);
    assert_eq!(store.stream_version(TYPE, "else").await.unwrap(), 1);
}

/// `NoStream`: succeeds on an empty stream only.
pub async fn expected_no_stream(store: Arc<dyn EventStore>) {
    append(&*store, "a-1", ExpectedVersion::NoStream, 1)
        .await
        .unwrap();
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::NoStream, 1).await,
        "NoStream on an existing stream",
    );
    assert_eq!(
        store.stream_version(TYPE, "a-1").await.unwrap(),
        1,
        "a conflict stores nothing"
    );
    let zero = append(&*store, "a-2", ExpectedVersion::Exact(0), 1)
        .await
        .unwrap();
    assert_eq!(zero[0].version, 1, "Exact(0) is NoStream");
}

/// `Exact(n)`: succeeds only at exactly n.
pub async fn expected_exact(store: Arc<dyn EventStore>) {
    append(&*store, "a-1", ExpectedVersion::NoStream, 2)
        .await
        .unwrap();
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::Exact(1), 1).await,
        "Exact below the version",
    );
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::Exact(3), 1).await,
        "Exact above the version",
    );
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::Exact(0), 1).await,
        "Exact(0) on an existing stream",
    );
    assert_conflict(
        append(&*store, "a-9", ExpectedVersion::Exact(1), 1).await,
        "Exact(1) on no stream",
    );
    let ok = append(&*store, "a-1", ExpectedVersion::Exact(2), 2)
        .await
        .unwrap();
    assert_eq!(ok.iter().map(|e| e.version).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(store.stream_version(TYPE, "a-1").await.unwrap(), 4);
    assert_eq!(store.stream_version(TYPE, "a-9").await.unwrap(), 0);
}

/// `StreamExists`: fails on an empty stream.
pub async fn expected_stream_exists(store: Arc<dyn EventStore>) {
    assert_conflict(
        append(&*store, "a-1", ExpectedVersion::StreamExists, 1).await,
        "StreamExists on no stream",
    );
    append(&*store, "a-1", ExpectedVersion::NoStream, 1)
        .await
        .unwrap();
    let ok = append(&*store, "a-1", ExpectedVersion::StreamExists, 1)
        .await
        .unwrap();
    assert_eq!(ok[0].version, 2);
}

/// `Any`: always succeeds.
pub async fn expected_any(store: Arc<dyn EventStore>) {
    let first = append(&*store, "a-1", ExpectedVersion::Any, 2)
        .await
        .unwrap();
    let second = append(&*store, "a-1", ExpectedVersion::Any, 1)
        .await
        .unwrap();
    assert_eq!(first.last().map(|e| e.version), Some(2));
    assert_eq!(second[0].version, 3);
}

/// Re-appending the same event ids is a successful no-op returning the stored events.
pub async fn idempotent_append(store: Arc<dyn EventStore>) {
    let events: Vec<NewEvent> = (1..=2).map(event).collect();
    let first = store
        .append(request("a-1", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    // A retry after a lost reply: same ids, same (now stale) expectation.
    let again = store
        .append(request("a-1", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    assert_eq!(again, first, "the retry returns the stored events");
    assert_eq!(
        store.stream_version(TYPE, "a-1").await.unwrap(),
        2,
        "nothing stored twice"
    );
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);

    // The same first id with a different tail is not a retry.
    let mut mixed = events.clone();
    mixed[1] = event(9);
    assert_conflict(
        store
            .append(request("a-1", ExpectedVersion::Any, mixed))
            .await,
        "reused id with a new tail",
    );
    // An id stored under another aggregate is a conflict, and stores nothing.
    assert_conflict(
        store
            .append(request(
                "a-2",
                ExpectedVersion::NoStream,
                vec![events[0].clone()],
            ))
            .await,
        "an event id of another aggregate",
    );
    assert_eq!(store.stream_version(TYPE, "a-2").await.unwrap(), 0);
    // A duplicate id inside one batch is refused.
    let twin = event(5);
    assert_conflict(
        store
            .append(request(
                "a-3",
                ExpectedVersion::NoStream,
                vec![twin.clone(), twin],
            ))
            .await,
        "a duplicate id within one append",
    );
    assert_eq!(store.stream_version(TYPE, "a-3").await.unwrap(), 0);
}

/// An append that fails stores none of its events (here: its last event's id is taken).
pub async fn failed_append_is_atomic(store: Arc<dyn EventStore>) {
    let taken = append(&*store, "a-1", ExpectedVersion::NoStream, 1)
        .await
        .unwrap();
    let mut clash = event(7);
    clash.event_id = taken[0].event_id;
    let result = store
        .append(request(
            "a-2",
            ExpectedVersion::NoStream,
            vec![event(1), event(2), clash],
        ))
        .await;
    assert!(result.is_err(), "an append with a taken event id fails");
    assert_eq!(store.stream_version(TYPE, "a-2").await.unwrap(), 0);
    assert_eq!(
        store.read_all(0, 100).await.unwrap().len(),
        1,
        "no partial append is visible"
    );
    let next = append(&*store, "a-2", ExpectedVersion::NoStream, 1)
        .await
        .unwrap();
    assert_eq!(
        next[0].position, 2,
        "a failed append leaves no gap in positions"
    );
}

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

/// Concurrent appends to many aggregates get unique, gap-free positions.
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
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=320).collect::<Vec<_>>()
    );
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

/// `read_all` returns every event once, in position order, paged by `after_position`.
pub async fn read_all_in_position_order(store: Arc<dyn EventStore>) {
    for round in 0..5 {
        for id in ["x", "y", "z"] {
            append(&*store, id, ExpectedVersion::Exact(round), 1)
                .await
                .unwrap();
        }
    }
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 15);
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=15).collect::<Vec<_>>()
    );
    assert_eq!(all[0].aggregate_id, "x");
    assert_eq!(all[1].aggregate_id, "y");
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        after = page.last().map_or(after, |e| e.position);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(store.read_all(15, 10).await.unwrap().is_empty());
    assert_eq!(store.read_all(14, 10).await.unwrap().len(), 1);
}

fn snapshot(id: &str, version: u64, state: &str) -> Snapshot {
    Snapshot {
        aggregate_type: TYPE.to_owned(),
        aggregate_id: id.to_owned(),
        version,
        state: serde_json::json!({"state": state}).to_string(),
        taken_at: at(0),
    }
}

fn state_of(snapshot: &Snapshot) -> String {
    serde_json::from_str::<serde_json::Value>(&snapshot.state)
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str().map(str::to_owned)))
        .unwrap_or_default()
}

/// Snapshots: saved, replaced by newer ones only, written atomically with an append.
pub async fn snapshots(store: Arc<dyn EventStore>) {
    assert!(store.load_snapshot(TYPE, "a-1").await.unwrap().is_none());
    store
        .save_snapshot(snapshot("a-1", 5, "five"))
        .await
        .unwrap();
    let loaded = store.load_snapshot(TYPE, "a-1").await.unwrap().unwrap();
    assert_eq!((loaded.version, state_of(&loaded)), (5, "five".to_owned()));
    assert_eq!(loaded.taken_at, at(0));
    store
        .save_snapshot(snapshot("a-1", 3, "three"))
        .await
        .unwrap();
    assert_eq!(
        store
            .load_snapshot(TYPE, "a-1")
            .await
            .unwrap()
            .unwrap()
            .version,
        5,
        "an older snapshot never replaces a newer one"
    );
    store
        .save_snapshot(snapshot("a-1", 8, "eight"))
        .await
        .unwrap();
    assert_eq!(
        state_of(&store.load_snapshot(TYPE, "a-1").await.unwrap().unwrap()),
        "eight"
    );

    // In an append: stored with the events...
    let mut with_snapshot = request("b-1", ExpectedVersion::NoStream, vec![event(1), event(2)]);
    with_snapshot.snapshot = Some(snapshot("b-1", 2, "two"));
    store.append(with_snapshot).await.unwrap();
    assert_eq!(
        store
            .load_snapshot(TYPE, "b-1")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // ...and not at all when the append conflicts.
    let mut conflicting = request("b-1", ExpectedVersion::NoStream, vec![event(3)]);
    conflicting.snapshot = Some(snapshot("b-1", 3, "three"));
    assert_conflict(
        store.append(conflicting).await,
        "a conflicting append with a snapshot",
    );
    assert_eq!(
        state_of(&store.load_snapshot(TYPE, "b-1").await.unwrap().unwrap()),
        "two"
    );
}

/// A stream of 10,000 events appends and reads back whole and in order.
pub async fn large_stream(store: Arc<dyn EventStore>) {
    const TOTAL: u64 = 10_000;
    const BATCH: u64 = 500;
    for batch in 0..TOTAL / BATCH {
        let events = (0..BATCH).map(|i| event(batch * BATCH + i)).collect();
        store
            .append(request(
                "big",
                ExpectedVersion::Exact(batch * BATCH),
                events,
            ))
            .await
            .unwrap();
    }
    let all = store.read_stream(TYPE, "big", 1, None).await.unwrap();
    assert_eq!(all.len() as u64, TOTAL);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1 && payload_n(e) == i as u64)
    );
    assert_eq!(store.stream_version(TYPE, "big").await.unwrap(), TOTAL);
    let tail = store
        .read_stream(TYPE, "big", TOTAL - 9, None)
        .await
        .unwrap();
    assert_eq!(tail.len(), 10);
    assert_eq!(
        store.read_all(0, usize::MAX).await.unwrap().len() as u64,
        TOTAL
    );
}

/// The current shape of the event the upcasting case reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Renamed {
    /// Schema 3: `amount_cents`; schema 1 stored `value` in units, schema 2 `amount` in units.
    Paid {
        /// The amount in cents.
        amount_cents: i64,
    },
}

impl Event for Renamed {
    fn event_type(&self) -> &'static str {
        "Paid"
    }
    fn schema_version(&self) -> u32 {
        3
    }
}

/// Events stored under old schema versions read back in the current shape through the
/// core's upcaster chain: the store keeps `schema_version` and the payload untouched.
pub async fn upcasting_on_read(store: Arc<dyn EventStore>) {
    let mut v1 = event(1);
    v1.event_type = "Paid".to_owned();
    v1.payload = r#"{"type":"Paid","value":12}"#.to_owned();
    let mut v2 = event(2);
    v2.event_type = "Paid".to_owned();
    v2.schema_version = 2;
    v2.payload = r#"{"type":"Paid","amount":7}"#.to_owned();
    let mut v3 = event(3);
    v3.event_type = "Paid".to_owned();
    v3.schema_version = 3;
    v3.payload = r#"{"type":"Paid","amount_cents":5}"#.to_owned();
    store
        .append(request("p-1", ExpectedVersion::NoStream, vec![v1, v2, v3]))
        .await
        .unwrap();

    let upcasters = Upcasters::new()
        .register("Paid", 1, |mut p: serde_json::Value| {
            let value = p.get("value").cloned().ok_or("no value")?;
            p["amount"] = value;
            Ok::<_, &str>(p)
        })
        .register("Paid", 2, |mut p: serde_json::Value| {
            let units = p
                .get("amount")
                .and_then(serde_json::Value::as_i64)
                .ok_or("no amount")?;
            p["amount_cents"] = serde_json::json!(units * 100);
            Ok::<_, &str>(p)
        });
    let stored = store.read_stream(TYPE, "p-1", 1, None).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.schema_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let decoded: Vec<Renamed> = stored
        .iter()
        .map(|e| upcasters.decode::<Renamed>(e).unwrap().payload)
        .collect();
    assert_eq!(
        decoded,
        vec![
            Renamed::Paid { amount_cents: 1200 },
            Renamed::Paid { amount_cents: 700 },
            Renamed::Paid { amount_cents: 5 },
        ]
    );
}

/// `head_position` is the last stored position.
pub async fn head_position(store: Arc<dyn EventStore>) {
    assert_eq!(store.head_position().await.unwrap(), 0);
    append(&*store, "a-1", ExpectedVersion::NoStream, 3)
        .await
        .unwrap();
    append(&*store, "a-2", ExpectedVersion::NoStream, 2)
        .await
        .unwrap();
    assert_eq!(store.head_position().await.unwrap(), 5);
}

fn views(store: &Arc<dyn EventStore>) -> &dyn ViewStore {
    store.as_view_store().expect("the store keeps views")
}

const VIEW: &str = "conformance_items";

/// The fields of the records the view cases store.
pub const ITEM_FIELDS: &[ViewField] = &[
    ViewField::new("name", FieldKind::Text),
    ViewField::new("n", FieldKind::Number),
    ViewField::new("done", FieldKind::Boolean),
    ViewField {
        name: "note",
        kind: FieldKind::Text,
        filterable: false,
        sortable: false,
    },
];

fn item(id: &str, aggregate: &str, data: serde_json::Value) -> ViewChange {
    ViewChange::Upsert(ViewRecord {
        view_type: VIEW.to_owned(),
        view_id: id.to_owned(),
        aggregate_id: aggregate.to_owned(),
        version: 1,
        data: data.to_string(),
    })
}

fn items() -> Vec<ViewChange> {
    let names = [
        "alpha", "Beta", "gamma", "delta", "alphabet", "", "zeta ω", "beta",
    ];
    (0..24)
        .map(|i| {
            let data = if i == 23 {
                // A record without `n` and `done`: matches no comparison but `ne`.
                serde_json::json!({"name": "sparse"})
            } else {
                serde_json::json!({
                    "name": names[i % names.len()],
                    "n": (i as f64) * 1.5 - 10.0,
                    "done": i % 3 == 0,
                    "note": "x",
                })
            };
            item(&format!("item-{i:02}"), &format!("agg-{}", i % 4), data)
        })
        .collect()
}

async fn seed(store: &Arc<dyn EventStore>, projection: &str) {
    seed_from(store, projection, ProjectionCheckpoint::at(0)).await;
}

async fn seed_from(store: &Arc<dyn EventStore>, projection: &str, expected: ProjectionCheckpoint) {
    views(store)
        .apply_projection(ProjectionBatch {
            projection: projection.to_owned(),
            expected,
            checkpoint: 7,
            changes: items(),
        })
        .await
        .unwrap();
}

fn ids(page: &Page<ViewRecord>) -> Vec<String> {
    page.items.iter().map(|r| r.view_id.clone()).collect()
}

/// Records come back by id and by aggregate; deletes remove them.
pub async fn views_get_and_list(store: Arc<dyn EventStore>) {
    seed(&store, "p").await;
    let one = views(&store)
        .get_view(VIEW, "item-05")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.aggregate_id, "agg-1");
    assert_eq!(one.version, 1);
    let data: serde_json::Value = serde_json::from_str(&one.data).unwrap();
    assert_eq!(data["n"], serde_json::json!(-2.5));
    assert!(
        views(&store)
            .get_view(VIEW, "item-99")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        views(&store)
            .get_view("other_view", "item-05")
            .await
            .unwrap()
            .is_none()
    );
    let children = views(&store).list_views_of(VIEW, "agg-2").await.unwrap();
    assert_eq!(
        children
            .iter()
            .map(|r| r.view_id.as_str())
            .collect::<Vec<_>>(),
        vec![
            "item-02", "item-06", "item-10", "item-14", "item-18", "item-22"
        ]
    );
    views(&store)
        .apply_projection(ProjectionBatch {
            projection: "p".to_owned(),
            expected: ProjectionCheckpoint::at(7),
            checkpoint: 9,
            changes: vec![
                ViewChange::Delete {
                    view_type: VIEW.to_owned(),
                    view_id: "item-02".to_owned(),
                },
                ViewChange::Delete {
                    view_type: VIEW.to_owned(),
                    view_id: "never-existed".to_owned(),
                },
                item("item-06", "agg-2", serde_json::json!({"name": "replaced"})),
            ],
        })
        .await
        .unwrap();
    assert!(
        views(&store)
            .get_view(VIEW, "item-02")
            .await
            .unwrap()
            .is_none()
    );
    let replaced = views(&store)
        .get_view(VIEW, "item-06")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&replaced.data).unwrap()["name"],
        "replaced"
    );
    assert_eq!(
        views(&store)
            .list_views_of(VIEW, "agg-2")
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        views(&store)
            .projection_checkpoint("p")
            .await
            .unwrap()
            .position,
        9
    );
}

/// Every operator, sort and page agrees with the reference semantics of
/// [`ViewQuery::apply_to`], on the store's own translation.
pub async fn views_query_operators_sort_and_paging(store: Arc<dyn EventStore>) {
    seed(&store, "p").await;
    let all: Vec<ViewRecord> = {
        let mut all = Vec::new();
        for aggregate in ["agg-0", "agg-1", "agg-2", "agg-3"] {
            all.extend(views(&store).list_views_of(VIEW, aggregate).await.unwrap());
        }
        all
    };
    assert_eq!(all.len(), 24);
    let filters = [
        None,
        Some("name:eq:alpha"),
        Some("name:ne:alpha"),
        Some("name:lt:beta"),
        Some("name:lte:beta"),
        Some("name:gt:delta"),
        Some("name:gte:delta"),
        Some("name:in:alpha|beta|zeta ω"),
        Some("name:contains:alpha"),
        Some("name:contains:eta"),
        Some("name:contains:B"),
        Some("name:eq:"),
        Some("n:eq:-2.5"),
        Some("n:eq:5"),
        Some("n:ne:5"),
        Some("n:lt:0"),
        Some("n:lte:-1"),
        Some("n:gt:12.5"),
        Some("n:gte:12.5"),
        Some("n:in:-10|2|23"),
        Some("done:eq:true"),
        Some("done:ne:true"),
        Some("done:in:false"),
        Some("done:eq:false,n:gt:0"),
        Some("name:contains:a,n:lt:20,done:eq:false"),
    ];
    let sorts = [
        None,
        Some("n"),
        Some("-n"),
        Some("name,-n"),
        Some("-done,name"),
        Some("-name"),
    ];
    for filter in filters {
        for sort in sorts {
            for (page, page_size) in [(1, 100), (1, 5), (2, 5), (5, 5), (9, 5)] {
                let query =
                    ViewQuery::parse(filter, sort, Some(page), Some(page_size), ITEM_FIELDS)
                        .unwrap();
                let expected = query.apply_to(all.clone()).unwrap();
                let got = views(&store)
                    .query_views(VIEW, &query, ITEM_FIELDS)
                    .await
                    .unwrap();
                assert_eq!(
                    (ids(&got), got.total, got.page, got.page_size),
                    (
                        ids(&expected),
                        expected.total,
                        expected.page,
                        expected.page_size
                    ),
                    "filter {filter:?} sort {sort:?} page {page}/{page_size}"
                );
            }
        }
    }
    // Other view types never leak in.
    let query = ViewQuery::default();
    assert_eq!(
        views(&store)
            .query_views("other_view", &query, ITEM_FIELDS)
            .await
            .unwrap()
            .total,
        0
    );
}

/// A query of a thousand filters and a thousand sort keys (past what parsing accepts from a
/// client, built by hand) is answered as the reference answers it, not refused by the
/// database: SQLite limits expression depth to 1000 and `ORDER BY` to 2000 terms.
pub async fn views_query_many_clauses(store: Arc<dyn EventStore>) {
    seed(&store, "p").await;
    let all: Vec<ViewRecord> = {
        let mut all = Vec::new();
        for aggregate in ["agg-0", "agg-1", "agg-2", "agg-3"] {
            all.extend(views(&store).list_views_of(VIEW, aggregate).await.unwrap());
        }
        all
    };
    let filters = (0..1000)
        .map(|i| match i % 3 {
            0 => Filter {
                field: "n".to_owned(),
                op: FilterOp::Gt,
                value: FilterValue::Number(-1000.0 - f64::from(i)),
            },
            1 => Filter {
                field: "name".to_owned(),
                op: FilterOp::Ne,
                value: FilterValue::Text(format!("no such name {i}")),
            },
            _ => Filter {
                field: "n".to_owned(),
                op: FilterOp::In,
                value: FilterValue::List(
                    (0..50).map(|k| FilterValue::Number(f64::from(k))).collect(),
                ),
            },
        })
        .collect::<Vec<_>>();
    let sort = (0..1000)
        .map(|i| SortKey {
            field: ["done", "name", "n"][i % 3].to_owned(),
            descending: i % 2 == 0,
        })
        .collect::<Vec<_>>();
    for query in [
        ViewQuery {
            filters: filters.clone(),
            ..ViewQuery::default()
        },
        ViewQuery {
            sort: sort.clone(),
            ..ViewQuery::default()
        },
        ViewQuery {
            filters,
            sort,
            page: 2,
            page_size: 3,
        },
    ] {
        let expected = query.apply_to(all.clone()).unwrap();
        let got = views(&store)
            .query_views(VIEW, &query, ITEM_FIELDS)
            .await
            .unwrap();
        assert_eq!((ids(&got), got.total), (ids(&expected), expected.total));
        assert!(expected.total > 0, "the query matches something");
    }
}

/// Unknown fields, operators on the wrong kind of field, bad values and bad paging are
/// validation errors, before any store work.
pub async fn views_query_rejections(store: Arc<dyn EventStore>) {
    seed(&store, "p").await;
    for (filter, sort, page, page_size) in [
        (Some("nope:eq:1"), None, None, None),
        (Some("name:like:a"), None, None, None),
        (Some("n:contains:1"), None, None, None),
        (Some("done:lt:true"), None, None, None),
        (Some("n:eq:ten"), None, None, None),
        (Some("done:eq:yes"), None, None, None),
        (Some("note:eq:x"), None, None, None),
        (Some("name"), None, None, None),
        (Some("name:eq"), None, None, None),
        (None, Some("nope"), None, None),
        (None, Some("note"), None, None),
        (None, None, Some(0), None),
        (None, None, None, Some(0)),
        (None, None, None, Some(MAX_PAGE_SIZE + 1)),
        (Some("n:eq:1e999"), None, None, None),
    ] {
        let parsed = ViewQuery::parse(filter, sort, page, page_size, ITEM_FIELDS);
        assert!(
            matches!(parsed, Err(Error::Validation(_))),
            "{filter:?} {sort:?} {page:?} {page_size:?}: {parsed:?}"
        );
    }
    // A hand-built query with an unknown field is refused by the store too.
    let bad = ViewQuery {
        sort: vec![SortKey {
            field: "name; DROP TABLE events".to_owned(),
            descending: false,
        }],
        ..ViewQuery::default()
    };
    let result = views(&store).query_views(VIEW, &bad, ITEM_FIELDS).await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
    assert_eq!(
        views(&store)
            .query_views(VIEW, &ViewQuery::default(), ITEM_FIELDS)
            .await
            .unwrap()
            .total,
        24
    );
}

/// A projection batch commits only on the checkpoint it started from; a reset clears the
/// projection's views and checkpoint and nothing else.
pub async fn projection_checkpoints(store: Arc<dyn EventStore>) {
    assert_eq!(
        views(&store)
            .projection_checkpoint("p")
            .await
            .unwrap()
            .position,
        0
    );
    seed(&store, "p").await;
    let stale = views(&store)
        .apply_projection(ProjectionBatch {
            projection: "p".to_owned(),
            expected: ProjectionCheckpoint::at(0),
            checkpoint: 12,
            changes: vec![item("late", "agg-9", serde_json::json!({"name": "late"}))],
        })
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    assert!(
        views(&store)
            .get_view(VIEW, "late")
            .await
            .unwrap()
            .is_none(),
        "a refused batch writes nothing"
    );
    assert_eq!(
        views(&store)
            .projection_checkpoint("p")
            .await
            .unwrap()
            .position,
        7
    );
    // Another projection, another view type.
    views(&store)
        .apply_projection(ProjectionBatch {
            projection: "q".to_owned(),
            expected: ProjectionCheckpoint::at(0),
            checkpoint: 3,
            changes: vec![ViewChange::Upsert(ViewRecord {
                view_type: "other_view".to_owned(),
                view_id: "o-1".to_owned(),
                aggregate_id: "agg-0".to_owned(),
                version: 2,
                data: "{}".to_owned(),
            })],
        })
        .await
        .unwrap();
    views(&store).reset_projection("p", &[VIEW]).await.unwrap();
    let reset = views(&store).projection_checkpoint("p").await.unwrap();
    assert_eq!(
        reset,
        ProjectionCheckpoint {
            position: 0,
            generation: 1
        }
    );
    assert_eq!(
        views(&store)
            .query_views(VIEW, &ViewQuery::default(), ITEM_FIELDS)
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        views(&store)
            .projection_checkpoint("q")
            .await
            .unwrap()
            .position,
        3
    );
    assert!(
        views(&store)
            .get_view("other_view", "o-1")
            .await
            .unwrap()
            .is_some()
    );
    // A runner that read the checkpoint before the reset is refused, even at a position the
    // rebuild has reached too: its records were read from the old generation.
    let stale_runner = views(&store)
        .apply_projection(ProjectionBatch {
            projection: "p".to_owned(),
            expected: ProjectionCheckpoint::at(0),
            checkpoint: 7,
            changes: items(),
        })
        .await;
    assert!(
        matches!(stale_runner, Err(Error::Conflict { .. })),
        "{stale_runner:?}"
    );
    seed_from(&store, "p", reset).await;
    assert_eq!(
        views(&store).projection_checkpoint("p").await.unwrap(),
        ProjectionCheckpoint {
            position: 7,
            generation: 1
        }
    );
    assert_eq!(
        views(&store)
            .query_views(VIEW, &ViewQuery::default(), ITEM_FIELDS)
            .await
            .unwrap()
            .total,
        24
    );
    views(&store).reset_projection("p", &[VIEW]).await.unwrap();
    assert_eq!(
        views(&store)
            .projection_checkpoint("p")
            .await
            .unwrap()
            .generation,
        2
    );
}

/// View changes in an append are written with its events, and not at all when it fails.
pub async fn inline_view_changes_commit_with_events(store: Arc<dyn EventStore>) {
    let mut first = request("a-1", ExpectedVersion::NoStream, vec![event(1)]);
    first.view_changes = vec![item(
        "a-1",
        "a-1",
        serde_json::json!({"name": "one", "n": 1}),
    )];
    store.append(first).await.unwrap();
    let record = views(&store).get_view(VIEW, "a-1").await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record.data).unwrap()["n"],
        1
    );

    let mut conflicting = request("a-1", ExpectedVersion::NoStream, vec![event(2)]);
    conflicting.view_changes = vec![
        item("a-1", "a-1", serde_json::json!({"name": "two", "n": 2})),
        item("a-1-extra", "a-1", serde_json::json!({"name": "extra"})),
    ];
    assert_conflict(
        store.append(conflicting).await,
        "a conflicting append with view changes",
    );
    let record = views(&store).get_view(VIEW, "a-1").await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record.data).unwrap()["n"],
        1
    );
    assert!(
        views(&store)
            .get_view(VIEW, "a-1-extra")
            .await
            .unwrap()
            .is_none()
    );

    let mut delete = request("a-1", ExpectedVersion::Exact(1), vec![event(3)]);
    delete.view_changes = vec![ViewChange::Delete {
        view_type: VIEW.to_owned(),
        view_id: "a-1".to_owned(),
    }];
    store.append(delete).await.unwrap();
    assert!(views(&store).get_view(VIEW, "a-1").await.unwrap().is_none());
}

/// Generates one `#[tokio::test]` per conformance case for a store factory.
///
/// `$factory` is an async fn returning `(Arc<dyn EventStore>, G)`: a fresh, empty store and
/// a guard `G` kept alive until the case ends (a temporary directory, a schema to drop).
///
/// ```
/// use std::sync::Arc;
/// use factum_core::{EventStore, InMemoryEventStore};
///
/// async fn new_store() -> (Arc<dyn EventStore>, ()) {
///     (Arc::new(InMemoryEventStore::new()), ())
/// }
/// factum_testing::event_store_conformance_tests!(new_store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! event_store_conformance_tests {
    ($factory:path) => {
        $crate::event_store_conformance_tests!(@cases $factory;
            append_and_read_stream,
            read_stream_from_version_with_limit,
            streams_are_isolated_by_type_and_id,
            expected_no_stream,
            expected_exact,
            expected_stream_exists,
            expected_any,
            idempotent_append,
            failed_append_is_atomic,
            concurrent_appends_to_one_aggregate,
            concurrent_appends_to_many_aggregates,
            read_all_in_position_order,
            snapshots,
            large_stream,
            upcasting_on_read,
            head_position,
            views_get_and_list,
            views_query_operators_sort_and_paging,
            views_query_rejections,
            views_query_many_clauses,
            projection_checkpoints,
            inline_view_changes_commit_with_events,
        );
        $crate::event_store_conformance_tests!(@views $factory;
            inline_views_equal_replay,
            projection_resumes_and_rebuilds,
            projection_parks_a_poison_event,
        );
        $crate::event_store_conformance_tests!(@idempotency $factory;
            idempotency_record_commits_with_events,
            idempotency_conflicting_append_stores_nothing,
            idempotency_duplicate_key_is_refused,
            idempotency_remember_without_events,
            idempotency_expiry,
            idempotency_concurrent_same_key,
        );
    };
    (@idempotency $factory:path; $($case:ident),* $(,)?) => {
        mod idempotency_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = $factory().await;
                    $crate::idempotency::$case(store).await;
                    drop(guard);
                }
            )*
        }
    };
    (@views $factory:path; $($case:ident),* $(,)?) => {
        mod view_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = $factory().await;
                    $crate::views::$case(store).await;
                    drop(guard);
                }
            )*
        }
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = $factory().await;
                    $crate::conformance::$case(store).await;
                    drop(guard);
                }
            )*
        }
    };
}
