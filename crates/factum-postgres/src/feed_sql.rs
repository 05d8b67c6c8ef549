//! Migration 5: positions from transaction ids, so appends commit in parallel. The
//! [`store`](crate::store) module explains the design and why readers never skip an event.
//!
//! The migration keeps every stored event at its position: it waits for appends of an older
//! release still in flight (they lock the old position row), keeps the last dense position as
//! the base of the new ones, and drops the position row, so a node of an older release still
//! running against the schema fails on its next append or head read instead of appending
//! under a lock nobody else takes.

/// Events one transaction may store at most: a position is `base + ((xid - origin) << 20) +
/// n`, with `n` the event's ordinal (from 1) in its transaction.
pub(crate) const EVENTS_PER_TRANSACTION: usize = (1 << POSITION_SHIFT) - 1;

/// The bits of a position below its transaction's part.
pub(crate) const POSITION_SHIFT: u32 = 20;

/// The SQL of migration 5 (`{schema}` is the quoted schema name).
pub(crate) const MIGRATION_SQL: &str = concat!(
    r#"
-- Appends of an older release in flight hold this row: wait for them, so that every event at
-- or below the base is committed.
SELECT 1 FROM {schema}.event_position FOR UPDATE;

-- Positions of this and later releases: base_position + ((xid - origin_xid) << 20) + n, for
-- the n-th event of the transaction with id xid. origin_xid is this migration's own
-- transaction, older than every transaction that appends under the new scheme, so new
-- positions are above the base, the last position of the older, dense scheme.
CREATE TABLE {schema}.feed_origin (
    id              boolean     NOT NULL PRIMARY KEY DEFAULT true CHECK (id),
    origin_xid      bigint      NOT NULL,
    base_position   bigint      NOT NULL CHECK (base_position >= 0)
);
INSERT INTO {schema}.feed_origin (origin_xid, base_position)
SELECT pg_current_xact_id()::text::bigint, p.last_position FROM {schema}.event_position AS p;

-- Takes the transaction-scoped advisory locks of streams (type, id) and of idempotency keys
-- (scope, key; NULL keys are skipped), all at once and in key order, so that two appends
-- never wait for each other in opposite orders. Keys are hashes of the schema name and the
-- names: a collision only makes two appends wait for each other.
CREATE FUNCTION {schema}.lock_streams(p_types text[], p_ids text[], p_scopes text[],
    p_keys text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_advisory_xact_lock(l.key)
    FROM (SELECT DISTINCT k.key FROM (
            SELECT hashtextextended('{schema} stream ' || length(s.t) || ' ' || s.t || s.i, 0)
            FROM unnest(p_types, p_ids) AS s(t, i)
            UNION ALL
            SELECT hashtextextended('{schema} key ' || length(r.scope) || ' ' || r.scope
                || r.key, 0)
            FROM unnest(p_scopes, p_keys) AS r(scope, key)
            WHERE r.key IS NOT NULL) AS k(key)
        ORDER BY k.key) AS l;
END;
$function$;

-- As migration 2's version, but without the store-wide lock: each transaction locks only the
-- streams it appends to (see lock_streams), and numbers its events from its own transaction
-- id. Appends to different streams commit in parallel, sharing WAL flushes.
CREATE OR REPLACE FUNCTION {schema}.append_events(
"#,
    crate::append_sql::append_params!(),
    r#"    p_recorded_at_ns smallint[],
"#,
    crate::append_sql::view_params!(),
    r#"    p_view_data text[]
"#,
    crate::append_sql::returns_with_metadata!(),
    crate::append_sql::plpgsql_head!(),
    crate::append_sql::append_declare!(),
    r#"    v_view_first integer := 1;
    v_view_count integer;
    v_view_until integer;
BEGIN
    -- The locks come first: every statement below runs on a fresh snapshot that shows all
    -- appends to these streams committed before, so version and event-id checks are exact.
    PERFORM {schema}.lock_streams(p_aggregate_types, p_aggregate_ids, NULL, NULL);
    SELECT o.base_position + ((pg_current_xact_id()::text::bigint - o.origin_xid) << 20)
    INTO v_start FROM {schema}.feed_origin AS o;
    v_last := v_start;
    IF coalesce(array_length(p_event_ids, 1), 0) >= 1048576 THEN
        RAISE EXCEPTION 'more than 1048575 events in one transaction'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    FOR v_request IN 1 .. coalesce(array_length(p_aggregate_types, 1), 0) LOOP
        v_count := p_event_counts[v_request];
        v_until := v_first + v_count - 1;
        v_ids := p_event_ids[v_first : v_until];
        v_view_count := coalesce(p_view_counts[v_request], 0);
        v_view_until := v_view_first + v_view_count - 1;
"#,
    crate::append_sql::append_insert_events!(),
    r#"            RETURNING v_request, e.position, e.version, e.payload::text, e.metadata::text;
"#,
    crate::append_sql::append_snapshot!(),
    crate::append_sql::append_view_changes!(),
    r#"END;
$function$;

-- As migration 4's version, with the locks of its streams and keys instead of the
-- store-wide one: a key's check and its write are exact under the key's lock.
CREATE OR REPLACE FUNCTION "#,
    crate::idempotency::idempotent_head!(),
    r#"    PERFORM {schema}.lock_streams(p_aggregate_types, p_aggregate_ids, p_idem_scopes,
        p_idem_keys);
"#,
    crate::idempotency::idempotent_body!(),
    r#"
DROP TABLE {schema}.event_position;
"#
);
