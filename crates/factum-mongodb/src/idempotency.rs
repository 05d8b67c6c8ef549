//! Idempotency records, unique by `(scope, key)` through the `_id` of their document.
//!
//! A record that comes with an append is written in three single-document steps: the
//! record is inserted **reserved** (`pending`: a token, unique to this append), the commit
//! is inserted carrying the same token (`it`), and the reservation is cleared. The insert
//! of the reservation is what makes the key the append's alone (a second one hits `_id`);
//! the commit is what makes the record count: a reserved record counts only once a commit
//! with its token exists. A refused append deletes its reservation; one whose writer died
//! before its commit is taken over once [`RESERVATION_LEASE`] has passed. So the record is
//! stored with the events, or (as seen by every reader) not at all.

use chrono::{DateTime, Utc};
use factum_core::store::rules;
use factum_core::{IdempotencyRecord, Result};
use mongodb::bson::{Document, doc};

use crate::codec::{get_str, get_time, get_u64, pair_id, time_text};
use crate::error::{is_duplicate_key, mongo_error};
use crate::schema::Collections;

/// How long a reservation without a commit holds its key before another writer may take
/// it over (its writer died between the reservation and the commit).
pub const RESERVATION_LEASE: chrono::Duration = chrono::Duration::seconds(60);

fn record_doc(record: &IdempotencyRecord) -> Document {
    doc! {
        "_id": pair_id(&record.scope, &record.key),
        "scope": &record.scope,
        "key": &record.key,
        "hash": &record.request_hash,
        "status": i64::from(record.status),
        "response": &record.response,
        "created": time_text(record.created_at),
        "expires": time_text(record.expires_at),
        "exp_us": record.expires_at.timestamp_micros(),
    }
}

fn record_of(doc: &Document) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        scope: get_str(doc, "scope")?.to_owned(),
        key: get_str(doc, "key")?.to_owned(),
        request_hash: get_str(doc, "hash")?.to_owned(),
        status: u16::try_from(get_u64(doc, "status")?).unwrap_or(u16::MAX),
        response: get_str(doc, "response")?.to_owned(),
        created_at: get_time(doc, "created")?,
        expires_at: get_time(doc, "expires")?,
    })
}

/// What a stored record document is, seen at `now`.
enum Held {
    /// It counts: a record, or a reservation whose commit exists.
    Live(IdempotencyRecord),
    /// It does not count and can be replaced: expired, or a reservation abandoned.
    Replaceable,
    /// A reservation whose append may still commit.
    InFlight,
}

async fn classify(cols: &Collections, doc: &Document, now: DateTime<Utc>) -> Result<Held> {
    let record = record_of(doc)?;
    if !record.is_live_at(now) {
        return Ok(Held::Replaceable);
    }
    let Ok(token) = doc.get_str("pending") else {
        return Ok(Held::Live(record));
    };
    let committed = cols
        .commits
        .find_one(doc! {"it": token})
        .projection(doc! {"_id": 1})
        .await
        .map_err(mongo_error)?
        .is_some();
    if committed {
        return Ok(Held::Live(record));
    }
    let reserved = get_time(doc, "reserved")?;
    Ok(if Utc::now() - reserved > RESERVATION_LEASE {
        Held::Replaceable
    } else {
        Held::InFlight
    })
}

/// Deletes `doc` if it is still exactly what was read (so two writers replacing one record
/// never delete each other's).
async fn delete_exact(cols: &Collections, doc: &Document) -> Result<()> {
    let mut filter = doc! {"_id": doc.get("_id"), "exp_us": doc.get("exp_us")};
    match doc.get_str("pending") {
        Ok(token) => filter.insert("pending", token),
        Err(_) => filter.insert("pending", doc! {"$exists": false}),
    };
    cols.idempotency
        .delete_one(filter)
        .await
        .map_err(mongo_error)?;
    Ok(())
}

/// The live record of `(scope, key)` at `now`.
pub(crate) async fn find(
    cols: &Collections,
    scope: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<IdempotencyRecord>> {
    let stored = cols
        .idempotency
        .find_one(doc! {"_id": pair_id(scope, key)})
        .await
        .map_err(mongo_error)?;
    match stored {
        Some(doc) => match classify(cols, &doc, now).await? {
            Held::Live(record) => Ok(Some(record)),
            Held::Replaceable | Held::InFlight => Ok(None),
        },
        None => Ok(None),
    }
}

/// Inserts `doc` as the record of its key, replacing one that no longer counts. Returns
/// the record that holds the key instead when there is one (or `None` for an append in
/// flight).
async fn insert(
    cols: &Collections,
    record: &IdempotencyRecord,
    doc: Document,
) -> Result<Result<(), Option<IdempotencyRecord>>> {
    loop {
        match cols.idempotency.insert_one(&doc).await {
            Ok(_) => return Ok(Ok(())),
            Err(error) if is_duplicate_key(&error) => {}
            Err(error) => return Err(mongo_error(error)),
        }
        let Some(stored) = cols
            .idempotency
            .find_one(doc! {"_id": doc.get("_id")})
            .await
            .map_err(mongo_error)?
        else {
            continue;
        };
        match classify(cols, &stored, record.created_at).await? {
            Held::Live(holder) => return Ok(Err(Some(holder))),
            Held::InFlight => return Ok(Err(None)),
            Held::Replaceable => delete_exact(cols, &stored).await?,
        }
    }
}

/// Stores `record` unless a live one holds its key; returns the one that holds it.
pub(crate) async fn remember(
    cols: &Collections,
    record: IdempotencyRecord,
) -> Result<IdempotencyRecord> {
    match insert(cols, &record, record_doc(&record)).await? {
        Ok(()) => Ok(record),
        Err(Some(holder)) => Ok(holder),
        Err(None) => Err(rules::key_taken(&record)),
    }
}

/// Reserves `record`'s key for an append; returns the reservation's token.
pub(crate) async fn reserve(cols: &Collections, record: &IdempotencyRecord) -> Result<String> {
    let token = uuid::Uuid::new_v4().to_string();
    let mut doc = record_doc(record);
    doc.insert("pending", &token);
    doc.insert("reserved", time_text(Utc::now()));
    match insert(cols, record, doc).await? {
        Ok(()) => Ok(token),
        Err(_) => Err(rules::key_taken(record)),
    }
}

/// Clears a reservation whose commit is stored, or deletes one whose append was refused.
pub(crate) async fn settle(
    cols: &Collections,
    record: &IdempotencyRecord,
    token: &str,
    committed: bool,
) -> Result<()> {
    let filter = doc! {"_id": pair_id(&record.scope, &record.key), "pending": token};
    if committed {
        cols.idempotency
            .update_one(filter, doc! {"$unset": {"pending": "", "reserved": ""}})
            .await
            .map_err(mongo_error)?;
    } else {
        cols.idempotency
            .delete_one(filter)
            .await
            .map_err(mongo_error)?;
    }
    Ok(())
}

/// Deletes the records expired at `now`.
pub(crate) async fn purge(cols: &Collections, now: DateTime<Utc>) -> Result<u64> {
    let deleted = cols
        .idempotency
        .delete_many(doc! {"exp_us": {"$lte": now.timestamp_micros()}})
        .await
        .map_err(mongo_error)?;
    Ok(deleted.deleted_count)
}
