//! `dartwing-bench http`: authenticated document reads against the real binary, per backend and
//! observability mode, with medians over alternating runs and the observability overhead.

use crate::load::{self, LoadResult};
use crate::server::{self, ALL_MODES, Backend, MODE_OFF, MODE_ON, Mode, PgSchema, Server};
use crate::stats::{median, percentile};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Long help of the `http` subcommand.
pub const LONG_ABOUT: &str = "\
Authenticated document reads over HTTP, per backend, with observability on and off.

Before running, build both programs in release mode:

    cargo build --release -p dartwing -p dartwing-bench

and run `target/release/dartwing-bench http …` (`cargo run --release -p dartwing-bench -- http …`
works too, but cargo may then rebuild dependencies once with a different feature set).

The bench builds nothing by default: it starts the `dartwing` binary found next to its own
executable (target/release/dartwing), or the one given with --binary, and fails with a hint when it
is missing. With --build it first runs `cargo build --release -p dartwing` itself.

For each backend (SQLite in a fresh temporary data directory; PostgreSQL in a fresh schema
`bench_<random>`, reached with `?options=-c%20search_path%3D<schema>` appended to the URL and
dropped after each measurement, when --database-url or DARTWING_BENCH_DATABASE_URL is given) and
each mode (`on`: the defaults, metrics and a JSON access-log line per request, the server's stdout
redirected to a file; `off`: metrics and access log disabled, log level warn), it starts
`dartwing serve` on a free 127.0.0.1 port, waits for GET /health = 200, issues a token with
`dartwing token issue`, creates an organization with POST /api/resource/Organization (the token's
user becomes its Owner), and then runs --concurrency tasks looping
GET /api/resource/Organization/<name> with the bearer token over keep-alive connections: a
warm-up, then a measured window of --duration-secs. The server is stopped after every
measurement; modes alternate from run to run so that noise hits each alike.

Reference in the same run: after each measured window, the same load on GET /health/live (no
authentication, no database) of the same server, so the report gives the authenticated read as a
share of the bare HTTP stack, and PostgreSQL as a share of SQLite.

--quick: one short run per backend (observability on, 4 connections, 1 s), which fails when any
request errs; a check that the bench and the server still work, not a measurement. It works with a
debug build too (target/debug/dartwing-bench next to target/debug/dartwing).

It prints every run (with the CPU time the server and the bench used in the window, from
/proc, and the server's CPU time per request, which is less sensitive to other load on the
machine than throughput), then the medians, the observability overhead (throughput(off) /
throughput(on) - 1, and the p99 ratio) and a markdown table for the README. The load generator
runs on the same machine as the server and competes with it for CPU; all traffic stays on
127.0.0.1 and every loop is bounded by time.

Extra modes for finding where the cost is (--modes on,off,metrics,log,spans): `metrics` (metrics
only), `log` (access log only), `spans` (log level info, no access log, no metrics).";

/// Options of `dartwing-bench http`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Measured runs per backend and mode (medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Length of each measured window in seconds (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration_secs: u64,
    /// Warm-up before each measured window, in seconds (not measured).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup_secs: u64,
    /// Concurrent client tasks, each with its own keep-alive connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test); adds the PostgreSQL backend.
    #[arg(long, env = "DARTWING_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Observability modes to compare: on, off, metrics, log, spans (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "on,off", value_parser = parse_mode)]
    modes: Vec<Mode>,
    /// Skip the SQLite backend (PostgreSQL only).
    #[arg(long)]
    no_sqlite: bool,
    /// The `dartwing` binary to start [default: `dartwing` next to this executable].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Run `cargo build --release -p dartwing` before benchmarking.
    #[arg(long)]
    build: bool,
    /// Keep each server's temporary data directory (logs included) and print its path.
    #[arg(long)]
    keep_data: bool,
    /// One short run per backend that fails on any error (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
}

