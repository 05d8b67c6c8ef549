//! The translation of a [`ViewQuery`] to SQL over `<schema>.views`.
//!
//! # Queries
//!
//! A query is translated only after [`ViewQuery::validate`] accepted it, and every field name
//! placed in SQL is a *bound parameter* taken from the view's declared [`ViewField`]s
//! (`data -> $n`, `data ->> $n`), as is every value: the only text spliced into the statement
//! is the validated schema name and placeholders. The translation keeps the reference
//! semantics of [`ViewQuery::apply_to`]:
//!
//! - a comparison holds only when the field holds the value's JSON type (`jsonb_typeof`), so a
//!   missing or null field, or one of another type, matches no comparison but `ne` (the
//!   negation of `eq`, written `(.. = ..) IS NOT TRUE` so that NULL counts as "not equal");
//!   each typed value is read under a `CASE` on its type, so a cast never sees another type;
//! - numbers compare as `double precision`, as the reference compares `f64`: `1300` equals
//!   `1300.0`, and two integers above 2^53 that the reference cannot tell apart are not told
//!   apart here either (`numeric` would); booleans compare as booleans (false < true); text
//!   compares bytewise (`COLLATE "C"`, whatever the database's collation);
//! - `contains` is `strpos`, a case-sensitive substring match with no wildcards;
//! - sorting ranks missing/null, booleans, numbers, text, then arrays and objects, compares
//!   within a rank, reverses both for a descending key (so missing values come first
//!   ascending and last descending), and breaks ties by view id ascending, bytewise;
//! - the total comes from a `count(*)` and the page from `LIMIT`/`OFFSET`, both in one
//!   read-only repeatable-read transaction, so they see the same records.

use factum_core::ValueType as Typed;
use factum_core::{FilterOp, FilterValue, TranslatedQuery, ViewField, ViewQuery};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

use crate::view_records::no_nul;

type CoreResult<T> = factum_core::Result<T>;

/// A bound parameter of a translated query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// A declared field's name.
    Field(&'static str),
    Text(String),
    Number(f64),
    Bool(bool),
    Texts(Vec<String>),
    Numbers(Vec<f64>),
    Bools(Vec<bool>),
    Int(i64),
}

/// Binds `args` to `query` in order.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    args: impl IntoIterator<Item = &'q Arg>,
) -> Query<'q, Postgres, PgArguments> {
    for arg in args {
        query = match arg {
            Arg::Field(name) => query.bind(*name),
            Arg::Text(text) => query.bind(text.as_str()),
            Arg::Number(number) => query.bind(*number),
            Arg::Bool(flag) => query.bind(*flag),
            Arg::Texts(texts) => query.bind(texts.as_slice()),
            Arg::Numbers(numbers) => query.bind(numbers.as_slice()),
            Arg::Bools(flags) => query.bind(flags.as_slice()),
            Arg::Int(int) => query.bind(*int),
        };
    }
    query
}

/// A query translated to SQL, with [`Arg`]s as its parameters.
pub(crate) type Translation = TranslatedQuery<Arg>;

/// How a JSON type is read and bound in SQL.
trait Sql {
    /// The field `$f` as this type, NULL when it holds anything else or is missing. The
    /// `CASE` makes sure a cast only ever sees a value of its type.
    fn read(self, f: usize) -> String;
    /// The SQL type of a parameter of this type.
    fn sql_type(self) -> &'static str;
}

impl Sql for Typed {
    fn read(self, f: usize) -> String {
        match self {
            Self::Text => format!(
                "(CASE WHEN jsonb_typeof(data -> ${f}::text) = 'string' \
                 THEN data ->> ${f}::text END) COLLATE \"C\""
            ),
            Self::Number => format!(
                "(CASE WHEN jsonb_typeof(data -> ${f}::text) = 'number' \
                 THEN (data ->> ${f}::text)::double precision END)"
            ),
            Self::Bool => format!(
                "(CASE WHEN jsonb_typeof(data -> ${f}::text) = 'boolean' \
                 THEN (data -> ${f}::text)::boolean END)"
            ),
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "double precision",
            Self::Bool => "boolean",
        }
    }
}

