//! View records: reads by id and by aggregate, deletes, and inline view changes committing
//! with their append.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::sample::event;
use factum_core::{EventStore, ExpectedVersion, ProjectionBatch, ProjectionCheckpoint, ViewChange};

use super::items::*;
use super::requests::*;

/// Records come back by id and by aggregate; deletes remove them.
pub async fn views_get_and_list(store: Arc<dyn EventStore>) {
    seed(&store, "p").await;
    let one = record(&store, VIEW, "item-05").await.unwrap();
    assert_eq!(one.aggregate_id, "agg-1");
    assert_eq!(one.version, 1);
    assert_eq!(
        data_of(&store, "item-05").await["n"],
        serde_json::json!(-2.5)
    );
    assert!(record(&store, VIEW, "item-99").await.is_none());
    assert!(record(&store, "other_view", "item-05").await.is_none());
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
    assert!(record(&store, VIEW, "item-02").await.is_none());
    assert_eq!(data_of(&store, "item-06").await["name"], "replaced");
    assert_eq!(
        views(&store)
            .list_views_of(VIEW, "agg-2")
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(checkpoint(&store, "p").await.position, 9);
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
    assert_eq!(data_of(&store, "a-1").await["n"], 1);

    let mut conflicting = request("a-1", ExpectedVersion::NoStream, vec![event(2)]);
    conflicting.view_changes = vec![
        item("a-1", "a-1", serde_json::json!({"name": "two", "n": 2})),
        item("a-1-extra", "a-1", serde_json::json!({"name": "extra"})),
    ];
    assert_conflict(
        store.append(conflicting).await,
        "a conflicting append with view changes",
    );
    assert_eq!(data_of(&store, "a-1").await["n"], 1);
    assert!(record(&store, VIEW, "a-1-extra").await.is_none());

    let mut delete = request("a-1", ExpectedVersion::Exact(1), vec![event(3)]);
    delete.view_changes = vec![ViewChange::Delete {
        view_type: VIEW.to_owned(),
        view_id: "a-1".to_owned(),
    }];
    store.append(delete).await.unwrap();
    assert!(record(&store, VIEW, "a-1").await.is_none());
}
