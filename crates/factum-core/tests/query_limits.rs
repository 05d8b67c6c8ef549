//! The limits on the size of a view query: clauses, sort keys and `in` values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_core::{
    DEFAULT_MAX_CLAUSES, DEFAULT_MAX_IN_VALUES, Error, FieldKind, QueryLimits, SortKey, ViewField,
    ViewQuery,
};

const FIELDS: &[ViewField] = &[
    ViewField::new("owner", FieldKind::Text),
    ViewField::new("balance", FieldKind::Number),
];

fn repeated(clause: &str, n: usize) -> String {
    vec![clause; n].join(",")
}

/// Parses a filter and a sort on [`FIELDS`] under the default limits.
fn parse(filter: Option<&str>, sort: Option<&str>) -> factum_core::Result<ViewQuery> {
    ViewQuery::parse(filter, sort, None, None, FIELDS)
}

/// The validation message refusing a filter and a sort.
fn refused(filter: Option<&str>, sort: Option<&str>) -> String {
    match parse(filter, sort) {
        Err(Error::Validation(message)) => message,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn the_default_limits_allow_sixteen_clauses_and_refuse_more() {
    assert_eq!(QueryLimits::default().max_clauses, DEFAULT_MAX_CLAUSES);
    assert_eq!(DEFAULT_MAX_CLAUSES, 16);
    let at = repeated("owner:eq:A", 16);
    let query = parse(Some(&at), Some(&repeated("-balance", 16))).unwrap();
    assert_eq!((query.filters.len(), query.sort.len()), (16, 16));
    // Empty clauses (",,") are not counted.
    let sparse = format!(",,{at},,");
    assert!(parse(Some(&sparse), None).is_ok());

    let over = refused(Some(&repeated("owner:eq:A", 17)), None);
    assert!(
        over.contains("17 filter clauses") && over.contains("at most 16"),
        "{over}"
    );
    let over = refused(None, Some(&repeated("owner", 17)));
    assert!(over.contains("17 sort keys"), "{over}");
    // A thousand clauses are refused before any is parsed: even invalid ones.
    let over = refused(Some(&repeated("nope:bad:x", 1000)), None);
    assert!(over.contains("1000 filter clauses"), "{over}");
}

#[test]
fn in_lists_are_bounded() {
    let values = |n: usize| format!("owner:in:{}", vec!["a"; n].join("|"));
    let at = parse(Some(&values(DEFAULT_MAX_IN_VALUES)), None);
    assert!(at.is_ok(), "{at:?}");
    let over = refused(Some(&values(DEFAULT_MAX_IN_VALUES + 1)), None);
    assert!(over.contains("'in'"), "{over}");
}

#[test]
fn limits_are_configurable() {
    let limits = QueryLimits::new(2, 3);
    let parse = |filter: &str, sort: &str| {
        ViewQuery::parse_limited(Some(filter), Some(sort), None, None, FIELDS, limits)
    };
    assert!(parse("owner:eq:A,balance:gt:1", "owner,-balance").is_ok());
    assert!(parse("owner:eq:A,balance:gt:1,owner:ne:B", "").is_err());
    assert!(parse("", "owner,-balance,owner").is_err());
    assert!(parse("owner:in:a|b|c", "").is_ok());
    assert!(parse("owner:in:a|b|c|d", "").is_err());
    // Wider limits accept what the defaults refuse.
    let wide = QueryLimits::new(1000, 1000);
    let many = repeated("owner:eq:A", 1000);
    assert_eq!(
        ViewQuery::parse_limited(Some(&many), None, None, None, FIELDS, wide)
            .unwrap()
            .filters
            .len(),
        1000
    );
}

#[test]
fn only_the_first_sort_key_of_a_field_can_decide_the_order() {
    let query = parse(None, Some("-balance,owner,balance,-owner,owner")).unwrap();
    let effective: Vec<&SortKey> = query.effective_sort();
    assert_eq!(
        effective,
        [
            &SortKey {
                field: "balance".to_owned(),
                descending: true
            },
            &SortKey {
                field: "owner".to_owned(),
                descending: false
            },
        ]
    );
    // And the reference order agrees: the later keys change nothing.
    let records: Vec<serde_json::Value> = (0..20)
        .map(|i| serde_json::json!({"owner": format!("o{}", i % 3), "balance": i % 4}))
        .collect();
    let trimmed = ViewQuery {
        sort: effective.into_iter().cloned().collect(),
        ..query.clone()
    };
    for a in &records {
        for b in &records {
            assert_eq!(
                query.compare_records(("x", a), ("x", b)),
                trimmed.compare_records(("x", a), ("x", b))
            );
        }
    }
}