/// A filter value as a typed argument.
fn typed_value(value: &FilterValue) -> CoreResult<(Typed, Arg)> {
    Ok(match value {
        FilterValue::Text(text) => {
            no_nul(text, "a filter value")?;
            (Typed::Text, Arg::Text(text.clone()))
        }
        FilterValue::Number(number) => (Typed::Number, Arg::Number(*number)),
        FilterValue::Bool(flag) => (Typed::Bool, Arg::Bool(*flag)),
        FilterValue::List(_) => return Err(invalid("a list is only a value of 'in'")),
    })
}

/// A validation error with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> factum_core::Error {
    factum_core::Error::Validation(message.into())
}

/// Numbered arguments, with each field's name bound once however often it is used.
struct Args {
    values: Vec<Arg>,
    fields: Vec<(&'static str, usize)>,
}

impl Args {
    fn push(&mut self, arg: Arg) -> usize {
        self.values.push(arg);
        self.values.len()
    }

    /// The parameter holding a field's name. The name is the declared field's, never the
    /// query's text.
    fn field(&mut self, fields: &[ViewField], name: &str) -> CoreResult<usize> {
        let spec = fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| invalid(format!("unknown field '{name}'")))?;
        if let Some((_, index)) = self.fields.iter().find(|(n, _)| *n == spec.name) {
            return Ok(*index);
        }
        no_nul(spec.name, "a field name")?;
        let index = self.push(Arg::Field(spec.name));
        self.fields.push((spec.name, index));
        Ok(index)
    }
}

/// The values of an `in` list, each taken out of its case by `of_type`, which answers
/// `None` for a value of another type than the list's first.
fn in_list<T>(
    values: &[FilterValue],
    of_type: impl Fn(&FilterValue) -> Option<CoreResult<T>>,
) -> CoreResult<Vec<T>> {
    values
        .iter()
        .map(|v| {
            of_type(v).unwrap_or_else(|| Err(invalid("the values of 'in' must be of one type")))
        })
        .collect()
}

