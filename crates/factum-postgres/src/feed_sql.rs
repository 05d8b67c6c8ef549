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
    r#"DECLARE
    v_start bigint;
    v_last bigint := 0;
    v_current bigint;
    v_first integer := 1;
    v_count integer;
    v_until integer;
    v_ids uuid[];
    v_new_ids boolean;
    v_view_first integer := 1;
    v_view_count integer;
    v_view_until integer;
BEGIN
    -- The locks come first: every statement below runs on a fresh snapshot that shows all
    -- appends to these streams committed before, so version and event-id checks are exact.
    PERFORM {schema}.lock_streams(p_aggregate_types, p_aggregate_ids, NULL, NULL);
    SELECT o.base_position + ((pg_current_xact_id()::text::bigint - o.origin_xid) << 20)
    INTO v_start FROM {schema}.feed_origin AS o;
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
        -- One statement for all checks: the stream's version, and that the event ids are
        -- new and distinct.
        SELECT (SELECT coalesce(max(e.version), 0) FROM {schema}.events AS e
                WHERE e.aggregate_type = p_aggregate_types[v_request]
                    AND e.aggregate_id = p_aggregate_ids[v_request]),
            NOT EXISTS (SELECT 1 FROM {schema}.events AS e WHERE e.event_id = ANY (v_ids))
                AND (SELECT count(DISTINCT i) FROM unnest(v_ids) AS i) = v_count
        INTO v_current, v_new_ids;
        IF v_new_ids AND v_current BETWEEN p_min_versions[v_request] AND p_max_versions[v_request]
        THEN
            RETURN QUERY
            INSERT INTO {schema}.events AS e (position, aggregate_type, aggregate_id, version,
                event_id, event_type, schema_version, payload, metadata, recorded_at,
                recorded_at_ns)
            SELECT v_start + v_last + u.ord, p_aggregate_types[v_request],
                p_aggregate_ids[v_request], v_current + u.ord, u.event_id, u.event_type,
                u.schema_version, u.payload::jsonb, u.metadata::jsonb, u.recorded_at,
                u.recorded_at_ns
            FROM unnest(v_ids, p_event_types[v_first : v_until],
                    p_schema_versions[v_first : v_until], p_payloads[v_first : v_until],
                    p_metadata[v_first : v_until], p_recorded_at[v_first : v_until],
                    p_recorded_at_ns[v_first : v_until])
                WITH ORDINALITY AS u(event_id, event_type, schema_version, payload, metadata,
                    recorded_at, recorded_at_ns, ord)
            RETURNING v_request, e.position, e.version, e.payload::text, e.metadata::text;
            v_last := v_last + v_count;
            IF p_snapshot_states[v_request] IS NOT NULL THEN
                INSERT INTO {schema}.snapshots AS s (aggregate_type, aggregate_id, version,
                    state, taken_at, taken_at_ns)
                VALUES (p_aggregate_types[v_request], p_aggregate_ids[v_request],
                    p_snapshot_versions[v_request], p_snapshot_states[v_request]::jsonb,
                    p_snapshot_taken_at[v_request], p_snapshot_taken_at_ns[v_request])
                ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET version = EXCLUDED.version, state = EXCLUDED.state,
                    taken_at = EXCLUDED.taken_at, taken_at_ns = EXCLUDED.taken_at_ns
                WHERE s.version <= EXCLUDED.version;
            END IF;
            IF v_view_count > 0 THEN
                DELETE FROM {schema}.views AS v
                USING unnest(p_view_deletes[v_view_first : v_view_until],
                        p_view_types[v_view_first : v_view_until],
                        p_view_ids[v_view_first : v_view_until])
                    AS d(is_delete, view_type, view_id)
                WHERE d.is_delete AND v.view_type = d.view_type AND v.view_id = d.view_id;
                INSERT INTO {schema}.views AS v (view_type, view_id, aggregate_id, version, data)
                SELECT u.view_type, u.view_id, u.aggregate_id, u.version, u.data::jsonb
                FROM unnest(p_view_deletes[v_view_first : v_view_until],
                        p_view_types[v_view_first : v_view_until],
                        p_view_ids[v_view_first : v_view_until],
                        p_view_aggregate_ids[v_view_first : v_view_until],
                        p_view_versions[v_view_first : v_view_until],
                        p_view_data[v_view_first : v_view_until])
                    AS u(is_delete, view_type, view_id, aggregate_id, version, data)
                WHERE NOT u.is_delete
                ON CONFLICT (view_type, view_id) DO UPDATE
                SET aggregate_id = EXCLUDED.aggregate_id, version = EXCLUDED.version,
                    data = EXCLUDED.data;
            END IF;
        END IF;
        v_first := v_until + 1;
        v_view_first := v_view_until + 1;
    END LOOP;
END;
$function$;

-- As migration 4's version, with the locks of its streams and keys instead of the
-- store-wide one: a key's check and its write are exact under the key's lock.
CREATE OR REPLACE FUNCTION {schema}.append_events_idempotent(
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
    PERFORM {schema}.lock_streams(p_aggregate_types, p_aggregate_ids, p_idem_scopes,
        p_idem_keys);
    FOR v_request IN 1 .. coalesce(array_length(p_aggregate_types, 1), 0) LOOP
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

DROP TABLE {schema}.event_position;
"#
);
