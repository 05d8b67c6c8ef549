//! Idempotency records in `<schema>.idempotency`.
//!
//! Every write of a record happens under the key's transaction-scoped advisory lock (taken
//! by `lock_streams`, see the [`store`](crate::store) module): an append's record is checked
//! and written by `append_events_idempotent`, in the append's transaction, and a record
//! remembered alone takes the lock first. So the check "no live record holds this key" is
//! exact across every node, and the first writer of a key wins; the table's primary key backs
//! that up. An
//! append whose key is taken is refused inside its group like one whose expected version
//! fails (it stores nothing), and its caller then reports
//! [`IdempotencyKeyTaken`](factum_core::Error::IdempotencyKeyTaken).

use chrono::{DateTime, Utc};
use factum_core::IdempotencyRecord;
use factum_core::store::{AppendRequest, rules};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{Error, database_error};
use crate::sql::statements;

/// Migration 3: the table, and the append function that writes records with events.
///
/// `append_events_idempotent` takes `append_events`'s arguments plus one record per request
/// (NULL key for none). Under its lock (the position lock here; since migration 5 the advisory
/// locks of its streams and keys) it marks each request whose key a live
/// record holds as impossible (min version 1, max version 0), so `append_events` stores
/// nothing of it, then writes the records of the requests that stored events. An expired
/// record is replaced.
pub(crate) const MIGRATION_SQL: &str = concat!(
    r#"
CREATE TABLE {schema}.idempotency (
    scope           text COLLATE "C"    NOT NULL,
    idem_key        text COLLATE "C"    NOT NULL,
    request_hash    text                NOT NULL,
    status          integer             NOT NULL CHECK (status BETWEEN 100 AND 599),
    response        text                NOT NULL,
    created_at      timestamptz         NOT NULL,
    expires_at      timestamptz         NOT NULL,
    CONSTRAINT idempotency_key PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_expiry_idx ON {schema}.idempotency (expires_at);

CREATE FUNCTION "#,
    idempotent_head!(),
    r#"    PERFORM 1 FROM {schema}.event_position AS p FOR UPDATE;
"#,
    idempotent_body!(),
);

/// `append_events_idempotent`'s name, parameters, settings and declarations, up to its
/// `BEGIN` (the same in every version; its lock and body follow).
macro_rules! idempotent_head {
    () => {
        concat!(
            r#"{schema}.append_events_idempotent(
"#,
            crate::append_sql::append_params!(),
            r#"    p_recorded_at_ns smallint[],
"#,
            crate::append_sql::view_params!(),
            r#"    p_view_data text[],
    p_idem_scopes text[],
    p_idem_keys text[],
    p_idem_hashes text[],
    p_idem_statuses integer[],
    p_idem_responses text[],
    p_idem_created_at timestamptz[],
    p_idem_expires_at timestamptz[]
"#,
            crate::append_sql::returns_with_metadata!(),
            crate::append_sql::plpgsql_head!(),
            r#"DECLARE
    v_min bigint[] := p_min_versions;
    v_max bigint[] := p_max_versions;
    v_stored integer[] := '{}';
BEGIN
"#
        )
    };
}
pub(crate) use idempotent_head;

/// The body of `append_events_idempotent` after its lock: marks the requests whose key a
/// live record holds, appends, and writes the records of the requests stored.
macro_rules! idempotent_body {
    () => {
        r#"    FOR v_request IN 1 .. coalesce(array_length(p_aggregate_types, 1), 0) LOOP
        IF p_idem_keys[v_request] IS NOT NULL AND EXISTS (
            SELECT 1 FROM {schema}.idempotency AS i
            WHERE i.scope = p_idem_scopes[v_request] AND i.idem_key = p_idem_keys[v_request]
                AND i.expires_at > p_idem_created_at[v_request])
        THEN
            v_min[v_request] := 1;
            v_max[v_request] := 0;
        END IF;
    END LOOP;
    FOR request, event_position, event_version, event_payload, event_metadata IN
        SELECT a.request, a.event_position, a.event_version, a.event_payload, a.event_metadata
        FROM {schema}.append_events(p_aggregate_types, p_aggregate_ids, v_min, v_max,
            p_event_counts, p_snapshot_versions, p_snapshot_states, p_snapshot_taken_at,
            p_snapshot_taken_at_ns, p_event_ids, p_event_types, p_schema_versions, p_payloads,
            p_metadata, p_recorded_at, p_recorded_at_ns, p_view_counts, p_view_deletes,
            p_view_types, p_view_ids, p_view_aggregate_ids, p_view_versions, p_view_data) AS a
    LOOP
        v_stored := v_stored || request;
        RETURN NEXT;
    END LOOP;
    INSERT INTO {schema}.idempotency AS i (scope, idem_key, request_hash, status, response,
        created_at, expires_at)
    SELECT u.scope, u.idem_key, u.request_hash, u.status, u.response, u.created_at,
        u.expires_at
    FROM unnest(p_idem_scopes, p_idem_keys, p_idem_hashes, p_idem_statuses, p_idem_responses,
            p_idem_created_at, p_idem_expires_at)
        WITH ORDINALITY AS u(scope, idem_key, request_hash, status, response, created_at,
            expires_at, ord)
    WHERE u.idem_key IS NOT NULL AND u.ord::integer = ANY (v_stored)
    ON CONFLICT (scope, idem_key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
        response = EXCLUDED.response, created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at
    WHERE i.expires_at <= EXCLUDED.created_at;
END;
$function$;
"#
    };
}
pub(crate) use idempotent_body;

/// The per-request record arrays of `append_events_idempotent`.
#[derive(Default)]
pub(crate) struct RecordArrays<'a> {
    pub(crate) scopes: Vec<Option<&'a str>>,
    pub(crate) keys: Vec<Option<&'a str>>,
    pub(crate) hashes: Vec<Option<&'a str>>,
    pub(crate) statuses: Vec<Option<i32>>,
    pub(crate) responses: Vec<Option<&'a str>>,
    pub(crate) created_at: Vec<Option<DateTime<Utc>>>,
    pub(crate) expires_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> RecordArrays<'a> {
    pub(crate) fn push(&mut self, record: Option<&'a IdempotencyRecord>) {
        self.scopes.push(record.map(|r| r.scope.as_str()));
        self.keys.push(record.map(|r| r.key.as_str()));
        self.hashes.push(record.map(|r| r.request_hash.as_str()));
        self.statuses.push(record.map(|r| i32::from(r.status)));
        self.responses.push(record.map(|r| r.response.as_str()));
        self.created_at.push(record.map(|r| r.created_at));
        self.expires_at.push(record.map(|r| r.expires_at));
    }
}

statements! {
    /// The SQL of the idempotency operations, with the quoted schema spliced in.
    pub(crate) struct RecordStatements(s) {
        find = "SELECT request_hash, status, response, created_at, expires_at
                FROM {s}.idempotency WHERE scope = $1 AND idem_key = $2 AND expires_at > $3",
        upsert = "INSERT INTO {s}.idempotency AS i (scope, idem_key, request_hash, status,
                    response, created_at, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (scope, idem_key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
                    response = EXCLUDED.response, created_at = EXCLUDED.created_at,
                    expires_at = EXCLUDED.expires_at
                WHERE i.expires_at <= EXCLUDED.created_at",
        purge = "DELETE FROM {s}.idempotency WHERE expires_at <= $1",
        lock_key = "SELECT {s}.lock_streams(NULL, NULL, ARRAY[$1::text], ARRAY[$2::text])",
    }
}

fn record_from_row(scope: &str, key: &str, row: &PgRow) -> Result<IdempotencyRecord, Error> {
    let status: i32 = row.try_get("status")?;
    Ok(IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        request_hash: row.try_get("request_hash")?,
        status: u16::try_from(status)
            .map_err(|_| Error::CorruptRow(format!("idempotency status {status}")))?,
        response: row.try_get("response")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// The record of `(scope, key)` live at `now`.
pub(crate) async fn find<'e>(
    sql: &RecordStatements,
    executor: impl sqlx::PgExecutor<'e>,
    scope: &str,
    key: &str,
    now: DateTime<Utc>,
) -> factum_core::Result<Option<IdempotencyRecord>> {
    let row = sqlx::query(sql.find.clone())
        .bind(scope)
        .bind(key)
        .bind(now)
        .fetch_optional(executor)
        .await
        .map_err(database_error)?;
    row.map(|row| record_from_row(scope, key, &row).map_err(Into::into))
        .transpose()
}

/// Writes `record` unless a live record holds its key (under the key's advisory lock, as
/// appends check keys); returns the record that holds.
pub(crate) async fn remember(
    sql: &RecordStatements,
    pool: &sqlx::PgPool,
    record: IdempotencyRecord,
) -> factum_core::Result<IdempotencyRecord> {
    let mut tx = pool.begin().await.map_err(database_error)?;
    sqlx::query(sql.lock_key.clone())
        .bind(&record.scope)
        .bind(&record.key)
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
    if let Some(existing) =
        find(sql, &mut *tx, &record.scope, &record.key, record.created_at).await?
    {
        return Ok(existing);
    }
    write(sql, &mut tx, &record).await?;
    tx.commit().await.map_err(database_error)?;
    Ok(record)
}

/// Writes a record whose key was found free under the key's lock.
pub(crate) async fn write(
    sql: &RecordStatements,
    conn: &mut sqlx::PgConnection,
    record: &IdempotencyRecord,
) -> factum_core::Result<()> {
    sqlx::query(sql.upsert.clone())
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(i32::from(record.status))
        .bind(&record.response)
        .bind(record.created_at)
        .bind(record.expires_at)
        .execute(conn)
        .await
        .map_err(database_error)?;
    Ok(())
}

/// Deletes the records expired at `now`.
pub(crate) async fn purge(
    sql: &RecordStatements,
    pool: &sqlx::PgPool,
    now: DateTime<Utc>,
) -> factum_core::Result<u64> {
    let done = sqlx::query(sql.purge.clone())
        .bind(now)
        .execute(pool)
        .await
        .map_err(database_error)?;
    Ok(done.rows_affected())
}

/// The error of an append whose key a live record holds, if that is why it was refused.
pub(crate) async fn taken(
    sql: &RecordStatements,
    pool: &sqlx::PgPool,
    request: &AppendRequest,
) -> factum_core::Result<Option<factum_core::Error>> {
    let Some(record) = &request.idempotency else {
        return Ok(None);
    };
    let holder = find(sql, pool, &record.scope, &record.key, record.created_at).await?;
    Ok(holder.map(|_| rules::key_taken(record)))
}
