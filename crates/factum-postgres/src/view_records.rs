//! View records and projection checkpoints in SQL: the checks and reduction of view
//! changes, their array arguments and statements, and the decoding of a record's row.
//!
//! Records live in `<schema>.views`, their JSON in a `jsonb` column `data`. Inline view
//! changes are written by `append_events` in the append's own transaction (see the
//! [`store`](crate::store) module); projection batches and resets run in transactions of
//! their own (see [`views`](crate::views)).

use std::collections::HashSet;

use factum_core::{ViewChange, ViewRecord};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::error::{Error, database_error};
use crate::sql::statements;

type CoreResult<T> = factum_core::Result<T>;

/// The columns every view read returns, in the names [`view_record`] decodes.
pub(crate) const VIEW_COLUMNS: &str =
    "view_type, view_id, aggregate_id, version, data::text AS data";

/// Checks an append's or a batch's view changes and keeps the last change of each record:
/// applying them in order comes to the same, and the SQL can then write all upserts in one
/// statement and all deletes in another.
pub(crate) fn prepare_changes(changes: Vec<ViewChange>) -> CoreResult<Vec<ViewChange>> {
    let mut seen = HashSet::with_capacity(changes.len());
    let mut kept = Vec::with_capacity(changes.len());
    for change in changes.into_iter().rev() {
        let (view_type, view_id) = match &change {
            ViewChange::Upsert(record) => (&record.view_type, &record.view_id),
            ViewChange::Delete { view_type, view_id } => (view_type, view_id),
        };
        if !seen.insert((view_type.clone(), view_id.clone())) {
            continue;
        }
        if let ViewChange::Upsert(record) = &change {
            validate_record(record)?;
        } else {
            no_nul(view_type, "a view type")?;
            no_nul(view_id, "a view id")?;
        }
        kept.push(change);
    }
    kept.reverse();
    Ok(kept)
}

/// What PostgreSQL would refuse inside a group's transaction (failing the whole group) is
/// refused here, before anything is sent.
fn validate_record(record: &ViewRecord) -> CoreResult<()> {
    no_nul(&record.view_type, "a view type")?;
    no_nul(&record.view_id, "a view id")?;
    no_nul(&record.aggregate_id, "an aggregate id")?;
    if i64::try_from(record.version).is_err() {
        return Err(factum_core::Error::Validation(format!(
            "{} view record {:?}: version {} is too large",
            record.view_type, record.view_id, record.version
        )));
    }
    // Parsed as a value, not skimmed: numbers beyond `f64` are refused, as the reference
    // query semantics (and the `double precision` casts of queries) cannot compare them.
    serde_json::from_str::<serde_json::Value>(&record.data)
        .map(drop)
        .map_err(|source| factum_core::Error::Serialization {
            what: format!("{} view record {:?}", record.view_type, record.view_id),
            source,
        })
}

/// Refuses text PostgreSQL cannot hold.
pub(crate) fn no_nul(text: &str, what: &str) -> CoreResult<()> {
    if text.contains('\0') {
        return Err(factum_core::Error::Validation(format!(
            "{what} {text:?} contains a NUL character, which PostgreSQL text cannot hold"
        )));
    }
    Ok(())
}

/// Prepared view changes as the array arguments of `append_events` and of [`write_changes`].
#[derive(Default)]
pub(crate) struct ChangeArrays<'a> {
    pub(crate) deletes: Vec<bool>,
    pub(crate) view_types: Vec<&'a str>,
    pub(crate) view_ids: Vec<&'a str>,
    pub(crate) aggregate_ids: Vec<Option<&'a str>>,
    pub(crate) versions: Vec<Option<i64>>,
    pub(crate) data: Vec<Option<&'a str>>,
}

impl<'a> ChangeArrays<'a> {
    pub(crate) fn push_all(&mut self, changes: &'a [ViewChange]) {
        for change in changes {
            match change {
                ViewChange::Upsert(record) => {
                    self.deletes.push(false);
                    self.view_types.push(&record.view_type);
                    self.view_ids.push(&record.view_id);
                    self.aggregate_ids.push(Some(&record.aggregate_id));
                    // `prepare_changes` refused versions that do not fit.
                    self.versions
                        .push(Some(i64::try_from(record.version).unwrap_or(i64::MAX)));
                    self.data.push(Some(&record.data));
                }
                ViewChange::Delete { view_type, view_id } => {
                    self.deletes.push(true);
                    self.view_types.push(view_type);
                    self.view_ids.push(view_id);
                    self.aggregate_ids.push(None);
                    self.versions.push(None);
                    self.data.push(None);
                }
            }
        }
    }
}

