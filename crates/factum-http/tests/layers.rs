//! The service layers around the routes of `tickets/`: auth, panics, timeouts, store
//! failures, the body limit, and graceful shutdown over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tickets;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::faulty::Fault;
use factum_testing::http::{call as send, call_as, get, post};
use factum_testing::jwt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tickets::*;

#[tokio::test]
async fn auth_guards_every_route_but_health() {
    let secret = "k3y";
    let (app, _) = service(HttpConfig::default().with_auth(JwtAuth::hs256(secret).unwrap()));
    let r = get(&app, "/whoami").await;
    assert_error(&r, 401, "UNAUTHORIZED");
    let r = post(&app, "/tickets/commands/Open", r#"{"title": "x"}"#).await;
    assert_error(&r, 401, "UNAUTHORIZED");
    let token = jwt::hs256(secret, &jwt::claims("bob", 600));
    let r = call_as(&app, Method::GET, "/whoami", None, &token).await;
    assert_eq!(r.body["user"], "bob");
    let r = call_as(
        &app,
        Method::POST,
        "/tickets/t-9/commands/Open",
        Some(r#"{"title": "x"}"#),
        &token,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call_as(&app, Method::GET, "/tickets/t-9/events", None, &token).await;
    assert_eq!(r.body["events"][0]["user_id"], "bob");
    // Health stays open; the docs are protected unless configured public.
    assert_eq!(get(&app, "/health").await.status, StatusCode::OK);
    let r = get(&app, "/openapi.json").await;
    assert_error(&r, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_panic_is_a_structured_500_without_its_message() {
    let (app, _) = service(HttpConfig::default());
    let r = get(&app, "/boom").await;
    assert_error(&r, 500, "INTERNAL_ERROR");
    assert!(!r.text.contains("secret"), "{}", r.text);
    // The service goes on.
    assert_eq!(get(&app, "/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_request_times_out_with_a_structured_408() {
    let (app, _) = service(HttpConfig::default().with_request_timeout(Duration::from_millis(50)));
    let r = get(&app, "/slow").await;
    assert_error(&r, 408, "REQUEST_TIMEOUT");
    let (app, _) = service(HttpConfig::default());
    let r = get(&app, "/slow").await;
    assert_eq!(r.text, "done");
}

#[tokio::test]
async fn store_failures_are_500_or_503_without_internals() {
    let (app, store) = service(HttpConfig::default());
    let r = post(&app, "/tickets/t-1/commands/Open", r#"{"title": "x"}"#).await;
    assert_eq!(r.status, StatusCode::CREATED);
    store.fail(Fault::Broken);
    for (method, uri, body) in [
        (
            Method::POST,
            "/tickets/t-1/commands/Comment",
            Some(r#"{"text": "y"}"#),
        ),
        (
            Method::POST,
            "/tickets/t-2/commands/Open",
            Some(r#"{"title": "z"}"#),
        ),
        (Method::GET, "/tickets/t-1", None),
        (Method::GET, "/tickets/t-1/events", None),
    ] {
        let r = send(&app, method, uri, body, &[]).await;
        assert_error(&r, 500, "INTERNAL_ERROR");
        assert_eq!(r.body["message"], "internal error");
        for secret in ["secret", "SELECT", "/srv", "disk"] {
            assert!(!r.text.contains(secret), "{}", r.text);
        }
    }
    let r = get(&app, "/health").await;
    assert_error(&r, 503, "STORE_UNAVAILABLE");
    assert!(!r.text.contains("10.0.0.7"), "{}", r.text);
    store.fail(Fault::None);
    let r = get(&app, "/tickets/t-1").await;
    assert_eq!(r.body["version"], 1, "the failed comment stored nothing");
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let (app, _) = service(HttpConfig::default().with_body_limit(100));
    let long = format!(r#"{{"title": "{}"}}"#, "x".repeat(200));
    let r = post(&app, "/tickets/t-1/commands/Open", &long).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert!(r.text.contains("100 bytes"), "{}", r.text);
    let r = post(&app, "/tickets/t-1/commands/Open", r#"{"title": "short"}"#).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn raw_get(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let (app, _) = service(HttpConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(factum_http::serve_with_shutdown(listener, app, async {
        let _ = stopped.await;
    }));
    let in_flight = tokio::spawn(raw_get(address, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once the request is answered")
        .unwrap()
        .unwrap();
    assert!(
        raw_get(address, "/health").await.is_err(),
        "no longer listening"
    );
}
