//! Row codecs of the event store: checks of a request before it is sent, the decoding of
//! event rows, and the conversions between Rust and PostgreSQL values (integers, timestamps
//! split into microseconds and the remaining nanoseconds).

use chrono::{DateTime, Timelike, Utc};
use factum_core::store::{AppendRequest, StoredEvent, rules};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{Error, Result, database_error};

type CoreResult<T> = factum_core::Result<T>;

/// Checks the request by the core's rules, then what PostgreSQL would otherwise refuse with a
/// less helpful message, before anything is sent: bad input changes nothing.
pub(crate) fn validate(request: &AppendRequest) -> CoreResult<()> {
    rules::validate(request)?;
    // PostgreSQL text cannot hold NUL characters.
    let texts = [&request.aggregate_type, &request.aggregate_id]
        .into_iter()
        .chain(request.events.iter().map(|e| &e.event_type))
        .chain(
            request
                .idempotency
                .iter()
                .flat_map(|r| [&r.scope, &r.key, &r.request_hash, &r.response]),
        );
    for text in texts {
        if text.contains('\0') {
            return Err(factum_core::Error::Validation(format!(
                "{text:?} contains a NUL character, which PostgreSQL text cannot hold"
            )));
        }
    }
    for (index, event) in request.events.iter().enumerate() {
        validate_json(&event.payload, || {
            format!("the payload of event {index} ({})", event.event_type)
        })?;
    }
    if let Some(snapshot) = &request.snapshot {
        validate_json(&snapshot.state, || "the snapshot state".to_owned())?;
    }
    Ok(())
}

pub(crate) fn validate_json(text: &str, what: impl FnOnce() -> String) -> CoreResult<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|source| factum_core::Error::Serialization {
            what: what(),
            source,
        })
}

/// The stored events of an append, from its request and the rows `append_events` returned
/// for it, in position order (which is the order of its events).
pub(crate) fn appended(request: &AppendRequest, rows: &[PgRow]) -> CoreResult<Vec<StoredEvent>> {
    if rows.len() != request.events.len() {
        return Err(Error::CorruptRow(format!(
            "an append of {} events stored {}",
            request.events.len(),
            rows.len()
        ))
        .into());
    }
    rows.iter()
        .zip(&request.events)
        .map(|(row, event)| {
            let position: i64 = row.try_get("position").map_err(database_error)?;
            let version: i64 = row.try_get("version").map_err(database_error)?;
            let payload: String = row.try_get("payload").map_err(database_error)?;
            // As stored: jsonb's normal form, the same text reads return.
            let metadata: String = row.try_get("metadata").map_err(database_error)?;
            Ok(StoredEvent {
                position: to_u64(position, "position")?,
                event_id: event.event_id,
                aggregate_type: request.aggregate_type.clone(),
                aggregate_id: request.aggregate_id.clone(),
                version: to_u64(version, "version")?,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload,
                metadata,
                recorded_at: event.recorded_at,
            })
        })
        .collect()
}

/// Decodes a row of the events table (columns as in [`EVENT_COLUMNS`]).
pub(crate) fn stored_event(row: &PgRow) -> Result<StoredEvent> {
    let schema_version: i64 = row.try_get("schema_version")?;
    Ok(StoredEvent {
        position: to_u64(row.try_get("position")?, "position")?,
        event_id: row.try_get("event_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: to_u64(row.try_get("version")?, "version")?,
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| Error::CorruptRow(format!("schema version {schema_version}")))?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: join_nanos(row.try_get("recorded_at")?, row.try_get("recorded_at_ns")?),
    })
}

/// Decodes a row of a stream read (columns as in [`STREAM_COLUMNS`], by index) of the stream
/// `aggregate_type`/`aggregate_id`.
///
/// [`STREAM_COLUMNS`]: crate::statements::STREAM_COLUMNS
pub(crate) fn stream_event(
    row: &PgRow,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<StoredEvent> {
    let schema_version: i64 = row.try_get(4)?;
    Ok(StoredEvent {
        position: to_u64(row.try_get(0)?, "position")?,
        event_id: row.try_get(1)?,
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        version: to_u64(row.try_get(2)?, "version")?,
        event_type: row.try_get(3)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| Error::CorruptRow(format!("schema version {schema_version}")))?,
        payload: row.try_get(5)?,
        metadata: row.try_get(6)?,
        recorded_at: join_nanos(row.try_get(7)?, row.try_get(8)?),
    })
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::CorruptRow(format!("{what} {value}")))
}

/// Versions and limits beyond `i64::MAX` cannot occur in a table; clamping keeps comparisons
/// right without an error path.
pub(crate) fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn clamp_usize(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Splits a timestamp into the whole microseconds `timestamptz` keeps and the nanoseconds
/// below them, so it round-trips exactly.
pub(crate) fn split_nanos(at: DateTime<Utc>) -> (DateTime<Utc>, i16) {
    let nanos = at.nanosecond();
    let below_micro = nanos % 1_000;
    let truncated = at.with_nanosecond(nanos - below_micro).unwrap_or(at);
    // `below_micro` < 1000, so it fits.
    (truncated, i16::try_from(below_micro).unwrap_or(0))
}

pub(crate) fn join_nanos(at: DateTime<Utc>, nanos: i16) -> DateTime<Utc> {
    at + chrono::Duration::nanoseconds(i64::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn timestamps_split_and_join_exactly() {
        let at = at("2024-05-06T07:08:09.123456789Z");
        let (micros, ns) = split_nanos(at);
        assert_eq!(micros.nanosecond(), 123_456_000);
        assert_eq!(ns, 789);
        assert_eq!(join_nanos(micros, ns), at);
    }

    #[test]
    fn timestamps_before_2000_split_the_same_way() {
        let at = at("1999-12-31T23:59:59.999999999Z");
        let (micros, ns) = split_nanos(at);
        assert_eq!(ns, 999);
        assert_eq!(join_nanos(micros, ns), at);
    }

    #[test]
    fn huge_values_clamp_instead_of_wrapping() {
        assert_eq!(clamp_i64(u64::MAX), i64::MAX);
        assert_eq!(clamp_i64(7), 7);
        assert!(matches!(to_u64(-1, "version"), Err(Error::CorruptRow(_))));
    }

    #[test]
    fn invalid_json_is_refused_before_sending() {
        assert!(validate_json("{\"a\":1}", String::new).is_ok());
        assert!(matches!(
            validate_json("{not json", || "the payload".into()),
            Err(factum_core::Error::Serialization { ref what, .. }) if what == "the payload"
        ));
    }
}
