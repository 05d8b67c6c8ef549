//! The translation of a [`ViewQuery`] to SQL over the `views` table.
//!
//! Records live in one `views` table, their JSON in `data`. A query filters and sorts on
//! top-level JSON fields with `json_type` / `json_extract`, and only ever with bound
//! parameters: the view type, each JSON path (`$."field"`, built from a field name the query
//! was validated against) and each value are parameters, so no caller text is spliced into
//! SQL. The translation keeps the reference semantics of [`ViewQuery::apply_to`]:
//!
//! - a comparison holds only when the field's JSON type is the value's (`json_type` is
//!   `text`, `integer`/`real`, or `true`/`false`), so a missing or null field, or one of
//!   another type, matches no comparison but `ne` (which is the negation of `eq`, never
//!   NULL);
//! - numbers compare as doubles (`CAST(.. AS REAL)`, as the reference's `as_f64`), so
//!   `1300` equals `1300.0`; booleans compare as 0 and 1; text compares bytewise (SQLite's
//!   default `BINARY` collation on UTF-8);
//! - `contains` is `instr`, a case-sensitive substring match (`LIKE` would fold ASCII case
//!   and treat `%` and `_` as wildcards);
//! - sorting ranks missing/null, booleans, numbers, text, then arrays/objects, compares
//!   within a rank, reverses both for a descending key, and breaks ties by view id.

use factum_core::ValueType as Typed;
use factum_core::{FilterOp, FilterValue, TranslatedQuery, ViewQuery};
use rusqlite::types::Value;

/// A query translated to SQL, with SQLite values as its parameters.
pub(crate) type Translation = TranslatedQuery<Value>;

/// How a JSON type is matched and compared in SQL.
trait Sql {
    /// True exactly when the field holds this JSON type; never NULL.
    fn guard(self, path: usize) -> String;
    /// The field's value as compared: numbers as doubles, booleans as 0/1, text as is.
    fn value(self, path: usize) -> String;
}

impl Sql for Typed {
    fn guard(self, path: usize) -> String {
        match self {
            Self::Text => format!("json_type(data, ?{path}) IS 'text'"),
            Self::Number => {
                format!("COALESCE(json_type(data, ?{path}), '') IN ('integer', 'real')")
            }
            Self::Bool => format!("COALESCE(json_type(data, ?{path}), '') IN ('true', 'false')"),
        }
    }

    fn value(self, path: usize) -> String {
        match self {
            Self::Number => format!("CAST(json_extract(data, ?{path}) AS REAL)"),
            Self::Text | Self::Bool => format!("json_extract(data, ?{path})"),
        }
    }
}

/// A filter value as a typed SQL parameter.
fn typed_value(value: &FilterValue) -> factum_core::Result<(Typed, Value)> {
    Ok(match value {
        FilterValue::Text(text) => (Typed::Text, Value::Text(text.clone())),
        FilterValue::Number(number) => (Typed::Number, Value::Real(*number)),
        FilterValue::Bool(flag) => (Typed::Bool, Value::Integer(i64::from(*flag))),
        FilterValue::List(_) => {
            return Err(factum_core::Error::Validation(
                "a list is only a value of the 'in' operator, and lists do not nest".to_owned(),
            ));
        }
    })
}

/// The JSON path of a top-level field, quoted so that dots or brackets in a name stay part
/// of it. SQLite's quoted labels cannot hold a `"`, so such a name is refused.
fn json_path(field: &str) -> factum_core::Result<String> {
    if field.contains('"') {
        return Err(factum_core::Error::Validation(format!(
            "field {field:?} cannot be queried: its name contains a double quote"
        )));
    }
    Ok(format!("$.\"{field}\""))
}

/// Numbered SQL parameters, with each field's path bound once however often it is used.
struct Params {
    values: Vec<Value>,
    paths: Vec<(String, usize)>,
}

impl Params {
    fn push(&mut self, value: Value) -> usize {
        self.values.push(value);
        self.values.len()
    }

