//! The parts the versions of the append functions share, as macros expanding to string
//! literals, so that `concat!` builds each migration's SQL at compile time and a released
//! migration's text stays what it was.

/// The parameters every append function starts with (before `p_recorded_at_ns`).
macro_rules! append_params {
    () => {
        r#"    p_aggregate_types text[],
    p_aggregate_ids text[],
    p_min_versions bigint[],
    p_max_versions bigint[],
    p_event_counts integer[],
    p_snapshot_versions bigint[],
    p_snapshot_states text[],
    p_snapshot_taken_at timestamptz[],
    p_snapshot_taken_at_ns smallint[],
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions bigint[],
    p_payloads text[],
    p_metadata text[],
    p_recorded_at timestamptz[],
"#
    };
}
pub(crate) use append_params;

/// The inline view change parameters (before `p_view_data`).
macro_rules! view_params {
    () => {
        r#"    p_view_counts integer[],
    p_view_deletes boolean[],
    p_view_types text[],
    p_view_ids text[],
    p_view_aggregate_ids text[],
    p_view_versions bigint[],
"#
    };
}
pub(crate) use view_params;

/// What the append functions return since migration 2.
macro_rules! returns_with_metadata {
    () => {
        r#") RETURNS TABLE (request integer, event_position bigint, event_version bigint,
    event_payload text, event_metadata text)
"#
    };
}
pub(crate) use returns_with_metadata;

/// The settings of every append function, up to its body.
macro_rules! plpgsql_head {
    () => {
        r#"LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $function$
"#
    };
}
pub(crate) use plpgsql_head;

/// The variables of `append_events`.
macro_rules! append_declare {
    () => {
        r#"DECLARE
    v_start bigint;
    v_last bigint;
    v_current bigint;
    v_first integer := 1;
    v_count integer;
    v_until integer;
    v_ids uuid[];
    v_new_ids boolean;
"#
    };
}
pub(crate) use append_declare;

/// Takes the position lock and starts the loop over the requests.
macro_rules! append_loop_head {
    () => {
        r#"    -- The lock comes first: every statement below runs on a fresh snapshot that shows all
    -- appends committed before it, so version and event-id checks are exact.
    SELECT p.last_position INTO v_start FROM {schema}.event_position AS p FOR UPDATE;
    v_last := v_start;
    FOR v_request IN 1 .. coalesce(array_length(p_aggregate_types, 1), 0) LOOP
        v_count := p_event_counts[v_request];
        v_until := v_first + v_count - 1;
        v_ids := p_event_ids[v_first : v_until];
"#
    };
}
pub(crate) use append_loop_head;

/// Checks a request and inserts its events, up to their `RETURNING`.
macro_rules! append_insert_events {
    () => {
        r#"        -- One statement for all checks: the stream's version, and that the event ids are
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
            SELECT v_last + u.ord, p_aggregate_types[v_request], p_aggregate_ids[v_request],
                v_current + u.ord, u.event_id, u.event_type, u.schema_version,
                u.payload::jsonb, u.metadata::jsonb, u.recorded_at, u.recorded_at_ns
            FROM unnest(v_ids, p_event_types[v_first : v_until],
                    p_schema_versions[v_first : v_until], p_payloads[v_first : v_until],
                    p_metadata[v_first : v_until], p_recorded_at[v_first : v_until],
                    p_recorded_at_ns[v_first : v_until])
                WITH ORDINALITY AS u(event_id, event_type, schema_version, payload, metadata,
                    recorded_at, recorded_at_ns, ord)
"#
    };
}
pub(crate) use append_insert_events;

/// Moves the position on and writes the request's snapshot.
macro_rules! append_snapshot {
    () => {
        r#"            v_last := v_last + v_count;
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
"#
    };
}
pub(crate) use append_snapshot;

/// Writes a stored request's view changes, closes its `IF` and moves on to the next request,
/// up to the end of the loop.
macro_rules! append_view_changes {
    () => {
        r#"            IF v_view_count > 0 THEN
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
"#
    };
}
pub(crate) use append_view_changes;

/// Stores the last assigned position and ends the function.
macro_rules! append_tail {
    () => {
        r#"    IF v_last <> v_start THEN
        UPDATE {schema}.event_position SET last_position = v_last;
    END IF;
END;
$function$;
"#
    };
}
pub(crate) use append_tail;
