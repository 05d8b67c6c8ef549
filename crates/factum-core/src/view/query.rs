//! Queries over view records: filters, sorting and paging, parsed from the HTTP query
//! string against a view's declared fields, and evaluated in memory for stores without SQL.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::model::{FieldKind, ViewField, ViewRecord};

/// A comparison a filter applies.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Equal to one of a list.
    In,
    /// Contains a substring (text fields only).
    Contains,
}

impl FilterOp {
    /// The operator's name in query strings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::In => "in",
            Self::Contains => "contains",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "in" => Self::In,
            "contains" => Self::Contains,
            _ => return None,
        })
    }

    fn allowed_on(self, kind: FieldKind) -> bool {
        match kind {
            FieldKind::Text => true,
            FieldKind::Number => self != Self::Contains,
            FieldKind::Boolean => matches!(self, Self::Eq | Self::Ne | Self::In),
        }
    }
}

/// A typed value to compare a field with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterValue {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A list, for `in`.
    List(Vec<FilterValue>),
}

/// The JSON type of a scalar [`FilterValue`]: a store's SQL compares a field as the type of
/// the value it is compared with, and only when the field holds that type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A JSON string.
    Text,
    /// A JSON number.
    Number,
    /// A JSON boolean.
    Bool,
}

/// One filter: `field op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// The field name.
    pub field: String,
    /// The operator.
    pub op: FilterOp,
    /// The value (a list for `in`).
    pub value: FilterValue,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    /// The field name.
    pub field: String,
    /// Descending instead of ascending.
    pub descending: bool,
}

/// The largest page a query may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// How many filter clauses, and how many sort keys, a query may have by default.
pub const DEFAULT_MAX_CLAUSES: usize = 16;

/// How many values one `in` filter may list by default.
pub const DEFAULT_MAX_IN_VALUES: usize = 100;

/// How large a parsed query may be: a query string is client input, and each clause costs
/// the store work (SQLite refuses very deep expressions and long `ORDER BY`s outright).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryLimits {
    /// The most filter clauses, and separately the most sort keys.
    pub max_clauses: usize,
    /// The most values of one `in` filter.
    pub max_in_values: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_clauses: DEFAULT_MAX_CLAUSES,
            max_in_values: DEFAULT_MAX_IN_VALUES,
        }
    }
}

impl QueryLimits {
    /// Limits of `max_clauses` filter clauses (and as many sort keys) and `max_in_values`
    /// values per `in` filter.
    pub const fn new(max_clauses: usize, max_in_values: usize) -> Self {
        Self {
            max_clauses,
            max_in_values,
        }
    }

    fn check_count(what: &str, count: usize, max: usize) -> Result<()> {
        if count > max {
            return Err(invalid(format!(
                "the query has {count} {what}; at most {max} are allowed"
            )));
        }
        Ok(())
    }
}

/// A query over a view's records: filters (all must hold), sort keys, and a page.
///
/// ```
/// use factum_core::{FieldKind, ViewField, ViewQuery};
/// const FIELDS: &[ViewField] = &[
///     ViewField::new("owner", FieldKind::Text),
///     ViewField::new("balance", FieldKind::Number),
/// ];
/// let query = ViewQuery::parse(Some("owner:eq:Alice,balance:gte:100"), Some("-balance"), Some(1), Some(20), FIELDS)
///     .unwrap();
/// assert!(query.matches(&serde_json::json!({"owner": "Alice", "balance": 150.5})));
/// assert!(!query.matches(&serde_json::json!({"owner": "Alice", "balance": 99})));
/// assert!(ViewQuery::parse(Some("nope:eq:1"), None, None, None, FIELDS).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewQuery {
    /// Filters, all of which must hold.
    pub filters: Vec<Filter>,
    /// Sort keys, most significant first; ties are broken by record id.
    pub sort: Vec<SortKey>,
    /// The page, from 1.
    pub page: u32,
    /// Records per page, 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

impl Default for ViewQuery {
    fn default() -> Self {
        Self {
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            page_size: 50,
        }
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The records of this page.
    pub items: Vec<T>,
    /// How many records match in all.
    pub total: u64,
    /// The page, from 1.
    pub page: u32,
    /// Records per page.
    pub page_size: u32,
}

impl<T> Page<T> {
    /// Converts every item.
    pub fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            total: self.total,
            page: self.page,
            page_size: self.page_size,
        })
    }
}

/// A query a SQL store translated: the `WHERE` clause and its bound parameters `P`, then
/// the `ORDER BY` clause, whose parameters follow them (so a count binds `filter_params`
/// only).
#[derive(Debug)]
pub struct TranslatedQuery<P> {
    /// The condition on the store's view records.
    pub where_sql: String,
    /// The order of the records, ending in a unique key.
    pub order_sql: String,
    /// The parameters of `where_sql`, numbered from 1.
    pub filter_params: Vec<P>,
    /// The parameters of `order_sql`, numbered after `filter_params`.
    pub order_params: Vec<P>,
}

