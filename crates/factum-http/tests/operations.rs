//! Operating under faults: `/health/live` and `/health/ready` as the store comes and goes
//! (unreachable, full, not answering at all), the bound on requests in flight, and the
//! connection bounds of the server (a client sending half its headers, an idle keep-alive
//! connection) over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use factum_http::{Api, HttpConfig, ServeConfig};
use factum_testing::faulty::{Fault, FaultyStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tower::ServiceExt;

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Option<String>, Value) {
    let reply = factum_testing::http::get(app, uri).await;
    let retry_after = reply
        .headers
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (reply.status, retry_after, reply.json())
}

#[tokio::test]
async fn ready_follows_the_store_and_live_never_asks_it() {
    let store = Arc::new(FaultyStore::new());
    let app = Api::new(HttpConfig::default())
        .with_health(store.clone())
        .into_router();

    for uri in ["/health/live", "/health/ready", "/health"] {
        let (status, _, body) = get_json(&app, uri).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ok"))
        );
    }

    for (fault, code) in [
        (Fault::Unreachable, "STORE_UNAVAILABLE"),
        (Fault::Full, "STORE_FULL"),
    ] {
        store.fail(fault);
        for uri in ["/health/ready", "/health"] {
            let (status, retry_after, body) = get_json(&app, uri).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
            assert_eq!(body["code"], code, "{body}");
            assert_eq!(body["status"], 503);
            assert_eq!(retry_after.as_deref(), Some("1"));
            let text = body.to_string();
            assert!(
                !text.contains("10.0.0.7") && !text.contains("/srv"),
                "{text}"
            );
        }
        let (status, _, _) = get_json(&app, "/health/live").await;
        assert_eq!(status, StatusCode::OK);
    }

    // A store that does not answer is not ready, within the check's own bound.
    store.fail(Fault::Hanging);
    let started = Instant::now();
    let (status, _, body) = get_json(&app, "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "STORE_UNAVAILABLE");
    assert!(started.elapsed() < factum_http::READY_CHECK_TIMEOUT + Duration::from_secs(1));
    let (status, _, _) = get_json(&app, "/health/live").await;
    assert_eq!(status, StatusCode::OK);

    store.fail(Fault::None);
    let (status, _, _) = get_json(&app, "/health/ready").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn requests_above_the_in_flight_bound_are_503_at_once_and_health_is_not_counted() {
    // Each /wait request holds until the test adds a permit.
    let gate = Arc::new(Semaphore::new(0));
    let waiting = {
        let gate = gate.clone();
        Router::new().route(
            "/wait",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    "done"
                }
            }),
        )
    };
    let app = Api::new(HttpConfig::default().with_max_in_flight(2))
        .with_health(Arc::new(FaultyStore::new()))
        .with_routes(waiting, utoipa::openapi::OpenApiBuilder::new().build())
        .into_router();

    let call = |uri: &'static str| {
        let app = app.clone();
        tokio::spawn(async move {
            let response = app
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let retry = response.headers().get("retry-after").cloned();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, retry, body)
        })
    };
    let first = call("/wait");
    let second = call("/wait");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let (status, retry, body) = call("/wait").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shed at once"
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.unwrap(), "1");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
    for uri in ["/health/live", "/health/ready"] {
        let (status, _, _) = call(uri).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{uri} is not counted");
    }

    gate.add_permits(2);
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(second.await.unwrap().0, StatusCode::OK);
    gate.add_permits(1);
    assert_eq!(call("/wait").await.unwrap().0, StatusCode::OK, "room again");
}

/// Serves a health-only app with this header-read timeout; returns its address.
async fn serve(header_read_timeout: Duration) -> std::net::SocketAddr {
    let app = Api::new(HttpConfig::default())
        .with_health(Arc::new(FaultyStore::new()))
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = ServeConfig::default().with_header_read_timeout(header_read_timeout);
    tokio::spawn(factum_http::serve_with_config(
        listener,
        app,
        config,
        std::future::pending(),
    ));
    address
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + within).into(), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the server kept the connection open for {within:?}"),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_client_that_sends_half_its_headers_is_cut_off() {
    let address = serve(Duration::from_millis(500)).await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed_after) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed_after >= Duration::from_millis(400),
        "{closed_after:?}"
    );

    // A client that connects and says nothing is cut off the same way.
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    read_until_closed(&mut silent, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_prompt_one_is_served() {
    let address = serve(Duration::from_millis(500)).await;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    for _ in 0..3 {
        // Requests in good time keep the connection.
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rest, closed_after) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "{rest}");
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
}
