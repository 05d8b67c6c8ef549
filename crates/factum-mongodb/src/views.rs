//! The [`ViewStore`]: view records, projection checkpoints and parked events.
//!
//! # Writes without multi-document transactions
//!
//! - **Record writes are guarded by position.** Each record holds the position of the write
//!   that made it (`pos`); a change at position `p` applies only over a record at `p` or
//!   below (an upsert whose guard fails hits the unique `_id` and is dropped). So applying a
//!   change twice, or late, never moves a record backwards. A deletion leaves a marker
//!   (`del: true`) with its position, so a late upsert cannot bring the record back; reads
//!   skip markers.
//! - **A projection batch rides on its checkpoint.** One compare-and-set on the checkpoint
//!   document moves its position and stores the batch (`pending`) in the same single-document
//!   write; the changes are then applied (guarded) and `pending` cleared. Whoever reads the
//!   checkpoint next finishes a pending batch first, so a crash in between loses nothing.
//!   Parking an event rides the same way.

use async_trait::async_trait;
use factum_core::{
    Error, EventRef, Page, ParkedEvent, ProjectionBatch, ProjectionCheckpoint, Result, ViewField,
    ViewQuery, ViewRecord, ViewStore,
};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use crate::codec::{get_str, get_time, get_u64, pair_id, time_text, to_i64};
use crate::error::{corrupt, is_duplicate_key, mongo_error};
use crate::store::MongoEventStore;
use crate::view_query::translate;
use crate::view_records::{apply_change, change_doc, change_of, record_of};

async fn collect(cursor: mongodb::Cursor<Document>) -> Result<Vec<Document>> {
    cursor.try_collect().await.map_err(mongo_error)
}

fn projection_conflict(
    projection: &str,
    expected: ProjectionCheckpoint,
    actual: Option<u64>,
) -> Error {
    Error::Conflict {
        aggregate_type: "projection".to_owned(),
        aggregate_id: projection.to_owned(),
        expected: factum_core::ExpectedVersion::Exact(expected.position),
        actual,
    }
}

fn parked_doc(parked: &ParkedEvent) -> Result<Document> {
    Ok(doc! {
        "_id": pair_id(&parked.projection, &parked.position.to_string()),
        "projection": &parked.projection,
        "position": to_i64(parked.position, "a position")?,
        "event_id": parked.event.event_id.to_string(),
        "aggregate_type": &parked.event.aggregate_type,
        "aggregate_id": &parked.event.aggregate_id,
        "version": to_i64(parked.event.version, "a version")?,
        "event_type": &parked.event.event_type,
        "error": &parked.error,
        "attempts": i64::from(parked.attempts),
        "parked_at": time_text(parked.parked_at),
    })
}

fn parked_of(doc: &Document) -> Result<ParkedEvent> {
    Ok(ParkedEvent {
        projection: get_str(doc, "projection")?.to_owned(),
        position: get_u64(doc, "position")?,
        event: EventRef {
            event_id: get_str(doc, "event_id")?
                .parse()
                .map_err(|_| corrupt("a parked event id is not a UUID"))?,
            aggregate_type: get_str(doc, "aggregate_type")?.to_owned(),
            aggregate_id: get_str(doc, "aggregate_id")?.to_owned(),
            version: get_u64(doc, "version")?,
            event_type: get_str(doc, "event_type")?.to_owned(),
        },
        error: get_str(doc, "error")?.to_owned(),
        attempts: u32::try_from(get_u64(doc, "attempts")?).unwrap_or(u32::MAX),
        parked_at: get_time(doc, "parked_at")?,
    })
}

impl MongoEventStore {
    /// Finishes the batch a checkpoint carries, if any, and returns the checkpoint.
    async fn settled_checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint> {
        let cols = self.collections();
        let Some(stored) = cols
            .checkpoints
            .find_one(doc! {"_id": projection})
            .await
            .map_err(mongo_error)?
        else {
            return Ok(ProjectionCheckpoint::default());
        };
        let checkpoint = ProjectionCheckpoint {
            position: get_u64(&stored, "position")?,
            generation: get_u64(&stored, "generation")?,
        };
        if let Ok(pending) = stored.get_document("pending") {
            let position = to_i64(checkpoint.position, "a position")?;
            for change in pending
                .get_array("changes")
                .map_err(|_| corrupt("a pending batch without changes"))?
            {
                let change = change
                    .as_document()
                    .ok_or_else(|| corrupt("a view change is not a document"))?;
                apply_change(&cols.views, &change_of(change)?, position).await?;
            }
            if let Ok(parked) = pending.get_document("parked") {
                cols.parked
                    .replace_one(doc! {"_id": parked.get("_id")}, parked.clone())
                    .upsert(true)
                    .await
                    .map_err(mongo_error)?;
            }
            cols.checkpoints
                .update_one(
                    doc! {"_id": projection, "position": position, "generation": to_i64(checkpoint.generation, "a generation")?},
                    doc! {"$unset": {"pending": ""}},
                )
                .await
                .map_err(mongo_error)?;
        }
        Ok(checkpoint)
    }