impl<P> TranslatedQuery<P> {
    /// The translation whose parameters are `params`: the first `filter_count` those of
    /// `where_sql`, the rest those of `order_sql`.
    pub fn new(
        where_sql: String,
        order_sql: String,
        mut params: Vec<P>,
        filter_count: usize,
    ) -> Self {
        let order_params = params.split_off(filter_count.min(params.len()));
        Self {
            where_sql,
            order_sql,
            filter_params: params,
            order_params,
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Validation(message.into())
}

fn field<'a>(fields: &'a [ViewField], name: &str) -> Result<&'a ViewField> {
    fields.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
        invalid(format!(
            "unknown field '{name}'; queryable fields: {}",
            known.join(", ")
        ))
    })
}

fn parse_value(kind: FieldKind, text: &str) -> Result<FilterValue> {
    match kind {
        FieldKind::Text => Ok(FilterValue::Text(text.to_owned())),
        FieldKind::Number => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(FilterValue::Number)
            .ok_or_else(|| invalid(format!("'{text}' is not a number"))),
        FieldKind::Boolean => match text {
            "true" => Ok(FilterValue::Bool(true)),
            "false" => Ok(FilterValue::Bool(false)),
            _ => Err(invalid(format!("'{text}' is not true or false"))),
        },
    }
}

impl ViewQuery {
    /// Parses the HTTP form of a query and validates it against the view's fields.
    ///
    /// `filter` is a comma-separated list of `field:op:value` (`in` takes `a|b|c`); `sort` a
    /// comma-separated list of fields, each optionally prefixed by `-` for descending. At
    /// most the [default limits](QueryLimits::default) of clauses apply.
    pub fn parse(
        filter: Option<&str>,
        sort: Option<&str>,
        page: Option<u32>,
        page_size: Option<u32>,
        fields: &[ViewField],
    ) -> Result<Self> {
        Self::parse_limited(
            filter,
            sort,
            page,
            page_size,
            fields,
            QueryLimits::default(),
        )
    }

