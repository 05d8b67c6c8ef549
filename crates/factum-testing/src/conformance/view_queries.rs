//! View queries: operators, sorting and paging against the reference semantics, many clauses,
//! and rejections.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{
    Error, EventStore, Filter, FilterOp, FilterValue, MAX_PAGE_SIZE, SortKey, ViewQuery, ViewRecord,
};

use super::items::*;

/// Every operator, sort and page agrees with the reference semantics of
/// [`ViewQuery::apply_to`], on the store's own translation.
pub async fn views_query_operators_sort_and_paging(store: Arc<dyn EventStore>) {
    seed(&store, "p").await;
    let all: Vec<ViewRecord> = every_item(&store).await;
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
    let pages = [(1, 100), (1, 5), (2, 5), (5, 5), (9, 5)];
    let queries = (&filters[..], &sorts[..], &pages[..]);
    let checked = agrees_with_reference(&store, (VIEW, ITEM_FIELDS), &all, queries).await;
    assert_eq!(checked, 25 * 6 * 5);
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
    let all: Vec<ViewRecord> = every_item(&store).await;
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
    assert_eq!(total(&store).await, 24);
}
