//! What the OpenAPI document says of every command and event of the bank is what serde
//! accepts: required and optional fields, tag values, closed bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank::domain::Account;
use bank::views::{AccountSummary, Movement};
use factum_http::schema_check;

#[test]
fn commands_and_events_read_as_documented() {
    let report = schema_check::check_aggregate::<Account>();
    assert!(report.mismatches.is_empty(), "{:#?}", report.mismatches);
    // 3 commands and 3 events, each tried minimal, without each required field, with an
    // unknown field, a wrong tag and no tag.
    assert!(report.cases >= 30, "{}", report.cases);
}

#[test]
fn documented_commands_are_the_domains() {
    let doc = bank::http::api(
        &bank::http::Bank::open(std::sync::Arc::new(factum_core::InMemoryEventStore::new()))
            .unwrap(),
        factum_http::HttpConfig::default(),
    )
    .unwrap()
    .openapi();
    let doc = serde_json::to_value(doc).unwrap();
    let schemas = &doc["components"]["schemas"];
    let tags: Vec<_> = schemas["AccountCommandBody"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| {
            assert_eq!(variant["additionalProperties"], false, "{variant}");
            variant["properties"]["type"]["enum"][0].clone()
        })
        .collect();
    assert_eq!(tags, ["OpenAccount", "Deposit", "Withdraw"]);
    // Summaries come from the variants' doc comments.
    let open = &doc["paths"]["/api/accounts/{id}/commands/OpenAccount"]["post"];
    assert_eq!(
        open["summary"],
        "Open an account with an owner and an opening balance"
    );
    // The view records are documented by their own types.
    for (schema, record) in [
        (
            "AccountSummary",
            serde_json::to_value(AccountSummary::default()).unwrap(),
        ),
        (
            "Movement",
            serde_json::to_value(Movement::default()).unwrap(),
        ),
    ] {
        let properties = schemas[schema]["properties"].as_object().unwrap();
        for field in record.as_object().unwrap().keys() {
            assert!(properties.contains_key(field), "{schema}.{field}");
        }
    }
}
