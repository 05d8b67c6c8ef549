//! Upcasting: events stored under old schema versions read back in the current shape.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::sample::event;
use factum_core::{Event, EventStore, ExpectedVersion, Upcasters};
use serde::{Deserialize, Serialize};

use super::requests::*;

/// The current shape of the event the upcasting case reads.
#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[event(version = 3)]
pub enum Renamed {
    /// Schema 3: `amount_cents`; schema 1 stored `value` in units, schema 2 `amount` in units.
    Paid {
        /// The amount in cents.
        amount_cents: i64,
    },
}

/// Events stored under old schema versions read back in the current shape through the
/// core's upcaster chain: the store keeps `schema_version` and the payload untouched.
pub async fn upcasting_on_read(store: Arc<dyn EventStore>) {
    let mut v1 = event(1);
    v1.event_type = "Paid".to_owned();
    v1.payload = r#"{"type":"Paid","value":12}"#.to_owned();
    let mut v2 = event(2);
    v2.event_type = "Paid".to_owned();
    v2.schema_version = 2;
    v2.payload = r#"{"type":"Paid","amount":7}"#.to_owned();
    let mut v3 = event(3);
    v3.event_type = "Paid".to_owned();
    v3.schema_version = 3;
    v3.payload = r#"{"type":"Paid","amount_cents":5}"#.to_owned();
    append_events(&*store, "p-1", ExpectedVersion::NoStream, vec![v1, v2, v3]).await;

    let upcasters = Upcasters::new()
        .register("Paid", 1, |mut p: serde_json::Value| {
            let value = p.get("value").cloned().ok_or("no value")?;
            p["amount"] = value;
            Ok::<_, &str>(p)
        })
        .register("Paid", 2, |mut p: serde_json::Value| {
            let units = p
                .get("amount")
                .and_then(serde_json::Value::as_i64)
                .ok_or("no amount")?;
            p["amount_cents"] = serde_json::json!(units * 100);
            Ok::<_, &str>(p)
        });
    let stored = stream(&*store, "p-1", 1, None).await;
    assert_eq!(
        stored.iter().map(|e| e.schema_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let decoded: Vec<Renamed> = stored
        .iter()
        .map(|e| upcasters.decode::<Renamed>(e).unwrap().payload)
        .collect();
    assert_eq!(
        decoded,
        vec![
            Renamed::Paid { amount_cents: 1200 },
            Renamed::Paid { amount_cents: 700 },
            Renamed::Paid { amount_cents: 5 },
        ]
    );
}
