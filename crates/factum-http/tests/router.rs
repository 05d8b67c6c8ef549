//! The generic routes on a small test aggregate (a ticket whose command enums are tagged by
//! `kind`, not `type`, in `tickets/`): commands, the context they run in, the document,
//! driven with `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tickets;

use axum::http::{Method, StatusCode};
use factum_http::HttpConfig;
use factum_testing::http::{assert_schemas, call as send, column, get, post};
use serde_json::{Value, json};

use tickets::*;

#[tokio::test]
async fn commands_use_the_aggregates_own_tag_field() {
    let (app, _) = service(HttpConfig::default());
    let r = post(
        &app,
        "/tickets/commands/Open",
        r#"{"title": "Printer on fire"}"#,
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
    let r = post(
        &app,
        &uri,
        r#"{"text": "still burning", "kind": "Comment"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 2);
    let r = post(&app, &uri, r#"{"text": "x", "kind": "Close"}"#).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        r.body["message"].as_str().unwrap().contains("`kind`"),
        "{}",
        r.text
    );
    let r = post(&app, &uri, r#"{"text": 5}"#).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.text.contains("invalid Comment command"), "{}", r.text);

    // A unit command takes an empty object.
    let r = post(&app, &format!("/tickets/{id}/commands/Close"), "{}").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = post(&app, &uri, r#"{"text": "reopen?"}"#).await;
    assert_error(&r, 409, "TICKET_CLOSED");
    assert_eq!(r.body["domain"], "TICKET");
    assert_eq!(r.body["internalCode"], 77001);

    let r = post(&app, "/tickets/t-1/commands/Open", r#"{"title": ""}"#).await;
    assert_error(&r, 400, "TICKET_EMPTY_TITLE");
    let r = post(&app, "/tickets/t-1/commands/Open", r#"{"title": "ok"}"#).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = post(&app, "/tickets/t-1/commands/Open", r#"{"title": "again"}"#).await;
    // No domain error for "exists": the standard conflict.
    assert_error(&r, 409, "CONFLICT");

    let r = post(&app, "/tickets/t-1/commands/Reopen", "{}").await;
    assert_error(&r, 404, "NOT_FOUND");
    assert_eq!(
        r.body["details"]["allowed"],
        json!(["Open", "Comment", "Close"])
    );
    // No domain error for "missing": the standard not-found.
    let r = post(&app, "/tickets/t-2/commands/Close", "{}").await;
    assert_error(&r, 404, "NOT_FOUND");
    assert!(r.text.contains("ticket 't-2' not found"), "{}", r.text);
    let r = get(&app, "/tickets/t-2").await;
    assert_error(&r, 404, "NOT_FOUND");

    let r = get(&app, &format!("/tickets/{id}/events")).await;
    assert_eq!(
        column(&r.body["events"], "event_type", Value::as_str),
        ["Opened", "Commented", "Closed"]
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
    let r = get(&app, "/whoami").await;
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
    assert_schemas(
        &json,
        &[
            "TicketView",
            "TicketViewResponse",
            "TicketEvent",
            "TicketEventEnvelope",
            "TicketEventPage",
            "OpenBody",
            "CommentBody",
            "CloseBody",
        ],
    );
}
