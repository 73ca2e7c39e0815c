//! Running the real `dartwing` binary: locating it, a fresh database per server (a temporary
//! SQLite data directory or a fresh PostgreSQL schema), start, readiness, setup, stop.

use anyhow::{Context, Result, bail};
use sqlx::Connection;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// HS256 secret shared by the server and the token the bench issues through the CLI.
const JWT_SECRET: &str = "dartwing-bench-secret-0123456789abcdef0123456789abcdef";

/// Email of the benchmark user (the Owner of the benchmark organization).
pub const BENCH_EMAIL: &str = "bench@example.com";

/// How long a server may take to answer `GET /health` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The `dartwing` release binary: `--binary` when given, else next to this executable.
pub fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--binary {} does not exist", path.display());
    }
    let exe = std::env::current_exe().context("cannot determine the path of this executable")?;
    let dir = exe.parent().context("this executable has no parent directory")?;
    let binary = dir.join(format!("dartwing{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "the server binary {} is missing: run `cargo build --release -p dartwing` first \
             (or pass --build to let the bench run it)",
            binary.display()
        );
    }
    if !dir.ends_with("release") {
        eprintln!(
            "warning: {} is not a release build; figures will not be representative",
            binary.display()
        );
    }
    Ok(binary)
}

/// Runs `cargo build --release -p dartwing` (for `--build`).
pub async fn build_server() -> Result<()> {
    eprintln!("building: cargo build --release -p dartwing");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "dartwing"])
        .status()
        .await
        .context("cannot run cargo to build the server")?;
    if !status.success() {
        bail!("`cargo build --release -p dartwing` failed ({status})");
    }
    Ok(())
}

/// The database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite in the data directory.
    Sqlite,
    /// PostgreSQL, in a fresh schema.
    Postgres,
}

impl Backend {
    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// What the observability settings of a server are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Name on the command line and in tables.
    pub name: &'static str,
    /// Environment overrides; empty means the defaults.
    pub env: &'static [(&'static str, &'static str)],
    /// What the mode is, for the output header.
    pub about: &'static str,
}

/// Observability at its defaults: metrics on, a JSON access-log line per request.
pub const MODE_ON: Mode = Mode {
    name: "on",
    env: &[],
    about: "defaults: metrics on, JSON access log (info) to stdout, redirected to a file",
};

/// Observability off: no metrics, no access log, warnings only.
pub const MODE_OFF: Mode = Mode {
    name: "off",
    env: &[
        ("DARTWING_OBSERVABILITY__METRICS_ENABLED", "false"),
        ("DARTWING_OBSERVABILITY__ACCESS_LOG", "false"),
        ("DARTWING_OBSERVABILITY__LOG_LEVEL", "warn"),
    ],
    about: "metrics off, access log off, log level warn",
};

/// Metrics alone (to split the cost of observability).
pub const MODE_METRICS: Mode = Mode {
    name: "metrics",
    env: &[
        ("DARTWING_OBSERVABILITY__METRICS_ENABLED", "true"),
        ("DARTWING_OBSERVABILITY__ACCESS_LOG", "false"),
        ("DARTWING_OBSERVABILITY__LOG_LEVEL", "warn"),
    ],
    about: "metrics on, access log off, log level warn",
};

/// The access log alone (to split the cost of observability).
pub const MODE_LOG: Mode = Mode {
    name: "log",
    env: &[
        ("DARTWING_OBSERVABILITY__METRICS_ENABLED", "false"),
        ("DARTWING_OBSERVABILITY__ACCESS_LOG", "true"),
        ("DARTWING_OBSERVABILITY__LOG_LEVEL", "info"),
    ],
    about: "metrics off, JSON access log (info) to a file",
};

/// Log level info without access log or metrics: the cost of enabled request spans alone.
pub const MODE_SPANS: Mode = Mode {
    name: "spans",
    env: &[
        ("DARTWING_OBSERVABILITY__METRICS_ENABLED", "false"),
        ("DARTWING_OBSERVABILITY__ACCESS_LOG", "false"),
        ("DARTWING_OBSERVABILITY__LOG_LEVEL", "info"),
    ],
    about: "metrics off, access log off, log level info (request spans enabled, no lines)",
};

/// Every mode `--modes` accepts.
pub const ALL_MODES: [Mode; 5] = [MODE_ON, MODE_OFF, MODE_METRICS, MODE_LOG, MODE_SPANS];

/// A fresh PostgreSQL schema, dropped by [`PgSchema::drop_schema`].
pub struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    /// Creates `bench_<random>` through `admin_url`.
    pub async fn create(admin_url: &str) -> Result<Self> {
        let mut bytes = [0u8; 6];
        rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
        let name = format!("bench_{}", hex::encode(bytes));
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .context("cannot connect to PostgreSQL with the benchmark database URL")?;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create schema {name}"))?;
        let _ = admin.close().await;
        Ok(Self {
            admin_url: admin_url.to_string(),
            name,
        })
    }

    /// The URL the server uses: the admin URL with `search_path` set to the schema.
    pub fn server_url(&self) -> String {
        let separator = if self.admin_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.admin_url, self.name)
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> Result<()> {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .context("cannot connect to PostgreSQL to drop the benchmark schema")?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot drop schema {}", self.name))?;
        let _ = admin.close().await;
        Ok(())
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr().context("cannot read the bound address")?.port())
}

