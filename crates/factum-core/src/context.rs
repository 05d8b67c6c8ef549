//! The context of a command: who asked, as part of which request, and the clock and id source
//! the engine uses. Every stored event's [`Metadata`] is taken from it: this is the audit trail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A source of the current time. Inject a [`ManualClock`] to make tests deterministic.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A source of unique ids (event ids, generated aggregate ids, request ids).
pub trait IdSource: Send + Sync + fmt::Debug {
    /// A new id, never returned before by this source.
    fn new_id(&self) -> Uuid;
}

/// Random UUID v4 ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn new_id(&self) -> Uuid {
        Uuid::new_v4()
    }
}

/// Ids `00000000-0000-0000-0000-000000000001`, `...002`, ...: deterministic, for tests.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdSource for SequentialIds {
    fn new_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.next.fetch_add(1, Ordering::Relaxed)) + 1)
    }
}

/// Who did what, as part of which request: recorded in every event's metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The user who issued the command; `None` for anonymous callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The request that carried the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The conversation the request belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The message (event or command) that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Free-form entries.
    #[serde(default, flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The context a command runs in: user, request, correlation and causation ids, free-form
/// metadata, and the clock and id source the engine uses.
///
/// ```
/// use factum_core::CqrsContext;
/// let ctx = CqrsContext::new()
///     .with_user("alice")
///     .with_request_id("req-7")
///     .with_metadata("ip", "10.0.0.1");
/// let meta = ctx.to_metadata();
/// assert_eq!(meta.user_id.as_deref(), Some("alice"));
/// assert_eq!(meta.correlation_id.as_deref(), Some("req-7"));
/// ```
#[derive(Clone)]
pub struct CqrsContext {
    user_id: Option<String>,
    // What the caller's credentials grant; checked by authorization, never recorded.
    roles: BTreeSet<String>,
    request_id: String,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    metadata: BTreeMap<String, serde_json::Value>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

crate::debug_fields! {
    CqrsContext {
        user_id, roles, request_id, correlation_id, causation_id, metadata, ..
    }
}

impl Default for CqrsContext {
    fn default() -> Self {
        Self::new()
    }
}

impl CqrsContext {
    /// An anonymous context with a fresh random request id, the system clock and random ids.
    pub fn new() -> Self {
        Self {
            user_id: None,
            roles: BTreeSet::new(),
            request_id: Uuid::new_v4().to_string(),
            correlation_id: None,
            causation_id: None,
            metadata: BTreeMap::new(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
        }
    }

    /// Sets the user.
    #[must_use]
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the roles (or scopes) the caller's credentials grant, for authorization. They are
    /// not recorded in the events' metadata.
    #[must_use]
    pub fn with_roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    crate::setters! {
        /// Sets the request id.
        pub fn with_request_id(request_id: impl Into<String>) => request_id = request_id.into();
        /// Sets the correlation id (defaults to the request id).
        pub fn with_correlation_id(correlation_id: impl Into<String>)
            => correlation_id = Some(correlation_id.into());
        /// Sets the causation id.
        pub fn with_causation_id(causation_id: impl Into<String>)
            => causation_id = Some(causation_id.into());
    }

    /// Adds a free-form metadata entry.
    #[must_use]
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    crate::setters! {
        /// Replaces the clock.
        pub fn with_clock(clock: Arc<dyn Clock>) => clock = clock;
        /// Replaces the id source.
        pub fn with_id_source(ids: Arc<dyn IdSource>) => ids = ids;
    }

    /// The user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The roles (or scopes) the caller holds.
    pub fn roles(&self) -> &BTreeSet<String> {
        &self.roles
    }

    /// Whether the caller holds this role (or scope).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The correlation id (the request id unless set).
    pub fn correlation_id(&self) -> &str {
        self.correlation_id.as_deref().unwrap_or(&self.request_id)
    }

    /// The causation id, if any.
    pub fn causation_id(&self) -> Option<&str> {
        self.causation_id.as_deref()
    }

    /// The free-form metadata.
    pub fn metadata(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.metadata
    }

    /// The current time from the context's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A new id from the context's id source.
    pub fn new_id(&self) -> Uuid {
        self.ids.new_id()
    }

    /// The metadata recorded with each event this context causes.
    pub fn to_metadata(&self) -> Metadata {
        Metadata {
            user_id: self.user_id.clone(),
            request_id: Some(self.request_id.clone()),
            correlation_id: Some(self.correlation_id().to_owned()),
            causation_id: self.causation_id.clone(),
            extra: self.metadata.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_and_manual_clock_are_deterministic() {
        let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let clock = Arc::new(ManualClock::new(start));
        let ctx = CqrsContext::new()
            .with_clock(clock.clone())
            .with_id_source(Arc::new(SequentialIds::default()));
        assert_eq!(ctx.new_id(), Uuid::from_u128(1));
        assert_eq!(ctx.new_id(), Uuid::from_u128(2));
        assert_eq!(ctx.now(), start);
        clock.advance(chrono::Duration::seconds(5));
        assert_eq!(ctx.now(), start + chrono::Duration::seconds(5));
    }

    #[test]
    fn metadata_flattens_extra_entries() {
        let ctx = CqrsContext::new()
            .with_request_id("r1")
            .with_correlation_id("c1")
            .with_metadata("tenant", "t9");
        let json = serde_json::to_value(ctx.to_metadata()).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"request_id": "r1", "correlation_id": "c1", "tenant": "t9"})
        );
    }
}
