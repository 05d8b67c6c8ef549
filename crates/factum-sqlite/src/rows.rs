//! Conversions between core values and SQLite columns.
//!
//! SQLite integers are signed 64-bit: versions, positions and limits above `i64::MAX` are
//! refused on the way in (they cannot be stored) and clamped in queries (nothing is there).

use chrono::{DateTime, SecondsFormat, Utc};
use factum_core::store::{Snapshot, StoredEvent};
use uuid::Uuid;

use crate::error::Error;

/// The columns of `events` a stream read selects, in the order [`event_from_row`] reads
/// them; the stream's type and id are known to the caller. The `SELECT ... FROM events`
/// statements are built from it at compile time.
macro_rules! stream_event_columns {
    () => {
        "position, version, event_id, event_type, schema_version, payload, metadata, recorded_at"
    };
}
/// Every column [`event_from_row`] reads: the stream's columns, then its type and id.
macro_rules! event_columns {
    () => {
        concat!(
            $crate::rows::stream_event_columns!(),
            ", aggregate_type, aggregate_id"
        )
    };
}
pub(crate) use {event_columns, stream_event_columns};

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

/// The text of column `index`, borrowed from the row (no allocation).
fn text<'r>(
    row: &'r rusqlite::Row<'_>,
    index: usize,
    table: &'static str,
) -> factum_core::Result<&'r str> {
    row.get_ref(index)
        .map_err(|e| Error::Sqlite(e).into())
        .and_then(|value| {
            value
                .as_str()
                .map_err(|e| Error::corrupt(table, format!("column {index}: {e}")).into())
        })
}

/// Decodes one row of [`event_columns!`], or of [`stream_event_columns!`] when the
/// stream's type and id are given. The id and timestamp are parsed from the row's borrowed
/// text; only the fields the event keeps are copied out. Metadata is returned as the stored
/// JSON text: parsing it is the reader's business (loading an aggregate never does).
pub(crate) fn event_from_row(
    row: &rusqlite::Row<'_>,
    stream: Option<(&str, &str)>,
) -> factum_core::Result<StoredEvent> {
    const TABLE: &str = "events";
    let get_int = |index: usize| -> factum_core::Result<i64> {
        row.get(index).map_err(|e| Error::Sqlite(e).into())
    };
    let get_string = |index: usize| -> factum_core::Result<String> {
        row.get(index).map_err(|e| Error::Sqlite(e).into())
    };
    let event_id_text = text(row, 2, TABLE)?;
    let event_id = Uuid::parse_str(event_id_text)
        .map_err(|e| Error::corrupt(TABLE, format!("event id {event_id_text:?}: {e}")))?;
    let schema_version = get_int(4)?;
    let (aggregate_type, aggregate_id) = match stream {
        Some((aggregate_type, aggregate_id)) => {
            (aggregate_type.to_owned(), aggregate_id.to_owned())
        }
        None => (get_string(8)?, get_string(9)?),
    };
    Ok(StoredEvent {
        position: non_negative(get_int(0)?, TABLE, "position")?,
        event_id,
        aggregate_type,
        aggregate_id,
        version: non_negative(get_int(1)?, TABLE, "version")?,
        event_type: get_string(3)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| Error::corrupt(TABLE, format!("schema version {schema_version}")))?,
        payload: get_string(5)?,
        metadata: get_string(6)?,
        recorded_at: decode_time(text(row, 7, TABLE)?, TABLE)?,
    })
}

/// Runs a query of [`event_columns!`] (or of [`stream_event_columns!`] for `stream`) and
/// decodes every row.
pub(crate) fn query_events(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    stream: Option<(&str, &str)>,
    capacity: usize,
) -> factum_core::Result<Vec<StoredEvent>> {
    let mut rows = stmt.query(params).map_err(Error::Sqlite)?;
    let mut events = Vec::with_capacity(capacity);
    while let Some(row) = rows.next().map_err(Error::Sqlite)? {
        events.push(event_from_row(row, stream)?);
    }
    Ok(events)
}

/// Reads a row of `aggregate_type, aggregate_id, version, state, taken_at` from `snapshots`.
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
