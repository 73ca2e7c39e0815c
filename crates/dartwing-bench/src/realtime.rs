//! `dartwing-bench realtime`: the Socket.IO gateway of 3 `dartwing` nodes on one Redis next to a
//! Node.js `socket.io` 4 + `@socket.io/redis-adapter` reference (3 nodes, same Redis), driven by
//! the same load generator. The measuring is done by `bench/realtime/driver.mjs`; this subcommand
//! locates (or builds) the release server, creates a fresh PostgreSQL schema the 3 Dartwing nodes
//! share, installs the Node packages with `npm ci` when missing, runs the driver and drops the
//! schema afterwards.

use crate::server::{self, PgSchema};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

/// `--help` text of the `realtime` subcommand.
pub const LONG_ABOUT: &str = "\
Realtime gateway: 3 dartwing nodes (cluster mode, one Redis, one PostgreSQL schema) next to the
Node.js socket.io 4 + @socket.io/redis-adapter reference (3 nodes, same Redis), same load
generator (socket.io-client 4, WebSocket transport, --workers processes), in one run.

Fan-out: C clients round-robin over the 3 nodes, client i subscribed to org room i mod R, for each
R of --rooms. The publisher PUBLISHes {event, message, room} to the Redis channel dartwing:realtime
at stepped rates (--rates, --step-secs each) until a step loses a message, duplicates one, or has
p99 latency above --p99-goal. Per step: delivered msgs/s, p50/p99, loss, duplicates, CPU of the
servers, the load generator and Redis; RSS per connection after connecting.
Idle: N connections (--idle) to one fresh node: how many connected, RSS per connection. Beyond
20,000 connections the clients' source addresses are spread over 127.0.0.x; the driver raises the
open-files limits of the processes it starts (hard limit too when run as root).

--quick: a tiny run of the Dartwing side alone (30 clients, 3 rooms, 2 one-second steps, 100 idle
connections, 1 run, no latency goal) that fails unless every client connected and subscribed and
no message was lost or duplicated; works against a debug build. No timing is asserted.

Prints a Markdown table of medians over --runs with Dartwing/reference ratios. The Node side lives
in bench/realtime (npm ci on first use). Needs node and npm on PATH, PostgreSQL and Redis.";

/// Options of `dartwing-bench realtime`.
#[derive(Debug, Clone, clap::Args)]
pub struct RealtimeArgs {
    /// The `dartwing` binary to start [default: `dartwing` next to this executable].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Run `cargo build --release -p dartwing` before benchmarking.
    #[arg(long)]
    build: bool,
    /// PostgreSQL URL; a fresh schema is created for the 3 Dartwing nodes and dropped afterwards.
    #[arg(
        long,
        env = "DARTWING_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// Redis URL shared by both clusters (channel `dartwing:realtime`).
    #[arg(long, env = "DARTWING_TEST_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Systems to measure, comma separated: dartwing, reference.
    #[arg(long, default_value = "dartwing,reference")]
    systems: String,
    /// Clients per fan-out scenario.
    #[arg(long, default_value_t = 1000)]
    clients: u32,
    /// Org rooms per fan-out scenario, comma separated.
    #[arg(long, default_value = "10,100")]
    rooms: String,
    /// Publish rates (msgs/s) stepped through, comma separated [default: the driver's].
    #[arg(long)]
    rates: Option<String>,
    /// Seconds per step.
    #[arg(long, default_value_t = 5)]
    step_secs: u32,
    /// p99 latency goal in ms that ends the stepping.
    #[arg(long, default_value_t = 100)]
    p99_goal: u32,
    /// Idle connections to one node (0 skips the idle measurement).
    #[arg(long, default_value_t = 10_000)]
    idle: u32,
    /// Scenarios to run, comma separated: fanout, idle, delta.
    #[arg(long, default_value = "fanout,idle")]
    scenarios: String,
    /// Delta: items written per second through sync.upsert_batch.
    #[arg(long, default_value_t = 1000)]
    delta_rate: u32,
    /// Delta: seconds of writing.
    #[arg(long, default_value_t = 10)]
    delta_secs: u32,
    /// Delta: items per upsert_batch request.
    #[arg(long, default_value_t = 10)]
    delta_batch: u32,
    /// Delta: subscribed sockets.
    #[arg(long, default_value_t = 10)]
    delta_subscribers: u32,
    /// Fail when a step lost or duplicated a message or a client did not connect or subscribe.
    #[arg(long)]
    strict: bool,
    /// Tiny sizes, Dartwing only, strict (see the long help); overrides the sizes given.
    #[arg(long)]
    quick: bool,
    /// Repetitions; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Load-generator processes.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Also write every measurement as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The Node side: `bench/realtime` at the root of the repository.
fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/realtime")
}