    /// [`parse`](Self::parse) with these limits on the number of clauses: more is a
    /// validation error, found before any clause is parsed.
    pub fn parse_limited(
        filter: Option<&str>,
        sort: Option<&str>,
        page: Option<u32>,
        page_size: Option<u32>,
        fields: &[ViewField],
        limits: QueryLimits,
    ) -> Result<Self> {
        fn clauses(text: Option<&str>) -> Vec<&str> {
            text.unwrap_or("")
                .split(',')
                .filter(|c| !c.is_empty())
                .collect()
        }
        let (filter, sort) = (clauses(filter), clauses(sort));
        QueryLimits::check_count("filter clauses", filter.len(), limits.max_clauses)?;
        QueryLimits::check_count("sort keys", sort.len(), limits.max_clauses)?;
        let mut query = Self::default();
        for clause in filter {
            let mut parts = clause.splitn(3, ':');
            let (Some(name), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid(format!("filter '{clause}' is not field:op:value")));
            };
            let spec = field(fields, name)?;
            let op = FilterOp::parse(op).ok_or_else(|| {
                invalid(format!(
                    "unknown operator '{op}'; use eq, ne, lt, lte, gt, gte, in, contains"
                ))
            })?;
            let value = if op == FilterOp::In {
                QueryLimits::check_count(
                    "values in one 'in' filter",
                    value.split('|').count(),
                    limits.max_in_values,
                )?;
                FilterValue::List(
                    value
                        .split('|')
                        .map(|v| parse_value(spec.kind, v))
                        .collect::<Result<_>>()?,
                )
            } else {
                parse_value(spec.kind, value)?
            };
            query.filters.push(Filter {
                field: name.to_owned(),
                op,
                value,
            });
        }
        for key in sort {
            let (name, descending) = match key.strip_prefix('-') {
                Some(name) => (name, true),
                None => (key.strip_prefix('+').unwrap_or(key), false),
            };
            query.sort.push(SortKey {
                field: name.to_owned(),
                descending,
            });
        }
        query.page = page.unwrap_or(1);
        query.page_size = page_size.unwrap_or(50);
        query.validate(fields)?;
        Ok(query)
    }

    /// Checks fields, operators, value types and paging against the view's fields.
    pub fn validate(&self, fields: &[ViewField]) -> Result<()> {
        if self.page == 0 {
            return Err(invalid("page starts at 1"));
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return Err(invalid(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        for filter in &self.filters {
            let spec = field(fields, &filter.field)?;
            if !spec.filterable {
                return Err(invalid(format!("field '{}' cannot be filtered", spec.name)));
            }
            if !filter.op.allowed_on(spec.kind) {
                return Err(invalid(format!(
                    "operator '{}' does not apply to {:?} field '{}'",
                    filter.op.name(),
                    spec.kind,
                    spec.name
                )));
            }
            let values: &[FilterValue] = match (&filter.op, &filter.value) {
                (FilterOp::In, FilterValue::List(values)) if !values.is_empty() => values,
                (FilterOp::In, _) => return Err(invalid("operator 'in' takes a non-empty list")),
                (_, FilterValue::List(_)) => {
                    return Err(invalid(format!(
                        "operator '{}' takes one value",
                        filter.op.name()
                    )));
                }
                (_, value) => std::slice::from_ref(value),
            };
            for value in values {
                let fits = matches!(
                    (spec.kind, value),
                    (FieldKind::Text, FilterValue::Text(_))
                        | (FieldKind::Boolean, FilterValue::Bool(_))
                        | (FieldKind::Number, FilterValue::Number(_))
                );
                if !fits {
                    return Err(invalid(format!(
                        "value {value:?} does not fit {:?} field '{}'",
                        spec.kind, spec.name
                    )));
                }
            }
        }
        for key in &self.sort {
            let spec = field(fields, &key.field)?;
            if !spec.sortable {
                return Err(invalid(format!(
                    "field '{}' cannot be sorted on",
                    spec.name
                )));
            }
        }
        Ok(())
    }

    /// The sort keys that can decide an order: the first key of each field. A later key on
    /// the same field only compares records the earlier one found equal on that field, so
    /// it never changes the order; stores translate only these.
    pub fn effective_sort(&self) -> Vec<&SortKey> {
        let mut keys: Vec<&SortKey> = Vec::with_capacity(self.sort.len());
        for key in &self.sort {
            if !keys.iter().any(|k| k.field == key.field) {
                keys.push(key);
            }
        }
        keys
    }

    /// The number of records to skip for this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.page_size)
    }

    /// Whether a record (as JSON) passes every filter. This is the reference semantics the
    /// SQL translations of the stores must agree with: a missing or null field matches no
    /// comparison but `ne`.
    pub fn matches(&self, record: &serde_json::Value) -> bool {
        self.filters.iter().all(|filter| {
            let actual = record
                .get(&filter.field)
                .unwrap_or(&serde_json::Value::Null);
            match (&filter.op, &filter.value) {
                (FilterOp::In, FilterValue::List(values)) => values
                    .iter()
                    .any(|v| compare(actual, v) == Some(Ordering::Equal)),
                (FilterOp::Contains, FilterValue::Text(needle)) => {
                    actual.as_str().is_some_and(|s| s.contains(needle.as_str()))
                }
                (op, value) => match compare(actual, value) {
                    None => *op == FilterOp::Ne,
                    Some(order) => match op {
                        FilterOp::Eq => order == Ordering::Equal,
                        FilterOp::Ne => order != Ordering::Equal,
                        FilterOp::Lt => order == Ordering::Less,
                        FilterOp::Lte => order != Ordering::Greater,
                        FilterOp::Gt => order == Ordering::Greater,
                        FilterOp::Gte => order != Ordering::Less,
                        FilterOp::In | FilterOp::Contains => false,
                    },
                },
            }
        })
    }

    /// Orders two records (as JSON, with their ids) by the sort keys, then by id.
    pub fn compare_records(
        &self,
        a: (&str, &serde_json::Value),
        b: (&str, &serde_json::Value),
    ) -> Ordering {
        for key in &self.sort {
            let (x, y) = (a.1.get(&key.field), b.1.get(&key.field));
            let order = order_json(x, y);
            let order = if key.descending {
                order.reverse()
            } else {
                order
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        a.0.cmp(b.0)
    }

    /// Runs the query over records in memory: the reference implementation.
    pub fn apply_to(&self, records: Vec<ViewRecord>) -> Result<Page<ViewRecord>> {
        let mut parsed = Vec::with_capacity(records.len());
        for record in records {
            // Plain serde_json on purpose: filters and sorts compare numbers as `f64`, as the
            // SQL translations do (`CAST(.. AS REAL)`, `double precision`); the records
            // themselves are returned as stored, digit for digit.
            let json: serde_json::Value = serde_json::from_str(&record.data).map_err(|e| {
                Error::serialization(
                    format!("{} view record {}", record.view_type, record.view_id),
                    e,
                )
            })?;
            if self.matches(&json) {
                parsed.push((record, json));
            }
        }
        parsed.sort_by(|a, b| self.compare_records((&a.0.view_id, &a.1), (&b.0.view_id, &b.1)));
        let total = parsed.len() as u64;
        let skip = usize::try_from(self.offset()).unwrap_or(usize::MAX);
        let items = parsed
            .into_iter()
            .skip(skip)
            .take(self.page_size as usize)
            .map(|(record, _)| record)
            .collect();
        Ok(Page {
            items,
            total,
            page: self.page,
            page_size: self.page_size,
        })
    }
}

/// Compares a JSON field with a filter value; `None` when they are of different types or the
/// field is missing.
fn compare(actual: &serde_json::Value, value: &FilterValue) -> Option<Ordering> {
    match (actual, value) {
        (serde_json::Value::String(a), FilterValue::Text(b)) => Some(a.as_str().cmp(b.as_str())),
        (serde_json::Value::Number(a), FilterValue::Number(b)) => a.as_f64()?.partial_cmp(b),
        (serde_json::Value::Bool(a), FilterValue::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Orders JSON values for sorting: missing/null first, then booleans, numbers, strings.
fn order_json(a: Option<&serde_json::Value>, b: Option<&serde_json::Value>) -> Ordering {
    use serde_json::Value;
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}
