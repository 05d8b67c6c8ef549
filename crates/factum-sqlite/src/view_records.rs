//! View records and projection checkpoints in SQL: the changes the writer thread writes inside
//! its transaction, the checkpoint it checks and moves, and the decoding of a record's row.
//!
//! Records live in one `views` table, their JSON in `data`; each projection's position and
//! generation in `projection_checkpoints`.

use factum_core::{ProjectionCheckpoint, ViewChange, ViewRecord};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, is_constraint_violation, sql_error};
use crate::parked::EncodedParked;
use crate::rows::to_sql_int;

/// The columns of `views` in the order [`read_records`] reads them.
macro_rules! view_columns {
    () => {
        "view_type, view_id, aggregate_id, version, data"
    };
}
pub(crate) use view_columns;

/// A view record change ready to write.
pub(crate) enum EncodedViewChange {
    Upsert {
        view_type: String,
        view_id: String,
        aggregate_id: String,
        version: i64,
        data: String,
    },
    Delete {
        view_type: String,
        view_id: String,
    },
}

/// Checks what SQLite cannot hold before the change reaches the writer.
pub(crate) fn encode_changes(
    changes: Vec<ViewChange>,
) -> factum_core::Result<Vec<EncodedViewChange>> {
    changes
        .into_iter()
        .map(|change| {
            Ok(match change {
                ViewChange::Upsert(record) => EncodedViewChange::Upsert {
                    version: to_sql_int(record.version, "view record version")?,
                    view_type: record.view_type,
                    view_id: record.view_id,
                    aggregate_id: record.aggregate_id,
                    data: record.data,
                },
                ViewChange::Delete { view_type, view_id } => {
                    EncodedViewChange::Delete { view_type, view_id }
                }
            })
        })
        .collect()
}

/// A projection batch ready to write.
pub(crate) struct EncodedProjection {
    pub(crate) projection: String,
    pub(crate) expected: ProjectionCheckpoint,
    pub(crate) checkpoint: i64,
    pub(crate) changes: Vec<EncodedViewChange>,
    /// An event parked by this batch (which then has no changes).
    pub(crate) parked: Option<EncodedParked>,
}

/// The start of a rebuild: the view types to empty and the projection whose checkpoint goes
/// back to 0.
pub(crate) struct ProjectionReset {
    pub(crate) projection: String,
    pub(crate) view_types: Vec<String>,
}

/// Writes record changes in order, on the writer's connection (inside the caller's
/// savepoint). A record whose data is not valid JSON is refused by the table's `CHECK`.
pub(crate) fn write_changes(
    conn: &Connection,
    changes: &[EncodedViewChange],
) -> factum_core::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO views (view_type, view_id, aggregate_id, version, data)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (view_type, view_id) DO UPDATE
             SET aggregate_id = excluded.aggregate_id, version = excluded.version, data = excluded.data",
        )
        .map_err(sql_error)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM views WHERE view_type = ?1 AND view_id = ?2")
        .map_err(sql_error)?;
    for change in changes {
        match change {
            EncodedViewChange::Upsert {
                view_type,
                view_id,
                aggregate_id,
                version,
                data,
            } => match upsert.execute(params![view_type, view_id, aggregate_id, version, data]) {
                Ok(_) => {}
                Err(error) if is_constraint_violation(&error) => {
                    return Err(factum_core::Error::Validation(format!(
                        "{view_type} view record {view_id:?}: its data is not valid JSON"
                    )));
                }
                Err(error) => return Err(sql_error(error)),
            },
            EncodedViewChange::Delete { view_type, view_id } => {
                delete
                    .execute(params![view_type, view_id])
                    .map_err(sql_error)?;
            }
        }
    }
    Ok(())
}