impl RealtimeArgs {
    /// The sizes of `--quick`: seconds of work, every message checked, no latency goal.
    fn quick(self) -> Self {
        Self {
            systems: "dartwing".into(),
            clients: 30,
            rooms: "3".into(),
            rates: Some("20,50".into()),
            step_secs: 1,
            p99_goal: 60_000,
            idle: 100,
            scenarios: "fanout,idle,delta".into(),
            delta_rate: 50,
            delta_secs: 2,
            delta_batch: 5,
            delta_subscribers: 3,
            runs: 1,
            workers: 1,
            strict: true,
            ..self
        }
    }
}

/// Runs the benchmark.
pub async fn run(args: RealtimeArgs) -> Result<()> {
    let args = if args.quick { args.quick() } else { args };
    let dir = bench_dir();
    let dir = dir
        .canonicalize()
        .with_context(|| format!("the benchmark's Node side {} is missing", dir.display()))?;
    let wants_dartwing = args.systems.split(',').any(|s| s.trim() == "dartwing");
    let binary = if wants_dartwing {
        if args.build {
            server::build_server().await?;
        }
        Some(server::locate_binary(args.binary.as_deref())?)
    } else {
        None
    };
    ensure_node_modules(&dir).await?;

    let schema = if wants_dartwing {
        Some(PgSchema::create(&args.database_url).await?)
    } else {
        None
    };
    let result = drive(&args, &dir, binary.as_deref(), schema.as_ref()).await;
    if let Some(schema) = schema
        && let Err(e) = schema.drop_schema().await
    {
        eprintln!("warning: {e:#}");
    }
    result
}

async fn drive(args: &RealtimeArgs, dir: &Path, binary: Option<&Path>, schema: Option<&PgSchema>) -> Result<()> {
    let mut command = Command::new("node");
    command.current_dir(dir).arg("driver.mjs");
    command.args(["--systems", &args.systems]);
    command.args(["--redis-url", &args.redis_url]);
    command.args(["--clients", &args.clients.to_string()]);
    command.args(["--rooms", &args.rooms]);
    command.args(["--step-secs", &args.step_secs.to_string()]);
    command.args(["--p99-goal", &args.p99_goal.to_string()]);
    command.args(["--idle", &args.idle.to_string()]);
    command.args(["--scenarios", &args.scenarios]);
    command.args(["--delta-rate", &args.delta_rate.to_string()]);
    command.args(["--delta-secs", &args.delta_secs.to_string()]);
    command.args(["--delta-batch", &args.delta_batch.to_string()]);
    command.args(["--delta-subscribers", &args.delta_subscribers.to_string()]);
    if args.strict {
        command.arg("--strict");
    }
    command.args(["--runs", &args.runs.to_string()]);
    command.args(["--workers", &args.workers.to_string()]);
    if let Some(rates) = &args.rates {
        command.args(["--rates", rates]);
    }
    if let Some(json) = &args.json {
        command.arg("--json").arg(json);
    }
    if let Some(binary) = binary {
        command.arg("--dartwing-binary").arg(binary);
    }
    if let Some(schema) = schema {
        command.args(["--database-url", &schema.server_url()]);
    }
    let status = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("cannot run node (is Node.js installed?)")?;
    if !status.success() {
        bail!("the realtime benchmark driver failed ({status})");
    }
    Ok(())
}

/// Runs `npm ci` in `bench/realtime` when its node_modules is missing.
async fn ensure_node_modules(dir: &Path) -> Result<()> {
    let installed = [
        "socket.io",
        "socket.io-client",
        "@socket.io/redis-adapter",
        "redis",
        "jsonwebtoken",
    ]
    .iter()
    .all(|package| dir.join("node_modules").join(package).join("package.json").is_file());
    if installed {
        return Ok(());
    }
    eprintln!("running npm ci in {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .await
        .context("cannot run npm (is Node.js installed?)")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    Ok(())
}
