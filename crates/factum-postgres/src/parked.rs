//! Parked events in SQL: the rows a projection writes, with its checkpoint, for an event it
//! could not apply (see [`factum_core::ParkedEvent`]).

use factum_core::{EventRef, ParkedEvent};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::error::{Error, database_error};
use crate::sql::trusted;

type CoreResult<T> = factum_core::Result<T>;

fn invalid(message: String) -> factum_core::Error {
    factum_core::Error::Validation(message)
}

/// Writes (or replaces) a parked event, in the caller's transaction.
pub(crate) async fn insert(
    tx: &mut PgConnection,
    schema: &str,
    parked: &ParkedEvent,
) -> CoreResult<()> {
    let too_large = |what: &str| invalid(format!("parked event: {what} is too large"));
    sqlx::query(trusted(format!(
        "INSERT INTO {schema}.parked_events (projection, position, event_id, aggregate_type,
             aggregate_id, version, event_type, error, attempts, parked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (projection, position) DO UPDATE SET
             event_id = excluded.event_id, aggregate_type = excluded.aggregate_type,
             aggregate_id = excluded.aggregate_id, version = excluded.version,
             event_type = excluded.event_type, error = excluded.error,
             attempts = excluded.attempts, parked_at = excluded.parked_at"
    )))
    .bind(&parked.projection)
    .bind(i64::try_from(parked.position).map_err(|_| too_large("position"))?)
    .bind(parked.event.event_id)
    .bind(&parked.event.aggregate_type)
    .bind(&parked.event.aggregate_id)
    .bind(i64::try_from(parked.event.version).map_err(|_| too_large("version"))?)
    .bind(&parked.event.event_type)
    .bind(&parked.error)
    .bind(i32::try_from(parked.attempts).unwrap_or(i32::MAX))
    .bind(parked.parked_at)
    .execute(&mut *tx)
    .await
    .map_err(database_error)?;
    Ok(())
}

fn parked_event(projection: &str, row: &PgRow) -> CoreResult<ParkedEvent> {
    let number = |name: &str| -> CoreResult<u64> {
        let value: i64 = row.try_get(name).map_err(database_error)?;
        u64::try_from(value)
            .map_err(|_| Error::CorruptRow(format!("parked event {name} {value}")).into())
    };
    let attempts: i32 = row.try_get("attempts").map_err(database_error)?;
    Ok(ParkedEvent {
        projection: projection.to_owned(),
        position: number("position")?,
        event: EventRef {
            event_id: row.try_get("event_id").map_err(database_error)?,
            aggregate_type: row.try_get("aggregate_type").map_err(database_error)?,
            aggregate_id: row.try_get("aggregate_id").map_err(database_error)?,
            version: number("version")?,
            event_type: row.try_get("event_type").map_err(database_error)?,
        },
        error: row.try_get("error").map_err(database_error)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        parked_at: row.try_get("parked_at").map_err(database_error)?,
    })
}

/// Forgets a projection's parked events (a rebuild parks them again if they still fail).
pub(crate) async fn delete_all(
    tx: &mut PgConnection,
    schema: &str,
    projection: &str,
) -> CoreResult<()> {
    sqlx::query(trusted(format!(
        "DELETE FROM {schema}.parked_events WHERE projection = $1"
    )))
    .bind(projection)
    .execute(&mut *tx)
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Forgets one parked event; returns whether it was there.
pub(crate) async fn delete_one(
    pool: &PgPool,
    schema: &str,
    projection: &str,
    position: u64,
) -> CoreResult<bool> {
    let position = i64::try_from(position)
        .map_err(|_| invalid("parked event: position is too large".to_owned()))?;
    let done = sqlx::query(trusted(format!(
        "DELETE FROM {schema}.parked_events WHERE projection = $1 AND position = $2"
    )))
    .bind(projection)
    .bind(position)
    .execute(pool)
    .await
    .map_err(database_error)?;
    Ok(done.rows_affected() > 0)
}

/// A projection's parked events, by position.
pub(crate) async fn list(
    pool: &PgPool,
    schema: &str,
    projection: &str,
) -> CoreResult<Vec<ParkedEvent>> {
    let rows = sqlx::query(trusted(format!(
        "SELECT position, event_id, aggregate_type, aggregate_id, version, event_type, error,
                attempts, parked_at
         FROM {schema}.parked_events WHERE projection = $1 ORDER BY position"
    )))
    .bind(projection)
    .fetch_all(pool)
    .await
    .map_err(database_error)?;
    rows.iter()
        .map(|row| parked_event(projection, row))
        .collect()
}
