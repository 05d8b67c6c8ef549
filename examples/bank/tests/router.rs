//! The bank's router, driven in process with `tower::ServiceExt::oneshot`: every route of the
//! reference contract, every error row of its table, the generic routes under `/api`, the
//! operational routes and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use factum_core::InMemoryEventStore;
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::http::Reply;
use serde_json::{Value, json};
use tower::ServiceExt;

fn app_with(config: HttpConfig) -> Router {
    let bank = bank::http::Bank::open(Arc::new(InMemoryEventStore::new())).unwrap();
    bank::http::router(&bank, config).unwrap()
}

fn app() -> Router {
    app_with(HttpConfig::default())
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let reply = factum_testing::http::call(app, method, uri, body, headers).await;
    assert!(
        reply.headers.contains_key("x-request-id"),
        "every response has X-Request-Id"
    );
    reply
}

async fn post(app: &Router, uri: &str, body: &str) -> Reply {
    send(app, Method::POST, uri, Some(body), &[]).await
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Method::GET, uri, None, &[]).await
}

async fn open(app: &Router, id: &str, owner: &str, initial: &str) -> Reply {
    let body =
        format!(r#"{{"type": "OpenAccount", "owner": {owner:?}, "initial_balance": {initial}}}"#);
    post(app, &format!("/accounts/{id}"), &body).await
}

/// The account's version now, from its event list (404 counts as 0).
async fn event_count(app: &Router, id: &str) -> usize {
    let reply = get(app, &format!("/accounts/{id}/events")).await;
    if reply.status == StatusCode::NOT_FOUND {
        return 0;
    }
    reply.json().as_array().unwrap().len()
}

#[tokio::test]
async fn the_reference_walkthrough_gives_the_exact_bodies() {
    let app = app();
    let r = post(
        &app,
        "/accounts/acc-001",
        r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.text,
        r#"{"id":"acc-001","owner":"Alice","balance":1000.0,"version":1}"#
    );
    assert_eq!(r.headers["etag"], "\"1\"");

    let r = post(
        &app,
        "/accounts/acc-001",
        r#"{"type": "Deposit", "amount": 500.0}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text,
        r#"{"id":"acc-001","owner":"Alice","balance":1500.0,"version":2}"#
    );

    let r = post(
        &app,
        "/accounts/acc-001",
        r#"{"type": "Withdraw", "amount": 200.0}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text,
        r#"{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}"#
    );

    let r = get(&app, "/accounts/acc-001").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text,
        r#"{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}"#
    );
    assert_eq!(r.headers["etag"], "\"3\"");

    let r = get(&app, "/accounts/acc-001/events").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!([{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0},
               {"type":"MoneyDeposited","amount":500.0},
               {"type":"MoneyWithdrawn","amount":200.0}])
    );
    assert_eq!(
        r.text,
        r#"[{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0},{"type":"MoneyDeposited","amount":500.0},{"type":"MoneyWithdrawn","amount":200.0}]"#
    );

    let r = get(&app, "/accounts/acc-001?version=2").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text,
        r#"{"id":"acc-001","owner":"Alice","balance":1500.0,"version":2}"#
    );
    assert_eq!(r.headers["etag"], "\"2\"");
    let r = get(&app, "/accounts/acc-001?version=1").await;
    assert_eq!(r.json()["balance"], 1000.0);
}

