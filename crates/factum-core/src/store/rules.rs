//! The rules of an append, written once for every backend.
//!
//! A backend stores serialized events; what an append may do, and what a refused one means,
//! is decided here so that the in-memory, SQLite and PostgreSQL stores cannot drift apart
//! (the conformance suite in `factum-testing` checks that they agree):
//!
//! 1. Before anything is stored, [`validate`] checks the request on its own: a stream named,
//!    no event id twice, counts that fit, and a snapshot of the appended aggregate.
//! 2. Under the backend's write lock (or in its transaction), the expectation is checked
//!    against the stream's current version with [`check_expected`], and then the snapshot's
//!    version against the version reached with [`check_snapshot_version`]: a failed
//!    expectation is a conflict first, whatever the snapshot says. A backend that checks
//!    the expectation in the database can check the snapshot before sending when the
//!    expectation pins the version ([`pinned_version`]).
//! 3. An append whose first event id is stored already is a retry of an append that went
//!    through (its caller never heard back) when [`retry_of`] finds its ids, in order, at
//!    consecutive versions of the same stream: it returns the stored events and stores
//!    nothing. Anything else that stores nothing is a [`conflict`], or
//!    [`key_taken`] when a live idempotency record holds its key.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::idempotency::IdempotencyRecord;

use super::expected::ExpectedVersion;
use super::record::StoredEvent;
use super::request::AppendRequest;

/// The most events, and the most view changes, one append may carry (backends count them in
/// 32-bit integers).
pub const MAX_APPEND_LEN: usize = i32::MAX as usize;

/// Checks a request before a backend stores anything: bad input changes nothing.
///
/// An event id given twice is a [`conflict`] (both cannot be new); the rest is
/// [`Error::Validation`].
pub fn validate(request: &AppendRequest) -> Result<()> {
    if request.aggregate_type.is_empty() || request.aggregate_id.is_empty() {
        return Err(Error::Validation(
            "an append names its aggregate type and id".to_owned(),
        ));
    }
    if request.events.len() > MAX_APPEND_LEN || request.view_changes.len() > MAX_APPEND_LEN {
        return Err(Error::Validation(format!(
            "an append of {} events and {} view changes is too large",
            request.events.len(),
            request.view_changes.len()
        )));
    }
    // Most commands append one event: no set to build for those on the hot path.
    let mut ids = std::collections::HashSet::new();
    if request.events.len() > 1
        && !request
            .events
            .iter()
            .all(|event| ids.insert(event.event_id))
    {
        return Err(conflict(request, None));
    }
    if let Some(snapshot) = &request.snapshot
        && (snapshot.aggregate_type != request.aggregate_type
            || snapshot.aggregate_id != request.aggregate_id)
    {
        return Err(Error::Validation(format!(
            "the snapshot of {} '{}' cannot be written with an append to {} '{}'",
            snapshot.aggregate_type,
            snapshot.aggregate_id,
            request.aggregate_type,
            request.aggregate_id
        )));
    }
    Ok(())
}

/// The stream's version before the append, when the expectation pins it (`NoStream`,
/// `Exact`): the version it must be at for the append to go through.
pub fn pinned_version(request: &AppendRequest) -> Option<u64> {
    match request.expected {
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(version) => Some(version),
        ExpectedVersion::Any | ExpectedVersion::StreamExists => None,
    }
}

/// The expectation against the stream's current version: a [`conflict`] unless it holds.
pub fn check_expected(request: &AppendRequest, current: u64) -> Result<()> {
    if request.expected.is_satisfied_by(current) {
        Ok(())
    } else {
        Err(conflict(request, Some(current)))
    }
}

/// The snapshot, if any, must be at the version the append reaches from `current`.
pub fn check_snapshot_version(request: &AppendRequest, current: u64) -> Result<()> {
    let Some(snapshot) = &request.snapshot else {
        return Ok(());
    };
    let reached = current.saturating_add(request.events.len() as u64);
    if snapshot.version == reached {
        Ok(())
    } else {
        Err(snapshot_version_error(snapshot.version, reached))
    }
}

/// The error of a snapshot at `version` written with an append that reaches `reached`
/// (for a backend that checks the version itself, in its own SQL or types).
pub fn snapshot_version_error(version: impl std::fmt::Display, reached: u64) -> Error {
    Error::Validation(format!(
        "the snapshot's version {version} is not the version {reached} the append reaches"
    ))
}

/// Whether an append whose first event id is stored already is a retry: `stored` holds the
/// events of the append's stream from the version where that id is stored (at most as many
/// as the append has). Returns them when they are the append's events, id for id.
///
/// A backend calls it only with events of the append's own stream: a first id stored under
/// another aggregate is a [`conflict`].
pub fn retry_of(request: &AppendRequest, stored: Vec<StoredEvent>) -> Option<Vec<StoredEvent>> {
    let ids = request.events.iter().map(|event| event.event_id);
    is_retry(&request.aggregate_type, &request.aggregate_id, ids, &stored).then_some(stored)
}

