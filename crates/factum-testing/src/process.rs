//! Running a service binary in a test: start it on a free port, learn its address from the
//! first line it prints, kill it (SIGKILL) when done.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running service process, killed (SIGKILL) and reaped when dropped.
///
/// The binary must take `--listen HOST:PORT` and print its address (`http://...`) on the
/// first line of its stdout once it listens, as the example services do.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    base: String,
}

impl ServiceProcess {
    /// Starts `binary` with `args` plus `--listen 127.0.0.1:0`, and waits until it listens.
    /// Its stderr goes to the test's output.
    pub fn start(binary: impl AsRef<Path>, args: &[&str]) -> Self {
        Self::ready(Self::spawn(binary, args))
    }

    /// Starts the process without waiting for it; [`ready`](Self::ready) waits. Spawning
    /// several before waiting starts them at the same moment.
    pub fn spawn(binary: impl AsRef<Path>, args: &[&str]) -> Child {
        let binary = binary.as_ref();
        Command::new(binary)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
    }

    /// Reads the address the process prints first.
    pub fn ready(mut child: Child) -> Self {
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(base) = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the service printed no address: {line:?}");
        };
        Self { child, base }
    }

    /// `http://HOST:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `path` on this process.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `HOST:PORT`, for raw TCP.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
