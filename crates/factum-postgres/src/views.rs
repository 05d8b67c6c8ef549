//! View records and projection checkpoints on PostgreSQL, and the translation of a
//! [`ViewQuery`] to SQL.
//!
//! Records live in `<schema>.views`, their JSON in a `jsonb` column `data`. Inline view
//! changes are written by `append_events` in the append's own transaction (see the
//! [`store`](crate::store) module); projection batches and resets run in transactions of
//! their own here.
//!
//! # Projection checkpoints
//!
//! A batch moves its checkpoint with a compare-and-set in the batch's transaction:
//! `UPDATE ... SET position = new WHERE projection = $1 AND position = expected` (or, from 0,
//! an `INSERT ... ON CONFLICT DO NOTHING`). The row lock the update takes is held until the
//! commit, and a second runner's update of the same row waits for it, then re-checks its
//! condition against the committed row and matches nothing: it gets a `Conflict`, and writes
//! nothing. A reset takes the same row lock first, so a batch either commits before the reset
//! (and is wiped by it) or is refused after it.
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

use std::collections::HashSet;

use async_trait::async_trait;
use factum_core::{
    ExpectedVersion, FilterOp, FilterValue, Page, ParkedEvent, ProjectionBatch,
    ProjectionCheckpoint, ViewChange, ViewField, ViewQuery, ViewRecord, ViewStore,
};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row, SqlStr};

use crate::error::{Error, database_error};
use crate::sql::trusted;
use crate::store::PostgresEventStore;

type CoreResult<T> = factum_core::Result<T>;

/// The columns every view read returns, in the names [`view_record`] decodes.
pub(crate) const VIEW_COLUMNS: &str =
    "view_type, view_id, aggregate_id, version, data::text AS data";

/// Checks an append's or a batch's view changes and keeps the last change of each record:
/// applying them in order comes to the same, and the SQL can then write all upserts in one
/// statement and all deletes in another.
pub(crate) fn prepare_changes(changes: Vec<ViewChange>) -> CoreResult<Vec<ViewChange>> {
    let mut seen = HashSet::with_capacity(changes.len());
    let mut kept = Vec::with_capacity(changes.len());
    for change in changes.into_iter().rev() {
        let (view_type, view_id) = match &change {
            ViewChange::Upsert(record) => (&record.view_type, &record.view_id),
            ViewChange::Delete { view_type, view_id } => (view_type, view_id),
        };
        if !seen.insert((view_type.clone(), view_id.clone())) {
            continue;
        }
        if let ViewChange::Upsert(record) = &change {
            validate_record(record)?;
        } else {
            no_nul(view_type, "a view type")?;
            no_nul(view_id, "a view id")?;
        }
        kept.push(change);
    }
    kept.reverse();
    Ok(kept)
}

/// What PostgreSQL would refuse inside a group's transaction (failing the whole group) is
/// refused here, before anything is sent.
fn validate_record(record: &ViewRecord) -> CoreResult<()> {
    no_nul(&record.view_type, "a view type")?;
    no_nul(&record.view_id, "a view id")?;
    no_nul(&record.aggregate_id, "an aggregate id")?;
    if i64::try_from(record.version).is_err() {
        return Err(factum_core::Error::Validation(format!(
            "{} view record {:?}: version {} is too large",
            record.view_type, record.view_id, record.version
        )));
    }
    // Parsed as a value, not skimmed: numbers beyond `f64` are refused, as the reference
    // query semantics (and the `double precision` casts of queries) cannot compare them.
    serde_json::from_str::<serde_json::Value>(&record.data)
        .map(drop)
        .map_err(|source| factum_core::Error::Serialization {
            what: format!("{} view record {:?}", record.view_type, record.view_id),
            source,
        })
}

fn no_nul(text: &str, what: &str) -> CoreResult<()> {
    if text.contains('\0') {
        return Err(factum_core::Error::Validation(format!(
            "{what} {text:?} contains a NUL character, which PostgreSQL text cannot hold"
        )));
    }
    Ok(())
}

/// Prepared view changes as the array arguments of `append_events` and of [`write_changes`].
#[derive(Default)]
pub(crate) struct ChangeArrays<'a> {
    pub(crate) deletes: Vec<bool>,
    pub(crate) view_types: Vec<&'a str>,
    pub(crate) view_ids: Vec<&'a str>,
    pub(crate) aggregate_ids: Vec<Option<&'a str>>,
    pub(crate) versions: Vec<Option<i64>>,
    pub(crate) data: Vec<Option<&'a str>>,
}

