//! The SQL text of the event store, built once per store with its validated, quoted schema
//! name.

use crate::sql::statements;

/// The columns every event read returns, in the names [`stored_event`] decodes.
pub(crate) const EVENT_COLUMNS: &str = "position, event_id, aggregate_type, aggregate_id, version, \
    event_type, schema_version, payload::text AS payload, metadata::text AS metadata, \
    recorded_at, recorded_at_ns";

/// The columns of a stream read, by index as [`stream_event`] decodes them: the stream is the
/// caller's, so its names are not sent back.
///
/// [`stream_event`]: crate::rows::stream_event
pub(crate) const STREAM_COLUMNS: &str = "position, event_id, version, event_type, \
    schema_version, payload::text AS payload, metadata::text AS metadata, recorded_at, \
    recorded_at_ns";

statements! {
    /// The SQL of a store, built once with its validated, quoted schema name (the only text
    /// spliced in; every value is a bound parameter).
    pub(crate) struct Statements(s) {
        append_events = "SELECT request, event_position AS position, event_version AS version,
                    event_payload AS payload, event_metadata AS metadata
                FROM {s}.append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                    $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
                ORDER BY event_position",
        append_events_idempotent =
            "SELECT request, event_position AS position, event_version AS version,
                    event_payload AS payload, event_metadata AS metadata
                FROM {s}.append_events_idempotent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25,
                    $26, $27, $28, $29, $30)
                ORDER BY event_position",
        find_event =
            "SELECT aggregate_type, aggregate_id, version FROM {s}.events WHERE event_id = $1",
        read_stream = "SELECT {STREAM_COLUMNS} FROM {s}.events
                WHERE aggregate_type = $1 AND aggregate_id = $2 AND version >= $3
                ORDER BY version LIMIT $4",
        read_all = "SELECT {EVENT_COLUMNS} FROM {s}.events
                WHERE position > $1 AND position < (SELECT {HORIZON} FROM {s}.feed_origin AS o)
                ORDER BY position LIMIT $2",
        /// `read_all` below a horizon read before.
        read_all_below =
            "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position > $1 AND position < $3
                ORDER BY position LIMIT $2",
        stream_version = "SELECT coalesce(max(version), 0) FROM {s}.events
                WHERE aggregate_type = $1 AND aggregate_id = $2",
        load_snapshot =
            "SELECT version, state::text AS state, taken_at, taken_at_ns FROM {s}.snapshots
                WHERE aggregate_type = $1 AND aggregate_id = $2",
        save_snapshot = "INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, version, state,
                    taken_at, taken_at_ns)
                VALUES ($1, $2, $3, $4::jsonb, $5, $6)
                ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET version = EXCLUDED.version, state = EXCLUDED.state,
                    taken_at = EXCLUDED.taken_at, taken_at_ns = EXCLUDED.taken_at_ns
                WHERE snapshots.version <= EXCLUDED.version",
        /// The read horizon (positions below it are final) and the greatest committed
        /// position, from one snapshot.
        horizon = "SELECT {HORIZON} AS horizon,
                    (SELECT coalesce(max(position), 0) FROM {s}.events) AS head
                FROM {s}.feed_origin AS o",
        /// The greatest position below a horizon read before.
        head_below = "SELECT coalesce(max(position), 0) FROM {s}.events WHERE position < $1",
        /// The advisory locks of streams and idempotency keys (see migration 5).
        lock_streams = "SELECT {s}.lock_streams($1, $2, $3, $4)",
    }
}

/// The read horizon of the statement's snapshot, as a position: every transaction whose id is
/// below `pg_snapshot_xmin` has ended, so every position below this is committed or never
/// will be (see the `store` module). At least `base_position + 1`: the dense positions of
/// older releases are all committed.
const HORIZON: &str = "o.base_position + greatest(
    (pg_snapshot_xmin(pg_current_snapshot())::text::bigint - o.origin_xid) << 20, 1)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_the_only_text_spliced_into_sql() {
        let sql = Statements::new("\"bank\"");
        for statement in [&sql.append_events, &sql.read_all, &sql.save_snapshot] {
            let statement = statement.as_str();
            assert!(statement.contains("\"bank\"."));
            assert!(!statement.contains('\''), "no literals: {statement}");
        }
    }
}
