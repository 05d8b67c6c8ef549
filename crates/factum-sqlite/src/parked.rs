//! Parked events in SQL: the rows a projection writes, with its checkpoint, for an event it
//! could not apply (see [`factum_core::ParkedEvent`]).

use factum_core::{EventRef, ParkedEvent};
use rusqlite::{Connection, params};

use crate::error::{Error, sql_error};
use crate::rows::to_sql_int;

/// A parked event ready to write.
pub(crate) struct EncodedParked {
    projection: String,
    position: i64,
    event_id: String,
    aggregate_type: String,
    aggregate_id: String,
    version: i64,
    event_type: String,
    error: String,
    attempts: i64,
    parked_at: String,
}

impl EncodedParked {
    pub(crate) fn new(parked: ParkedEvent) -> factum_core::Result<Self> {
        Ok(Self {
            position: to_sql_int(parked.position, "parked event position")?,
            version: to_sql_int(parked.event.version, "parked event version")?,
            event_id: parked.event.event_id.to_string(),
            attempts: i64::from(parked.attempts),
            parked_at: parked
                .parked_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            projection: parked.projection,
            aggregate_type: parked.event.aggregate_type,
            aggregate_id: parked.event.aggregate_id,
            event_type: parked.event.event_type,
            error: parked.error,
        })
    }

    /// The position the projection's checkpoint moves to.
    pub(crate) fn position(&self) -> i64 {
        self.position
    }

    /// The projection.
    pub(crate) fn projection(&self) -> &str {
        &self.projection
    }
}

/// Writes (or replaces) a parked event, in the caller's savepoint.
pub(crate) fn insert(conn: &Connection, parked: &EncodedParked) -> factum_core::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO parked_events (projection, position, event_id, aggregate_type,
             aggregate_id, version, event_type, error, attempts, parked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            parked.projection,
            parked.position,
            parked.event_id,
            parked.aggregate_type,
            parked.aggregate_id,
            parked.version,
            parked.event_type,
            parked.error,
            parked.attempts,
            parked.parked_at
        ])
    })
    .map_err(sql_error)?;
    Ok(())
}

/// Forgets a projection's parked events (a rebuild parks them again if they still fail).
pub(crate) fn delete_all(conn: &Connection, projection: &str) -> factum_core::Result<()> {
    conn.prepare_cached("DELETE FROM parked_events WHERE projection = ?1")
        .and_then(|mut stmt| stmt.execute([projection]))
        .map_err(sql_error)?;
    Ok(())
}

/// Forgets one parked event; returns how many rows were deleted (0 or 1).
pub(crate) fn delete_one(
    conn: &Connection,
    projection: &str,
    position: i64,
) -> factum_core::Result<u64> {
    let deleted = conn
        .prepare_cached("DELETE FROM parked_events WHERE projection = ?1 AND position = ?2")
        .and_then(|mut stmt| stmt.execute(params![projection, position]))
        .map_err(sql_error)?;
    Ok(deleted as u64)
}

/// A projection's parked events, by position.
pub(crate) fn list(conn: &Connection, projection: &str) -> factum_core::Result<Vec<ParkedEvent>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT position, event_id, aggregate_type, aggregate_id, version, event_type, error,
                    attempts, parked_at
             FROM parked_events WHERE projection = ?1 ORDER BY position",
        )
        .map_err(sql_error)?;
    let rows = stmt
        .query_map([projection], |row| {
            <(
                i64,
                String,
                String,
                String,
                i64,
                String,
                String,
                i64,
                String,
            )>::try_from(row)
        })
        .map_err(sql_error)?;
    let corrupt = |what: String| factum_core::Error::from(Error::corrupt("parked_events", what));
    let mut parked = Vec::new();
    for row in rows {
        let (
            position,
            event_id,
            aggregate_type,
            aggregate_id,
            version,
            event_type,
            error,
            attempts,
            at,
        ) = row.map_err(sql_error)?;
        parked.push(ParkedEvent {
            projection: projection.to_owned(),
            position: u64::try_from(position)
                .map_err(|_| corrupt(format!("position {position}")))?,
            event: EventRef {
                event_id: event_id
                    .parse()
                    .map_err(|_| corrupt(format!("event id {event_id:?}")))?,
                aggregate_type,
                aggregate_id,
                version: u64::try_from(version)
                    .map_err(|_| corrupt(format!("version {version}")))?,
                event_type,
            },
            error,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            parked_at: chrono::DateTime::parse_from_rfc3339(&at)
                .map_err(|_| corrupt(format!("time {at:?}")))?
                .with_timezone(&chrono::Utc),
        });
    }
    Ok(parked)
}
