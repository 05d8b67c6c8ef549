//! A service binary under test: started on a free port, its address read from the first
//! line it prints, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running service process.
#[derive(Debug)]
pub struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `program` with `args` (which should make it listen on port 0) and `envs`, and
    /// waits for the first line of its stdout, which must name its `http://` address.
    /// Panics (this is a test helper) when it does not start or names no address.
    pub fn start(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::ready(program, Self::spawn(program, args, envs))
    }

    /// Starts a Factum service binary the usual way (`--listen 127.0.0.1:0 --store STORE`)
    /// and waits until it listens.
    pub fn on_store(program: &str, store: &str) -> Self {
        Self::start(program, &["--listen", "127.0.0.1:0", "--store", store], &[])
    }

    /// Starts the process without waiting for it; [`ready`](Self::ready) waits. Spawning
    /// several before waiting starts them at the same moment.
    pub fn spawn(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
        let mut command = Command::new(program);
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in envs {
            command.env(name, value);
        }
        command
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"))
    }

    /// Waits for a [`spawn`](Self::spawn)ed `program` to print its address.
    pub fn ready(program: &str, mut child: Child) -> Self {
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let Some(base) = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let status = child.wait();
            panic!("{program} printed no address ({line:?}); it ended with {status:?}");
        };
        Self { child, base }
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `HOST:PORT`, for raw TCP.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop gracefully (SIGTERM), without waiting for it.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "kill -TERM {}",
            self.child.id()
        );
    }

    /// Waits for the process to end.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }

    /// Stops the process gracefully (SIGTERM) and waits for it: its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.child.id()))
    }

    /// Kills the process (SIGKILL on Unix: no shutdown code runs) and waits for it.
    pub fn kill(mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `program` with `args` and `envs` to its end (for settings it must refuse at start):
/// its exit code and what it wrote to stderr.
pub fn run_to_end(program: &str, args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(program);
    command.args(args).env("RUST_LOG", "warn");
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `program` with `args` to its end and asserts it succeeds: what it wrote to stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