/// [`retry_of`] for a backend that keeps its append in another shape: whether `stored` are
/// the events of `ids`, in order, in the stream of `aggregate_type` and `aggregate_id`.
pub fn is_retry(
    aggregate_type: &str,
    aggregate_id: &str,
    ids: impl ExactSizeIterator<Item = Uuid>,
    stored: &[StoredEvent],
) -> bool {
    stored.len() == ids.len()
        && stored.iter().zip(ids).all(|(stored, id)| {
            stored.event_id == id
                && stored.aggregate_type == aggregate_type
                && stored.aggregate_id == aggregate_id
        })
}

/// The conflict error of `request`: the stream was not as it expected (`actual` is the
/// stream's version, when known), or its event ids cannot be stored.
pub fn conflict(request: &AppendRequest, actual: Option<u64>) -> Error {
    stream_conflict(
        &request.aggregate_type,
        &request.aggregate_id,
        request.expected,
        actual,
    )
}

/// [`conflict`] for a backend that keeps its append in another shape.
pub fn stream_conflict(
    aggregate_type: &str,
    aggregate_id: &str,
    expected: ExpectedVersion,
    actual: Option<u64>,
) -> Error {
    Error::Conflict {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        expected,
        actual,
    }
}

/// The error of an append (or a remembered answer) whose idempotency key a live record holds.
pub fn key_taken(record: &IdempotencyRecord) -> Error {
    Error::IdempotencyKeyTaken {
        scope: record.scope.clone(),
        key: record.key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::{NewEvent, Snapshot};

    fn new_event() -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "E".to_owned(),
            schema_version: 1,
            payload: "{}".to_owned(),
            metadata: "{}".to_owned(),
            recorded_at: Utc::now(),
        }
    }

    fn stored(request: &AppendRequest, event: &NewEvent, version: u64) -> StoredEvent {
        StoredEvent {
            position: version,
            event_id: event.event_id,
            aggregate_type: request.aggregate_type.clone(),
            aggregate_id: request.aggregate_id.clone(),
            version,
            event_type: event.event_type.clone(),
            schema_version: 1,
            payload: "{}".to_owned(),
            metadata: "{}".to_owned(),
            recorded_at: event.recorded_at,
        }
    }

    fn snapshot(id: &str, version: u64) -> Snapshot {
        Snapshot {
            aggregate_type: "t".to_owned(),
            aggregate_id: id.to_owned(),
            version,
            state: "{}".to_owned(),
            taken_at: Utc::now(),
        }
    }

    #[test]
    fn a_retry_is_the_same_ids_in_order() {
        let events = vec![new_event(), new_event()];
        let request = AppendRequest::new("t", "a", ExpectedVersion::NoStream, events.clone());
        let same = vec![
            stored(&request, &events[0], 1),
            stored(&request, &events[1], 2),
        ];
        assert_eq!(retry_of(&request, same.clone()), Some(same));
        let short = vec![stored(&request, &events[0], 1)];
        assert_eq!(retry_of(&request, short), None);
        let other = new_event();
        let tail = vec![stored(&request, &events[0], 1), stored(&request, &other, 2)];
        assert_eq!(retry_of(&request, tail), None);
    }

    #[test]
    fn a_twice_given_id_is_a_conflict_and_bad_input_a_validation_error() {
        let twin = new_event();
        let request = AppendRequest::new("t", "a", ExpectedVersion::Any, vec![twin.clone(), twin]);
        assert!(matches!(
            validate(&request),
            Err(Error::Conflict { actual: None, .. })
        ));
        let unnamed = AppendRequest::new("t", "", ExpectedVersion::Any, vec![new_event()]);
        assert!(matches!(validate(&unnamed), Err(Error::Validation(_))));
    }

    #[test]
    fn the_snapshot_is_of_the_appended_aggregate_at_the_new_version() {
        let mut request =
            AppendRequest::new("t", "a", ExpectedVersion::Exact(3), vec![new_event()]);
        request.snapshot = Some(snapshot("a", 4));
        assert!(validate(&request).is_ok());
        assert_eq!(pinned_version(&request), Some(3));
        assert!(check_snapshot_version(&request, 3).is_ok());
        request.snapshot = Some(snapshot("b", 4));
        assert!(matches!(validate(&request), Err(Error::Validation(_))));
        request.snapshot = Some(snapshot("a", 3));
        assert!(
            validate(&request).is_ok(),
            "its version is checked against the stream"
        );
        assert!(matches!(
            check_snapshot_version(&request, 3),
            Err(Error::Validation(_))
        ));
        request.expected = ExpectedVersion::Any;
        assert_eq!(pinned_version(&request), None);
        assert!(check_snapshot_version(&request, 2).is_ok());
    }

    #[test]
    fn a_failed_expectation_is_a_conflict_with_the_actual_version() {
        let request = AppendRequest::new("t", "a", ExpectedVersion::Exact(2), vec![new_event()]);
        assert!(check_expected(&request, 2).is_ok());
        assert!(matches!(
            check_expected(&request, 5),
            Err(Error::Conflict {
                actual: Some(5),
                expected: ExpectedVersion::Exact(2),
                ..
            })
        ));
    }
}