/// The environment shared by `dartwing serve` and `dartwing token issue`.
struct ServerEnv {
    vars: Vec<(String, String)>,
}

impl ServerEnv {
    fn command(&self, binary: &Path, dir: &Path) -> Command {
        let mut command = Command::new(binary);
        // Keep the caller's DARTWING_* settings (and any ./dartwing.toml) out of the measurement.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DARTWING_") {
                command.env_remove(key);
            }
        }
        command.current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
        command.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }
}

/// A running `dartwing serve` and what the benchmark set up in it.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Bearer token of [`BENCH_EMAIL`].
    pub token: String,
    /// Where the server's stdout (the JSON log) goes.
    pub stdout_path: PathBuf,
    /// Where the server's stderr goes.
    pub stderr_path: PathBuf,
    /// The data directory (and log files); deleted on drop unless kept.
    pub dir: TempDir,
}

impl Server {
    /// Starts `binary serve` on `database_url` (None: SQLite in a fresh data directory) with
    /// `mode`, waits for `GET /health` = 200, and issues a token through `dartwing token issue`.
    pub async fn start(
        binary: &Path,
        database_url: Option<&str>,
        mode: Mode,
        client: &reqwest::Client,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("dartwing-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let mut vars = vec![
            ("DARTWING_LISTEN".to_string(), addr.to_string()),
            ("DARTWING_DATA_DIR".to_string(), dir.path().display().to_string()),
            ("DARTWING_JWT_SECRET".to_string(), JWT_SECRET.to_string()),
            ("DARTWING_NODE_ID".to_string(), "bench".to_string()),
        ];
        if let Some(url) = database_url {
            vars.push(("DARTWING_DATABASE_URL".to_string(), url.to_string()));
        }
        vars.extend(mode.env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env = ServerEnv { vars };

        let stdout_path = dir.path().join("server-stdout.jsonl");
        let stderr_path = dir.path().join("server-stderr.log");
        let stdout =
            std::fs::File::create(&stdout_path).with_context(|| format!("cannot create {}", stdout_path.display()))?;
        let stderr =
            std::fs::File::create(&stderr_path).with_context(|| format!("cannot create {}", stderr_path.display()))?;
        let child = env
            .command(binary, dir.path())
            .arg("serve")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {} serve", binary.display()))?;
        let base = format!("http://{addr}");
        let mut server = Self {
            child,
            base,
            token: String::new(),
            stdout_path,
            stderr_path,
            dir,
        };
        server.wait_ready(client).await?;

        let output = env
            .command(binary, server.dir.path())
            .args(["token", "issue", "--email", BENCH_EMAIL])
            .output()
            .await
            .with_context(|| format!("cannot run {} token issue", binary.display()))?;
        if !output.status.success() {
            bail!(
                "`dartwing token issue` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        server.token = String::from_utf8(output.stdout)
            .context("token is not UTF-8")?
            .trim()
            .to_string();
        if server.token.is_empty() {
            bail!("`dartwing token issue` printed no token");
        }
        Ok(server)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> Result<()> {
        let started = Instant::now();
        let url = format!("{}/health", self.base);
        loop {
            if let Some(status) = self.child.try_wait().context("cannot poll the server process")? {
                bail!("the server exited during startup ({status}); {}", self.output_tail());
            }
            match client.get(&url).timeout(Duration::from_secs(2)).send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
                _ if started.elapsed() > READY_TIMEOUT => {
                    bail!(
                        "GET {url} did not answer 200 within {READY_TIMEOUT:?}; {}",
                        self.output_tail()
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The last lines of the server's stderr and stdout, for error messages.
    pub fn output_tail(&self) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        };
        format!(
            "server stderr:\n{}\nserver stdout:\n{}",
            tail(&self.stderr_path),
            tail(&self.stdout_path)
        )
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Creates the benchmark organization (`POST /api/resource/Organization`) and returns its name.
    pub async fn create_organization(&self, client: &reqwest::Client) -> Result<String> {
        self.create_named_organization(client, "Bench").await
    }

    /// Creates an organization called `org_name` (the token's user becomes its Owner) and
    /// returns its name.
    pub async fn create_named_organization(&self, client: &reqwest::Client, org_name: &str) -> Result<String> {
        let response = client
            .post(format!("{}/api/resource/Organization", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "org_name": org_name, "org_type": "Company" }))
            .send()
            .await
            .context("POST /api/resource/Organization failed")?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.context("organization response is not JSON")?;
        if status != reqwest::StatusCode::OK {
            bail!("POST /api/resource/Organization answered {status}: {body}");
        }
        body["data"]["name"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("organization response lacks data.name: {body}"))
    }

    /// Stops the server with SIGTERM (SIGKILL after a timeout) and waits for it.
    pub async fn stop(mut self) -> Result<TempDir> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
                Ok(status) => {
                    status.context("cannot wait for the server")?;
                }
                Err(_) => {
                    eprintln!("warning: the server did not stop within {STOP_TIMEOUT:?}; killing it");
                    self.child.kill().await.context("cannot kill the server")?;
                }
            }
        }
        Ok(self.dir)
    }
}

/// Total CPU time (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start with the state (field 3).
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks();
    Some(Duration::from_secs_f64((utime + stime) as f64 / ticks as f64))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}
