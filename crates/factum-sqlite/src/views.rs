//! The [`ViewStore`] of [`SqliteEventStore`]: record reads and queries on the reader pool,
//! projection batches and resets through the writer.

use factum_core::{
    Page, ParkedEvent, ProjectionBatch, ProjectionCheckpoint, Result as CoreResult, ViewField,
    ViewQuery, ViewRecord, ViewStore, async_trait,
};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use crate::error::sql_error;
use crate::parked::EncodedParked;
use crate::rows::{clamp_to_sql, to_sql_int};
use crate::store::SqliteEventStore;
use crate::view_query::{Translation, translate};
use crate::view_records::{
    EncodedProjection, ProjectionReset, checkpoint, encode_changes, read_records, view_columns,
};
use crate::writer::WriteRequest;

impl SqliteEventStore {
    /// The records `sql` selects with its parameters `?1` and `?2`.
    async fn views_where(
        &self,
        sql: &'static str,
        first: &str,
        second: &str,
    ) -> CoreResult<Vec<ViewRecord>> {
        let (first, second) = (first.to_owned(), second.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
            read_records(&mut stmt, params![first, second])
        })
        .await
    }
}

/// One record, by type and id.
const GET_VIEW: &str = concat!(
    "SELECT ",
    view_columns!(),
    " FROM views WHERE view_type = ?1 AND view_id = ?2"
);

/// The records of one aggregate, by type and aggregate id, in id order.
const LIST_VIEWS_OF: &str = concat!(
    "SELECT ",
    view_columns!(),
    " FROM views WHERE view_type = ?1 AND aggregate_id = ?2 ORDER BY view_id"
);

#[async_trait]
impl ViewStore for SqliteEventStore {
    async fn get_view(&self, view_type: &str, view_id: &str) -> CoreResult<Option<ViewRecord>> {
        let records = self.views_where(GET_VIEW, view_type, view_id).await?;
        Ok(records.into_iter().next())
    }

    async fn list_views_of(
        &self,
        view_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<Vec<ViewRecord>> {
        self.views_where(LIST_VIEWS_OF, view_type, aggregate_id)
            .await
    }

    async fn query_views(
        &self,
        view_type: &str,
        query: &ViewQuery,
        fields: &[ViewField],
    ) -> CoreResult<Page<ViewRecord>> {
        // Field names reach the translation only once checked against the declared fields.
        query.validate(fields)?;
        let translation = translate(view_type, query)?;
        let (page, page_size) = (query.page, query.page_size);
        let offset = query.offset();
        self.read(move |conn| {
            let Translation {
                where_sql,
                order_sql,
                filter_params,
                order_params,
            } = translation;
            // One read transaction: the total and the page see the same snapshot.
            let tx = conn.unchecked_transaction().map_err(sql_error)?;
            let total: i64 = tx
                .prepare_cached(&format!("SELECT count(*) FROM views WHERE {where_sql}"))
                .and_then(|mut stmt| {
                    stmt.query_row(params_from_iter(filter_params.iter()), |row| row.get(0))
                })
                .map_err(sql_error)?;
            let total = u64::try_from(total).unwrap_or(0);
            let items = if offset >= total {
                Vec::new()
            } else {
                let limit = filter_params.len() + order_params.len() + 1;
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {} FROM views WHERE {where_sql}
                         ORDER BY {order_sql} LIMIT ?{limit} OFFSET ?{}",
                        view_columns!(),
                        limit + 1
                    ))
                    .map_err(sql_error)?;
                let paging = [
                    Value::Integer(i64::from(page_size)),
                    Value::Integer(clamp_to_sql(offset)),
                ];
                let all = filter_params
                    .iter()
                    .chain(order_params.iter())
                    .chain(paging.iter());
                read_records(&mut stmt, params_from_iter(all))?
            };
            tx.commit().map_err(sql_error)?;
            Ok(Page {
                items,
                total,
                page,
                page_size,
            })
        })
        .await
    }

    async fn apply_projection(&self, batch: ProjectionBatch) -> CoreResult<()> {
        let encoded = EncodedProjection {
            checkpoint: to_sql_int(batch.checkpoint, "projection checkpoint")?,
            expected: batch.expected,
            changes: encode_changes(batch.changes)?,
            projection: batch.projection,
            parked: None,
        };
        self.write(|reply| WriteRequest::ApplyProjection(encoded, reply))
            .await
    }

    async fn projection_checkpoint(&self, projection: &str) -> CoreResult<ProjectionCheckpoint> {
        let projection = projection.to_owned();
        self.read(move |conn| checkpoint(conn, &projection)).await
    }

    async fn reset_projection(&self, projection: &str, view_types: &[&str]) -> CoreResult<()> {
        let reset = ProjectionReset {
            projection: projection.to_owned(),
            view_types: view_types.iter().map(|t| (*t).to_owned()).collect(),
        };
        self.write(|reply| WriteRequest::ResetProjection(reset, reply))
            .await
    }

    async fn park_event(
        &self,
        expected: ProjectionCheckpoint,
        parked: ParkedEvent,
    ) -> CoreResult<()> {
        let parked = EncodedParked::new(parked)?;
        let encoded = EncodedProjection {
            projection: parked.projection().to_owned(),
            expected,
            checkpoint: parked.position(),
            changes: Vec::new(),
            parked: Some(parked),
        };
        self.write(|reply| WriteRequest::ApplyProjection(encoded, reply))
            .await
    }

    async fn parked_events(&self, projection: &str) -> CoreResult<Vec<ParkedEvent>> {
        let projection = projection.to_owned();
        self.read(move |conn| crate::parked::list(conn, &projection))
            .await
    }

    async fn unpark_event(&self, projection: &str, position: u64) -> CoreResult<bool> {
        let key = (
            projection.to_owned(),
            to_sql_int(position, "parked event position")?,
        );
        let deleted = self.write(|reply| WriteRequest::Unpark(key, reply)).await?;
        Ok(deleted > 0)
    }
}
