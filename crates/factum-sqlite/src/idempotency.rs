//! Idempotency records in the `idempotency` table.
//!
//! Every write runs on the writer thread: a record that comes with an append is checked and
//! written inside the append's savepoint (so it commits with the events or not at all), and a
//! record remembered alone is checked and written in one savepoint too. One writer per file
//! makes the check exact; `PRIMARY KEY (scope, idem_key)` backs it up against a second
//! process on the same file (its insert fails, and the append with it). Times are RFC 3339
//! text of fixed width, so they compare as text.

use chrono::{DateTime, Utc};
use factum_core::IdempotencyRecord;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, is_constraint_violation};
use crate::rows::{decode_time, encode_time};

/// A record ready to write, with its times encoded.
pub(crate) struct EncodedRecord {
    pub(crate) record: IdempotencyRecord,
    created_at: String,
    expires_at: String,
}

impl EncodedRecord {
    pub(crate) fn encode(record: IdempotencyRecord) -> factum_core::Result<Self> {
        Ok(Self {
            created_at: encode_time(&record.created_at, "idempotency created_at")?,
            expires_at: encode_time(&record.expires_at, "idempotency expires_at")?,
            record,
        })
    }

    fn taken(&self) -> factum_core::Error {
        factum_core::store::rules::key_taken(&self.record)
    }
}

fn sql_error(error: rusqlite::Error) -> factum_core::Error {
    Error::Sqlite(error).into()
}

/// The record of `(scope, key)` live at `now` (encoded), if any.
pub(crate) fn find(
    conn: &Connection,
    scope: &str,
    key: &str,
    now: &str,
) -> factum_core::Result<Option<IdempotencyRecord>> {
    let raw = conn
        .prepare_cached(
            "SELECT request_hash, status, response, created_at, expires_at FROM idempotency
             WHERE scope = ?1 AND idem_key = ?2 AND expires_at > ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![scope, key, now], |row| {
                <(String, i64, String, String, String)>::try_from(row)
            })
            .optional()
        })
        .map_err(sql_error)?;
    let Some((request_hash, status, response, created_at, expires_at)) = raw else {
        return Ok(None);
    };
    let status = u16::try_from(status)
        .map_err(|_| Error::corrupt("idempotency", format!("status {status}")))?;
    Ok(Some(IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        request_hash,
        status,
        response,
        created_at: decode_time(&created_at, "idempotency")?,
        expires_at: decode_time(&expires_at, "idempotency")?,
    }))
}

/// Refuses an append whose key is held by a live record.
pub(crate) fn check_free(conn: &Connection, record: &EncodedRecord) -> factum_core::Result<()> {
    let r = &record.record;
    match find(conn, &r.scope, &r.key, &record.created_at)? {
        Some(_) => Err(record.taken()),
        None => Ok(()),
    }
}

/// Writes a record whose key [`check_free`] found free (an expired record is replaced).
pub(crate) fn write(conn: &Connection, record: &EncodedRecord) -> factum_core::Result<()> {
    let r = &record.record;
    let written = conn
        .prepare_cached(
            "INSERT INTO idempotency (scope, idem_key, request_hash, status, response, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (scope, idem_key) DO UPDATE SET request_hash = excluded.request_hash,
                 status = excluded.status, response = excluded.response,
                 created_at = excluded.created_at, expires_at = excluded.expires_at
             WHERE idempotency.expires_at <= excluded.created_at",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                r.scope,
                r.key,
                r.request_hash,
                i64::from(r.status),
                r.response,
                record.created_at,
                record.expires_at
            ])
        });
    match written {
        Ok(1) => Ok(()),
        // A live record the check did not see: another process wrote it meanwhile.
        Ok(_) => Err(record.taken()),
        Err(error) if is_constraint_violation(&error) => Err(record.taken()),
        Err(error) => Err(sql_error(error)),
    }
}

/// Writes `record` unless a live one holds its key; returns the record that holds.
pub(crate) fn remember(
    conn: &Connection,
    record: &EncodedRecord,
) -> factum_core::Result<IdempotencyRecord> {
    let r = &record.record;
    if let Some(existing) = find(conn, &r.scope, &r.key, &record.created_at)? {
        return Ok(existing);
    }
    write(conn, record)?;
    Ok(record.record.clone())
}

/// Deletes the records expired at `now`; returns how many.
pub(crate) fn purge(conn: &Connection, now: &DateTime<Utc>) -> factum_core::Result<u64> {
    let now = encode_time(now, "purge time")?;
    let deleted = conn
        .prepare_cached("DELETE FROM idempotency WHERE expires_at <= ?1")
        .and_then(|mut stmt| stmt.execute([now]))
        .map_err(sql_error)?;
    Ok(deleted as u64)
}
