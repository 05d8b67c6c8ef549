//! Documents to and from the core's records: events, snapshots, view records.
//!
//! JSON (payloads, metadata, states, view records) is stored as text, so it reads back byte
//! for byte; view records also carry a queryable copy of their top-level scalars (see
//! [`crate::view_query`]). Timestamps are RFC 3339 text with nanoseconds, which round-trips
//! exactly; versions and positions are 64-bit integers.

use chrono::{DateTime, SecondsFormat, Utc};
use factum_core::Result;
use factum_core::store::{NewEvent, Snapshot, StoredEvent};
use mongodb::bson::{Bson, Document, doc};

use crate::error::corrupt;

/// A `u64` as MongoDB's signed 64-bit integer; larger values cannot be stored.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        factum_core::Error::Validation(format!("{what} {value} is too large for MongoDB"))
    })
}

/// A stored non-negative integer (written as 64-bit, read as either width).
pub(crate) fn get_u64(document: &Document, key: &str) -> Result<u64> {
    let value = match document.get(key) {
        Some(Bson::Int64(value)) => *value,
        Some(Bson::Int32(value)) => i64::from(*value),
        _ => return Err(corrupt(format!("field {key} is not an integer"))),
    };
    u64::try_from(value).map_err(|_| corrupt(format!("field {key} is negative")))
}

pub(crate) fn get_str<'a>(document: &'a Document, key: &str) -> Result<&'a str> {
    document
        .get_str(key)
        .map_err(|_| corrupt(format!("field {key} is not a string")))
}

pub(crate) fn get_doc<'a>(document: &'a Document, key: &str) -> Result<&'a Document> {
    document
        .get_document(key)
        .map_err(|_| corrupt(format!("field {key} is not a document")))
}

pub(crate) fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn get_time(document: &Document, key: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(get_str(document, key)?)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| corrupt(format!("field {key} is not a timestamp")))
}

/// The `_id` of a document keyed by two strings: their JSON array, which no other pair
/// spells the same way.
pub(crate) fn pair_id(first: &str, second: &str) -> String {
    serde_json::Value::from(vec![first, second]).to_string()
}

/// An event of a commit document, at `version` and `position`.
pub(crate) fn event_doc(event: &NewEvent, version: i64, position: i64) -> Document {
    doc! {
        "id": event.event_id.to_string(),
        "v": version,
        "pos": position,
        "ty": &event.event_type,
        "sv": i64::from(event.schema_version),
        "p": &event.payload,
        "m": &event.metadata,
        "at": time_text(event.recorded_at),
    }
}

/// The events of a commit document, in version order.
pub(crate) fn commit_events(commit: &Document) -> Result<Vec<StoredEvent>> {
    let aggregate_type = get_str(commit, "t")?;
    let aggregate_id = get_str(commit, "a")?;
    let events = commit
        .get_array("events")
        .map_err(|_| corrupt("a commit without events"))?;
    events
        .iter()
        .map(|event| {
            let event = event
                .as_document()
                .ok_or_else(|| corrupt("an event is not a document"))?;
            Ok(StoredEvent {
                position: get_u64(event, "pos")?,
                event_id: get_str(event, "id")?
                    .parse()
                    .map_err(|_| corrupt("an event id is not a UUID"))?,
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                version: get_u64(event, "v")?,
                event_type: get_str(event, "ty")?.to_owned(),
                schema_version: u32::try_from(get_u64(event, "sv")?)
                    .map_err(|_| corrupt("a schema version above 32 bits"))?,
                payload: get_str(event, "p")?.to_owned(),
                metadata: get_str(event, "m")?.to_owned(),
                recorded_at: get_time(event, "at")?,
            })
        })
        .collect()
}

/// A snapshot's stored fields (with its aggregate kept by the caller).
pub(crate) fn snapshot_doc(snapshot: &Snapshot) -> Result<Document> {
    Ok(doc! {
        "v": to_i64(snapshot.version, "a snapshot version")?,
        "state": &snapshot.state,
        "at": time_text(snapshot.taken_at),
    })
}

pub(crate) fn snapshot_of(
    aggregate_type: &str,
    aggregate_id: &str,
    doc: &Document,
) -> Result<Snapshot> {
    Ok(Snapshot {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        version: get_u64(doc, "v")?,
        state: get_str(doc, "state")?.to_owned(),
        taken_at: get_time(doc, "at")?,
    })
}
