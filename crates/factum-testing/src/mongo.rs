//! A MongoDB server for tests (feature `mongodb`): `MONGODB_URL` when set, otherwise the
//! wire-compatible `nx-27017` server (PyPI, MongoDB's protocol over SQLite) started once per
//! test process on a free port with a temporary data directory, stopped (and its directory
//! removed) within a second of the process ending. Each test takes a database of its own
//! with [`database_url`]. A missing server fails the test, under `CI=true` and everywhere
//! else: it is never skipped.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The server's URL without a database: `MONGODB_URL`'s, or the started `nx-27017`'s.
pub fn server_url() -> String {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("MONGODB_URL") {
            Ok(url) => url.trim_end_matches('/').to_owned(),
            Err(_) => start_nx(),
        })
        .clone()
}

/// The URL of a database no other test uses: `mongodb://HOST:PORT/{prefix}_{pid}_{n}`.
/// `prefix` is a short plain name (`[a-z0-9_]`, at most 20 characters).
pub fn database_url(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    assert!(
        prefix.len() <= 20
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "a short plain prefix: {prefix:?}"
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let server = server_url();
    // `MONGODB_URL` may carry a database and options; the test's database replaces it.
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server.as_str(), String::new()),
    };
    let host = match base.strip_prefix("mongodb://") {
        Some(rest) => format!("mongodb://{}", rest.split('/').next().unwrap_or(rest)),
        None => base.to_owned(),
    };
    format!("{host}/{prefix}_{}_{n}_{nanos}{query}", std::process::id())
}

fn start_nx() -> String {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("factum-nx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A watchdog shell owns the server: when this process is gone, it stops the server and
    // removes its data, so no test leaves a server behind, even when killed.
    let script = format!(
        "nx-27017 --host 127.0.0.1 --port {port} --data-dir '{dir}' --log-file '{dir}/nx.log' \
         --pid-file '{dir}/nx.pid' >'{dir}/out.log' 2>&1 & child=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
         kill $child 2>/dev/null; wait $child; rm -rf '{dir}'",
        dir = dir.display(),
        parent = std::process::id(),
    );
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v nx-27017")
        .stdout(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    assert!(
        found,
        "nx-27017 is required for the MongoDB tests and is not on PATH \
         (python3 -m pip install nx-27017), or set MONGODB_URL to a MongoDB server"
    );
    // The watchdog outlives this process on purpose (it stops the server after it), so it
    // is never waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nx-27017 did not accept connections on port {port} within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("mongodb://127.0.0.1:{port}")
}
