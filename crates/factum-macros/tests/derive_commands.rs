//! `#[derive(Commands)]` names exactly the commands serde reads.

use factum_core::Commands;
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Commands, Debug, PartialEq, Deserialize)]
#[serde(tag = "type")]
enum Plain {
    Open { owner: String },
    Close,
}

#[derive(Commands, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum Renamed {
    MoneyDeposited {
        amount: u64,
    },
    #[serde(rename(serialize = "out", deserialize = "withdrawn"))]
    MoneyWithdrawn {
        amount: u64,
    },
    #[serde(rename = "ice")]
    Frozen,
    #[serde(alias = "Unfrozen")]
    Thawed {},
}

#[derive(Commands, Debug, PartialEq, Deserialize)]
#[serde(
    tag = "op",
    rename_all(serialize = "UPPERCASE", deserialize = "snake_case")
)]
enum HalfRenamed {
    StartOver,
}

/// Every name is one serde reads, `name()` of what it reads is that name, and nothing else
/// in the tag field is read.
fn names_are_what_serde_reads<C: Commands + DeserializeOwned + std::fmt::Debug>(
    bodies: &[serde_json::Value],
) {
    assert_eq!(bodies.len(), C::NAMES.len());
    for (name, body) in C::NAMES.iter().zip(bodies) {
        assert_eq!(body[C::TAG], *name, "{body}");
        let command: C =
            serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(command.name(), *name);
        let mut other = body.clone();
        other[C::TAG] = format!("{name}-not").into();
        assert!(serde_json::from_value::<C>(other).is_err(), "{name}");
    }
}

#[test]
fn plain_names_are_the_variant_names() {
    assert_eq!(Plain::TAG, "type");
    assert_eq!(Plain::NAMES, ["Open", "Close"]);
    const { assert!(!Plain::DENY_UNKNOWN_FIELDS) };
    names_are_what_serde_reads::<Plain>(&[
        serde_json::json!({"type": "Open", "owner": "ann"}),
        serde_json::json!({"type": "Close"}),
    ]);
    // Without deny_unknown_fields serde ignores an extra field, as the constant says.
    let extra = serde_json::json!({"type": "Close", "why": "late"});
    assert_eq!(
        serde_json::from_value::<Plain>(extra).ok(),
        Some(Plain::Close)
    );
}

#[test]
fn renames_tag_fields_and_closed_bodies_follow_serde() {
    assert_eq!(Renamed::TAG, "kind");
    assert_eq!(
        Renamed::NAMES,
        ["money-deposited", "withdrawn", "ice", "thawed"]
    );
    const { assert!(Renamed::DENY_UNKNOWN_FIELDS) };
    names_are_what_serde_reads::<Renamed>(&[
        serde_json::json!({"kind": "money-deposited", "amount": 1}),
        serde_json::json!({"kind": "withdrawn", "amount": 2}),
        serde_json::json!({"kind": "ice"}),
        serde_json::json!({"kind": "thawed"}),
    ]);
    // An alias is read too, but the command's name is its canonical one.
    let alias: Renamed = serde_json::from_value(serde_json::json!({"kind": "Unfrozen"})).unwrap();
    assert_eq!(alias.name(), "thawed");
    let extra = serde_json::json!({"kind": "money-deposited", "amount": 1, "memo": "x"});
    assert!(serde_json::from_value::<Renamed>(extra).is_err());
}

#[test]
fn the_deserialize_half_of_a_rename_rule_names_the_command() {
    assert_eq!(HalfRenamed::NAMES, ["start_over"]);
    names_are_what_serde_reads::<HalfRenamed>(&[serde_json::json!({"op": "start_over"})]);
}
