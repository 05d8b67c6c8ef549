//! The generic routes on a small test aggregate (a ticket whose command enums are tagged by
//! `kind`, not `type`, in `tickets/`): commands, the context they run in, the document,
//! driven with `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tickets;

use axum::http::{Method, StatusCode};
use factum_http::HttpConfig;
use factum_testing::http::call as send;
use serde_json::json;

use tickets::*;

#[tokio::test]
async fn commands_use_the_aggregates_own_tag_field() {
    let (app, _) = service(HttpConfig::default());
    let r = send(
        &app,
        Method::POST,
        "/tickets/commands/Open",
        Some(r#"{"title": "Printer on fire"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body["state"],
        json!({"title": "Printer on fire", "comments": 0, "closed": false})
    );
    assert_eq!(r.headers["location"], format!("/tickets/{id}").as_str());

    let uri = format!("/tickets/{id}/commands/Comment");
    let r = send(
        &app,
        Method::POST,
        &uri,
        Some(r#"{"text": "still burning", "kind": "Comment"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 2);
    let r = send(
        &app,
        Method::POST,
        &uri,
        Some(r#"{"text": "x", "kind": "Close"}"#),
        &[],
    )
    .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        r.body["message"].as_str().unwrap().contains("`kind`"),
        "{}",
        r.text
    );
    let r = send(&app, Method::POST, &uri, Some(r#"{"text": 5}"#), &[]).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.text.contains("invalid Comment command"), "{}", r.text);

    // A unit command takes an empty object.
    let r = send(
        &app,
        Method::POST,
        &format!("/tickets/{id}/commands/Close"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(
        &app,
        Method::POST,
        &uri,
        Some(r#"{"text": "reopen?"}"#),
        &[],
    )
    .await;
    assert_error(&r, 409, "TICKET_CLOSED");
    assert_eq!(r.body["domain"], "TICKET");
    assert_eq!(r.body["internalCode"], 77001);

    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": ""}"#),
        &[],
    )
    .await;
    assert_error(&r, 400, "TICKET_EMPTY_TITLE");
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": "ok"}"#),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Open",
        Some(r#"{"title": "again"}"#),
        &[],
    )
    .await;
    // No domain error for "exists": the standard conflict.
    assert_error(&r, 409, "CONFLICT");

    let r = send(
        &app,
        Method::POST,
        "/tickets/t-1/commands/Reopen",
        Some("{}"),
        &[],
    )
    .await;
    assert_error(&r, 404, "NOT_FOUND");
    assert_eq!(
        r.body["details"]["allowed"],
        json!(["Open", "Comment", "Close"])
    );
    // No domain error for "missing": the standard not-found.
    let r = send(
        &app,
        Method::POST,
        "/tickets/t-2/commands/Close",
        Some("{}"),
        &[],
    )
    .await;
    assert_error(&r, 404, "NOT_FOUND");
    assert!(r.text.contains("ticket 't-2' not found"), "{}", r.text);
    let r = send(&app, Method::GET, "/tickets/t-2", None, &[]).await;
    assert_error(&r, 404, "NOT_FOUND");

    let r = send(
        &app,
        Method::GET,
        &format!("/tickets/{id}/events"),
        None,
        &[],
    )
    .await;
    let kinds: Vec<_> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("Opened"), json!("Commented"), json!("Closed")]
    );
    assert_eq!(r.body["events"][2]["payload"], json!({"kind": "Closed"}));
}

#[tokio::test]
async fn the_context_reaches_handlers_and_events() {
    let (app, _) = service(HttpConfig::default());
    let r = send(
        &app,
        Method::GET,
        "/whoami",
        None,
        &[("x-request-id", "r-1"), ("x-correlation-id", "c-1")],
    )
    .await;
    assert_eq!(
        r.body,
        json!({"user": null, "request": "r-1", "correlation": "c-1"})
    );
    assert_eq!(r.headers["x-correlation-id"], "c-1");
    let r = send(&app, Method::GET, "/whoami", None, &[]).await;
    assert_eq!(r.body["request"], r.body["correlation"]);
    assert_eq!(
        r.body["request"],
        r.headers["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn the_document_lists_each_command_as_an_operation() {
    let doc = factum_http::aggregate_openapi::<Ticket>("/v1", false);
    let json = serde_json::to_value(&doc).unwrap();
    let paths: Vec<_> = json["paths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        paths,
        [
            "/v1/tickets/commands/Open",
            "/v1/tickets/{id}",
            "/v1/tickets/{id}/commands/Close",
            "/v1/tickets/{id}/commands/Comment",
            "/v1/tickets/{id}/commands/Open",
            "/v1/tickets/{id}/events",
        ]
    );
    let mut ids: Vec<_> = json["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_owned())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    let schemas = json["components"]["schemas"].as_object().unwrap();
    for name in [
        "TicketView",
        "TicketViewResponse",
        "TicketEvent",
        "TicketEventEnvelope",
        "TicketEventPage",
        "OpenBody",
        "CommentBody",
        "CloseBody",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
}
