//! The view records the view cases store, and how they seed a store with them.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{
    EventStore, FieldKind, Page, ProjectionBatch, ProjectionCheckpoint, ViewChange, ViewField,
    ViewQuery, ViewRecord, ViewStore,
};

pub(super) fn views(store: &Arc<dyn EventStore>) -> &dyn ViewStore {
    store.as_view_store().expect("the store keeps views")
}

pub(super) const VIEW: &str = "conformance_items";

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

pub(super) fn item(id: &str, aggregate: &str, data: serde_json::Value) -> ViewChange {
    ViewChange::Upsert(ViewRecord {
        view_type: VIEW.to_owned(),
        view_id: id.to_owned(),
        aggregate_id: aggregate.to_owned(),
        version: 1,
        data: data.to_string(),
    })
}

pub(super) fn items() -> Vec<ViewChange> {
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

pub(super) async fn seed(store: &Arc<dyn EventStore>, projection: &str) {
    seed_from(store, projection, ProjectionCheckpoint::at(0)).await;
}

pub(super) async fn seed_from(
    store: &Arc<dyn EventStore>,
    projection: &str,
    expected: ProjectionCheckpoint,
) {
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

/// The checkpoint of `projection`.
pub(super) async fn checkpoint(
    store: &Arc<dyn EventStore>,
    projection: &str,
) -> ProjectionCheckpoint {
    views(store)
        .projection_checkpoint(projection)
        .await
        .unwrap()
}

/// The record `id` of `view_type`, if there is one.
pub(super) async fn record(
    store: &Arc<dyn EventStore>,
    view_type: &str,
    id: &str,
) -> Option<ViewRecord> {
    views(store).get_view(view_type, id).await.unwrap()
}

/// The data of record `id` of [`VIEW`], which must exist.
pub(super) async fn data_of(store: &Arc<dyn EventStore>, id: &str) -> serde_json::Value {
    let stored = record(store, VIEW, id).await.expect("the record exists");
    serde_json::from_str(&stored.data).unwrap()
}

/// How many records of [`VIEW`] there are.
pub(super) async fn total(store: &Arc<dyn EventStore>) -> u64 {
    views(store)
        .query_views(VIEW, &ViewQuery::default(), ITEM_FIELDS)
        .await
        .unwrap()
        .total
}

/// Every record of [`VIEW`], by aggregate (the seeded items are on `agg-0` to `agg-3`).
pub(super) async fn every_item(store: &Arc<dyn EventStore>) -> Vec<ViewRecord> {
    let mut all = Vec::new();
    for aggregate in ["agg-0", "agg-1", "agg-2", "agg-3"] {
        all.extend(views(store).list_views_of(VIEW, aggregate).await.unwrap());
    }
    all
}

/// The queries [`agrees_with_reference`] runs: every filter with every sort, on every
/// `(page, page_size)`.
pub(super) type Queries<'a> = (
    &'a [Option<&'a str>],
    &'a [Option<&'a str>],
    &'a [(u32, u32)],
);

/// Runs every filter, sort and `(page, page_size)` given on `view` of `store`, and checks
/// that each page the store's own translation returns agrees with the reference semantics of
/// [`ViewQuery::apply_to`] on `records`. Returns how many queries it checked.
pub(super) async fn agrees_with_reference(
    store: &Arc<dyn EventStore>,
    (view, fields): (&str, &[ViewField]),
    records: &[ViewRecord],
    (filters, sorts, pages): Queries<'_>,
) -> usize {
    let mut checked = 0;
    for filter in filters {
        for sort in sorts {
            for &(page, page_size) in pages {
                let query =
                    ViewQuery::parse(*filter, *sort, Some(page), Some(page_size), fields).unwrap();
                let expected = query.apply_to(records.to_vec()).unwrap();
                let got = views(store)
                    .query_views(view, &query, fields)
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
                checked += 1;
            }
        }
    }
    checked
}

pub(super) fn ids(page: &Page<ViewRecord>) -> Vec<String> {
    page.items.iter().map(|r| r.view_id.clone()).collect()
}