/// Translates a query that [`ViewQuery::validate`] accepted against `fields`. `$1` is the
/// view type.
pub(crate) fn translate(
    view_type: &str,
    query: &ViewQuery,
    fields: &[ViewField],
) -> CoreResult<Translation> {
    no_nul(view_type, "a view type")?;
    let mut args = Args {
        values: vec![Arg::Text(view_type.to_owned())],
        fields: Vec::new(),
    };
    let mut where_sql = String::from("view_type = $1::text");
    for filter in &query.filters {
        let f = args.field(fields, &filter.field)?;
        let clause = match (filter.op, &filter.value) {
            (FilterOp::In, FilterValue::List(values)) => {
                let Some(first) = values.first() else {
                    return Err(invalid("operator 'in' takes a non-empty list"));
                };
                let (typed, _) = typed_value(first)?;
                let list = match typed {
                    Typed::Text => Arg::Texts(in_list(values, |v| match v {
                        FilterValue::Text(t) => {
                            Some(no_nul(t, "a filter value").map(|()| t.clone()))
                        }
                        _ => None,
                    })?),
                    Typed::Number => Arg::Numbers(in_list(values, |v| match v {
                        FilterValue::Number(n) => Some(Ok(*n)),
                        _ => None,
                    })?),
                    Typed::Bool => Arg::Bools(in_list(values, |v| match v {
                        FilterValue::Bool(b) => Some(Ok(*b)),
                        _ => None,
                    })?),
                };
                let v = args.push(list);
                format!("{} = ANY (${v}::{}[])", typed.read(f), typed.sql_type())
            }
            (FilterOp::Contains, FilterValue::Text(needle)) => {
                no_nul(needle, "a filter value")?;
                let v = args.push(Arg::Text(needle.clone()));
                format!("strpos({}, ${v}::text) > 0", Typed::Text.read(f))
            }
            (FilterOp::In | FilterOp::Contains, value) => {
                return Err(invalid(format!(
                    "operator '{}' does not take {value:?}",
                    filter.op.name()
                )));
            }
            (op, value) => {
                let (typed, arg) = typed_value(value)?;
                let v = args.push(arg);
                let compared =
                    |sql_op: &str| format!("{} {sql_op} ${v}::{}", typed.read(f), typed.sql_type());
                match op {
                    FilterOp::Eq => compared("="),
                    // NULL (missing, null, another type) is "not equal".
                    FilterOp::Ne => format!("({}) IS NOT TRUE", compared("=")),
                    FilterOp::Lt => compared("<"),
                    FilterOp::Lte => compared("<="),
                    FilterOp::Gt => compared(">"),
                    FilterOp::Gte => compared(">="),
                    FilterOp::In | FilterOp::Contains => {
                        return Err(invalid(format!(
                            "operator '{}' does not take {value:?}",
                            filter.op.name()
                        )));
                    }
                }
            }
        };
        where_sql.push_str(" AND ");
        where_sql.push_str(&clause);
    }
    let filter_count = args.values.len();

    let mut order_sql = String::new();
    // Keys that cannot change the order are left out: a query of a thousand keys on one
    // field sorts as one key.
    for key in query.effective_sort() {
        let f = args.field(fields, &key.field)?;
        let (direction, nulls) = if key.descending {
            ("DESC", "NULLS LAST")
        } else {
            ("ASC", "NULLS FIRST")
        };
        // The rank orders JSON types as the reference does (missing/null first); within a
        // rank exactly one of the typed reads is not NULL. All flip for a descending key,
        // as the reference reverses the whole comparison.
        order_sql.push_str(&format!(
            "CASE jsonb_typeof(data -> ${f}::text) WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 \
             WHEN 'string' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END {direction}, \
             {} {direction} {nulls}, {} {direction} {nulls}, {} {direction} {nulls}, ",
            Typed::Bool.read(f),
            Typed::Number.read(f),
            Typed::Text.read(f),
        ));
    }
    order_sql.push_str("view_id COLLATE \"C\" ASC");
    Ok(Translation::new(
        where_sql,
        order_sql,
        args.values,
        filter_count,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use factum_core::{FieldKind, Filter, SortKey};

    const FIELDS: &[ViewField] = &[
        ViewField::new("name", FieldKind::Text),
        ViewField::new("n", FieldKind::Number),
        ViewField::new("done", FieldKind::Boolean),
    ];

    #[test]
    fn every_name_and_value_is_a_bound_parameter() {
        let query = ViewQuery {
            filters: vec![
                Filter {
                    field: "name".into(),
                    op: FilterOp::Eq,
                    value: FilterValue::Text("x' OR 1=1; --".into()),
                },
                Filter {
                    field: "n".into(),
                    op: FilterOp::In,
                    value: FilterValue::List(vec![
                        FilterValue::Number(1.0),
                        FilterValue::Number(2.5),
                    ]),
                },
            ],
            sort: vec![
                SortKey {
                    field: "name".into(),
                    descending: true,
                },
                SortKey {
                    field: "done".into(),
                    descending: false,
                },
            ],
            ..ViewQuery::default()
        };
        query.validate(FIELDS).unwrap();
        let t = translate("v' OR 1=1", &query, FIELDS).unwrap();
        for text in ["x'", "OR 1=1", "name", "done", "'n'", "2.5"] {
            assert!(!t.where_sql.contains(text), "{text} in {}", t.where_sql);
            assert!(!t.order_sql.contains(text), "{text} in {}", t.order_sql);
        }
        // Each field's name is bound once and used by filters and sorts alike.
        assert_eq!(
            t.filter_params,
            [
                Arg::Text("v' OR 1=1".into()),
                Arg::Field("name"),
                Arg::Text("x' OR 1=1; --".into()),
                Arg::Field("n"),
                Arg::Numbers(vec![1.0, 2.5]),
            ]
        );
        assert_eq!(t.order_params, [Arg::Field("done")]);
        assert!(t.order_sql.contains("$2::text"), "{}", t.order_sql);
        assert!(t.order_sql.contains("$6::text"), "{}", t.order_sql);
        assert!(t.order_sql.ends_with("view_id COLLATE \"C\" ASC"));
    }

    #[test]
    fn field_names_come_from_the_declared_fields_only() {
        let query = ViewQuery {
            sort: vec![SortKey {
                field: "nope".into(),
                descending: false,
            }],
            ..ViewQuery::default()
        };
        assert!(matches!(
            translate("v", &query, FIELDS),
            Err(factum_core::Error::Validation(_))
        ));
    }

    #[test]
    fn nul_in_a_filter_value_is_a_validation_error() {
        let query = ViewQuery::parse(Some("name:contains:a\0b"), None, None, None, FIELDS).unwrap();
        assert!(matches!(
            translate("v", &query, FIELDS),
            Err(factum_core::Error::Validation(_))
        ));
    }
}
