//! The to-do service shares the operational behaviour of every Factum service: one serving
//! process per SQLite file (a second is refused with exit code 3), `/health/live` and
//! `/health/ready`, and a connection that sends half its headers is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use factum_testing::server::Server;

const TODOLIST: &str = env!("CARGO_BIN_EXE_todolist");

#[tokio::test]
async fn a_second_server_is_refused_and_health_and_header_timeouts_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("todo.db").display());
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
        "--header-read-timeout",
        "1",
    ];
    let first = Server::start(TODOLIST, &args, &[]);

    let second = Command::new(TODOLIST)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another serving process"));

    for path in ["/health/live", "/health/ready", "/health"] {
        let response = reqwest::get(first.url(path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    let address = first.url("").trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Half: ")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (EOF) within about its 1 s header-read timeout.
    stream.read_to_end(&mut rest).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