    fn path(&mut self, field: &str) -> factum_core::Result<usize> {
        if let Some((_, index)) = self.paths.iter().find(|(name, _)| name == field) {
            return Ok(*index);
        }
        let index = self.push(Value::Text(json_path(field)?));
        self.paths.push((field.to_owned(), index));
        Ok(index)
    }

    /// `field <op> value` when the field holds the value's JSON type, else false; negated
    /// for `ne`, so a missing, null or differently typed field matches `ne` only.
    fn comparison(
        &mut self,
        path: usize,
        value: &FilterValue,
        op: &str,
        negate: bool,
    ) -> factum_core::Result<String> {
        let (typed, value) = typed_value(value)?;
        let index = self.push(value);
        let test = format!(
            "({} AND {} {op} ?{index})",
            typed.guard(path),
            typed.value(path)
        );
        Ok(if negate { format!("NOT {test}") } else { test })
    }
}

/// Translates a query that [`ViewQuery::validate`] accepted. `?1` is the view type.
/// The conjunction of `clauses`, nested as a balanced tree: SQLite refuses an expression
/// deeper than 1000, and `a AND b AND c ...` nests one level per clause.
fn all_of(clauses: &[String]) -> String {
    match clauses {
        [] => "1".to_owned(),
        [one] => one.clone(),
        _ => {
            let (left, right) = clauses.split_at(clauses.len() / 2);
            format!("({} AND {})", all_of(left), all_of(right))
        }
    }
}