#[tokio::test]
async fn event_envelopes_carry_ids_versions_positions_time_and_the_context() {
    let app = app();
    open(&app, "acc-001", "Alice", "1000.0").await;
    let r = send(
        &app,
        Method::POST,
        "/accounts/acc-001",
        Some(r#"{"type": "Deposit", "amount": 500.0}"#),
        &[
            ("x-request-id", "req-deposit-1"),
            ("x-correlation-id", "conv-9"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-request-id"], "req-deposit-1");
    assert_eq!(r.headers["x-correlation-id"], "conv-9");

    let r = get(&app, "/accounts/acc-001/events?metadata=true").await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for (i, envelope) in list.iter().enumerate() {
        let version = i as u64 + 1;
        assert_eq!(envelope["version"], version);
        assert_eq!(envelope["aggregate_id"], "acc-001");
        assert_eq!(envelope["aggregate_type"], "account");
        assert!(envelope["position"].as_u64().unwrap() >= 1);
        uuid_like(envelope["event_id"].as_str().unwrap());
        let recorded = envelope["recorded_at"].as_str().unwrap();
        assert!(
            chrono_like_rfc3339(recorded),
            "recorded_at is RFC 3339: {recorded}"
        );
        assert!(envelope["user_id"].is_null(), "anonymous without auth");
    }
    assert_eq!(list[0]["event_type"], "AccountOpened");
    assert_eq!(
        list[0]["payload"],
        json!({"type":"AccountOpened","owner":"Alice","initial_balance":1000.0})
    );
    assert_eq!(list[1]["event_type"], "MoneyDeposited");
    assert_eq!(list[1]["request_id"], "req-deposit-1");
    assert_eq!(list[1]["correlation_id"], "conv-9");
    assert_eq!(
        list[1]["payload"],
        json!({"type":"MoneyDeposited","amount":500.0})
    );
    assert!(list[0]["position"].as_u64() < list[1]["position"].as_u64());
    // The open had no client id: a generated one, used as the correlation id too.
    assert_eq!(list[0]["request_id"], list[0]["correlation_id"]);
    assert_ne!(list[0]["request_id"], "req-deposit-1");

    // `metadata=false` is the plain list; a non-boolean is a 400.
    let r = get(&app, "/accounts/acc-001/events?metadata=false").await;
    assert_eq!(r.json()[1], json!({"type":"MoneyDeposited","amount":500.0}));
    let message = get(&app, "/accounts/acc-001/events?metadata=yes")
        .await
        .error(400, "VALIDATION_ERROR");
    assert!(message.contains("metadata"), "{message}");
}

fn uuid_like(text: &str) {
    assert_eq!(text.len(), 36, "{text}");
    assert_eq!(text.matches('-').count(), 4, "{text}");
}

fn chrono_like_rfc3339(text: &str) -> bool {
    // 2026-01-02T03:04:05[.fraction]Z
    let bytes = text.as_bytes();
    text.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && (text.ends_with('Z') || text.ends_with("+00:00"))
}

#[tokio::test]
async fn time_travel_checks_its_version() {
    let app = app();
    open(&app, "acc-001", "Alice", "1000.0").await;
    post(
        &app,
        "/accounts/acc-001",
        r#"{"type": "Deposit", "amount": 500.0}"#,
    )
    .await;
    let message = get(&app, "/accounts/acc-001?version=0")
        .await
        .error(400, "VALIDATION_ERROR");
    assert!(message.contains("at least 1"), "{message}");
    let message = get(&app, "/accounts/acc-001?version=3")
        .await
        .error(404, "NOT_FOUND");
    assert!(
        message.contains("no version 3") && message.contains("current version 2"),
        "{message}"
    );
    let message = get(&app, "/accounts/acc-001?version=two")
        .await
        .error(400, "VALIDATION_ERROR");
    assert!(message.contains("version"), "{message}");
    get(&app, "/accounts/nobody?version=1")
        .await
        .error(404, "ACCOUNT_NOT_FOUND");
}

#[tokio::test]
async fn money_is_exact() {
    let app = app();
    open(&app, "acc-1", "Alice", "0").await;
    post(
        &app,
        "/accounts/acc-1",
        r#"{"type": "Deposit", "amount": 0.1}"#,
    )
    .await;
    let r = post(
        &app,
        "/accounts/acc-1",
        r#"{"type": "Deposit", "amount": 0.2}"#,
    )
    .await;
    assert_eq!(
        r.text,
        r#"{"id":"acc-1","owner":"Alice","balance":0.3,"version":3}"#
    );
}

#[tokio::test]
async fn withdrawing_more_than_the_balance_is_refused_and_exactly_the_balance_is_allowed() {
    let app = app();
    open(&app, "acc-1", "Alice", "100.0").await;
    let message = post(
        &app,
        "/accounts/acc-1",
        r#"{"type": "Withdraw", "amount": 100.01}"#,
    )
    .await
    .error(400, "ACCOUNT_INSUFFICIENT_FUNDS");
    assert!(
        message.contains("100.00") && message.contains("100.01"),
        "{message}"
    );
    assert_eq!(event_count(&app, "acc-1").await, 1, "nothing stored");
    let r = post(
        &app,
        "/accounts/acc-1",
        r#"{"type": "Withdraw", "amount": 100}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["balance"], 0.0);
}

#[tokio::test]
async fn commands_on_a_missing_account_are_404_and_store_nothing() {
    let app = app();
    for body in [
        r#"{"type": "Deposit", "amount": 1}"#,
        r#"{"type": "Withdraw", "amount": 1}"#,
    ] {
        let message = post(&app, "/accounts/ghost", body)
            .await
            .error(404, "ACCOUNT_NOT_FOUND");
        assert!(message.contains("ghost"), "{message}");
    }
    get(&app, "/accounts/ghost")
        .await
        .error(404, "ACCOUNT_NOT_FOUND");
    get(&app, "/accounts/ghost/events")
        .await
        .error(404, "ACCOUNT_NOT_FOUND");
    get(&app, "/accounts/ghost/events?metadata=true")
        .await
        .error(404, "ACCOUNT_NOT_FOUND");
}

#[tokio::test]
async fn opening_an_existing_account_is_409_and_changes_nothing() {
    let app = app();
    open(&app, "acc-1", "Alice", "10").await;
    open(&app, "acc-1", "Mallory", "99")
        .await
        .error(409, "ACCOUNT_ALREADY_EXISTS");
    let r = get(&app, "/accounts/acc-1").await;
    assert_eq!(
        r.text,
        r#"{"id":"acc-1","owner":"Alice","balance":10.0,"version":1}"#
    );
}

#[tokio::test]
async fn invalid_amounts_are_400_invalid_amount_and_store_nothing() {
    let app = app();
    open(&app, "acc-1", "Alice", "10").await;
    for amount in [
        "0",
        "0.0",
        "-5",
        "\"12\"",
        "\"abc\"",
        "null",
        "true",
        "[1]",
        "{}",
        "0.001",
        "1.005",
        "1e16",
        "1000000000000001",
    ] {
        for kind in ["Deposit", "Withdraw"] {
            let body = format!(r#"{{"type": "{kind}", "amount": {amount}}}"#);
            let message = post(&app, "/accounts/acc-1", &body)
                .await
                .error(400, "ACCOUNT_INVALID_AMOUNT");
            assert!(message.contains("amount"), "{amount}: {message}");
        }
    }
    assert_eq!(event_count(&app, "acc-1").await, 1, "nothing stored");
    for initial in ["-1", "-0.01", "\"1\"", "0.001", "1e16", "null"] {
        open(&app, "acc-2", "Bob", initial)
            .await
            .error(400, "ACCOUNT_INVALID_AMOUNT");
    }
    assert_eq!(event_count(&app, "acc-2").await, 0);
    // The limits themselves are fine: 1e15 and an opening balance of zero.
    assert_eq!(
        open(&app, "acc-3", "Carol", "0").await.status,
        StatusCode::CREATED
    );
    let r = post(
        &app,
        "/accounts/acc-3",
        r#"{"type": "Deposit", "amount": 1e15}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn invalid_owners_are_400_invalid_owner() {
    let app = app();
    let long = "x".repeat(201);
    for owner in ["", "   ", long.as_str()] {
        open(&app, "acc-1", owner, "1")
            .await
            .error(400, "ACCOUNT_INVALID_OWNER");
    }
    assert_eq!(event_count(&app, "acc-1").await, 0);
    let r = open(&app, "acc-1", &"é".repeat(200), "1").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "200 characters are fine: {}",
        r.text
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_validation_errors_naming_the_problem() {
    let app = app();
    open(&app, "acc-1", "Alice", "10").await;
    let cases: &[(&str, &[&str])] = &[
        ("not json", &["not valid JSON"]),
        ("{\"type\": \"Deposit\", \"amount\": 1", &["not valid JSON"]),
        ("", &["empty"]),
        ("[1, 2]", &["JSON object"]),
        ("\"Deposit\"", &["JSON object"]),
        (
            r#"{"amount": 1}"#,
            &["missing field `type`", "OpenAccount, Deposit, Withdraw"],
        ),
        (r#"{"type": 7, "amount": 1}"#, &["`type` must be a string"]),
        (
            r#"{"type": "Transfer", "amount": 1}"#,
            &["Transfer", "OpenAccount, Deposit, Withdraw"],
        ),
        (r#"{"type": "deposit", "amount": 1}"#, &["deposit"]),
        (
            r#"{"type": "Deposit"}"#,
            &["Deposit", "missing field `amount`"],
        ),
        (
            r#"{"type": "OpenAccount", "initial_balance": 1}"#,
            &["missing field `owner`"],
        ),
        (
            r#"{"type": "OpenAccount", "owner": 5, "initial_balance": 1}"#,
            &["invalid type", "string"],
        ),
        (
            r#"{"type": "OpenAccount", "owner": "Bob"}"#,
            &["missing field `initial_balance`"],
        ),
    ];
    for (body, wanted) in cases {
        let reply = post(&app, "/accounts/acc-1", body).await;
        let message = reply.error(400, "VALIDATION_ERROR");
        for part in *wanted {
            assert!(message.contains(part), "{body}: {message}");
        }
    }
    let unknown = post(&app, "/accounts/acc-1", r#"{"type": "Transfer"}"#)
        .await
        .json();
    assert_eq!(
        unknown["details"]["allowed"],
        json!(["OpenAccount", "Deposit", "Withdraw"])
    );
    assert_eq!(event_count(&app, "acc-1").await, 1, "nothing stored");
}

#[tokio::test]
async fn commands_need_a_json_content_type_else_415_and_nothing_stored() {
    let app = app();
    let open_body = r#"{"type": "OpenAccount", "owner": "A", "initial_balance": 1}"#;
    let raw = |uri: &str, content_type: Option<&str>, body: &str| {
        let mut request = Request::post(uri);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(Body::from(body.to_owned())).unwrap()
    };
    // Without a Content-Type a browser may send the request cross-site without a CORS
    // preflight: refused on the reference and the generic routes alike.
    for (uri, body) in [
        ("/accounts/acc-1", open_body),
        (
            "/api/accounts/acc-1/commands/OpenAccount",
            r#"{"owner": "A", "initial_balance": 1}"#,
        ),
        (
            "/api/accounts/commands/OpenAccount",
            r#"{"owner": "A", "initial_balance": 1}"#,
        ),
    ] {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            Some("application/+json"),
        ] {
            let reply = factum_testing::http::send(&app, raw(uri, content_type, body)).await;
            let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            assert_eq!(reply.status, unsupported, "{uri} {content_type:?}");
            let error = reply.json();
            assert_eq!(error["code"], "UNSUPPORTED_MEDIA_TYPE", "{error}");
            assert_eq!(error["status"], 415);
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("application/json"),
                "{error}"
            );
        }
    }
    assert_eq!(
        get(&app, "/accounts/acc-1").await.status,
        404,
        "nothing stored"
    );
    assert_eq!(
        get(&app, "/views/accounts").await.json()["total"],
        0,
        "no account was opened"
    );
    // JSON media types with parameters or a +json suffix are fine.
    for (content_type, body, status) in [
        (
            "application/json; charset=utf-8",
            open_body,
            StatusCode::CREATED,
        ),
        (
            "Application/JSON",
            r#"{"type": "Deposit", "amount": 1}"#,
            StatusCode::OK,
        ),
        (
            "application/vnd.bank+json",
            r#"{"type": "Deposit", "amount": 1}"#,
            StatusCode::OK,
        ),
    ] {
        let request = raw("/accounts/acc-1", Some(content_type), body);
        let reply = factum_testing::http::send(&app, request).await;
        assert_eq!(reply.status, status, "{content_type}");
    }
    assert_eq!(event_count(&app, "acc-1").await, 3);
}

#[tokio::test]
async fn unknown_fields_in_command_bodies_are_400_and_store_nothing() {
    let app = app();
    let r = post(
        &app,
        "/accounts/acc-1",
        r#"{"type": "OpenAccount", "owner": "A", "initial_balance": 1, "overdraft": 100}"#,
    )
    .await;
    let message = r.error(400, "VALIDATION_ERROR");
    assert!(message.contains("overdraft"), "{message}");
    assert_eq!(event_count(&app, "acc-1").await, 0);
    let r = post(
        &app,
        "/api/accounts/commands/OpenAccount",
        r#"{"owner": "A", "initial_balance": 1, "x-schemathesis-unknown-property": 42}"#,
    )
    .await;
    let message = r.error(400, "VALIDATION_ERROR");
    assert!(
        message.contains("x-schemathesis-unknown-property"),
        "{message}"
    );
    open(&app, "acc-1", "A", "10").await;
    for (uri, body) in [
        (
            "/accounts/acc-1",
            r#"{"type": "Deposit", "amount": 1, "memo": "x"}"#,
        ),
        (
            "/accounts/acc-1",
            r#"{"type": "Withdraw", "amount": 1, "to": "acc-2"}"#,
        ),
        (
            "/api/accounts/acc-1/commands/Deposit",
            r#"{"amount": 1, "Amount": 2}"#,
        ),
        (
            "/api/accounts/acc-1/commands/Withdraw",
            r#"{"amount": 1, "": 0}"#,
        ),
    ] {
        let message = post(&app, uri, body).await.error(400, "VALIDATION_ERROR");
        assert!(message.contains("unknown field"), "{uri} {body}: {message}");
    }
    assert_eq!(event_count(&app, "acc-1").await, 1, "nothing stored");
    // The body may repeat its own command name in `type` on the generic routes.
    let r = post(
        &app,
        "/api/accounts/acc-1/commands/Deposit",
        r#"{"type": "Deposit", "amount": 1}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn the_document_states_what_the_server_enforces() {
    let app = app();
    let doc = get(&app, "/openapi.json").await.json();
    let param = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no {name}"))
            .clone()
    };
    // version=0 is a 400, so the document starts versions at 1.
    for path in ["/accounts/{id}", "/api/accounts/{id}"] {
        assert_eq!(
            param(path, "get", "version")["schema"]["minimum"],
            1,
            "{path}"
        );
        assert_eq!(
            get(&app, &format!("{}?version=0", path.replace("{id}", "a")))
                .await
                .status,
            400
        );
    }
    let events = "/api/accounts/{id}/events";
    assert_eq!(param(events, "get", "from_version")["schema"]["minimum"], 1);
    assert_eq!(param(events, "get", "limit")["schema"]["minimum"], 1);
    assert_eq!(param(events, "get", "limit")["schema"]["maximum"], 1000);
    // Ids and If-Match have the patterns the server checks.
    for (path, method) in [
        ("/accounts/{id}", "post"),
        ("/accounts/{id}", "get"),
        ("/accounts/{id}/events", "get"),
        ("/api/accounts/{id}", "get"),
        ("/api/accounts/{id}/commands/Deposit", "post"),
    ] {
        assert_eq!(
            param(path, method, "id")["schema"]["pattern"],
            factum_http::AGGREGATE_ID_PATTERN,
            "{method} {path}"
        );
    }
    for path in ["/accounts/{id}", "/api/accounts/{id}/commands/Withdraw"] {
        assert_eq!(
            param(path, "post", "If-Match")["schema"]["pattern"],
            factum_http::IF_MATCH_PATTERN,
            "{path}"
        );
    }
    // Every command body the document closes is closed on the server too (see
    // unknown_fields_in_command_bodies_are_400_and_store_nothing).
    for name in ["OpenAccountBody", "DepositBody", "WithdrawBody"] {
        assert_eq!(
            doc["components"]["schemas"][name]["additionalProperties"], false,
            "{name}"
        );
    }
    for variant in doc["components"]["schemas"]["AccountCommandBody"]["oneOf"]
        .as_array()
        .unwrap()
    {
        assert_eq!(variant["additionalProperties"], false, "{variant}");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_and_store_nothing() {
    let app = app();
    open(&app, "acc-1", "Alice", "10").await;
    let padding = " ".repeat(64 * 1024);
    let body = format!(r#"{{"type": "Deposit", "amount": 1}}{padding}"#);
    let message = post(&app, "/accounts/acc-1", &body)
        .await
        .error(413, "PAYLOAD_TOO_LARGE");
    assert!(message.contains("65536"), "{message}");
    // The same without a Content-Length (streamed) is refused the same way.
    let stream = futures::stream::iter(
        (0..70).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(" ".repeat(1024)))),
    );
    let request = Request::post("/accounts/acc-1")
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let body = format!(
        r#"{{"type": "Deposit", "amount": 1}}{}"#,
        " ".repeat(60 * 1024)
    );
    assert_eq!(
        post(&app, "/accounts/acc-1", &body).await.status,
        StatusCode::OK
    );
    assert_eq!(event_count(&app, "acc-1").await, 2);
}

#[tokio::test]
async fn odd_ids_are_400() {
    let app = app();
    let deposit = r#"{"type": "Deposit", "amount": 1}"#;
    let too_long = "x".repeat(129);
    for id in [
        "",
        too_long.as_str(),
        "a%20b",
        "a%2Fb",
        "caf%C3%A9",
        "a%3Bb",
        "%2E%2E%2Fetc",
    ] {
        let uri = format!("/accounts/{id}");
        let message = post(&app, &uri, deposit)
            .await
            .error(400, "VALIDATION_ERROR");
        assert!(message.contains("id"), "{id}: {message}");
        let opening = r#"{"type": "OpenAccount", "owner": "A", "initial_balance": 1}"#;
        post(&app, &uri, opening)
            .await
            .error(400, "VALIDATION_ERROR");
        get(&app, &uri).await.error(400, "VALIDATION_ERROR");
        get(&app, &format!("{uri}/events"))
            .await
            .error(400, "VALIDATION_ERROR");
    }
    let message = get(&app, "/accounts/%FF")
        .await
        .error(400, "VALIDATION_ERROR");
    assert!(message.contains("UTF-8"), "{message}");
    let longest = "x".repeat(128);
    assert_eq!(
        open(&app, &longest, "A", "1").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        open(&app, "a.b_c:d-E9", "A", "1").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn request_ids_are_echoed_and_insane_ones_replaced() {
    let app = app();
    let r = send(
        &app,
        Method::GET,
        "/accounts/nope",
        None,
        &[("x-request-id", "my-req.1")],
    )
    .await;
    r.error(404, "ACCOUNT_NOT_FOUND");
    assert_eq!(r.headers["x-request-id"], "my-req.1");
    assert_eq!(r.json()["requestId"], "my-req.1");
    let r = send(
        &app,
        Method::GET,
        "/health",
        None,
        &[("x-request-id", "bad id with spaces")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_ne!(id, "bad id with spaces");
    uuid_like(id);
}

#[tokio::test]
async fn if_match_guards_commands_with_the_etag() {
    let app = app();
    let etag = open(&app, "acc-1", "Alice", "10").await.headers["etag"].clone();
    assert_eq!(etag, "\"1\"");
    let deposit = Some(r#"{"type": "Deposit", "amount": 1}"#);
    let r = send(
        &app,
        Method::POST,
        "/accounts/acc-1",
        deposit,
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["etag"], "\"2\"");
    // Stale: 412, nothing stored.
    let r = send(
        &app,
        Method::POST,
        "/accounts/acc-1",
        deposit,
        &[("if-match", "\"1\"")],
    )
    .await;
    let message = r.error(412, "PRECONDITION_FAILED");
    assert!(
        message.contains("version 2") && message.contains("not 1"),
        "{message}"
    );
    assert_eq!(r.json()["details"], json!({"expected": 1, "actual": 2}));
    assert_eq!(event_count(&app, "acc-1").await, 2);
    let r = send(
        &app,
        Method::POST,
        "/accounts/acc-1",
        deposit,
        &[("if-match", "*")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &app,
        Method::POST,
        "/accounts/acc-1",
        deposit,
        &[("if-match", "yesterday")],
    )
    .await;
    r.error(400, "VALIDATION_ERROR");
    assert_eq!(event_count(&app, "acc-1").await, 3);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_structured() {
    let app = app();
    let message = get(&app, "/nowhere").await.error(404, "NOT_FOUND");
    assert!(message.contains("/nowhere"), "{message}");
    open(&app, "acc-1", "Alice", "10").await;
    let r = send(&app, Method::DELETE, "/accounts/acc-1", None, &[]).await;
    let message = r.error(405, "METHOD_NOT_ALLOWED");
    assert!(message.contains("DELETE"), "{message}");
    assert!(r.headers["allow"].to_str().unwrap().contains("POST"));
    send(&app, Method::PUT, "/accounts/acc-1/events", Some("{}"), &[])
        .await
        .error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn health_answers_ok() {
    let r = get(&app(), "/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn generic_routes_under_api_work_on_the_same_accounts() {
    let app = app();
    // Create with a generated id.
    let r = post(
        &app,
        "/api/accounts/commands/OpenAccount",
        r#"{"owner": "Gen", "initial_balance": 5}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let body = r.json();
    let id = body["id"].as_str().unwrap().to_owned();
    uuid_like(&id);
    assert_eq!(body["version"], 1);
    // The state is the account itself; its version is beside it.
    assert_eq!(
        body["state"],
        json!({"id": id, "owner": "Gen", "balance": 5.0})
    );
    assert_eq!(
        r.headers["location"],
        format!("/api/accounts/{id}").as_str()
    );
    assert_eq!(r.headers["etag"], "\"1\"");
    // The reference routes see it.
    assert_eq!(
        get(&app, &format!("/accounts/{id}")).await.json()["owner"],
        "Gen"
    );

    // Create with an id, update, with the tag in the path (and optionally the body).
    let r = post(
        &app,
        "/api/accounts/acc-9/commands/OpenAccount",
        r#"{"owner": "Ann", "initial_balance": 1}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = post(
        &app,
        "/api/accounts/acc-9/commands/Deposit",
        r#"{"amount": 2.5}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text,
        r#"{"id":"acc-9","state":{"id":"acc-9","owner":"Ann","balance":3.5},"version":2}"#
    );
    let r = post(
        &app,
        "/api/accounts/acc-9/commands/Withdraw",
        r#"{"type": "Withdraw", "amount": 0.5}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let message = post(
        &app,
        "/api/accounts/acc-9/commands/Withdraw",
        r#"{"type": "Deposit", "amount": 0.5}"#,
    )
    .await
    .error(400, "VALIDATION_ERROR");
    assert!(
        message.contains("Deposit") && message.contains("Withdraw"),
        "{message}"
    );

    // Unknown command: 404 naming the allowed ones; an update on the create route: 400.
    let r = post(&app, "/api/accounts/acc-9/commands/Close", "{}").await;
    r.error(404, "NOT_FOUND");
    assert_eq!(
        r.json()["details"]["allowed"],
        json!(["OpenAccount", "Deposit", "Withdraw"])
    );
    post(&app, "/api/accounts/commands/Close", "{}")
        .await
        .error(404, "NOT_FOUND");
    let message = post(&app, "/api/accounts/commands/Deposit", r#"{"amount": 1}"#)
        .await
        .error(400, "VALIDATION_ERROR");
    assert!(message.contains("update command"), "{message}");
    // Domain errors are the same as on the reference routes.
    post(
        &app,
        "/api/accounts/acc-9/commands/Withdraw",
        r#"{"amount": 100}"#,
    )
    .await
    .error(400, "ACCOUNT_INSUFFICIENT_FUNDS");
    post(
        &app,
        "/api/accounts/nobody/commands/Deposit",
        r#"{"amount": 1}"#,
    )
    .await
    .error(404, "ACCOUNT_NOT_FOUND");
    post(
        &app,
        "/api/accounts/acc-9/commands/OpenAccount",
        r#"{"owner": "X", "initial_balance": 1}"#,
    )
    .await
    .error(409, "ACCOUNT_ALREADY_EXISTS");
    post(
        &app,
        "/api/accounts/a%20b/commands/Deposit",
        r#"{"amount": 1}"#,
    )
    .await
    .error(400, "VALIDATION_ERROR");

    // If-Match on the generic routes.
    let r = send(
        &app,
        Method::POST,
        "/api/accounts/acc-9/commands/Deposit",
        Some(r#"{"amount": 1}"#),
        &[("if-match", "\"1\"")],
    )
    .await;
    r.error(412, "PRECONDITION_FAILED");
    let r = send(
        &app,
        Method::POST,
        "/api/accounts/acc-9/commands/Deposit",
        Some(r#"{"amount": 1}"#),
        &[("if-match", "\"3\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &app,
        Method::POST,
        "/api/accounts/commands/OpenAccount",
        Some(r#"{"owner": "Z", "initial_balance": 1}"#),
        &[("if-match", "\"1\"")],
    )
    .await;
    r.error(412, "PRECONDITION_FAILED");

    // State, time travel, ETag.
    let r = get(&app, "/api/accounts/acc-9").await;
    assert_eq!(
        r.text,
        r#"{"id":"acc-9","state":{"id":"acc-9","owner":"Ann","balance":4.0},"version":4}"#
    );
    assert_eq!(r.headers["etag"], "\"4\"");
    assert_eq!(
        get(&app, "/api/accounts/acc-9?version=2").await.json()["state"]["balance"],
        3.5
    );
    get(&app, "/api/accounts/acc-9?version=0")
        .await
        .error(400, "VALIDATION_ERROR");
    get(&app, "/api/accounts/acc-9?version=5")
        .await
        .error(404, "NOT_FOUND");
    get(&app, "/api/accounts/nobody")
        .await
        .error(404, "ACCOUNT_NOT_FOUND");

    // The audit log, paged.
    let page = get(&app, "/api/accounts/acc-9/events?limit=3").await.json();
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_from_version"], 4);
    let page = get(&app, "/api/accounts/acc-9/events?from_version=4&limit=3")
        .await
        .json();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["version"], 4);
    assert_eq!(events[0]["event_type"], "MoneyDeposited");
    assert_eq!(
        events[0]["payload"],
        json!({"type": "MoneyDeposited", "amount": 1.0})
    );
    assert!(page["next_from_version"].is_null());
    let page = get(&app, "/api/accounts/acc-9/events").await.json();
    assert_eq!(page["events"].as_array().unwrap().len(), 4);
    let page = get(&app, "/api/accounts/acc-9/events?from_version=99")
        .await
        .json();
    assert_eq!(page, json!({"events": [], "next_from_version": null}));
    for bad in [
        "limit=0",
        "limit=1001",
        "from_version=0",
        "limit=x",
        "from_version=-1",
    ] {
        get(&app, &format!("/api/accounts/acc-9/events?{bad}"))
            .await
            .error(400, "VALIDATION_ERROR");
    }
    get(&app, "/api/accounts/nobody/events")
        .await
        .error(404, "ACCOUNT_NOT_FOUND");
}

#[tokio::test]
async fn sixteen_clients_depositing_a_hundred_cents_each_lose_nothing() {
    let app = app();
    open(&app, "hot", "Alice", "1000.0").await;
    let mut clients = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..100 {
                let r = post(
                    &app,
                    "/accounts/hot",
                    r#"{"type": "Deposit", "amount": 0.01}"#,
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let r = get(&app, "/accounts/hot").await;
    assert_eq!(
        r.text,
        r#"{"id":"hot","owner":"Alice","balance":1016.0,"version":1601}"#
    );
}

fn token(secret: &str, sub: &str, exp_offset_secs: i64) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: i64,
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims {
            sub,
            exp: now + exp_offset_secs,
        },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn with_auth_a_valid_token_is_required_and_its_subject_recorded() {
    let app = app_with(HttpConfig::default().with_auth(JwtAuth::hs256("s3cret").unwrap()));
    let opening = r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 10}"#;
    let good = format!("Bearer {}", token("s3cret", "alice@example.com", 3600));
    let forged = format!("Bearer {}", token("other", "alice@example.com", 3600));
    let expired = format!("Bearer {}", token("s3cret", "alice@example.com", -3600));
    let no_sub = format!("Bearer {}", token("s3cret", "", 3600));
    let bad_headers: [(&str, &[(&str, &str)]); 6] = [
        ("missing", &[]),
        ("forged", &[("authorization", forged.as_str())]),
        ("expired", &[("authorization", expired.as_str())]),
        ("empty sub", &[("authorization", no_sub.as_str())]),
        ("not bearer", &[("authorization", "Basic YWxpY2U6cHc=")]),
        ("garbage", &[("authorization", "Bearer not.a.jwt")]),
    ];
    for (what, headers) in bad_headers {
        let r = send(
            &app,
            Method::POST,
            "/accounts/acc-1",
            Some(opening),
            headers,
        )
        .await;
        let message = r.error(401, "UNAUTHORIZED");
        assert_eq!(r.headers["www-authenticate"], "Bearer", "{what}");
        assert!(!message.is_empty(), "{what}");
        // Reads are protected too, and so are the generic routes.
        send(&app, Method::GET, "/accounts/acc-1", None, headers)
            .await
            .error(401, "UNAUTHORIZED");
        send(
            &app,
            Method::POST,
            "/api/accounts/commands/OpenAccount",
            Some("{}"),
            headers,
        )
        .await
        .error(401, "UNAUTHORIZED");
    }
    let auth = [("authorization", good.as_str())];
    let r = send(&app, Method::GET, "/accounts/acc-1", None, &auth).await;
    r.error(404, "ACCOUNT_NOT_FOUND");
    let r = send(&app, Method::POST, "/accounts/acc-1", Some(opening), &auth).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = send(
        &app,
        Method::GET,
        "/accounts/acc-1/events?metadata=true",
        None,
        &auth,
    )
    .await;
    let events = r.json();
    assert_eq!(
        events.as_array().unwrap().len(),
        1,
        "only the authorized command stored"
    );
    assert_eq!(events[0]["user_id"], "alice@example.com");
    // Health stays public; the docs need the token (unless configured public).
    assert_eq!(get(&app, "/health").await.status, StatusCode::OK);
    get(&app, "/openapi.json").await.error(401, "UNAUTHORIZED");
    let doc = send(&app, Method::GET, "/openapi.json", None, &auth)
        .await
        .json();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/accounts/{id}"]["post"]["security"],
        json!([{"bearer": []}])
    );
    assert!(doc["paths"]["/api/accounts/{id}"]["get"]["responses"]["401"].is_object());
    assert!(doc["paths"]["/accounts/{id}"]["get"]["responses"]["403"].is_object());
    assert!(doc["paths"]["/health"]["get"]["security"].is_null());
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_with_schemas() {
    let app = app();
    let r = get(&app, "/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("/accounts/{id}", &["post", "get"]),
        ("/accounts/{id}/events", &["get"]),
        ("/api/accounts/commands/OpenAccount", &["post"]),
        ("/api/accounts/{id}/commands/OpenAccount", &["post"]),
        ("/api/accounts/{id}/commands/Deposit", &["post"]),
        ("/api/accounts/{id}/commands/Withdraw", &["post"]),
        ("/api/accounts/{id}", &["get"]),
        ("/api/accounts/{id}/events", &["get"]),
        ("/health", &["get"]),
        ("/health/ready", &["get"]),
        ("/health/live", &["get"]),
        ("/views/accounts", &["get"]),
        ("/views/accounts/{id}", &["get"]),
        ("/views/movements", &["get"]),
        ("/views/movements/{id}", &["get"]),
        ("/accounts/{id}/movements", &["get"]),
        ("/projections", &["get"]),
        ("/projections/{name}", &["get"]),
        ("/events", &["get"]),
        ("/events/stream", &["get"]),
        ("/subscriptions", &["get"]),
        ("/subscriptions/{name}/replay-parked", &["post"]),
        ("/transfers", &["post"]),
        ("/transfers/{id}", &["get"]),
    ];
    for (path, methods) in expected {
        for method in *methods {
            let op = &paths[*path][*method];
            assert!(op.is_object(), "{method} {path} documented");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|code| code.starts_with('2')), "{path}");
            if *path == "/health/live" {
                // It answers whenever the process serves: no error of its own to document.
                continue;
            }
            // Every operation documents its errors with the structured shape.
            let error = responses
                .iter()
                .find(|(code, _)| code.starts_with('4') || code.starts_with('5'))
                .map(|(_, r)| r)
                .unwrap_or_else(|| panic!("{method} {path} has no error response"));
            assert_eq!(
                error["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // Request bodies.
    let deposit = &paths["/api/accounts/{id}/commands/Deposit"]["post"];
    assert_eq!(
        deposit["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/DepositBody"
    );
    assert!(deposit["responses"]["412"].is_object());
    assert_eq!(
        paths["/accounts/{id}"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/AccountCommandBody"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "AccountView",
        "AccountCommandBody",
        "AccountEvent",
        "AccountEventHistory",
        "ErrorBody",
        "OpenAccountBody",
        "DepositBody",
        "WithdrawBody",
        "AccountResponse",
        "AccountEventEnvelope",
        "AccountEventPage",
    ] {
        assert!(
            schemas.contains_key(name),
            "schema {name}: {:?}",
            schemas.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        schemas["ErrorBody"]["required"],
        json!(["domain", "code", "internalCode", "status", "message"])
    );
    // Every reference in the document resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20);
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{reference}"));
        assert!(schemas.contains_key(name), "dangling {reference}");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_docs_page_is_served_from_embedded_assets() {
    let app = app();
    let r = get(&app, "/docs").await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers["location"], "/docs/");
    let r = get(&app, "/docs/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text.contains("swagger-ui"),
        "{}",
        &r.text[..200.min(r.text.len())]
    );
    // The page's script and its config come from this server, not a CDN.
    assert!(!r.text.contains("://cdn") && !r.text.contains("unpkg.com"));
    let r = get(&app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.len() > 100_000);
    let r = get(&app, "/docs/swagger-initializer.js").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("/openapi.json"), "{}", r.text);
}
