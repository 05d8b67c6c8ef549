//! `#[derive(Event)]` agrees with what serde writes.

use factum_core::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Plain {
    Opened { owner: String },
    Closed,
}

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
#[event(version = 3)]
enum Renamed {
    MoneyDeposited {
        amount: u64,
    },
    #[serde(rename(serialize = "withdrawn", deserialize = "withdrawn"))]
    MoneyWithdrawn {
        amount: u64,
    },
    #[event(version = 4)]
    Frozen,
    #[serde(alias = "Unfrozen")]
    Thawed,
}

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "price.changed")]
#[event(version = 2)]
struct PriceChanged {
    cents: u64,
}

/// What a generic event may carry: whatever an event needs of its fields.
trait Payload:
    Serialize
    + serde::de::DeserializeOwned
    + Clone
    + std::fmt::Debug
    + PartialEq
    + Send
    + Sync
    + 'static
{
}
impl Payload for u8 {}

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "T: Payload")]
#[event(name = "generic.happened")]
struct Generic<T: Payload> {
    value: T,
}

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ExternallyTagged {
    #[event(name = "legacy-tuple")]
    Tuple(u32, u32),
    Unit,
}

fn tag_of(value: &impl Serialize, tag: &str) -> Option<String> {
    let json = serde_json::to_value(value).ok()?;
    json[tag].as_str().map(str::to_owned)
}

#[test]
fn enum_names_are_the_serde_tags() {
    for event in [
        Plain::Opened {
            owner: "ann".into(),
        },
        Plain::Closed,
    ] {
        assert_eq!(Some(event.event_type().to_owned()), tag_of(&event, "type"));
        assert_eq!(event.schema_version(), 1);
    }
    for event in [
        Renamed::MoneyDeposited { amount: 1 },
        Renamed::MoneyWithdrawn { amount: 2 },
        Renamed::Frozen,
        Renamed::Thawed,
    ] {
        assert_eq!(Some(event.event_type().to_owned()), tag_of(&event, "kind"));
    }
    assert_eq!(
        Renamed::MoneyDeposited { amount: 1 }.event_type(),
        "MONEY_DEPOSITED"
    );
    assert_eq!(
        Renamed::MoneyWithdrawn { amount: 1 }.event_type(),
        "withdrawn"
    );
}

#[test]
fn versions_come_from_the_variant_then_the_type() {
    assert_eq!(Renamed::MoneyDeposited { amount: 1 }.schema_version(), 3);
    assert_eq!(Renamed::Frozen.schema_version(), 4);
    assert_eq!(PriceChanged { cents: 5 }.schema_version(), 2);
}

#[test]
fn structs_and_overrides() {
    assert_eq!(PriceChanged { cents: 5 }.event_type(), "price.changed");
    assert_eq!(Generic { value: 1u8 }.event_type(), "generic.happened");
    assert_eq!(Generic { value: 1u8 }.schema_version(), 1);
    assert_eq!(ExternallyTagged::Tuple(1, 2).event_type(), "legacy-tuple");
    let unit = serde_json::to_value(ExternallyTagged::Unit).unwrap();
    assert_eq!(unit, serde_json::json!(ExternallyTagged::Unit.event_type()));
}