impl HttpArgs {
    /// The arguments of `--quick`: one run of 1 s after 1 s of warm-up, 4 connections, mode on.
    fn quickened(mut self) -> Self {
        if self.quick {
            self.runs = 1;
            self.duration_secs = 1;
            self.warmup_secs = 1;
            self.concurrency = 4;
            self.modes = vec![MODE_ON];
        }
        self
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    ALL_MODES.into_iter().find(|m| m.name == text).ok_or_else(|| {
        let names: Vec<_> = ALL_MODES.iter().map(|m| m.name).collect();
        format!("unknown mode '{text}' (expected one of {})", names.join(", "))
    })
}

/// The figures of one measured run.
#[derive(Debug, Clone)]
struct RunFigures {
    backend: Backend,
    mode: Mode,
    run: u32,
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    server_cpu_pct: Option<f64>,
    bench_cpu_pct: Option<f64>,
    server_cpu_us_per_req: Option<f64>,
    log_bytes: u64,
    /// Throughput of GET /health/live on the same server, right after.
    live_rps: f64,
}

/// Median figures of one (backend, mode).
#[derive(Debug, Clone)]
struct Summary {
    backend: Backend,
    mode: Mode,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    server_cpu_pct: Option<f64>,
    server_cpu_us_per_req: Option<f64>,
    live_rps: f64,
}

/// Runs the benchmark.
pub async fn run(args: HttpArgs) -> Result<()> {
    let args = args.quickened();
    let mut modes = Vec::new();
    for mode in &args.modes {
        if !modes.contains(mode) {
            modes.push(*mode);
        }
    }
    let mut backends = Vec::new();
    if !args.no_sqlite {
        backends.push(Backend::Sqlite);
    }
    if args.database_url.is_some() {
        backends.push(Backend::Postgres);
    }
    if backends.is_empty() {
        bail!("--no-sqlite needs --database-url (or DARTWING_BENCH_DATABASE_URL) for PostgreSQL");
    }
    if args.build {
        server::build_server().await?;
    }
    let binary = server::locate_binary(args.binary.as_deref())?;
    let warmup = Duration::from_secs(args.warmup_secs);
    let duration = Duration::from_secs(args.duration_secs);
    let concurrency = args.concurrency as usize;

    print_header(&args, &binary, &backends, &modes).await;

    let mut all = Vec::new();
    for &backend in &backends {
        println!("\n## {} — per run", backend.name());
        for run in 0..args.runs {
            // Rotate the order of modes from run to run so drifting noise hits each mode alike.
            for i in 0..modes.len() {
                let mode = modes[(i + run as usize) % modes.len()];
                let figures = measure(&args, &binary, backend, mode, run, concurrency, warmup, duration)
                    .await
                    .with_context(|| format!("{} / observability {} / run {}", backend.name(), mode.name, run + 1))?;
                print_run(&figures, args.runs);
                all.push(figures);
            }
        }
    }

    let summaries: Vec<Summary> = backends
        .iter()
        .flat_map(|&backend| modes.iter().map(move |&mode| (backend, mode)))
        .map(|(backend, mode)| summarize(&all, backend, mode))
        .collect();
    print_summary(&summaries, &args);
    print_backend_ratios(&summaries);
    print_overhead(&summaries, &all, &backends, &modes);
    print_markdown(&summaries, &args);
    let errors: u64 = all.iter().map(|f| f.errors).sum();
    if args.quick && errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

async fn print_header(args: &HttpArgs, binary: &Path, backends: &[Backend], modes: &[Mode]) {
    let version = tokio::process::Command::new(binary)
        .arg("--version")
        .output()
        .await
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("# Dartwing HTTP benchmark: GET /api/resource/Organization/<name> with a bearer JWT");
    println!("server:      {} ({version})", binary.display());
    println!(
        "backends:    {}",
        backends.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    );
    for mode in modes {
        println!("mode {:<7} {}", format!("{}:", mode.name), mode.about);
    }
    println!(
        "load:        {} keep-alive connections, {} s warm-up + {} s measured, {} run(s) per backend and mode, modes alternating",
        args.concurrency, args.warmup_secs, args.duration_secs, args.runs
    );
    println!("machine:     {cores} cores ({cpu})");
    println!(
        "NOTE: the load generator runs on the same {cores}-core machine as the server and competes with it for CPU;"
    );
    println!("      absolute figures are a lower bound of what the server alone can do. All traffic is on 127.0.0.1.");
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &HttpArgs,
    binary: &Path,
    backend: Backend,
    mode: Mode,
    run: u32,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<RunFigures> {
    let schema = match (backend, &args.database_url) {
        (Backend::Postgres, Some(url)) => Some(PgSchema::create(url).await?),
        (Backend::Postgres, None) => bail!("PostgreSQL needs --database-url"),
        (Backend::Sqlite, _) => None,
    };
    let database_url = schema.as_ref().map(PgSchema::server_url);
    let outcome = measure_server(
        args,
        binary,
        database_url.as_deref(),
        mode,
        concurrency,
        warmup,
        duration,
    )
    .await;
    if let Some(schema) = schema
        && let Err(error) = schema.drop_schema().await
    {
        eprintln!("warning: {error:#}");
    }
    let (result, cpu, log_bytes, live) = outcome?;
    let mut latencies = result.latencies_us;
    latencies.sort_unstable();
    let requests = latencies.len();
    let window = result.window.as_secs_f64();
    if !result.error_samples.is_empty() {
        eprintln!(
            "warning: {} errors in {} / {} run {}; first: {}",
            result.errors,
            backend.name(),
            mode.name,
            run + 1,
            result.error_samples.join(" | ")
        );
    }
    let (server_cpu, bench_cpu) = cpu;
    Ok(RunFigures {
        backend,
        mode,
        run,
        requests,
        rps: requests as f64 / window,
        p50_ms: f64::from(percentile(&latencies, 50.0)) / 1000.0,
        p99_ms: f64::from(percentile(&latencies, 99.0)) / 1000.0,
        errors: result.errors,
        server_cpu_pct: server_cpu.map(|d| d.as_secs_f64() / window * 100.0),
        bench_cpu_pct: bench_cpu.map(|d| d.as_secs_f64() / window * 100.0),
        server_cpu_us_per_req: server_cpu
            .filter(|_| requests > 0)
            .map(|d| d.as_secs_f64() * 1e6 / requests as f64),
        log_bytes,
        live_rps: live.latencies_us.len() as f64 / live.window.as_secs_f64().max(f64::MIN_POSITIVE),
    })
}

/// CPU time of the server and of the bench during the measured window.
type WindowCpu = (Option<Duration>, Option<Duration>);

async fn measure_server(
    args: &HttpArgs,
    binary: &Path,
    database_url: Option<&str>,
    mode: Mode,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(LoadResult, WindowCpu, u64, LoadResult)> {
    let setup_client = load::client(2)?;
    let server = Server::start(binary, database_url, mode, &setup_client).await?;
    let outcome = drive(&server, &setup_client, concurrency, warmup, duration).await;
    let outcome = outcome.map_err(|e| e.context(server.output_tail()));
    let log_bytes = std::fs::metadata(&server.stdout_path).map(|m| m.len()).unwrap_or(0);
    drop(setup_client);
    let dir = server.stop().await?;
    if args.keep_data {
        let path = dir.keep();
        println!("    (data and logs kept in {})", path.display());
    }
    let (result, cpu, live) = outcome?;
    Ok((result, cpu, log_bytes, live))
}

async fn drive(
    server: &Server,
    setup_client: &reqwest::Client,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(LoadResult, WindowCpu, LoadResult)> {
    let org = server.create_organization(setup_client).await?;
    let url = format!("{}/api/resource/Organization/{org}", server.base);
    let probe = setup_client
        .get(&url)
        .bearer_auth(&server.token)
        .send()
        .await
        .with_context(|| format!("GET {url} failed"))?;
    let status = probe.status();
    if status != reqwest::StatusCode::OK {
        let body = probe.text().await.unwrap_or_default();
        bail!("GET {url} answered {status}: {body}");
    }
    let client = load::client(concurrency)?;
    let pid = server.pid();
    let sampler = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let before = (server::cpu_time(pid), server::cpu_time(None));
        tokio::time::sleep(duration).await;
        let after = (server::cpu_time(pid), server::cpu_time(None));
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        (diff(before.0, after.0), diff(before.1, after.1))
    });
    let result = load::run(&client, &url, &server.token, concurrency, warmup, duration).await?;
    let cpu = sampler.await.context("the CPU sampler failed")?;
    // The reference: the bare HTTP stack of the same server.
    let live_url = format!("{}/health/live", server.base);
    let live = load::run(&client, &live_url, &server.token, concurrency, warmup, duration).await?;
    if live.errors > 0 {
        bail!(
            "GET {live_url} failed {} times: {}",
            live.errors,
            live.error_samples.join(" | ")
        );
    }
    Ok((result, cpu, live))
}

fn print_run(f: &RunFigures, runs: u32) {
    let pct = |v: Option<f64>| v.map(|v| format!("{v:4.0} %")).unwrap_or_else(|| "   ?".into());
    let per_req = f
        .server_cpu_us_per_req
        .map(|v| format!("{v:5.0}"))
        .unwrap_or_else(|| "    ?".into());
    println!(
        "{:<10} {:<7} run {}/{}: {:>8.0} req/s (/health/live {:>8.0})  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {:>3}  requests {:>7}  server CPU {} ({} µs/req)  bench CPU {}  log {:>6.1} MiB",
        f.backend.name(),
        f.mode.name,
        f.run + 1,
        runs,
        f.rps,
        f.live_rps,
        f.p50_ms,
        f.p99_ms,
        f.errors,
        f.requests,
        pct(f.server_cpu_pct),
        per_req,
        pct(f.bench_cpu_pct),
        f.log_bytes as f64 / (1024.0 * 1024.0),
    );
}

fn summarize(all: &[RunFigures], backend: Backend, mode: Mode) -> Summary {
    let runs: Vec<&RunFigures> = all.iter().filter(|f| f.backend == backend && f.mode == mode).collect();
    let med = |get: &dyn Fn(&RunFigures) -> f64| median(&runs.iter().map(|f| get(f)).collect::<Vec<_>>());
    let med_opt = |get: &dyn Fn(&RunFigures) -> Option<f64>| {
        let values: Option<Vec<f64>> = runs.iter().map(|f| get(f)).collect();
        values.filter(|v| !v.is_empty()).map(|v| median(&v))
    };
    Summary {
        backend,
        mode,
        rps: med(&|f| f.rps),
        p50_ms: med(&|f| f.p50_ms),
        p99_ms: med(&|f| f.p99_ms),
        errors: runs.iter().map(|f| f.errors).sum(),
        server_cpu_pct: med_opt(&|f| f.server_cpu_pct),
        server_cpu_us_per_req: med_opt(&|f| f.server_cpu_us_per_req),
        live_rps: med(&|f| f.live_rps),
    }
}

fn print_summary(summaries: &[Summary], args: &HttpArgs) {
    println!(
        "\n## Medians of {} run(s) × {} s, concurrency {} (errors: total over the runs)",
        args.runs, args.duration_secs, args.concurrency
    );
    println!(
        "{:<10}  {:<7}  {:>9}  {:>12}  {:>11}  {:>7}  {:>7}  {:>6}  {:>10}  {:>15}",
        "backend",
        "mode",
        "req/s",
        "live req/s",
        "read/live",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU",
        "server µs/req"
    );
    for s in summaries {
        println!(
            "{:<10}  {:<7}  {:>9.0}  {:>12.0}  {:>10.1}%  {:>7.2}  {:>7.2}  {:>6}  {:>10}  {:>15}",
            s.backend.name(),
            s.mode.name,
            s.rps,
            s.live_rps,
            ratio(s.rps, s.live_rps) * 100.0,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            s.server_cpu_pct
                .map(|v| format!("{v:.0} %"))
                .unwrap_or_else(|| "?".into()),
            s.server_cpu_us_per_req
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "?".into()),
        );
    }
}

/// PostgreSQL's authenticated read as a share of SQLite's, per mode.
fn print_backend_ratios(summaries: &[Summary]) {
    let mut lines = Vec::new();
    for pg in summaries.iter().filter(|s| s.backend == Backend::Postgres) {
        if let Some(sqlite) = find(summaries, Backend::Sqlite, pg.mode) {
            lines.push(format!(
                "{:<7}: PostgreSQL / SQLite = {:.1} % ({:.0} / {:.0} req/s)",
                pg.mode.name,
                ratio(pg.rps, sqlite.rps) * 100.0,
                pg.rps,
                sqlite.rps
            ));
        }
    }
    if !lines.is_empty() {
        println!("\n## PostgreSQL next to SQLite (authenticated read, medians)");
        for line in lines {
            println!("{line}");
        }
    }
}

fn find(summaries: &[Summary], backend: Backend, mode: Mode) -> Option<&Summary> {
    summaries.iter().find(|s| s.backend == backend && s.mode == mode)
}

/// `throughput(off) / throughput(mode) - 1` in percent: how much faster the server is without it.
fn throughput_overhead(mode: &Summary, off: &Summary) -> f64 {
    if mode.rps > 0.0 {
        (off.rps / mode.rps - 1.0) * 100.0
    } else {
        f64::NAN
    }
}

fn print_overhead(summaries: &[Summary], all: &[RunFigures], backends: &[Backend], modes: &[Mode]) {
    if !modes.contains(&MODE_OFF) || modes.len() < 2 {
        return;
    }
    println!("\n## Observability overhead (vs mode off; throughput(off)/throughput(mode) - 1 from the medians)");
    for &backend in backends {
        let Some(off) = find(summaries, backend, MODE_OFF) else {
            continue;
        };
        for &mode in modes.iter().filter(|m| **m != MODE_OFF) {
            let Some(s) = find(summaries, backend, mode) else {
                continue;
            };
            let cpu = match (s.server_cpu_us_per_req, off.server_cpu_us_per_req) {
                (Some(a), Some(b)) if b > 0.0 => format!(", server CPU/request ×{:.3}", a / b),
                _ => String::new(),
            };
            // Paired per-run figures: run i of this mode against run i of off.
            let paired: Vec<String> = all
                .iter()
                .filter(|f| f.backend == backend && f.mode == mode)
                .filter_map(|f| {
                    let o = all
                        .iter()
                        .find(|o| o.backend == backend && o.mode == MODE_OFF && o.run == f.run)?;
                    (f.rps > 0.0).then(|| format!("{:+.1} %", (o.rps / f.rps - 1.0) * 100.0))
                })
                .collect();
            println!(
                "{:<10} {:<7}: throughput overhead {:+.1} %, p99 {}/off ×{:.3}, p50 ×{:.3}{cpu}; per run: {}",
                backend.name(),
                mode.name,
                throughput_overhead(s, off),
                mode.name,
                ratio(s.p99_ms, off.p99_ms),
                ratio(s.p50_ms, off.p50_ms),
                paired.join(", ")
            );
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn print_markdown(summaries: &[Summary], args: &HttpArgs) {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Markdown\n\nGET /api/resource/Organization/<name> with a bearer JWT; medians of {} runs × {} s \
         (after {} s warm-up), {} keep-alive connections; load generator on the same machine as the server.\n",
        args.runs, args.duration_secs, args.warmup_secs, args.concurrency
    );
    let _ = writeln!(
        md,
        "| Backend | Observability | req/s | /health/live req/s | read / live | p50 (ms) | p99 (ms) | Errors | Overhead vs off |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---|");
    for s in summaries {
        let overhead = match find(summaries, s.backend, MODE_OFF) {
            Some(off) if s.mode != MODE_OFF => format!(
                "{:+.1} % throughput, p99 ×{:.2}",
                throughput_overhead(s, off),
                ratio(s.p99_ms, off.p99_ms)
            ),
            _ => "—".into(),
        };
        let mode = if s.mode == MODE_ON {
            "on (default)".to_string()
        } else {
            s.mode.name.to_string()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.1} % | {:.2} | {:.2} | {} | {} |",
            s.backend.name(),
            mode,
            s.rps,
            s.live_rps,
            ratio(s.rps, s.live_rps) * 100.0,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            overhead
        );
    }
    print!("{md}");
}
