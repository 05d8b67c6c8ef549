//! What the OpenAPI document says of every command and event of the to-do lists is what
//! serde accepts: required and optional fields (`was_resolved` is optional in both), tag
//! values, closed bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_http::schema_check;
use todolist::domain::TodoList;

#[test]
fn commands_and_events_read_as_documented() {
    let report = schema_check::check_aggregate::<TodoList>();
    assert!(report.mismatches.is_empty(), "{:#?}", report.mismatches);
    // 5 commands and 5 events.
    assert!(report.cases >= 50, "{}", report.cases);
}

#[test]
fn an_optional_event_field_is_documented_as_optional() {
    use todolist::domain::TodoListEvent;
    use utoipa::PartialSchema;
    let schema = serde_json::to_value(TodoListEvent::schema()).unwrap();
    let removed = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["properties"]["type"]["enum"][0] == "TodoRemoved")
        .unwrap();
    assert_eq!(removed["required"], serde_json::json!(["todo_id", "type"]));
    assert!(removed["properties"]["was_resolved"].is_object());
}