/// Writes prepared changes (at most one per record) on `conn`, inside the caller's
/// transaction.
pub(crate) async fn write_changes(
    conn: &mut PgConnection,
    sql: &ViewStatements,
    changes: &[ViewChange],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut arrays = ChangeArrays::default();
    arrays.push_all(changes);
    sqlx::query(sql.delete_changes.clone())
        .bind(&arrays.deletes)
        .bind(&arrays.view_types)
        .bind(&arrays.view_ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql.upsert_changes.clone())
        .bind(&arrays.deletes)
        .bind(&arrays.view_types)
        .bind(&arrays.view_ids)
        .bind(&arrays.aggregate_ids)
        .bind(&arrays.versions)
        .bind(&arrays.data)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Decodes a row of the views table (columns as in [`VIEW_COLUMNS`]).
pub(crate) fn view_record(row: &PgRow) -> CoreResult<ViewRecord> {
    let version: i64 = row.try_get("version").map_err(database_error)?;
    Ok(ViewRecord {
        view_type: row.try_get("view_type").map_err(database_error)?,
        view_id: row.try_get("view_id").map_err(database_error)?,
        aggregate_id: row.try_get("aggregate_id").map_err(database_error)?,
        version: u64::try_from(version)
            .map_err(|_| Error::CorruptRow(format!("view record version {version}")))?,
        data: row.try_get("data").map_err(database_error)?,
    })
}

/// A stored checkpoint position or generation, which is never negative.
pub(crate) fn checkpoint_of(position: i64) -> CoreResult<u64> {
    u64::try_from(position)
        .map_err(|_| Error::CorruptRow(format!("projection checkpoint {position}")).into())
}

statements! {
    /// The fixed SQL of views and checkpoints, built once with the quoted schema name.
    pub(crate) struct ViewStatements(s) with schema {
        get = "SELECT {VIEW_COLUMNS} FROM {s}.views WHERE view_type = $1 AND view_id = $2",
        list_of = "SELECT {VIEW_COLUMNS} FROM {s}.views WHERE view_type = $1 AND aggregate_id = $2
                ORDER BY view_id COLLATE \"C\"",
        delete_changes = "DELETE FROM {s}.views AS v
                USING unnest($1::boolean[], $2::text[], $3::text[]) AS d(is_delete, view_type, view_id)
                WHERE d.is_delete AND v.view_type = d.view_type AND v.view_id = d.view_id",
        upsert_changes =
            "INSERT INTO {s}.views AS v (view_type, view_id, aggregate_id, version, data)
                SELECT u.view_type, u.view_id, u.aggregate_id, u.version, u.data::jsonb
                FROM unnest($1::boolean[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                    $6::text[]) AS u(is_delete, view_type, view_id, aggregate_id, version, data)
                WHERE NOT u.is_delete
                ON CONFLICT (view_type, view_id) DO UPDATE
                SET aggregate_id = EXCLUDED.aggregate_id, version = EXCLUDED.version,
                    data = EXCLUDED.data",
        checkpoint =
            "SELECT position, generation FROM {s}.projection_checkpoints WHERE projection = $1",
        move_checkpoint = "UPDATE {s}.projection_checkpoints SET position = $3
                WHERE projection = $1 AND position = $2 AND generation = $4",
        insert_checkpoint =
            "INSERT INTO {s}.projection_checkpoints (projection, position) VALUES ($1, $2)
                ON CONFLICT (projection) DO NOTHING",
        reset_checkpoint =
            "INSERT INTO {s}.projection_checkpoints AS c (projection, position, generation)
                VALUES ($1, 0, 1)
                ON CONFLICT (projection) DO UPDATE SET position = 0, generation = c.generation + 1",
        delete_view_types = "DELETE FROM {s}.views WHERE view_type = ANY ($1)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(id: &str, data: &str) -> ViewChange {
        ViewChange::Upsert(ViewRecord {
            view_type: "v".into(),
            view_id: id.into(),
            aggregate_id: "a".into(),
            version: 1,
            data: data.into(),
        })
    }

    fn delete(id: &str) -> ViewChange {
        ViewChange::Delete {
            view_type: "v".into(),
            view_id: id.into(),
        }
    }

    #[test]
    fn the_last_change_of_each_record_is_kept_in_order() {
        let kept = prepare_changes(vec![
            upsert("x", "1"),
            upsert("y", "2"),
            delete("x"),
            upsert("z", "3"),
            upsert("y", "4"),
        ])
        .unwrap();
        assert_eq!(kept, vec![delete("x"), upsert("z", "3"), upsert("y", "4")]);
    }

    #[test]
    fn bad_records_are_refused_before_sending() {
        assert!(matches!(
            prepare_changes(vec![upsert("x", "{not json")]),
            Err(factum_core::Error::Serialization { .. })
        ));
        // Beyond f64: no query could compare it.
        assert!(matches!(
            prepare_changes(vec![upsert("x", r#"{"n": 1e400}"#)]),
            Err(factum_core::Error::Serialization { .. })
        ));
        assert!(matches!(
            prepare_changes(vec![upsert("x\0", "{}")]),
            Err(factum_core::Error::Validation(_))
        ));
        let mut huge = upsert("x", "{}");
        if let ViewChange::Upsert(record) = &mut huge {
            record.version = u64::MAX;
        }
        assert!(matches!(
            prepare_changes(vec![huge]),
            Err(factum_core::Error::Validation(_))
        ));
        // A record replaced later in the same batch is not checked: it is never written.
        assert!(prepare_changes(vec![upsert("x", "{bad"), upsert("x", "{}")]).is_ok());
    }
}
