//! Idempotency records: what a store keeps so that a client may repeat a command safely.
//!
//! A client that sends a command with an idempotency key and loses the reply cannot tell
//! whether the command was stored; it repeats the request with the same key. The first
//! request that runs leaves an [`IdempotencyRecord`]: the key, a hash of the request, and
//! the response it got. A repeat finds the record and gets the same response back, and
//! nothing is stored a second time.
//!
//! # Why the record is written with the events
//!
//! A command that stores events writes its record in the same transaction as the events
//! ([`AppendRequest::idempotency`](crate::AppendRequest::idempotency)): a crash can never
//! leave events without the record (the repeat would store them again) or a record without
//! events (the repeat would be told of a deposit that never happened). So the response must
//! be known before the commit: the engine renders it from the new state and version, which it
//! knows before appending, through the caller's renderer (see
//! [`Remember`](crate::Remember)). The response's text is then exactly what the repeat gets.
//!
//! A command that stores nothing (a business rule said no, or the command changed nothing)
//! has no transaction to join: its record is written alone with
//! [`EventStore::remember_idempotency`](crate::EventStore::remember_idempotency).
//!
//! # Keys are unique per scope, and the first writer wins
//!
//! `(scope, key)` is unique in every store (the scope is who the key belongs to, such as
//! the calling user). When two nodes run the same key at once, the loser's append fails
//! with [`Error::IdempotencyKeyTaken`](crate::Error::IdempotencyKeyTaken) and stores
//! nothing; the loser then reads the winner's record and answers with it. A record whose
//! `expires_at` has passed counts as absent: lookups skip it and a new record replaces it.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// The longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A remembered response to a request that carried an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Whose key it is (the calling user, or `""` for anonymous callers). Keys of different
    /// scopes never meet.
    pub scope: String,
    /// The key, as the client sent it (see [`validate_idempotency_key`]).
    pub key: String,
    /// A hash of the request the key was first used with; a repeat with another hash is
    /// refused.
    pub request_hash: String,
    /// The response's status.
    pub status: u16,
    /// The response, in the caller's own encoding (stores keep it as opaque text).
    pub response: String,
    /// When the first request ran.
    pub created_at: DateTime<Utc>,
    /// From when on the record counts as absent (and may be purged).
    pub expires_at: DateTime<Utc>,
}

impl IdempotencyRecord {
    /// Whether the record still counts at `now`.
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] printable ASCII characters
/// (`' '` to `'~'`), without leading or trailing spaces.
///
/// ```
/// use factum_core::validate_idempotency_key;
/// assert!(validate_idempotency_key("3f1c0a6e-retry-1").is_ok());
/// assert!(validate_idempotency_key("").is_err());
/// assert!(validate_idempotency_key("clé").is_err());
/// ```
pub fn validate_idempotency_key(key: &str) -> Result<()> {
    let problem = if key.is_empty() {
        Some("is empty".to_owned())
    } else if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        Some(format!(
            "has {} characters; at most {MAX_IDEMPOTENCY_KEY_LEN} are allowed",
            key.len()
        ))
    } else if !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        Some("holds characters other than printable ASCII".to_owned())
    } else if key.starts_with(' ') || key.ends_with(' ') {
        Some("starts or ends with a space".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Validation(format!("the idempotency key {problem}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(validate_idempotency_key("a").is_ok());
        assert!(validate_idempotency_key("a b~!").is_ok());
        assert!(validate_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_LEN)).is_ok());
        for bad in [
            String::new(),
            "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1),
            "tab\there".to_owned(),
            "nul\0".to_owned(),
            "é".to_owned(),
            " lead".to_owned(),
            "trail ".to_owned(),
            "\u{7f}".to_owned(),
        ] {
            assert!(
                matches!(validate_idempotency_key(&bad), Err(Error::Validation(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_record_lives_until_it_expires() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let record = IdempotencyRecord {
            scope: String::new(),
            key: "k".into(),
            request_hash: "h".into(),
            status: 200,
            response: "{}".into(),
            created_at: at,
            expires_at: at + chrono::Duration::seconds(10),
        };
        assert!(record.is_live_at(at + chrono::Duration::seconds(9)));
        assert!(!record.is_live_at(at + chrono::Duration::seconds(10)));
    }
}
