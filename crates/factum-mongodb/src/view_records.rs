//! View record changes as documents, and their guarded write (see [`crate::views`] for
//! why a write is guarded by position).

use factum_core::{Result, ViewChange, ViewRecord};
use mongodb::Collection;
use mongodb::bson::{Document, doc};

use crate::codec::{get_str, get_u64, pair_id, to_i64};
use crate::error::{is_duplicate_key, mongo_error};
use crate::view_query::queryable;

/// A change as stored in a commit or a pending batch.
pub(crate) fn change_doc(change: &ViewChange) -> Result<Document> {
    Ok(match change {
        ViewChange::Upsert(record) => doc! {
            "vt": &record.view_type,
            "vid": &record.view_id,
            "agg": &record.aggregate_id,
            "v": to_i64(record.version, "a view record version")?,
            "data": &record.data,
        },
        ViewChange::Delete { view_type, view_id } => {
            doc! {"vt": view_type, "vid": view_id, "del": true}
        }
    })
}

pub(crate) fn change_of(doc: &Document) -> Result<ViewChange> {
    let view_type = get_str(doc, "vt")?.to_owned();
    let view_id = get_str(doc, "vid")?.to_owned();
    if doc.get_bool("del").unwrap_or(false) {
        return Ok(ViewChange::Delete { view_type, view_id });
    }
    Ok(ViewChange::Upsert(ViewRecord {
        view_type,
        view_id,
        aggregate_id: get_str(doc, "agg")?.to_owned(),
        version: get_u64(doc, "v")?,
        data: get_str(doc, "data")?.to_owned(),
    }))
}

pub(crate) fn record_of(doc: &Document) -> Result<ViewRecord> {
    Ok(ViewRecord {
        view_type: get_str(doc, "vt")?.to_owned(),
        view_id: get_str(doc, "vid")?.to_owned(),
        aggregate_id: get_str(doc, "agg")?.to_owned(),
        version: get_u64(doc, "v")?,
        data: get_str(doc, "data")?.to_owned(),
    })
}

/// Applies one change at `position`, unless the record holds a later write.
pub(crate) async fn apply_change(
    views: &Collection<Document>,
    change: &ViewChange,
    position: i64,
) -> Result<()> {
    let update = match change {
        ViewChange::Upsert(record) => {
            let (values, ranks) = queryable(&record.data)?;
            doc! {"$set": {
                "vt": &record.view_type,
                "vid": &record.view_id,
                "agg": &record.aggregate_id,
                "v": to_i64(record.version, "a view record version")?,
                "data": &record.data,
                "f": values,
                "r": ranks,
                "pos": position,
                "del": false,
            }}
        }
        ViewChange::Delete { view_type, view_id } => doc! {
            "$set": {"vt": view_type, "vid": view_id, "agg": "", "v": 0_i64, "data": "null",
                     "f": {}, "r": {}, "pos": position, "del": true},
        },
    };
    let (view_type, view_id) = match change {
        ViewChange::Upsert(record) => (&record.view_type, &record.view_id),
        ViewChange::Delete { view_type, view_id } => (view_type, view_id),
    };
    let filter = doc! {"_id": pair_id(view_type, view_id), "pos": {"$lte": position}};
    match views.update_one(filter, update).upsert(true).await {
        Ok(_) => Ok(()),
        // The record holds a later write: this change is older than what is stored.
        Err(error) if is_duplicate_key(&error) => Ok(()),
        Err(error) => Err(mongo_error(error)),
    }
}
