//! Event upcasting: bringing events stored with an old payload schema to the current one.
//!
//! An upcaster turns the JSON payload of `(event_type, version n)` into version `n + 1`.
//! When an event is read, the chain runs from its stored version as long as an upcaster for
//! the next step exists, then the payload is deserialized. Backends never see any of this.
//!
//! Payloads are read exactly ([`crate::json`]): an upcaster sees a number no `f64` holds as
//! the marker object `{"$factum::number": "<text>"}`, and should pass it on untouched.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::aggregate::Event;
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};
use crate::store::StoredEvent;

type UpcastFn = dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync;

/// A set of upcasters, keyed by event type and the schema version they start from.
///
/// ```
/// use factum_core::Upcasters;
/// use serde_json::json;
/// // Version 1 of `MoneyDeposited` stored the amount as `value`.
/// let upcasters = Upcasters::new().register("MoneyDeposited", 1, |mut payload| {
///     let value = payload.get("value").cloned().ok_or("no value")?;
///     payload["amount"] = value;
///     Ok::<_, &str>(payload)
/// });
/// let (payload, version) = upcasters
///     .upcast("MoneyDeposited", 1, json!({"type": "MoneyDeposited", "value": 5}))
///     .unwrap();
/// assert_eq!(version, 2);
/// assert_eq!(payload["amount"], 5);
/// ```
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Arc<UpcastFn>>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    /// No upcasters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step from `from_version` to `from_version + 1` of `event_type`.
    #[must_use]
    pub fn register<F, E>(
        mut self,
        event_type: impl Into<String>,
        from_version: u32,
        step: F,
    ) -> Self
    where
        F: Fn(serde_json::Value) -> Result<serde_json::Value, E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.steps.insert(
            (event_type.into(), from_version),
            Arc::new(move |payload| step(payload).map_err(|e| e.to_string())),
        );
        self
    }

    /// Whether an event of this type and version needs upcasting.
    pub fn applies_to(&self, event_type: &str, version: u32) -> bool {
        !self.steps.is_empty() && self.steps.contains_key(&(event_type.to_owned(), version))
    }

    /// Runs the chain from `version`; returns the payload and the version reached.
    pub fn upcast(
        &self,
        event_type: &str,
        mut version: u32,
        mut payload: serde_json::Value,
    ) -> Result<(serde_json::Value, u32)> {
        while let Some(step) = self.steps.get(&(event_type.to_owned(), version)) {
            payload = step(payload).map_err(|message| Error::Upcast {
                event_type: event_type.to_owned(),
                from_version: version,
                message,
            })?;
            version = version.checked_add(1).ok_or_else(|| Error::Upcast {
                event_type: event_type.to_owned(),
                from_version: version,
                message: "schema version overflow".to_owned(),
            })?;
        }
        Ok((payload, version))
    }

    /// Deserializes a stored event's payload, upcasting it first if needed.
    pub fn decode_payload<E: Event>(&self, stored: &StoredEvent) -> Result<E> {
        let what = || format!("{} event {}", stored.event_type, stored.event_id);
        if self.applies_to(&stored.event_type, stored.schema_version) {
            let raw = crate::json::from_str(&stored.payload)
                .map_err(|e| Error::serialization(what(), e))?;
            let (upcast, _) = self.upcast(&stored.event_type, stored.schema_version, raw)?;
            serde_json::from_value(upcast).map_err(|e| Error::serialization(what(), e))
        } else {
            crate::json::from_str(&stored.payload).map_err(|e| Error::serialization(what(), e))
        }
    }

    /// Deserializes a stored event into its typed envelope, upcasting it first if needed.
    pub fn decode<E: Event>(&self, stored: &StoredEvent) -> Result<EventEnvelope<E>> {
        let payload = self.decode_payload(stored)?;
        Ok(EventEnvelope {
            event_id: stored.event_id,
            aggregate_type: stored.aggregate_type.clone(),
            aggregate_id: stored.aggregate_id.clone(),
            version: stored.version,
            position: stored.position,
            recorded_at: stored.recorded_at,
            event_type: stored.event_type.clone(),
            metadata: stored.parse_metadata()?,
            payload,
        })
    }
}
