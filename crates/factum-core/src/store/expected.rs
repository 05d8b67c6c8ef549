//! What an append expects of a stream's version.

use std::fmt;

/// What an append expects of the stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No expectation.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream must be at exactly this version (0 is the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `current` (0 for none) satisfies the expectation.
    pub fn is_satisfied_by(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Exact(expected) => current == expected,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}
