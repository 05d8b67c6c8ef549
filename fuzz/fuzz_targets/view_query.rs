//! The view query parser (`?filter=&sort=&page=&page_size=`): no input panics it; what it
//! accepts respects the clause limits, validates, prints back to a query that parses to the
//! same thing, and can be applied to records.
#![no_main]

use factum_core::{
    FieldKind, FilterOp, FilterValue, QueryLimits, ViewField, ViewQuery, ViewRecord,
};
use libfuzzer_sys::fuzz_target;

const FIELDS: &[ViewField] = &[
    ViewField::new("owner", FieldKind::Text),
    ViewField::new("balance", FieldKind::Number),
    ViewField::new("open", FieldKind::Boolean),
    ViewField {
        name: "note",
        kind: FieldKind::Text,
        filterable: false,
        sortable: false,
    },
];

fn value_text(value: &FilterValue) -> String {
    match value {
        FilterValue::Bool(b) => b.to_string(),
        // `{}` prints the shortest text that reads back as the same f64.
        FilterValue::Number(n) => format!("{n}"),
        FilterValue::Text(t) => t.clone(),
        FilterValue::List(values) => values.iter().map(value_text).collect::<Vec<_>>().join("|"),
    }
}

/// The query string form of a parsed query.
fn print(query: &ViewQuery) -> (String, String) {
    let filter = query
        .filters
        .iter()
        .map(|f| format!("{}:{}:{}", f.field, f.op.name(), value_text(&f.value)))
        .collect::<Vec<_>>()
        .join(",");
    let sort = query
        .sort
        .iter()
        .map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.field))
        .collect::<Vec<_>>()
        .join(",");
    (filter, sort)
}

fn records() -> Vec<ViewRecord> {
    [
        serde_json::json!({"owner": "Alice", "balance": 10.5, "open": true}),
        serde_json::json!({"owner": "bob", "balance": -3, "open": false, "note": "x"}),
        serde_json::json!({"owner": null, "balance": "12"}),
        serde_json::json!({}),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, data)| ViewRecord {
        view_type: "v".to_owned(),
        view_id: format!("r{i}"),
        aggregate_id: "a".to_owned(),
        version: 1,
        data: data.to_string(),
    })
    .collect()
}

fuzz_target!(|data: &[u8]| {
    // Layout: page (1 byte), page_size (2 bytes), limits (2 bytes), then filter \0 sort.
    if data.len() < 5 {
        return;
    }
    let page = Some(u32::from(data[0]));
    let page_size = Some(u32::from(u16::from_le_bytes([data[1], data[2]])));
    let limits = QueryLimits::new(usize::from(data[3] % 40), usize::from(data[4] % 40));
    let Ok(text) = std::str::from_utf8(&data[5..]) else {
        return;
    };
    let (filter, sort) = text.split_once('\0').unwrap_or((text, ""));
    for limits in [QueryLimits::default(), limits] {
        let Ok(query) =
            ViewQuery::parse_limited(Some(filter), Some(sort), page, page_size, FIELDS, limits)
        else {
            continue;
        };
        assert!(query.filters.len() <= limits.max_clauses, "{query:?}");
        assert!(query.sort.len() <= limits.max_clauses, "{query:?}");
        for f in &query.filters {
            if let FilterValue::List(values) = &f.value {
                assert_eq!(f.op, FilterOp::In);
                assert!(values.len() <= limits.max_in_values, "{query:?}");
            }
        }
        assert!(query.validate(FIELDS).is_ok(), "{query:?}");
        let (filter, sort) = print(&query);
        let again =
            ViewQuery::parse_limited(Some(&filter), Some(&sort), page, page_size, FIELDS, limits)
                .unwrap_or_else(|e| panic!("{query:?} printed as {filter:?} / {sort:?}: {e}"));
        assert_eq!(again, query, "printed as {filter:?} / {sort:?}");
        if let Ok(page) = query.apply_to(records()) {
            assert!(page.items.len() <= query.page_size as usize);
            assert!(page.total <= 4);
        }
    }
});
