//! Sample serialized events for store tests: what the conformance suite appends, and what
//! backend tests that need a plain event use too.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use factum_core::Metadata;
use factum_core::store::NewEvent;
use uuid::Uuid;

/// A fixed timestamp with microsecond precision (the finest every backend keeps).
pub fn at(second: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000 + second, 123_456_000).unwrap_or_default()
}

/// A new event with a fresh id whose payload records `n`.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "Counted".to_owned(),
        schema_version: 1,
        payload: serde_json::json!({"type": "Counted", "n": n}).to_string(),
        metadata: serde_json::to_string(&Metadata {
            user_id: Some("tester".to_owned()),
            request_id: Some(format!("req-{n}")),
            correlation_id: Some("corr".to_owned()),
            causation_id: None,
            extra: BTreeMap::from([("n".to_owned(), serde_json::json!(n))]),
        })
        .unwrap(),
        recorded_at: at(i64::try_from(n).unwrap_or(0)),
    }
}