    /// Moves `projection` from `expected` to `position` carrying `pending`, then finishes it.
    async fn move_checkpoint(
        &self,
        projection: &str,
        expected: ProjectionCheckpoint,
        position: u64,
        pending: Document,
    ) -> Result<()> {
        let current = self.settled_checkpoint(projection).await?;
        if current != expected {
            return Err(projection_conflict(
                projection,
                expected,
                Some(current.position),
            ));
        }
        let filter = doc! {
            "_id": projection,
            "position": to_i64(expected.position, "a position")?,
            "generation": to_i64(expected.generation, "a generation")?,
            "pending": {"$exists": false},
        };
        let update =
            doc! {"$set": {"position": to_i64(position, "a position")?, "pending": pending}};
        match self
            .collections()
            .checkpoints
            .update_one(filter, update)
            .upsert(true)
            .await
        {
            Ok(result) if result.matched_count == 1 || result.upserted_id.is_some() => {}
            Ok(_) => return Err(projection_conflict(projection, expected, None)),
            Err(error) if is_duplicate_key(&error) => {
                return Err(projection_conflict(projection, expected, None));
            }
            Err(error) => return Err(mongo_error(error)),
        }
        self.settled_checkpoint(projection).await.map(|_| ())
    }
}

#[async_trait]
impl ViewStore for MongoEventStore {
    async fn get_view(&self, view_type: &str, view_id: &str) -> Result<Option<ViewRecord>> {
        let found = self
            .collections()
            .views
            .find_one(doc! {"_id": pair_id(view_type, view_id), "del": false})
            .await
            .map_err(mongo_error)?;
        found.as_ref().map(record_of).transpose()
    }

    async fn list_views_of(&self, view_type: &str, aggregate_id: &str) -> Result<Vec<ViewRecord>> {
        let cursor = self
            .collections()
            .views
            .find(doc! {"vt": view_type, "agg": aggregate_id, "del": false})
            .sort(doc! {"vid": 1})
            .await
            .map_err(mongo_error)?;
        collect(cursor).await?.iter().map(record_of).collect()
    }

    async fn query_views(
        &self,
        view_type: &str,
        query: &ViewQuery,
        fields: &[ViewField],
    ) -> Result<Page<ViewRecord>> {
        let (filter, sort) = translate(view_type, query, fields)?;
        let views = &self.collections().views;
        let total = views
            .count_documents(filter.clone())
            .await
            .map_err(mongo_error)?;
        let cursor = views
            .find(filter)
            .sort(sort)
            .skip(query.offset())
            .limit(i64::from(query.page_size))
            .await
            .map_err(mongo_error)?;
        let items = collect(cursor)
            .await?
            .iter()
            .map(record_of)
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            total,
            page: query.page,
            page_size: query.page_size,
        })
    }

    async fn apply_projection(&self, batch: ProjectionBatch) -> Result<()> {
        let changes: Vec<Document> = batch
            .changes
            .iter()
            .map(change_doc)
            .collect::<Result<_>>()?;
        self.move_checkpoint(
            &batch.projection,
            batch.expected,
            batch.checkpoint,
            doc! {"changes": changes},
        )
        .await
    }

    async fn projection_checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint> {
        self.settled_checkpoint(projection).await
    }

    async fn reset_projection(&self, projection: &str, view_types: &[&str]) -> Result<()> {
        let cols = self.collections();
        let types: Vec<Bson> = view_types
            .iter()
            .map(|t| Bson::String((*t).to_owned()))
            .collect();
        cols.views
            .delete_many(doc! {"vt": {"$in": types}})
            .await
            .map_err(mongo_error)?;
        cols.parked
            .delete_many(doc! {"projection": projection})
            .await
            .map_err(mongo_error)?;
        cols.checkpoints
            .update_one(
                doc! {"_id": projection},
                doc! {"$set": {"position": 0_i64}, "$inc": {"generation": 1_i64}, "$unset": {"pending": ""}},
            )
            .upsert(true)
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    async fn park_event(&self, expected: ProjectionCheckpoint, parked: ParkedEvent) -> Result<()> {
        let pending = doc! {"changes": Vec::<Document>::new(), "parked": parked_doc(&parked)?};
        self.move_checkpoint(&parked.projection, expected, parked.position, pending)
            .await
    }

    async fn parked_events(&self, projection: &str) -> Result<Vec<ParkedEvent>> {
        self.settled_checkpoint(projection).await?;
        let cursor = self
            .collections()
            .parked
            .find(doc! {"projection": projection})
            .sort(doc! {"position": 1})
            .await
            .map_err(mongo_error)?;
        collect(cursor).await?.iter().map(parked_of).collect()
    }

    async fn unpark_event(&self, projection: &str, position: u64) -> Result<bool> {
        self.settled_checkpoint(projection).await?;
        let deleted = self
            .collections()
            .parked
            .delete_one(doc! {"_id": pair_id(projection, &position.to_string())})
            .await
            .map_err(mongo_error)?;
        Ok(deleted.deleted_count == 1)
    }
}