pub(crate) fn translate(view_type: &str, query: &ViewQuery) -> factum_core::Result<Translation> {
    let mut params = Params {
        values: vec![Value::Text(view_type.to_owned())],
        paths: Vec::new(),
    };
    let mut clauses = vec!["view_type = ?1".to_owned()];
    for filter in &query.filters {
        let path = params.path(&filter.field)?;
        let clause = match (filter.op, &filter.value) {
            (FilterOp::In, FilterValue::List(values)) => {
                // One `IN` per JSON type among the values (validated queries have one).
                let mut groups: Vec<(Typed, Vec<usize>)> = Vec::new();
                for value in values {
                    let (typed, value) = typed_value(value)?;
                    let index = params.push(value);
                    match groups.iter_mut().find(|(t, _)| *t == typed) {
                        Some((_, indexes)) => indexes.push(index),
                        None => groups.push((typed, vec![index])),
                    }
                }
                if groups.is_empty() {
                    // `in` with no values matches nothing, as in the reference.
                    "0".to_owned()
                } else {
                    let alternatives: Vec<String> = groups
                        .iter()
                        .map(|(typed, indexes)| {
                            let list: Vec<String> =
                                indexes.iter().map(|i| format!("?{i}")).collect();
                            format!(
                                "({} AND {} IN ({}))",
                                typed.guard(path),
                                typed.value(path),
                                list.join(", ")
                            )
                        })
                        .collect();
                    format!("({})", alternatives.join(" OR "))
                }
            }
            (FilterOp::Contains, FilterValue::Text(needle)) => {
                let needle = params.push(Value::Text(needle.clone()));
                format!(
                    "({} AND instr({}, ?{needle}) > 0)",
                    Typed::Text.guard(path),
                    Typed::Text.value(path)
                )
            }
            (FilterOp::In | FilterOp::Contains, value) => {
                return Err(factum_core::Error::Validation(format!(
                    "operator '{}' does not take {value:?}",
                    filter.op.name()
                )));
            }
            (FilterOp::Eq, value) => params.comparison(path, value, "=", false)?,
            (FilterOp::Ne, value) => params.comparison(path, value, "=", true)?,
            (FilterOp::Lt, value) => params.comparison(path, value, "<", false)?,
            (FilterOp::Lte, value) => params.comparison(path, value, "<=", false)?,
            (FilterOp::Gt, value) => params.comparison(path, value, ">", false)?,
            (FilterOp::Gte, value) => params.comparison(path, value, ">=", false)?,
        };
        clauses.push(clause);
    }
    let where_sql = all_of(&clauses);
    let filter_count = params.values.len();

    let mut order_sql = String::new();
    // SQLite refuses an ORDER BY of more than 2000 terms; keys that cannot change the order
    // are left out.
    for key in query.effective_sort() {
        let p = params.path(&key.field)?;
        let direction = if key.descending { "DESC" } else { "ASC" };
        // The rank orders JSON types as the reference does (missing/null first); the value
        // orders within a rank. Both flip for a descending key, as the reference reverses
        // the whole comparison.
        order_sql.push_str(&format!(
            "CASE json_type(data, ?{p}) WHEN 'true' THEN 1 WHEN 'false' THEN 1 \
             WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 \
             WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END {direction}, \
             CASE json_type(data, ?{p}) WHEN 'integer' THEN CAST(json_extract(data, ?{p}) AS REAL) \
             WHEN 'real' THEN json_extract(data, ?{p}) WHEN 'text' THEN json_extract(data, ?{p}) \
             WHEN 'true' THEN 1 WHEN 'false' THEN 0 END {direction}, "
        ));
    }
    order_sql.push_str("view_id ASC");
    Ok(Translation::new(
        where_sql,
        order_sql,
        params.values,
        filter_count,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use factum_core::{Filter, SortKey};
    use rusqlite::{Connection, params, params_from_iter};

    /// An in-memory table with the store's schema, for checking translations directly.
    fn table(records: &[(&str, serde_json::Value)]) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        for (id, data) in records {
            conn.execute(
                "INSERT INTO views VALUES ('v', ?1, 'a', 1, ?2)",
                params![id, data.to_string()],
            )
            .unwrap();
        }
        conn
    }

    fn run(conn: &Connection, query: &ViewQuery) -> Vec<String> {
        let t = translate("v", query).unwrap();
        let sql = format!(
            "SELECT view_id FROM views WHERE {} ORDER BY {}",
            t.where_sql, t.order_sql
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        stmt.query_map(
            params_from_iter(t.filter_params.iter().chain(t.order_params.iter())),
            |row| row.get(0),
        )
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    #[test]
    fn every_value_is_a_bound_parameter() {
        let query = ViewQuery {
            filters: vec![Filter {
                field: "name".into(),
                op: FilterOp::Eq,
                value: FilterValue::Text("x' OR 1=1; --".into()),
            }],
            sort: vec![SortKey {
                field: "name".into(),
                descending: true,
            }],
            ..ViewQuery::default()
        };
        let t = translate("v' OR 1=1", &query).unwrap();
        for text in ["x'", "OR 1=1", "$.", "name"] {
            assert!(!t.where_sql.contains(text), "{}", t.where_sql);
            assert!(!t.order_sql.contains(text), "{}", t.order_sql);
        }
        // The path is bound once and used by the filter and the sort.
        assert_eq!(
            t.filter_params,
            [
                Value::Text("v' OR 1=1".into()),
                Value::Text("$.\"name\"".into()),
                Value::Text("x' OR 1=1; --".into())
            ]
        );
        assert!(t.order_params.is_empty());
    }

    #[test]
    fn names_with_dots_stay_top_level_and_quotes_are_refused() {
        assert_eq!(json_path("a.b").unwrap(), "$.\"a.b\"");
        let records = [
            ("x", serde_json::json!({"a.b": 1, "a": {"b": 2}})),
            ("y", serde_json::json!({"a": {"b": 1}})),
        ];
        let conn = table(&records);
        let query = ViewQuery {
            filters: vec![Filter {
                field: "a.b".into(),
                op: FilterOp::Eq,
                value: FilterValue::Number(1.0),
            }],
            ..ViewQuery::default()
        };
        assert_eq!(run(&conn, &query), ["x"]);
        assert!(matches!(
            json_path("a\"b"),
            Err(factum_core::Error::Validation(_))
        ));
    }
}
