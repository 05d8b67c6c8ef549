//! A throwaway PostgreSQL cluster a test may stop and start at will ([`ThrowawayPostgres`])
//! without touching any shared server; it is removed when dropped, so a failing test leaves
//! nothing running. (Service binaries under test: [`crate::server::Server`].)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to use).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A PostgreSQL cluster of its own, in a temporary folder, on a free port: a test may stop
/// it (as an outage) and start it again. `initdb` refuses to run as root, so as root the
/// cluster runs as the `postgres` user.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
}

impl ThrowawayPostgres {
    /// The folder of PostgreSQL's server programs, if installed (`PG_BIN`, or the newest
    /// `/usr/lib/postgresql/*/bin` with `initdb`, or `initdb` on the `PATH`).
    pub fn find_bin() -> Option<PathBuf> {
        if let Ok(bin) = std::env::var("PG_BIN") {
            return Some(PathBuf::from(bin));
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop().or_else(|| {
            let found = Command::new("sh")
                .args(["-c", "command -v initdb"])
                .output()
                .ok()?;
            let path = String::from_utf8(found.stdout).ok()?;
            Path::new(path.trim()).parent().map(Path::to_path_buf)
        })
    }

    /// Creates a cluster in a new folder under the system's temporary folder and starts it.
    pub fn start_new(bin: PathBuf) -> Result<Self, String> {
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        let dir = std::env::temp_dir().join(format!(
            "factum-pg-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cluster = Self {
            bin,
            port: free_port().map_err(|e| e.to_string())?,
            dir,
            as_root,
        };
        if as_root {
            cluster.run(Command::new("chown").args(["postgres:"]).arg(&cluster.dir))?;
        }
        let data = cluster.data();
        cluster.run(
            cluster
                .command("initdb")
                .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
                .arg(&data),
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            self.command("pg_ctl")
                .args(["-w", "-t", "30", "-l"])
                .arg(self.dir.join("server.log"))
                .arg("-D")
                .arg(self.data())
                .args(["-o", &options, "start"]),
        )
    }

    /// Stops the server: `mode` is `fast` (clients are disconnected, transactions in flight
    /// roll back) or `immediate` (a crash, recovered at the next start).
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        self.run(
            self.command("pg_ctl")
                .args(["-w", "-D"])
                .arg(self.data())
                .args(["-m", mode, "stop"]),
        )
    }

    /// Waits until a connection to the port is accepted; returns when it was.
    pub fn wait_accepting(&self, within: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + within;
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(format!("PostgreSQL on port {} is not ready", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one SQL statement with `psql` and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let output = self
            .command("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, command: &mut Command) -> Result<(), String> {
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{command:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{command:?} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
