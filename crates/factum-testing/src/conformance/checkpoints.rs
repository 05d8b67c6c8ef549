//! Projection checkpoints: batches commit only on the checkpoint they started from, and
//! resets.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{
    Error, EventStore, ProjectionBatch, ProjectionCheckpoint, ViewChange, ViewRecord,
};

use super::items::*;

/// A projection batch commits only on the checkpoint it started from; a reset clears the
/// projection's views and checkpoint and nothing else.
pub async fn projection_checkpoints(store: Arc<dyn EventStore>) {
    assert_eq!(checkpoint(&store, "p").await.position, 0);
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
        record(&store, VIEW, "late").await.is_none(),
        "a refused batch writes nothing"
    );
    assert_eq!(checkpoint(&store, "p").await.position, 7);
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
    let reset = checkpoint(&store, "p").await;
    assert_eq!(
        reset,
        ProjectionCheckpoint {
            position: 0,
            generation: 1
        }
    );
    assert_eq!(total(&store).await, 0);
    assert_eq!(checkpoint(&store, "q").await.position, 3);
    assert!(record(&store, "other_view", "o-1").await.is_some());
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
        checkpoint(&store, "p").await,
        ProjectionCheckpoint {
            position: 7,
            generation: 1
        }
    );
    assert_eq!(total(&store).await, 24);
    views(&store).reset_projection("p", &[VIEW]).await.unwrap();
    assert_eq!(checkpoint(&store, "p").await.generation, 2);
}
