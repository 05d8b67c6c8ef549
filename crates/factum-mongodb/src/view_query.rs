//! View records as documents, and [`ViewQuery`] as MongoDB filters and sorts.
//!
//! A record keeps its JSON as text (`data`) and, for queries, its top-level scalars under
//! `f` with their type rank under `r` (1 boolean, 2 number, 3 string, 4 anything else; none
//! for null or missing), each under a key made of the field name's bytes in hex (`k6f776e`),
//! so no field name, however odd (`a.b`, `$x`), is ever a path or an operator. Numbers are
//! stored as doubles, as the reference semantics compare them. A query becomes a filter
//! document built from values (the fields were checked against the view's declared fields
//! first) and a sort on (rank, value) per key, which is the reference order: missing and
//! null first, then booleans, numbers, strings; ties by record id.

use factum_core::{Filter, FilterOp, FilterValue, Result, ViewField, ViewQuery};
use mongodb::bson::{Bson, Document, doc};

/// The key under which field `name` is stored.
pub(crate) fn field_key(name: &str) -> String {
    let mut key = String::with_capacity(1 + 2 * name.len());
    key.push('k');
    for byte in name.bytes() {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The queryable copy of a record's JSON: (`f`, `r`).
pub(crate) fn queryable(data: &str) -> Result<(Document, Document)> {
    use serde_json::Value;
    let (mut values, mut ranks) = (Document::new(), Document::new());
    // Plain serde_json: numbers compare as f64, as in the reference semantics.
    let json: Value =
        serde_json::from_str(data).map_err(|source| factum_core::Error::Serialization {
            what: "a view record".to_owned(),
            source,
        })?;
    if let Value::Object(fields) = json {
        for (name, value) in fields {
            let key = field_key(&name);
            let (rank, stored) = match value {
                Value::Null => continue,
                Value::Bool(b) => (1, Some(Bson::Boolean(b))),
                Value::Number(n) => (2, n.as_f64().map(Bson::Double)),
                Value::String(s) => (3, Some(Bson::String(s))),
                Value::Array(_) | Value::Object(_) => (4, None),
            };
            ranks.insert(key.clone(), rank);
            if let Some(stored) = stored {
                values.insert(key, stored);
            }
        }
    }
    Ok((values, ranks))
}

fn value(value: &FilterValue) -> Bson {
    match value {
        FilterValue::Bool(b) => Bson::Boolean(*b),
        FilterValue::Number(n) => Bson::Double(*n),
        FilterValue::Text(s) => Bson::String(s.clone()),
        FilterValue::List(values) => Bson::Array(values.iter().map(self::value).collect()),
    }
}

/// A regular expression matching `needle` literally: ASCII punctuation is escaped, every
/// other character stands for itself.
fn literal_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() * 2);
    for c in needle.chars() {
        if c.is_ascii_punctuation() {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// The type rank of the values a filter compares with (lists hold one kind).
fn rank(value: &FilterValue) -> i32 {
    match value {
        FilterValue::Bool(_) => 1,
        FilterValue::Number(_) => 2,
        FilterValue::Text(_) => 3,
        FilterValue::List(values) => values.first().map_or(0, rank),
    }
}

/// One filter: a comparison holds only for a field of the value's type (the rank says it,
/// so no server's loose comparison of `true` with `1` can blur it); `ne` holds for every
/// other type too, and for a missing field.
fn clause(filter: &Filter) -> Document {
    let key = field_key(&filter.field);
    let (value_path, rank_path) = (format!("f.{key}"), format!("r.{key}"));
    let rank = rank(&filter.value);
    let operand = match (filter.op, &filter.value) {
        (FilterOp::Contains, FilterValue::Text(needle)) => doc! {"$regex": literal_pattern(needle)},
        (FilterOp::Ne, value) => {
            return doc! {"$or": [{rank_path.as_str(): {"$ne": rank}}, {value_path.as_str(): {"$ne": self::value(value)}}]};
        }
        (op, value) => {
            let operator = match op {
                FilterOp::Eq | FilterOp::Contains => "$eq",
                FilterOp::Ne => "$ne",
                FilterOp::Lt => "$lt",
                FilterOp::Lte => "$lte",
                FilterOp::Gt => "$gt",
                FilterOp::Gte => "$gte",
                FilterOp::In => "$in",
            };
            doc! {operator: self::value(value)}
        }
    };
    doc! {rank_path: rank, value_path: operand}
}

/// The filter and sort of a validated `query` over `view_type`'s live records.
pub(crate) fn translate(
    view_type: &str,
    query: &ViewQuery,
    fields: &[ViewField],
) -> Result<(Document, Document)> {
    query.validate(fields)?;
    let mut filter = doc! {"vt": view_type, "del": false};
    if !query.filters.is_empty() {
        let clauses: Vec<Document> = query.filters.iter().map(clause).collect();
        filter.insert("$and", clauses);
    }
    let mut sort = Document::new();
    for key in query.effective_sort() {
        let direction = if key.descending { -1 } else { 1 };
        let name = field_key(&key.field);
        sort.insert(format!("r.{name}"), direction);
        sort.insert(format!("f.{name}"), direction);
    }
    sort.insert("vid", 1);
    Ok((filter, sort))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_are_plain_keys_and_needles_are_literal() {
        assert_eq!(field_key("a.b"), "k612e62");
        assert_eq!(field_key("$x"), "k2478");
        assert_eq!(literal_pattern("a%b_.*é"), "a\\%b\\_\\.\\*é");
        let (values, ranks) = queryable(r#"{"n": 1, "s": "x", "z": null, "o": {}}"#).unwrap();
        assert_eq!(values, doc! {"k6e": 1.0, "k73": "x"});
        assert_eq!(ranks, doc! {"k6e": 2, "k73": 3, "k6f": 4});
    }
}
