//! Conversions between core values and SQLite columns.
//!
//! SQLite integers are signed 64-bit: versions, positions and limits above `i64::MAX` are
//! refused on the way in (they cannot be stored) and clamped in queries (nothing is there).

use chrono::{DateTime, SecondsFormat, Utc};
use factum_core::{Metadata, Snapshot, StoredEvent};
use uuid::Uuid;

use crate::error::Error;

/// The columns of `events` in the order [`event_from_row`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "position, aggregate_type, aggregate_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at";

/// The earliest and latest years a timestamp may have: RFC 3339 text only has four digits.
const MIN_YEAR: i32 = 1;
const MAX_YEAR: i32 = 9999;

/// A timestamp as stored: RFC 3339, UTC, nanoseconds, so it reads back exactly.
pub(crate) fn encode_time(time: &DateTime<Utc>, what: &str) -> factum_core::Result<String> {
    use chrono::Datelike;
    if !(MIN_YEAR..=MAX_YEAR).contains(&time.year()) {
        return Err(factum_core::Error::Validation(format!(
            "{what} {time} is outside the years {MIN_YEAR}..={MAX_YEAR}"
        )));
    }
    Ok(time.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

pub(crate) fn decode_time(text: &str, table: &'static str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::corrupt(table, format!("timestamp {text:?}: {e}")))
}

/// A count or version to bind as a SQLite integer, refused if it does not fit.
pub(crate) fn to_sql_int(value: u64, what: &str) -> factum_core::Result<i64> {
    i64::try_from(value)
        .map_err(|_| factum_core::Error::Validation(format!("{what} {value} is too large")))
}

/// A bound for a query: values past `i64::MAX` match nothing anyway.
pub(crate) fn clamp_to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `LIMIT`: SQLite reads a negative limit as "no limit".
pub(crate) fn sql_limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn non_negative(value: i64, table: &'static str, column: &str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::corrupt(table, format!("negative {column} {value}")))
}

/// Remembers the last metadata decoded: the events of one command share their metadata, so
/// runs of equal text are parsed once.
#[derive(Default)]
pub(crate) struct MetadataCache {
    last: Option<(String, Metadata)>,
}

impl MetadataCache {
    fn parse(&mut self, text: String) -> serde_json::Result<Metadata> {
        if let Some((last_text, metadata)) = &self.last {
            if *last_text == text {
                return Ok(metadata.clone());
            }
        }
        let metadata: Metadata = serde_json::from_str(&text)?;
        self.last = Some((text, metadata.clone()));
        Ok(metadata)
    }
}

/// The raw columns of one event row, read without decoding so the statement can be stepped
/// quickly; [`RawEvent::decode`] does the parsing.
pub(crate) struct RawEvent {
    position: i64,
    aggregate_type: String,
    aggregate_id: String,
    version: i64,
    event_id: String,
    event_type: String,
    schema_version: i64,
    payload: String,
    metadata: String,
    recorded_at: String,
}

pub(crate) fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        position: row.get(0)?,
        aggregate_type: row.get(1)?,
        aggregate_id: row.get(2)?,
        version: row.get(3)?,
        event_id: row.get(4)?,
        event_type: row.get(5)?,
        schema_version: row.get(6)?,
        payload: row.get(7)?,
        metadata: row.get(8)?,
        recorded_at: row.get(9)?,
    })
}

impl RawEvent {
    pub(crate) fn event_id(&self) -> &str {
        &self.event_id
    }

    /// Parses the columns; `metadata` remembers the previous row's metadata, which the next
    /// row often shares.
    pub(crate) fn decode(self, metadata: &mut MetadataCache) -> factum_core::Result<StoredEvent> {
        const TABLE: &str = "events";
        let event_id = Uuid::parse_str(&self.event_id)
            .map_err(|e| Error::corrupt(TABLE, format!("event id {:?}: {e}", self.event_id)))?;
        let metadata =
            metadata
                .parse(self.metadata)
                .map_err(|source| factum_core::Error::Serialization {
                    what: format!("metadata of event {event_id}"),
                    source,
                })?;
        Ok(StoredEvent {
            position: non_negative(self.position, TABLE, "position")?,
            event_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            version: non_negative(self.version, TABLE, "version")?,
            event_type: self.event_type,
            schema_version: u32::try_from(self.schema_version).map_err(|_| {
                Error::corrupt(TABLE, format!("schema version {}", self.schema_version))
            })?,
            payload: self.payload,
            metadata,
            recorded_at: decode_time(&self.recorded_at, TABLE)?,
        })
    }
}

/// The columns of `snapshots` in the order [`snapshot_from_row`] reads them.
pub(crate) const SNAPSHOT_COLUMNS: &str = "aggregate_type, aggregate_id, version, state, taken_at";

pub(crate) fn snapshot_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, i64, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

pub(crate) fn decode_snapshot(
    (aggregate_type, aggregate_id, version, state, taken_at): (String, String, i64, String, String),
) -> Result<Snapshot, Error> {
    Ok(Snapshot {
        aggregate_type,
        aggregate_id,
        version: non_negative(version, "snapshots", "version")?,
        state,
        taken_at: decode_time(&taken_at, "snapshots")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_metadata_is_decoded_once_and_equal() {
        let metadata = Metadata {
            user_id: Some("bob".to_owned()),
            request_id: Some("req-1".to_owned()),
            extra: [("ip".to_owned(), serde_json::json!("10.0.0.1"))].into(),
            ..Metadata::default()
        };
        let text = serde_json::to_string(&metadata).unwrap();
        let mut cache = MetadataCache::default();
        assert_eq!(cache.parse(text.clone()).unwrap(), metadata);
        assert_eq!(cache.parse(text).unwrap(), metadata, "from the cache");
        assert_eq!(cache.parse("{}".to_owned()).unwrap(), Metadata::default());
        assert!(cache.parse("{oops".to_owned()).is_err());
    }

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() {
        let time = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let text = encode_time(&time, "recorded_at").unwrap();
        assert_eq!(text, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(decode_time(&text, "events").unwrap(), time);
    }

    #[test]
    fn timestamps_outside_four_digit_years_are_refused() {
        let far = DateTime::<Utc>::from_timestamp(400_000_000_000, 0).unwrap();
        assert!(matches!(
            encode_time(&far, "recorded_at"),
            Err(factum_core::Error::Validation(_))
        ));
        assert!(matches!(
            decode_time("yesterday", "events"),
            Err(Error::CorruptRow { .. })
        ));
    }

    #[test]
    fn integers_beyond_sqlite_range_are_refused_or_clamped() {
        assert_eq!(to_sql_int(7, "version").unwrap(), 7);
        assert!(matches!(
            to_sql_int(u64::MAX, "version"),
            Err(factum_core::Error::Validation(_))
        ));
        assert_eq!(clamp_to_sql(u64::MAX), i64::MAX);
        assert_eq!(sql_limit(None), -1);
        assert_eq!(sql_limit(Some(3)), 3);
        assert_eq!(sql_limit(Some(usize::MAX)), i64::MAX);
    }
}
