//! The [`ViewStore`] of [`PostgresEventStore`]: record reads and queries, projection batches,
//! parked events and resets. The SQL of records lives in `view_records`, the translation of a
//! [`ViewQuery`] in `view_query`.
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

use async_trait::async_trait;
use factum_core::{
    Page, ParkedEvent, ProjectionBatch, ProjectionCheckpoint, ViewField, ViewQuery, ViewRecord,
    ViewStore,
};

use sqlx::{Row, SqlStr};

use crate::error::database_error;
use crate::sql::trusted;
use crate::store::PostgresEventStore;
use crate::view_query::{Arg, bind_all, invalid, translate};
use crate::view_records::{
    VIEW_COLUMNS, checkpoint_of, no_nul, prepare_changes, view_record, write_changes,
};

type CoreResult<T> = factum_core::Result<T>;

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
            return Err(ProjectionCheckpoint::moved(
                projection,
                expected_checkpoint,
                actual,
            ));
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

impl PostgresEventStore {
    /// The records `sql` selects with its parameters `$1` and `$2`.
    async fn views_where(
        &self,
        sql: SqlStr,
        first: &str,
        second: &str,
    ) -> CoreResult<Vec<ViewRecord>> {
        self.inner()
            .breaker
            .call(async move {
                let rows = sqlx::query(sql)
                    .bind(first)
                    .bind(second)
                    .fetch_all(&self.inner().pool)
                    .await
                    .map_err(database_error)?;
                rows.iter().map(view_record).collect()
            })
            .await
    }
}

#[async_trait]
impl ViewStore for PostgresEventStore {
    async fn get_view(&self, view_type: &str, view_id: &str) -> CoreResult<Option<ViewRecord>> {
        let sql = self.inner().views_sql.get.clone();
        let records = self.views_where(sql, view_type, view_id).await?;
        Ok(records.into_iter().next())
    }

    async fn list_views_of(
        &self,
        view_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<Vec<ViewRecord>> {
        let sql = self.inner().views_sql.list_of.clone();
        self.views_where(sql, view_type, aggregate_id).await
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
            let limit = translation.filter_params.len() + translation.order_params.len() + 1;
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
            let total: i64 = bind_all(sqlx::query(trusted(count_sql)), &translation.filter_params)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(database_error)?;
            let total = u64::try_from(total).unwrap_or(0);
            let items = if offset >= total {
                Vec::new()
            } else {
                let all = translation
                    .filter_params
                    .iter()
                    .chain(&translation.order_params)
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
                no_nul(&parked.event.aggregate_type, "an aggregate type")?;
                no_nul(&parked.event.aggregate_id, "an aggregate id")?;
                no_nul(&parked.event.event_type, "an event type")?;
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

    async fn unpark_event(&self, projection: &str, position: u64) -> CoreResult<bool> {
        self.inner()
            .breaker
            .call(async move {
                no_nul(projection, "a projection name")?;
                let inner = self.inner();
                crate::parked::delete_one(
                    &inner.pool,
                    &inner.views_sql.schema,
                    projection,
                    position,
                )
                .await
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