impl<'a> ChangeArrays<'a> {
    pub(crate) fn push_all(&mut self, changes: &'a [ViewChange]) {
        for change in changes {
            match change {
                ViewChange::Upsert(record) => {
                    self.deletes.push(false);
                    self.view_types.push(&record.view_type);
                    self.view_ids.push(&record.view_id);
                    self.aggregate_ids.push(Some(&record.aggregate_id));
                    // `prepare_changes` refused versions that do not fit.
                    self.versions
                        .push(Some(i64::try_from(record.version).unwrap_or(i64::MAX)));
                    self.data.push(Some(&record.data));
                }
                ViewChange::Delete { view_type, view_id } => {
                    self.deletes.push(true);
                    self.view_types.push(view_type);
                    self.view_ids.push(view_id);
                    self.aggregate_ids.push(None);
                    self.versions.push(None);
                    self.data.push(None);
                }
            }
        }
    }
}

/// Writes prepared changes (at most one per record) on `conn`, inside the caller's
/// transaction.
pub(crate) async fn write_changes(
    conn: &mut PgConnection,
    sql: &ViewStatements,
    changes: &[ViewChange],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut arrays = ChangeArrays::default();
    arrays.push_all(changes);
    sqlx::query(sql.delete_changes.clone())
        .bind(&arrays.deletes)
        .bind(&arrays.view_types)
        .bind(&arrays.view_ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql.upsert_changes.clone())
        .bind(&arrays.deletes)
        .bind(&arrays.view_types)
        .bind(&arrays.view_ids)
        .bind(&arrays.aggregate_ids)
        .bind(&arrays.versions)
        .bind(&arrays.data)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Decodes a row of the views table (columns as in [`VIEW_COLUMNS`]).
fn view_record(row: &PgRow) -> CoreResult<ViewRecord> {
    let version: i64 = row.try_get("version").map_err(database_error)?;
    Ok(ViewRecord {
        view_type: row.try_get("view_type").map_err(database_error)?,
        view_id: row.try_get("view_id").map_err(database_error)?,
        aggregate_id: row.try_get("aggregate_id").map_err(database_error)?,
        version: u64::try_from(version)
            .map_err(|_| Error::CorruptRow(format!("view record version {version}")))?,
        data: row.try_get("data").map_err(database_error)?,
    })
}

fn checkpoint_of(position: i64) -> CoreResult<u64> {
    u64::try_from(position)
        .map_err(|_| Error::CorruptRow(format!("projection checkpoint {position}")).into())
}

/// The fixed SQL of views and checkpoints, built once with the quoted schema name.
#[derive(Clone)]
pub(crate) struct ViewStatements {
    schema: String,
    get: SqlStr,
    list_of: SqlStr,
    delete_changes: SqlStr,
    upsert_changes: SqlStr,
    checkpoint: SqlStr,
    move_checkpoint: SqlStr,
    insert_checkpoint: SqlStr,
    reset_checkpoint: SqlStr,
    delete_view_types: SqlStr,
}

impl ViewStatements {
    pub(crate) fn new(s: &str) -> Self {
        Self {
            schema: s.to_owned(),
            get: trusted(format!(
                "SELECT {VIEW_COLUMNS} FROM {s}.views WHERE view_type = $1 AND view_id = $2"
            )),
            list_of: trusted(format!(
                "SELECT {VIEW_COLUMNS} FROM {s}.views WHERE view_type = $1 AND aggregate_id = $2
                ORDER BY view_id COLLATE \"C\""
            )),
            delete_changes: trusted(format!(
                "DELETE FROM {s}.views AS v
                USING unnest($1::boolean[], $2::text[], $3::text[]) AS d(is_delete, view_type, view_id)
                WHERE d.is_delete AND v.view_type = d.view_type AND v.view_id = d.view_id"
            )),
            upsert_changes: trusted(format!(
                "INSERT INTO {s}.views AS v (view_type, view_id, aggregate_id, version, data)
                SELECT u.view_type, u.view_id, u.aggregate_id, u.version, u.data::jsonb
                FROM unnest($1::boolean[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                    $6::text[]) AS u(is_delete, view_type, view_id, aggregate_id, version, data)
                WHERE NOT u.is_delete
                ON CONFLICT (view_type, view_id) DO UPDATE
                SET aggregate_id = EXCLUDED.aggregate_id, version = EXCLUDED.version,
                    data = EXCLUDED.data"
            )),
            checkpoint: trusted(format!(
                "SELECT position, generation FROM {s}.projection_checkpoints WHERE projection = $1"
            )),
            move_checkpoint: trusted(format!(
                "UPDATE {s}.projection_checkpoints SET position = $3
                WHERE projection = $1 AND position = $2 AND generation = $4"
            )),
            insert_checkpoint: trusted(format!(
                "INSERT INTO {s}.projection_checkpoints (projection, position) VALUES ($1, $2)
                ON CONFLICT (projection) DO NOTHING"
            )),
            reset_checkpoint: trusted(format!(
                "INSERT INTO {s}.projection_checkpoints AS c (projection, position, generation)
                VALUES ($1, 0, 1)
                ON CONFLICT (projection) DO UPDATE SET position = 0, generation = c.generation + 1"
            )),
            delete_view_types: trusted(format!("DELETE FROM {s}.views WHERE view_type = ANY ($1)")),
        }
    }
}

/// A bound parameter of a translated query.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
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

fn bind_all<'q>(
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

/// A query translated to SQL: the `WHERE` clause and its arguments, then the `ORDER BY`
/// clause, whose arguments follow them (so the count binds `filter_args` only).
#[derive(Debug)]
struct Translation {
    where_sql: String,
    order_sql: String,
    filter_args: Vec<Arg>,
    order_args: Vec<Arg>,
}

/// The JSON type a comparison reads a field as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typed {
    Text,
    Number,
    Bool,
}

impl Typed {
    /// The field `$f` as this type, NULL when it holds anything else or is missing. The
    /// `CASE` makes sure a cast only ever sees a value of its type.
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

    /// The SQL type of a parameter of this type.
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

fn invalid(message: impl Into<String>) -> factum_core::Error {
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

/// Translates a query that [`ViewQuery::validate`] accepted against `fields`. `$1` is the
/// view type.
fn translate(view_type: &str, query: &ViewQuery, fields: &[ViewField]) -> CoreResult<Translation> {
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
                    Typed::Text => Arg::Texts(
                        values
                            .iter()
                            .map(|v| match v {
                                FilterValue::Text(t) => {
                                    no_nul(t, "a filter value").map(|()| t.clone())
                                }
                                _ => Err(invalid("the values of 'in' must be of one type")),
                            })
                            .collect::<CoreResult<_>>()?,
                    ),
                    Typed::Number => Arg::Numbers(
                        values
                            .iter()
                            .map(|v| match v {
                                FilterValue::Number(n) => Ok(*n),
                                _ => Err(invalid("the values of 'in' must be of one type")),
                            })
                            .collect::<CoreResult<_>>()?,
                    ),
                    Typed::Bool => Arg::Bools(
                        values
                            .iter()
                            .map(|v| match v {
                                FilterValue::Bool(b) => Ok(*b),
                                _ => Err(invalid("the values of 'in' must be of one type")),
                            })
                            .collect::<CoreResult<_>>()?,
                    ),
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
    let order_args = args.values.split_off(filter_count);
    Ok(Translation {
        where_sql,
        order_sql,
        filter_args: args.values,
        order_args,
    })
}

impl PostgresEventStore {
    /// Applies a projection batch, with the event it parks if any, in one transaction.
    async fn apply_batch(
        &self,
        batch: ProjectionBatch,
        parked: Option<ParkedEvent>,
    ) -> CoreResult<()> {
        let ProjectionBatch {
            projection,
            expected,
            checkpoint,
            changes,
        } = batch;
        let expected_checkpoint = expected.position;
        no_nul(&projection, "a projection name")?;
        let checkpoint = i64::try_from(checkpoint).map_err(|_| {
            invalid(format!(
                "projection {projection}: checkpoint {checkpoint} is too large"
            ))
        })?;
        let changes = prepare_changes(changes)?;
        let inner = self.inner();
        let sql = &inner.views_sql;
        let mut tx = inner.pool.begin().await.map_err(database_error)?;
        // Compare-and-set, holding the checkpoint row's lock until the commit.
        let moved = match (
            i64::try_from(expected_checkpoint),
            i64::try_from(expected.generation),
        ) {
            (Ok(expected_position), Ok(expected_generation)) => {
                let updated = sqlx::query(sql.move_checkpoint.clone())
                    .bind(&projection)
                    .bind(expected_position)
                    .bind(checkpoint)
                    .bind(expected_generation)
                    .execute(&mut *tx)
                    .await
                    .map_err(database_error)?
                    .rows_affected();
                if updated == 0 && expected_position == 0 && expected_generation == 0 {
                    // No row yet is checkpoint 0; a runner inserting it meanwhile wins.
                    sqlx::query(sql.insert_checkpoint.clone())
                        .bind(&projection)
                        .bind(checkpoint)
                        .execute(&mut *tx)
                        .await
                        .map_err(database_error)?
                        .rows_affected()
                } else {
                    updated
                }
            }
            // No stored checkpoint can be that large.
            _ => 0,
        };
        if moved == 0 {
            let current: Option<(i64, i64)> = sqlx::query_as(sql.checkpoint.clone())
                .bind(&projection)
                .fetch_optional(&mut *tx)
                .await
                .map_err(database_error)?;
            let actual = checkpoint_of(current.map_or(0, |(position, _)| position))?;
            tracing::debug!(
                %projection,
                expected = expected_checkpoint,
                actual,
                "projection batch refused: the checkpoint moved"
            );
            // Rolled back when `tx` drops: nothing of the batch is written.
            return Err(factum_core::Error::Conflict {
                aggregate_type: "projection".to_owned(),
                aggregate_id: projection,
                expected: ExpectedVersion::Exact(expected_checkpoint),
                actual: Some(actual),
            });
        }
        write_changes(&mut tx, sql, &changes)
            .await
            .map_err(database_error)?;
        if let Some(parked) = parked {
            crate::parked::insert(&mut tx, &sql.schema, &parked).await?;
        }
        tx.commit().await.map_err(database_error)?;
        Ok(())
    }
}

#[async_trait]
impl ViewStore for PostgresEventStore {
    async fn get_view(&self, view_type: &str, view_id: &str) -> CoreResult<Option<ViewRecord>> {
        self.inner()
            .breaker
            .call(async move {
                let inner = self.inner();
                let row = sqlx::query(inner.views_sql.get.clone())
                    .bind(view_type)
                    .bind(view_id)
                    .fetch_optional(&inner.pool)
                    .await
                    .map_err(database_error)?;
                row.as_ref().map(view_record).transpose()
            })
            .await
    }

    async fn list_views_of(
        &self,
        view_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<Vec<ViewRecord>> {
        self.inner()
            .breaker
            .call(async move {
                let inner = self.inner();
                let rows = sqlx::query(inner.views_sql.list_of.clone())
                    .bind(view_type)
                    .bind(aggregate_id)
                    .fetch_all(&inner.pool)
                    .await
                    .map_err(database_error)?;
                rows.iter().map(view_record).collect()
            })
            .await
    }

    async fn query_views(
        &self,
        view_type: &str,
        query: &ViewQuery,
        fields: &[ViewField],
    ) -> CoreResult<Page<ViewRecord>> {
        self.inner().breaker.call(async move {
            // Field names reach the translation only once checked against the declared fields.
            query.validate(fields)?;
            let translation = translate(view_type, query, fields)?;
            let inner = self.inner();
            let s = &inner.views_sql.schema;
            // Placeholders and the schema only: the translation binds every field name and
            // operand (see `crate::sql`).
            let count_sql = format!(
                "SELECT count(*) FROM {s}.views WHERE {}",
                translation.where_sql
            );
            let limit = translation.filter_args.len() + translation.order_args.len() + 1;
            let page_sql = format!(
                "SELECT {VIEW_COLUMNS} FROM {s}.views WHERE {} ORDER BY {} LIMIT ${limit}::bigint \
                 OFFSET ${}::bigint",
                translation.where_sql,
                translation.order_sql,
                limit + 1
            );
            let offset = query.offset();
            let paging = [
                Arg::Int(i64::from(query.page_size)),
                Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX)),
            ];

            let mut tx = inner.pool.begin().await.map_err(database_error)?;
            // The total and the page see one snapshot.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(database_error)?;
            let total: i64 = bind_all(sqlx::query(trusted(count_sql)), &translation.filter_args)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(database_error)?;
            let total = u64::try_from(total).unwrap_or(0);
            let items = if offset >= total {
                Vec::new()
            } else {
                let all = translation
                    .filter_args
                    .iter()
                    .chain(&translation.order_args)
                    .chain(&paging);
                let rows = bind_all(sqlx::query(trusted(page_sql)), all)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(database_error)?;
                rows.iter().map(view_record).collect::<CoreResult<_>>()?
            };
            tx.commit().await.map_err(database_error)?;
            Ok(Page {
                items,
                total,
                page: query.page,
                page_size: query.page_size,
            })
        }).await
    }

    async fn apply_projection(&self, batch: ProjectionBatch) -> CoreResult<()> {
        self.inner()
            .breaker
            .call(async move { self.apply_batch(batch, None).await })
            .await
    }

    async fn park_event(
        &self,
        expected: ProjectionCheckpoint,
        parked: ParkedEvent,
    ) -> CoreResult<()> {
        self.inner()
            .breaker
            .call(async move {
                no_nul(&parked.aggregate_type, "an aggregate type")?;
                no_nul(&parked.aggregate_id, "an aggregate id")?;
                no_nul(&parked.event_type, "an event type")?;
                let batch = ProjectionBatch {
                    projection: parked.projection.clone(),
                    expected,
                    checkpoint: parked.position,
                    changes: Vec::new(),
                };
                let parked = ParkedEvent {
                    error: parked.error.replace('\0', ""),
                    ..parked
                };
                self.apply_batch(batch, Some(parked)).await
            })
            .await
    }

    async fn parked_events(&self, projection: &str) -> CoreResult<Vec<ParkedEvent>> {
        self.inner()
            .breaker
            .call(async move {
                let inner = self.inner();
                crate::parked::list(&inner.pool, &inner.views_sql.schema, projection).await
            })
            .await
    }

    async fn projection_checkpoint(&self, projection: &str) -> CoreResult<ProjectionCheckpoint> {
        self.inner()
            .breaker
            .call(async move {
                let inner = self.inner();
                let stored: Option<(i64, i64)> = sqlx::query_as(inner.views_sql.checkpoint.clone())
                    .bind(projection)
                    .fetch_optional(&inner.pool)
                    .await
                    .map_err(database_error)?;
                let (position, generation) = stored.unwrap_or((0, 0));
                Ok(ProjectionCheckpoint {
                    position: checkpoint_of(position)?,
                    generation: checkpoint_of(generation)?,
                })
            })
            .await
    }

    async fn reset_projection(&self, projection: &str, view_types: &[&str]) -> CoreResult<()> {
        self.inner()
            .breaker
            .call(async move {
                no_nul(projection, "a projection name")?;
                for view_type in view_types {
                    no_nul(view_type, "a view type")?;
                }
                let inner = self.inner();
                let sql = &inner.views_sql;
                let mut tx = inner.pool.begin().await.map_err(database_error)?;
                // The checkpoint row's lock first: a batch in flight commits before the reset (and
                // its records are deleted with the rest) or is refused after it.
                sqlx::query(sql.reset_checkpoint.clone())
                    .bind(projection)
                    .execute(&mut *tx)
                    .await
                    .map_err(database_error)?;
                sqlx::query(sql.delete_view_types.clone())
                    .bind(view_types)
                    .execute(&mut *tx)
                    .await
                    .map_err(database_error)?;
                crate::parked::delete_all(&mut tx, &sql.schema, projection).await?;
                tx.commit().await.map_err(database_error)?;
                Ok(())
            })
            .await
    }
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

    fn upsert(id: &str, data: &str) -> ViewChange {
        ViewChange::Upsert(ViewRecord {
            view_type: "v".into(),
            view_id: id.into(),
            aggregate_id: "a".into(),
            version: 1,
            data: data.into(),
        })
    }

    fn delete(id: &str) -> ViewChange {
        ViewChange::Delete {
            view_type: "v".into(),
            view_id: id.into(),
        }
    }

    #[test]
    fn the_last_change_of_each_record_is_kept_in_order() {
        let kept = prepare_changes(vec![
            upsert("x", "1"),
            upsert("y", "2"),
            delete("x"),
            upsert("z", "3"),
            upsert("y", "4"),
        ])
        .unwrap();
        assert_eq!(kept, vec![delete("x"), upsert("z", "3"), upsert("y", "4")]);
    }

    #[test]
    fn bad_records_are_refused_before_sending() {
        assert!(matches!(
            prepare_changes(vec![upsert("x", "{not json")]),
            Err(factum_core::Error::Serialization { .. })
        ));
        // Beyond f64: no query could compare it.
        assert!(matches!(
            prepare_changes(vec![upsert("x", r#"{"n": 1e400}"#)]),
            Err(factum_core::Error::Serialization { .. })
        ));
        assert!(matches!(
            prepare_changes(vec![upsert("x\0", "{}")]),
            Err(factum_core::Error::Validation(_))
        ));
        let mut huge = upsert("x", "{}");
        if let ViewChange::Upsert(record) = &mut huge {
            record.version = u64::MAX;
        }
        assert!(matches!(
            prepare_changes(vec![huge]),
            Err(factum_core::Error::Validation(_))
        ));
        // A record replaced later in the same batch is not checked: it is never written.
        assert!(prepare_changes(vec![upsert("x", "{bad"), upsert("x", "{}")]).is_ok());
    }

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
            t.filter_args,
            [
                Arg::Text("v' OR 1=1".into()),
                Arg::Field("name"),
                Arg::Text("x' OR 1=1; --".into()),
                Arg::Field("n"),
                Arg::Numbers(vec![1.0, 2.5]),
            ]
        );
        assert_eq!(t.order_args, [Arg::Field("done")]);
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