/// A projection's stored checkpoint, or the start (position 0, generation 0).
pub(crate) fn checkpoint(
    conn: &Connection,
    projection: &str,
) -> factum_core::Result<ProjectionCheckpoint> {
    let stored: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT position, generation FROM projection_checkpoints WHERE projection = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([projection], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    let (position, generation) = stored.unwrap_or((0, 0));
    let non_negative = |value: i64, what: &str| {
        u64::try_from(value).map_err(|_| {
            factum_core::Error::from(Error::corrupt(
                "projection_checkpoints",
                format!("negative {what} {value}"),
            ))
        })
    };
    Ok(ProjectionCheckpoint {
        position: non_negative(position, "position")?,
        generation: non_negative(generation, "generation")?,
    })
}

fn set_checkpoint(
    conn: &Connection,
    projection: &str,
    position: i64,
    generation: u64,
) -> factum_core::Result<()> {
    let generation = to_sql_int(generation, "projection generation")?;
    conn.prepare_cached(
        "INSERT INTO projection_checkpoints (projection, position, generation) VALUES (?1, ?2, ?3)
         ON CONFLICT (projection) DO UPDATE
         SET position = excluded.position, generation = excluded.generation",
    )
    .and_then(|mut stmt| stmt.execute(params![projection, position, generation]))
    .map_err(sql_error)?;
    Ok(())
}

/// Checks the stored checkpoint (position and generation) against the batch's, then writes its
/// changes and moves the checkpoint, all in the caller's savepoint: a refused batch leaves
/// nothing behind.
pub(crate) fn apply_projection(
    conn: &Connection,
    batch: &EncodedProjection,
) -> factum_core::Result<()> {
    let current = checkpoint(conn, &batch.projection)?;
    batch.expected.expect(&batch.projection, current)?;
    write_changes(conn, &batch.changes)?;
    if let Some(parked) = &batch.parked {
        crate::parked::insert(conn, parked)?;
    }
    set_checkpoint(
        conn,
        &batch.projection,
        batch.checkpoint,
        current.generation,
    )
}

/// Deletes every record of the reset's view types, puts its position back to 0 and starts a
/// new generation, so a runner still on the old checkpoint is refused.
pub(crate) fn reset_projection(
    conn: &Connection,
    reset: &ProjectionReset,
) -> factum_core::Result<()> {
    let mut delete = conn
        .prepare_cached("DELETE FROM views WHERE view_type = ?1")
        .map_err(sql_error)?;
    for view_type in &reset.view_types {
        delete.execute([view_type]).map_err(sql_error)?;
    }
    crate::parked::delete_all(conn, &reset.projection)?;
    let generation = checkpoint(conn, &reset.projection)?
        .generation
        .saturating_add(1);
    set_checkpoint(conn, &reset.projection, 0, generation)
}

fn view_from_row(row: &rusqlite::Row<'_>) -> factum_core::Result<ViewRecord> {
    let version: i64 = row.get(3).map_err(sql_error)?;
    Ok(ViewRecord {
        view_type: row.get(0).map_err(sql_error)?,
        view_id: row.get(1).map_err(sql_error)?,
        aggregate_id: row.get(2).map_err(sql_error)?,
        version: u64::try_from(version)
            .map_err(|_| Error::corrupt("views", format!("negative version {version}")))?,
        data: row.get(4).map_err(sql_error)?,
    })
}

/// Runs a query over [`view_columns`] and decodes its records.
pub(crate) fn read_records(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> factum_core::Result<Vec<ViewRecord>> {
    let mut rows = stmt.query(params).map_err(sql_error)?;
    let mut records = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        records.push(view_from_row(row)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_json_is_refused_by_the_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let error = write_changes(
            &conn,
            &[EncodedViewChange::Upsert {
                view_type: "v".into(),
                view_id: "bad".into(),
                aggregate_id: "a".into(),
                version: 1,
                data: "{not json".into(),
            }],
        )
        .unwrap_err();
        assert!(
            matches!(error, factum_core::Error::Validation(_)),
            "{error}"
        );
    }
}
