//! View queries on odd values: every JSON type under the queried names, ids that sort
//! differently bytewise than in a natural-language collation, numbers only `f64` equates.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{
    EventStore, FieldKind, ProjectionBatch, ProjectionCheckpoint, ViewChange, ViewField, ViewRecord,
};
use serde_json::json;

use super::items::{agrees_with_reference, views};

const ODD_VIEW: &str = "conformance_odd";

/// The fields the odd-values case queries: text, number, boolean, and a name with a dot.
pub const ODD_FIELDS: &[ViewField] = &[
    ViewField::new("name", FieldKind::Text),
    ViewField::new("n", FieldKind::Number),
    ViewField::new("done", FieldKind::Boolean),
    ViewField::new("a.b", FieldKind::Number),
];

/// Values of every JSON type under the queried names, ids that sort differently bytewise
/// than in a natural-language collation, and numbers that only `f64` equates.
fn odd_records() -> Vec<ViewRecord> {
    [
        ("a", json!({"name": "Zed", "n": 1300, "done": true})),
        ("B", json!({"name": "zed", "n": 1300.0, "done": false})),
        ("c", json!({"name": null, "n": null, "done": null})),
        ("d", json!({})),
        ("e", json!({"name": 5, "n": "5", "done": 1})),
        ("f", json!({"name": ["x"], "n": {"k": 1}, "done": "true"})),
        ("g", json!({"name": "a%b_c", "n": -0.5, "done": false})),
        ("h", json!({"name": "é", "n": 9_007_199_254_740_993_i64})),
        ("i", json!({"name": "", "n": 9_007_199_254_740_992_i64})),
        (
            "_j",
            json!({"name": "E", "n": 1e-7, "a.b": 2, "a": {"b": 1}}),
        ),
        ("k", json!({"name": "zed ", "n": 0.1, "a": {"b": 2}})),
        (
            "é-l",
            json!({"name": "Ω", "n": -0.0, "done": true, "a.b": 2.0}),
        ),
        ("M", json!({"name": "a", "n": 0.30000000000000004})),
    ]
    .into_iter()
    .map(|(id, data)| ViewRecord {
        view_type: ODD_VIEW.to_owned(),
        view_id: id.to_owned(),
        aggregate_id: format!("agg-{}", id.len()),
        version: 1,
        data: data.to_string(),
    })
    .collect()
}

fn odd_ids(records: &[ViewRecord]) -> Vec<&str> {
    records.iter().map(|r| r.view_id.as_str()).collect()
}

/// Every filter and sort on odd values agrees with the reference semantics of
/// [`factum_core::ViewQuery::apply_to`], page by page; children of an aggregate come back in
/// bytewise id order.
pub async fn views_query_odd_values(store: Arc<dyn EventStore>) {
    let records = odd_records();
    views(&store)
        .apply_projection(ProjectionBatch {
            projection: "seed".to_owned(),
            expected: ProjectionCheckpoint::at(0),
            checkpoint: 1,
            changes: records.iter().cloned().map(ViewChange::Upsert).collect(),
        })
        .await
        .unwrap();
    let filters = [
        None,
        Some("name:eq:zed"),
        Some("name:ne:zed"),
        Some("name:gt:Zed"),
        Some("name:lt:zed"),
        Some("name:lte:zed "),
        Some("name:gte:é"),
        Some("name:contains:%"),
        Some("name:contains:_"),
        Some("name:contains:Z"),
        Some("name:contains:"),
        Some("name:in:Zed|é|"),
        Some("n:eq:1300"),
        Some("n:ne:1300"),
        Some("n:gte:5"),
        Some("n:lt:0"),
        Some("n:eq:0"),
        Some("n:eq:9007199254740992"),
        Some("n:eq:0.3"),
        Some("n:eq:0.30000000000000004"),
        Some("n:in:1300|-0.5"),
        Some("n:in:1300|-0.5|0.0000001"),
        Some("done:eq:true"),
        Some("done:ne:false"),
        Some("done:in:true|false"),
        Some("a.b:eq:2"),
        Some("a.b:ne:2"),
    ];
    let sorts = [
        None,
        Some("name"),
        Some("-name"),
        Some("n"),
        Some("-n"),
        Some("done,-name"),
        Some("-done"),
        Some("-done,n"),
        Some("a.b,-n"),
    ];
    let pages = [(1, 100), (1, 3), (2, 3), (5, 3)];
    let queries = (&filters[..], &sorts[..], &pages[..]);
    let checked = agrees_with_reference(&store, (ODD_VIEW, ODD_FIELDS), &records, queries).await;
    assert_eq!(checked, 27 * 9 * 4);
    // Children of an aggregate come back in bytewise id order.
    let children = views(&store)
        .list_views_of(ODD_VIEW, "agg-1")
        .await
        .unwrap();
    assert_eq!(
        odd_ids(&children),
        ["B", "M", "a", "c", "d", "e", "f", "g", "h", "i", "k"]
    );
}
