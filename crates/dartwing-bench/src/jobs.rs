//! `dartwing-bench jobs`: background-job throughput and tenant isolation of this engine (in
//! process, through the library, on PostgreSQL and SQLite) next to RQ and BullMQ on the same
//! machine in the same run, plus the raw `FOR UPDATE SKIP LOCKED` ceiling of the PostgreSQL.
//!
//! J1: enqueue `--jobs` no-op jobs of one organization (the first `--single` one by one, the rest
//! in batches), then start 2 worker pools (like 2 worker processes) and time until every job is
//! finished. J2: organization A enqueues a backlog of `--a-jobs` 10 ms jobs, organization B then
//! enqueues `--b-jobs`; with 2 workers × concurrency 1, B's queue wait (start − enqueue) is
//! reported. RQ runs from a virtualenv under `target/bench-env/venv`, BullMQ from
//! `crates/dartwing-bench/scripts/bullmq` (installed on first use).

use crate::jobs_http::{HttpPlan, HttpSample};
use anyhow::{Context, Result, anyhow, bail};
use dartwing_core::Principal;
use dartwing_core::access::AccessChanges;
use dartwing_core::config::{DatabaseConfig, JobsConfig};
use dartwing_core::publish::NoopPublisher;
use dartwing_core::tenancy::OrgType;
use dartwing_db::Db;
use dartwing_jobs::heartbeat::WorkerHeartbeats;
use dartwing_jobs::model::{JobStatus, NewJob};
use dartwing_jobs::{Jobs, JobsDeps};
use dartwing_observe::Metrics;
use dartwing_tenancy::{NewOrganization, TenancyStore};
use serde_json::{Value, json};
use sqlx::Connection;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// `--help` text of the `jobs` subcommand.
pub const LONG_ABOUT: &str = "\
Background jobs: this engine (in process, through the library; PostgreSQL and SQLite) next to RQ
(the queue Frappe uses) and BullMQ, measured side by side in one run on this machine, plus the
raw FOR UPDATE SKIP LOCKED ceiling of the PostgreSQL.

J1  throughput: enqueue --jobs no-op jobs of one organization (the first --single one by one, the
    rest in batches of --batch), then start 2 worker pools/processes and time until all finished.
J2  noisy neighbour: organization A enqueues --a-jobs jobs of --sleep-ms, then organization B
    enqueues --b-jobs; with 2 workers x concurrency 1, B's queue wait (start - enqueue) p50/p99/max.

PostgreSQL gets a fresh schema per measurement (dropped afterwards); SQLite a temporary file.
RQ and BullMQ use unique key prefixes / queue names per run and delete only their own keys.
RQ is installed into target/bench-env/venv and BullMQ into scripts/bullmq/node_modules on first
use (PyPI and the npm registry). Everything is bounded by --timeout-secs per measurement.";

/// Pinned RQ release (PyPI), checked in the virtualenv before each run.
const RQ_VERSION: &str = "3.0.0";
/// Pinned redis-py release RQ runs on.
const REDIS_PY_VERSION: &str = "8.1.0";
/// Poll interval while waiting for jobs to finish.
const POLL: Duration = Duration::from_millis(20);

/// Options of `dartwing-bench jobs`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobsArgs {
    /// Repetitions of every measurement; the summary shows medians.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// J1: jobs per throughput measurement.
    #[arg(long, default_value_t = 20_000)]
    jobs: u32,
    /// J1: how many of them are enqueued one at a time (the single-enqueue rate).
    #[arg(long, default_value_t = 2_000)]
    single: u32,
    /// J1/J2: jobs per batch enqueue (`enqueue_many` transaction, RQ pipeline, BullMQ addBulk).
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// PostgreSQL URL (a schema is created and dropped per measurement); unset skips PostgreSQL.
    #[arg(long)]
    database_url: Option<String>,
    /// Redis URL for RQ and BullMQ; unset skips them.
    #[arg(long)]
    redis_url: Option<String>,
    /// J2: organization A's backlog.
    #[arg(long, default_value_t = 2_000)]
    a_jobs: u32,
    /// J2: organization B's jobs.
    #[arg(long, default_value_t = 20)]
    b_jobs: u32,
    /// J2: run time of one job, in milliseconds.
    #[arg(long, default_value_t = 10)]
    sleep_ms: u64,
    /// J1 jobs for RQ's forking worker (slow: ~200 jobs/s); 0 skips it.
    #[arg(long, default_value_t = 2_000)]
    forking_jobs: u32,
    /// Concurrency of the "many" setting (workers per pool for this engine, BullMQ concurrency).
    #[arg(long, default_value_t = 50)]
    concurrency: u32,
    /// Override `jobs.claim_batch` for this engine (default: the product default).
    #[arg(long)]
    claim_batch: Option<u32>,
    /// Override `jobs.completion_flush_ms` for this engine (default: the product default).
    #[arg(long)]
    completion_flush_ms: Option<u64>,
    /// Parts to skip, comma separated: sqlite, postgres, ceiling, rq, rq-forking, bullmq, j2.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Upper bound of one measurement, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// J3: the `dartwing` binary (default: next to this executable).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// J3: jobs enqueued over HTTP, one per `jobs.enqueue` request.
    #[arg(long, default_value_t = 20_000)]
    http_jobs: u32,
    /// J3: concurrent HTTP clients enqueueing one job per request.
    #[arg(long, default_value_t = 16)]
    http_clients: u32,
    /// J3: jobs enqueued with `jobs.enqueue_batch` (and inserted raw into a scratch table).
    #[arg(long, default_value_t = 50_000)]
    http_batch_jobs: u32,
    /// J3: jobs per `jobs.enqueue_batch` request and per raw multi-row INSERT.
    #[arg(long, default_value_t = 1_000)]
    http_batch: u32,
    /// J3: concurrent clients of `jobs.enqueue_batch` (and connections of the raw INSERT).
    #[arg(long, default_value_t = 4)]
    http_batch_clients: u32,
    /// Tiny sizes, this engine only (in process and over HTTP on SQLite, and on PostgreSQL when
    /// --database-url is given), one run: checks that every job is answered and processed exactly
    /// once without errors, and makes no timing claim. Works with a debug build (`dartwing` next to
    /// this executable).
    #[arg(long)]
    quick: bool,
}

impl JobsArgs {
    /// The `--quick` sizes: seconds, this engine only.
    fn quick_sizes(mut self) -> Self {
        self.runs = 1;
        self.jobs = 200;
        self.single = 50;
        self.batch = 50;
        self.a_jobs = 20;
        self.b_jobs = 5;
        self.sleep_ms = 1;
        self.forking_jobs = 0;
        self.concurrency = 4;
        self.http_jobs = 200;
        self.http_clients = 4;
        self.http_batch_jobs = 200;
        self.http_batch = 50;
        self.http_batch_clients = 2;
        self.timeout_secs = self.timeout_secs.min(50);
        self.redis_url = None;
        self.skip.extend(["rq", "bullmq", "ceiling"].map(String::from));
        self
    }

    /// J3's sizes.
    fn http_plan(&self) -> HttpPlan {
        HttpPlan {
            single_jobs: self.http_jobs,
            single_clients: self.http_clients,
            batch_jobs: self.http_batch_jobs,
            batch_size: self.http_batch,
            batch_clients: self.http_batch_clients,
        }
    }

    fn skips(&self, part: &str) -> bool {
        self.skip.iter().any(|s| s.trim().eq_ignore_ascii_case(part))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    fn jobs_config(&self, concurrency: u32) -> JobsConfig {
        let mut config = JobsConfig::default();
        config.queues.default.workers = concurrency;
        config.queues.default.max_pending_per_org = None;
        if let Some(batch) = self.claim_batch {
            config.claim_batch = batch;
        }
        if let Some(ms) = self.completion_flush_ms {
            config.completion_flush_ms = ms;
        }
        config
    }
}

/// One measurement of one row.
#[derive(Debug, Default, Clone)]
struct Sample {
    enqueue_single: Option<f64>,
    enqueue_batch: Option<f64>,
    process: Option<f64>,
    /// J2: B's wait p50, p99, max in ms.
    b_wait: Option<[f64; 3]>,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.enqueue_single = other.enqueue_single.or(self.enqueue_single);
        self.enqueue_batch = other.enqueue_batch.or(self.enqueue_batch);
        self.process = other.process.or(self.process);
        self.b_wait = other.b_wait.or(self.b_wait);
    }
}

/// A row of the table: engine, backend, setting, and its samples (one per run).
struct Row {
    engine: &'static str,
    backend: &'static str,
    setting: String,
    samples: Vec<Sample>,
}

/// Rows in table order, with lookup by key.
struct Results {
    rows: Vec<(&'static str, Row)>,
    errors: Vec<String>,
}

impl Results {
    fn new() -> Self {
        Self {
            rows: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn declare(&mut self, key: &'static str, engine: &'static str, backend: &'static str, setting: String) {
        self.rows.push((
            key,
            Row {
                engine,
                backend,
                setting,
                samples: Vec::new(),
            },
        ));
    }

    /// Adds a run's sample to row `key` (merged into the run's sample when J1 and J2 share a row).
    fn record(&mut self, key: &str, run: usize, sample: Sample) {
        if let Some((_, row)) = self.rows.iter_mut().find(|(k, _)| *k == key) {
            while row.samples.len() <= run {
                row.samples.push(Sample::default());
            }
            row.samples[run].merge(sample);
        }
    }

    fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|(k, _)| *k == key).map(|(_, r)| r)
    }

    /// Median over runs of one figure of row `key`.
    fn median(&self, key: &str, figure: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.row(key)?.samples.iter().filter_map(figure).collect();
        median(&values)
    }
}

/// Median (mean of the middle two for an even count), `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Nearest-rank percentile of ascending `sorted` (non-empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99 and max of waits in ms.
fn wait_summary(mut waits: Vec<f64>) -> Result<[f64; 3]> {
    if waits.is_empty() {
        bail!("no waits were measured");
    }
    waits.sort_by(f64::total_cmp);
    Ok([
        percentile(&waits, 50.0),
        percentile(&waits, 99.0),
        waits[waits.len() - 1],
    ])
}

/// Runs the benchmark and prints per-run figures, the median table and the goals.
pub async fn run(args: JobsArgs) -> Result<()> {
    let args = if args.quick { args.quick_sizes() } else { args };
    if args.runs == 0 || args.jobs == 0 {
        bail!("--runs and --jobs must be at least 1");
    }
    let many = args.concurrency.max(1);
    let defaults = JobsConfig::default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut results = Results::new();
    let pg = args.database_url.clone().filter(|_| !args.skips("postgres"));
    let redis = args.redis_url.clone();
    let c1 = "2 workers × concurrency 1".to_string();
    let cn = format!("2 workers × concurrency {many}");
    if pg.is_some() {
        results.declare("pg1", "Dartwing (this engine)", "PostgreSQL", c1.clone());
        results.declare("pgn", "Dartwing (this engine)", "PostgreSQL", cn.clone());
    }
    if !args.skips("sqlite") {
        results.declare("sq1", "Dartwing (this engine)", "SQLite", c1.clone());
        results.declare("sqn", "Dartwing (this engine)", "SQLite", cn.clone());
    }
    let rq = redis.is_some() && !args.skips("rq");
    let bull = redis.is_some() && !args.skips("bullmq");
    if rq {
        results.declare("rqs", "RQ", "Redis", "2 × SimpleWorker".into());
        if args.forking_jobs > 0 && !args.skips("rq-forking") {
            results.declare(
                "rqf",
                "RQ",
                "Redis",
                format!("2 × forking Worker ({} jobs)", args.forking_jobs.min(args.jobs)),
            );
        }
    }
    if bull {
        results.declare("bm1", "BullMQ", "Redis", c1.clone());
        results.declare("bmn", "BullMQ", "Redis", cn.clone());
    }
    if pg.is_some() && !args.skips("ceiling") {
        results.declare(
            "raw1",
            "raw SKIP LOCKED",
            "PostgreSQL",
            "2 connections, 1 job/txn".into(),
        );
        results.declare(
            "raw50",
            "raw SKIP LOCKED",
            "PostgreSQL",
            "2 connections, 50 jobs/txn".into(),
        );
    }

    // J3 over HTTP: PostgreSQL (and SQLite in --quick).
    let mut http_backends: Vec<(&'static str, Option<String>)> = Vec::new();
    if !args.skips("http") {
        if let Some(url) = &pg {
            http_backends.push(("PostgreSQL", Some(url.clone())));
        }
        if args.quick && !args.skips("sqlite") {
            http_backends.push(("SQLite", None));
        }
    }
    let binary = if http_backends.is_empty() {
        None
    } else {
        Some(crate::server::locate_binary(args.binary.as_deref())?)
    };
    let mut http_samples: Vec<(&'static str, HttpSample)> = Vec::new();

    let python = if rq {
        Some(ensure_rq(args.timeout()).await?)
    } else {
        None
    };
    if bull {
        ensure_bullmq(args.timeout()).await?;
    }

    println!("# dartwing-bench jobs");
    println!(
        "Load generator, Redis, PostgreSQL and the workers share one {cores}-core machine (shared with other work); \
         every figure is from this run, side by side."
    );
    println!(
        "This engine: in process through dartwing-jobs; 2 worker pools (spawn_workers twice, each with its own \
         connection pool of {} like 2 processes); default queue workers = 1 or {many} per pool; claim_batch = {}, \
         completion_flush_ms = {}, poll_interval_ms = {}; max_pending_per_org unset; metrics on. \
         Done = no job left Queued/Running/Pending (probed every 20 ms through the partial indexes), \
         then the Completed count is checked; RQ polls its finished registry, BullMQ its completed count.",
        DatabaseConfig::default().max_connections,
        args.claim_batch.unwrap_or(defaults.claim_batch),
        args.completion_flush_ms.unwrap_or(defaults.completion_flush_ms),
        defaults.poll_interval_ms,
    );
    println!(
        "J1: {} no-op jobs ({} enqueued one by one, the rest in batches of {}). J2: A {} × {} ms jobs, then B {} jobs; \
         2 workers × concurrency 1. RQ {RQ_VERSION} (redis-py {REDIS_PY_VERSION}), BullMQ {} (ioredis {}).",
        args.jobs,
        args.single.min(args.jobs),
        args.batch,
        args.a_jobs,
        args.sleep_ms,
        args.b_jobs,
        bullmq_version().unwrap_or_else(|| "?".into()),
        ioredis_version().unwrap_or_else(|| "?".into()),
    );

    for run in 0..args.runs as usize {
        println!("\n## Run {} of {}", run + 1, args.runs);
        let tag = format!("{}r{}", crate_tag(), run + 1);
        let mut steps: Vec<(&'static str, Step)> = Vec::new();
        if let Some(url) = &pg {
            steps.push(("pg1", Step::EngineJ1(Backend::Postgres(url.clone()), 1)));
            steps.push(("pgn", Step::EngineJ1(Backend::Postgres(url.clone()), many)));
            if !args.skips("j2") {
                steps.push(("pg1", Step::EngineJ2(Backend::Postgres(url.clone()))));
            }
        }
        if !args.skips("sqlite") {
            steps.push(("sq1", Step::EngineJ1(Backend::Sqlite, 1)));
            steps.push(("sqn", Step::EngineJ1(Backend::Sqlite, many)));
            if !args.skips("j2") {
                steps.push(("sq1", Step::EngineJ2(Backend::Sqlite)));
            }
        }
        if let Some(url) = &redis {
            if let Some(python) = &python {
                steps.push(("rqs", Step::Rq(python.clone(), url.clone(), RqScenario::J1Simple)));
                if results.row("rqf").is_some() {
                    steps.push(("rqf", Step::Rq(python.clone(), url.clone(), RqScenario::J1Forking)));
                }
                if !args.skips("j2") {
                    steps.push(("rqs", Step::Rq(python.clone(), url.clone(), RqScenario::J2)));
                }
            }
            if bull {
                steps.push(("bm1", Step::Bull(url.clone(), BullScenario::J1(1))));
                steps.push(("bmn", Step::Bull(url.clone(), BullScenario::J1(many))));
                if !args.skips("j2") {
                    steps.push(("bm1", Step::Bull(url.clone(), BullScenario::J2)));
                }
            }
        }
        if let Some(url) = &pg
            && results.row("raw1").is_some()
        {
            steps.push(("raw1", Step::Ceiling(url.clone(), 1)));
            steps.push(("raw50", Step::Ceiling(url.clone(), 50)));
        }
        for (name, url) in &http_backends {
            let Some(binary) = &binary else { break };
            let label = format!("Dartwing {name} J3 over HTTP");
            let started = Instant::now();
            match crate::jobs_http::measure(binary, url.as_deref(), args.http_plan(), args.timeout()).await {
                Ok(sample) => {
                    println!(
                        "- {label}: enqueue {} jobs/s ({} clients, 1 job/request), enqueue_batch {} jobs/s, raw multi-row \
                         INSERT {} rows/s ({:.1} s)",
                        rate(sample.enqueue),
                        args.http_clients,
                        rate(sample.enqueue_batch),
                        rate(sample.raw_insert),
                        started.elapsed().as_secs_f64()
                    );
                    http_samples.push((name, sample));
                }
                Err(error) => {
                    println!("- {label}: ERROR {error:#}");
                    results.errors.push(format!("run {}: {label}: {error:#}", run + 1));
                }
            }
        }
        for (key, step) in steps {
            let label = step.label();
            let started = Instant::now();
            let outcome = tokio::time::timeout(args.timeout() + Duration::from_secs(60), step.run(&args, &tag))
                .await
                .unwrap_or_else(|_| Err(anyhow!("timed out")));
            match outcome {
                Ok(sample) => {
                    println!(
                        "- {label}: {} ({:.1} s)",
                        describe(&sample),
                        started.elapsed().as_secs_f64()
                    );
                    results.record(key, run, sample);
                }
                Err(error) => {
                    println!("- {label}: ERROR {error:#}");
                    results.errors.push(format!("run {}: {label}: {error:#}", run + 1));
                }
            }
        }
    }

    if !args.quick {
        print_summary(&results, &args, cores, many);
    }
    print_http_summary(&results, &args, &http_samples);
    if !results.errors.is_empty() {
        bail!(
            "{} measurement(s) failed: {}",
            results.errors.len(),
            results.errors.join("; ")
        );
    }
    Ok(())
}

/// A short random tag for names of this invocation.
fn crate_tag() -> String {
    let mut bytes = [0u8; 4];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    hex::encode(bytes)
}

fn describe(sample: &Sample) -> String {
    let mut parts = Vec::new();
    if let Some(v) = sample.enqueue_single {
        parts.push(format!("enqueue one by one {v:.0}/s"));
    }
    if let Some(v) = sample.enqueue_batch {
        parts.push(format!("enqueue batched {v:.0}/s"));
    }
    if let Some(v) = sample.process {
        parts.push(format!("process {v:.0} jobs/s"));
    }
    if let Some([p50, p99, max]) = sample.b_wait {
        parts.push(format!("B wait p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"));
    }
    parts.join(", ")
}

/// Where this engine stores its jobs.
#[derive(Clone)]
pub(crate) enum Backend {
    Postgres(String),
    Sqlite,
}

#[derive(Clone, Copy)]
enum RqScenario {
    J1Simple,
    J1Forking,
    J2,
}

#[derive(Clone, Copy)]
enum BullScenario {
    J1(u32),
    J2,
}

/// One measurement of a run.
enum Step {
    EngineJ1(Backend, u32),
    EngineJ2(Backend),
    Rq(PathBuf, String, RqScenario),
    Bull(String, BullScenario),
    Ceiling(String, u32),
}

impl Step {
    fn label(&self) -> String {
        let backend = |b: &Backend| match b {
            Backend::Postgres(_) => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        };
        match self {
            Step::EngineJ1(b, c) => format!("Dartwing {} J1, 2 workers × concurrency {c}", backend(b)),
            Step::EngineJ2(b) => format!("Dartwing {} J2, 2 workers × concurrency 1", backend(b)),
            Step::Rq(_, _, RqScenario::J1Simple) => "RQ J1, 2 × SimpleWorker".into(),
            Step::Rq(_, _, RqScenario::J1Forking) => "RQ J1, 2 × forking Worker".into(),
            Step::Rq(_, _, RqScenario::J2) => "RQ J2, 2 × SimpleWorker".into(),
            Step::Bull(_, BullScenario::J1(c)) => format!("BullMQ J1, 2 workers × concurrency {c}"),
            Step::Bull(_, BullScenario::J2) => "BullMQ J2, 2 workers × concurrency 1".into(),
            Step::Ceiling(_, n) => format!("raw SKIP LOCKED ceiling, {n} job(s)/txn"),
        }
    }

    async fn run(self, args: &JobsArgs, tag: &str) -> Result<Sample> {
        match self {
            Step::EngineJ1(backend, concurrency) => {
                let db = BenchDb::create(&backend).await?;
                let result = engine_j1(&db.url, args, concurrency).await;
                db.drop().await;
                result
            }
            Step::EngineJ2(backend) => {
                let db = BenchDb::create(&backend).await?;
                let result = engine_j2(&db.url, args).await;
                db.drop().await;
                result
            }
            Step::Rq(python, url, scenario) => rq(&python, &url, args, tag, scenario).await,
            Step::Bull(url, scenario) => bullmq(&url, args, tag, scenario).await,
            Step::Ceiling(url, per_txn) => {
                let db = BenchDb::create(&Backend::Postgres(url)).await?;
                let result = ceiling(&db, args.jobs, per_txn).await;
                db.drop().await;
                result
            }
        }
    }
}

/// A database private to one measurement: a fresh PostgreSQL schema or a temporary SQLite file.
pub(crate) struct BenchDb {
    pub(crate) url: String,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    pub(crate) async fn create(backend: &Backend) -> Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().context("creating a temporary directory for SQLite")?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
                Ok(Self {
                    url,
                    pg: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres(admin_url) => {
                sqlx::any::install_default_drivers();
                let schema = format!("dwbench_{}", crate_tag());
                let mut admin = sqlx::AnyConnection::connect(admin_url)
                    .await
                    .context("connecting to PostgreSQL")?;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut admin)
                    .await
                    .context("creating the benchmark schema")?;
                let _ = admin.close().await;
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                Ok(Self {
                    url: format!("{admin_url}{separator}options=-c%20search_path%3D{schema}"),
                    pg: Some((admin_url.clone(), schema)),
                    _dir: None,
                })
            }
        }
    }

    fn schema(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, s)| s.as_str())
    }

    fn admin_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|(u, _)| u.as_str())
    }

    /// Drops the schema (PostgreSQL); the SQLite directory goes with `self`.
    pub(crate) async fn drop(self) {
        if let Some((admin_url, schema)) = &self.pg {
            let dropped = async {
                let mut admin = sqlx::AnyConnection::connect(admin_url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            };
            if let Err(e) = tokio::time::timeout(Duration::from_secs(60), dropped)
                .await
                .map_err(|_| anyhow!("timed out"))
                .and_then(|r| r.map_err(anyhow::Error::from))
            {
                eprintln!("warning: dropping schema {schema} failed: {e:#}");
            }
        }
    }
}

/// One "worker process" of this engine: its own pool, metrics registry and job system.
struct EngineNode {
    db: Db,
    jobs: Jobs,
    node_id: String,
}

impl EngineNode {
    async fn start(url: &str, config: &JobsConfig, node_id: &str) -> Result<Self> {
        let metrics = Arc::new(Metrics::new(true, 500).map_err(|e| anyhow!("metrics: {e}"))?);
        let db = Db::connect(url, &DatabaseConfig::default(), Some(metrics.clone()))
            .await
            .context("connecting the engine's database")?;
        db.migrate(crate::MIGRATIONS)
            .await
            .context("migrating the engine's database")?;
        let jobs = Jobs::new(JobsDeps {
            db: db.clone(),
            config: config.clone(),
            production: false,
            publisher: Arc::new(NoopPublisher),
            directory: Arc::new(TenancyStore::new(db.clone())),
            access: AccessChanges::new(),
            metrics,
        })
        .map_err(|e| anyhow!("creating the job system: {e}"))?;
        Ok(Self {
            db,
            jobs,
            node_id: node_id.to_string(),
        })
    }

    fn spawn_workers(&self, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
        let heartbeats =
            WorkerHeartbeats::new(self.jobs.store().clone(), self.node_id.clone(), Duration::from_secs(60));
        self.jobs
            .spawn_workers(&self.node_id, heartbeats, shutdown.clone(), Duration::from_secs(5))
    }
}

/// Two worker pools on `url` (the first also enqueues) and the benchmark actor.
async fn engine_nodes(url: &str, config: &JobsConfig) -> Result<(EngineNode, EngineNode)> {
    let first = EngineNode::start(url, config, "bench-1").await?;
    let second = EngineNode::start(url, config, "bench-2").await?;
    Ok((first, second))
}

pub(crate) async fn create_org(db: &Db, name: &str) -> Result<String> {
    let org = TenancyStore::new(db.clone())
        .create_organization(
            &Principal::system("bench"),
            NewOrganization {
                name: Some(name.to_string()),
                org_name: name.to_string(),
                org_type: OrgType::Company,
                status: None,
            },
        )
        .await
        .map_err(|e| anyhow!("creating organization {name}: {e}"))?;
    Ok(org.name)
}

/// Enqueues `count` copies of a job in `enqueue_many` batches of `batch`.
async fn enqueue_batched(jobs: &Jobs, org: &str, method: &str, args: &Value, count: u32, batch: u32) -> Result<()> {
    let actor = Principal::system("bench");
    let mut left = count;
    while left > 0 {
        let n = left.min(batch.max(1));
        let batch: Vec<NewJob> = (0..n).map(|_| NewJob::new(method, Some(org), args.clone())).collect();
        jobs.enqueue_many(&actor, batch)
            .await
            .map_err(|e| anyhow!("enqueue_many: {e}"))?;
        left -= n;
    }
    Ok(())
}

async fn stop_workers(shutdown: CancellationToken, handles: Vec<tokio::task::JoinHandle<()>>) {
    shutdown.cancel();
    for handle in handles {
        let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
    }
}

/// J1 on this engine: enqueue, then 2 pools × `concurrency` until every job is Completed.
async fn engine_j1(url: &str, args: &JobsArgs, concurrency: u32) -> Result<Sample> {
    let config = args.jobs_config(concurrency);
    let (first, second) = engine_nodes(url, &config).await?;
    let org = create_org(&first.db, "Bench Org A").await?;
    let actor = Principal::system("bench");
    let single = args.single.min(args.jobs);
    let t0 = Instant::now();
    for _ in 0..single {
        first
            .jobs
            .enqueue(&actor, NewJob::new("core.noop", Some(&org), json!({})))
            .await
            .map_err(|e| anyhow!("enqueue: {e}"))?;
    }
    let t1 = Instant::now();
    enqueue_batched(
        &first.jobs,
        &org,
        "core.noop",
        &json!({}),
        args.jobs - single,
        args.batch,
    )
    .await?;
    let t2 = Instant::now();

    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let handles = vec![first.spawn_workers(&shutdown), second.spawn_workers(&shutdown)];
    let finished = wait_all_finished(&first.db, started + args.timeout()).await;
    stop_workers(shutdown, handles).await;
    let finished = finished?;
    let (completed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM job WHERE status = 'Completed'")
        .fetch_one(first.db.pool())
        .await
        .context("counting completed jobs")?;
    if completed != i64::from(args.jobs) {
        bail!("{completed} of {} jobs completed", args.jobs);
    }
    Ok(Sample {
        enqueue_single: (single > 0).then(|| f64::from(single) / (t1 - t0).as_secs_f64()),
        enqueue_batch: (args.jobs > single).then(|| f64::from(args.jobs - single) / (t2 - t1).as_secs_f64()),
        process: Some(f64::from(args.jobs) / (finished - started).as_secs_f64()),
        b_wait: None,
    })
}

/// Polls every 20 ms until no job is left Pending, Queued or Running; returns when.
///
/// `SELECT COUNT(*) FROM job WHERE status = 'Completed'` scans the whole table: 5.7 ms of
/// PostgreSQL CPU per poll at 20,000 jobs, ~28 % of a core at one poll per 20 ms, which would
/// be taken from the engine being measured. These `LIMIT 1` probes use the partial indexes of the
/// three unfinished states and cost ~0.2 ms; the completed count is checked once at the end.
async fn wait_all_finished(db: &Db, deadline: Instant) -> Result<Instant> {
    const UNFINISHED: &str = "SELECT \
         (SELECT COUNT(*) FROM (SELECT 1 FROM job WHERE status = 'Queued' LIMIT 1) q) \
         + (SELECT COUNT(*) FROM (SELECT 1 FROM job WHERE status = 'Running' LIMIT 1) r) \
         + (SELECT COUNT(*) FROM (SELECT 1 FROM job WHERE status = 'Pending' LIMIT 1) p)";
    loop {
        let (unfinished,): (i64,) = sqlx::query_as(UNFINISHED)
            .fetch_one(db.pool())
            .await
            .context("polling for unfinished jobs")?;
        if unfinished == 0 {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("timed out with jobs unfinished");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// J2 on this engine: A's backlog, then B's jobs; 2 pools × 1 worker; B's queue waits.
async fn engine_j2(url: &str, args: &JobsArgs) -> Result<Sample> {
    let config = args.jobs_config(1);
    let (first, second) = engine_nodes(url, &config).await?;
    let org_a = create_org(&first.db, "Bench Org A").await?;
    let org_b = create_org(&first.db, "Bench Org B").await?;
    let sleep = json!({ "ms": args.sleep_ms });
    enqueue_batched(&first.jobs, &org_a, "core.sleep", &sleep, args.a_jobs, args.batch).await?;
    let actor = Principal::system("bench");
    let mut b_ids = Vec::new();
    for _ in 0..args.b_jobs {
        let enqueued = first
            .jobs
            .enqueue(&actor, NewJob::new("core.sleep", Some(&org_b), sleep.clone()))
            .await
            .map_err(|e| anyhow!("enqueue: {e}"))?;
        b_ids.push(enqueued.job_id);
    }
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let handles = vec![first.spawn_workers(&shutdown), second.spawn_workers(&shutdown)];
    let waits = b_waits(&first.jobs, &b_ids, started + args.timeout()).await;
    stop_workers(shutdown, handles).await;
    Ok(Sample {
        b_wait: Some(wait_summary(waits?)?),
        ..Sample::default()
    })
}

/// Waits until every job of `ids` finished; returns their queue waits in ms.
async fn b_waits(jobs: &Jobs, ids: &[String], deadline: Instant) -> Result<Vec<f64>> {
    let mut waits = Vec::with_capacity(ids.len());
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let info = jobs.store().info(id).await.map_err(|e| anyhow!("job info: {e}"))?;
            match (info.status, info.started_at) {
                (JobStatus::Completed, Some(started)) => {
                    waits.push((started.as_micros() - info.enqueued_at.as_micros()) as f64 / 1000.0)
                }
                (status, _) if status.is_final() => bail!("job {id} ended {}", status.as_str()),
                _ => still.push(id),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("timed out with {} of org B's jobs unfinished", pending.len());
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(waits)
}

/// The raw ceiling: 2 connections claim and complete `per_txn` jobs per transaction with
/// `FOR UPDATE SKIP LOCKED` on a table of their own, until `jobs` are done.
async fn ceiling(db: &BenchDb, jobs: u32, per_txn: u32) -> Result<Sample> {
    use sqlx::postgres::PgPoolOptions;
    let (Some(admin_url), Some(schema)) = (db.admin_url(), db.schema()) else {
        bail!("the ceiling needs PostgreSQL");
    };
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(10))
        .connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    let table = format!("{schema}.raw_job");
    for sql in [
        format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, status SMALLINT NOT NULL, args TEXT NOT NULL, \
             worker INT, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ)"
        ),
        format!("CREATE INDEX ON {table} (id) WHERE status = 0"),
        format!("INSERT INTO {table} (id, status, args) SELECT g, 0, '{{}}' FROM generate_series(1, {jobs}) g"),
        format!("VACUUM ANALYZE {table}"),
    ] {
        sqlx::query(&sql)
            .execute(&pool)
            .await
            .with_context(|| format!("preparing the ceiling table: {sql}"))?;
    }
    let claim = format!(
        "UPDATE {table} SET status = 1, worker = $2, started_at = now() WHERE id IN \
         (SELECT id FROM {table} WHERE status = 0 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id"
    );
    let complete = format!("UPDATE {table} SET status = 2, finished_at = now() WHERE id = ANY($1)");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..2i32 {
        let pool = pool.clone();
        let (claim, complete) = (claim.clone(), complete.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let mut done = 0u64;
            loop {
                let mut tx = conn.begin().await?;
                let ids: Vec<i64> = sqlx::query_scalar(&claim)
                    .bind(i64::from(per_txn))
                    .bind(worker)
                    .fetch_all(&mut *tx)
                    .await?;
                if ids.is_empty() {
                    tx.rollback().await?;
                    return Ok::<u64, sqlx::Error>(done);
                }
                sqlx::query(&complete).bind(&ids).execute(&mut *tx).await?;
                tx.commit().await?;
                done += ids.len() as u64;
            }
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.context("ceiling task panicked")?.context("ceiling loop")?;
    }
    let elapsed = started.elapsed();
    pool.close().await;
    if done != u64::from(jobs) {
        bail!("the ceiling loop finished {done} of {jobs} jobs");
    }
    Ok(Sample {
        process: Some(done as f64 / elapsed.as_secs_f64()),
        ..Sample::default()
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// Runs a command with a time limit; fails with the tail of its stderr when it fails.
async fn run_command(command: &mut Command, what: &str, limit: Duration) -> Result<String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("starting {what}"))?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| anyhow!("{what} did not finish within {} s", limit.as_secs()))?
        .with_context(|| format!("waiting for {what}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}): {}", output.status, tail.join("\n"));
    }
    Ok(stdout)
}

/// The JSON object on the last line of a script's output.
fn last_json(stdout: &str, what: &str) -> Result<Value> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| anyhow!("{what} printed nothing"))?;
    serde_json::from_str(line).with_context(|| format!("{what} printed no JSON: {line}"))
}

/// Creates `target/bench-env/venv` and installs the pinned RQ when missing; returns its Python.
async fn ensure_rq(limit: Duration) -> Result<PathBuf> {
    let venv = workspace_root().join("target/bench-env/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("creating {}", venv.display());
        run_command(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
            limit,
        )
        .await?;
    }
    let check = format!(
        "import rq, redis, sys; sys.exit(0 if (rq.__version__, redis.__version__) == ('{RQ_VERSION}', '{REDIS_PY_VERSION}') else 1)"
    );
    if run_command(Command::new(&python).arg("-c").arg(&check), "rq version check", limit)
        .await
        .is_err()
    {
        eprintln!(
            "installing rq=={RQ_VERSION} redis=={REDIS_PY_VERSION} into {}",
            venv.display()
        );
        run_command(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                &format!("rq=={RQ_VERSION}"),
                &format!("redis=={REDIS_PY_VERSION}"),
            ]),
            "pip install rq",
            limit,
        )
        .await?;
    }
    Ok(python)
}

/// Runs `npm ci` in `scripts/bullmq` when its node_modules is missing.
async fn ensure_bullmq(limit: Duration) -> Result<()> {
    let dir = scripts_dir().join("bullmq");
    if !dir.join("node_modules/bullmq/package.json").exists() || !dir.join("node_modules/ioredis").exists() {
        eprintln!("running npm ci in {}", dir.display());
        run_command(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci",
            limit,
        )
        .await?;
    }
    Ok(())
}

fn installed_version(package: &str) -> Option<String> {
    let path = scripts_dir()
        .join("bullmq/node_modules")
        .join(package)
        .join("package.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("version")?.as_str().map(str::to_string)
}

fn bullmq_version() -> Option<String> {
    installed_version("bullmq")
}

fn ioredis_version() -> Option<String> {
    installed_version("ioredis")
}

fn number(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

fn j1_sample(value: &Value) -> Result<Sample> {
    let process = number(value, "process_per_s").ok_or_else(|| anyhow!("no process rate in {value}"))?;
    Ok(Sample {
        enqueue_single: number(value, "enqueue_single_per_s"),
        enqueue_batch: number(value, "enqueue_batch_per_s"),
        process: Some(process),
        b_wait: None,
    })
}

fn j2_sample(value: &Value) -> Result<Sample> {
    let waits: Vec<f64> = value
        .get("b_wait_ms")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("no b_wait_ms in {value}"))?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    Ok(Sample {
        b_wait: Some(wait_summary(waits)?),
        ..Sample::default()
    })
}

async fn rq(python: &Path, url: &str, args: &JobsArgs, tag: &str, scenario: RqScenario) -> Result<Sample> {
    let script = scripts_dir().join("rq_bench.py");
    let mut command = Command::new(python);
    command.arg(&script);
    let (name, part) = match scenario {
        RqScenario::J1Simple => ("j1", "s"),
        RqScenario::J1Forking => ("j1", "f"),
        RqScenario::J2 => ("j2", "n"),
    };
    command.arg(name).args([
        "--redis-url",
        url,
        "--tag",
        &format!("{tag}{part}"),
        "--batch",
        &args.batch.to_string(),
        "--timeout",
        &args.timeout_secs.to_string(),
    ]);
    match scenario {
        RqScenario::J1Simple | RqScenario::J1Forking => {
            let jobs = if matches!(scenario, RqScenario::J1Forking) {
                args.forking_jobs.min(args.jobs)
            } else {
                args.jobs
            };
            let class = if matches!(scenario, RqScenario::J1Forking) {
                "rq.worker.Worker"
            } else {
                "rq.worker.SimpleWorker"
            };
            command.args([
                "--jobs",
                &jobs.to_string(),
                "--single",
                &args.single.min(jobs).to_string(),
                "--worker-class",
                class,
            ]);
            j1_sample(&last_json(
                &run_command(&mut command, "rq_bench.py", args.timeout()).await?,
                "rq_bench.py",
            )?)
        }
        RqScenario::J2 => {
            command.args([
                "--a-jobs",
                &args.a_jobs.to_string(),
                "--b-jobs",
                &args.b_jobs.to_string(),
                "--sleep-ms",
                &args.sleep_ms.to_string(),
            ]);
            j2_sample(&last_json(
                &run_command(&mut command, "rq_bench.py", args.timeout()).await?,
                "rq_bench.py",
            )?)
        }
    }
}

async fn bullmq(url: &str, args: &JobsArgs, tag: &str, scenario: BullScenario) -> Result<Sample> {
    let dir = scripts_dir().join("bullmq");
    let mut command = Command::new("node");
    command.current_dir(&dir).arg("bullmq_bench.mjs");
    let common = |command: &mut Command, name: &str, part: String| {
        command.arg(name).args([
            "--redis-url",
            url,
            "--tag",
            &format!("{tag}{part}"),
            "--batch",
            &args.batch.to_string(),
            "--timeout",
            &args.timeout_secs.to_string(),
        ]);
    };
    match scenario {
        BullScenario::J1(concurrency) => {
            common(&mut command, "j1", format!("c{concurrency}"));
            command.args([
                "--jobs",
                &args.jobs.to_string(),
                "--single",
                &args.single.min(args.jobs).to_string(),
                "--concurrency",
                &concurrency.to_string(),
            ]);
            let out = run_command(&mut command, "bullmq_bench.mjs", args.timeout()).await?;
            j1_sample(&last_json(&out, "bullmq_bench.mjs")?)
        }
        BullScenario::J2 => {
            common(&mut command, "j2", "n".into());
            command.args([
                "--a-jobs",
                &args.a_jobs.to_string(),
                "--b-jobs",
                &args.b_jobs.to_string(),
                "--sleep-ms",
                &args.sleep_ms.to_string(),
                "--concurrency",
                "1",
            ]);
            let out = run_command(&mut command, "bullmq_bench.mjs", args.timeout()).await?;
            j2_sample(&last_json(&out, "bullmq_bench.mjs")?)
        }
    }
}

fn rate(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) => group_thousands(v.round() as i64),
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn ms(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v >= 100.0 => group_thousands(v.round() as i64),
        Some(v) => format!("{v:.1}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "not measured".into(), |v| format!("{v:.2}×"))
}

fn print_summary(results: &Results, args: &JobsArgs, cores: usize, many: u32) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Jobs — medians of {} run(s); load generator, Redis, PostgreSQL and the workers share one {cores}-core machine\n",
        args.runs
    );
    let _ = writeln!(
        out,
        "| Engine | Backend | Workers | J1 enqueue one by one (jobs/s) | J1 enqueue batched (jobs/s) | J1 process (jobs/s) | J2 B wait p50 (ms) | J2 B wait p99 (ms) | J2 B wait max (ms) |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|");
    for (key, row) in &results.rows {
        let wait = |i: usize| results.median(key, |s| s.b_wait.map(|w| w[i]));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.engine,
            row.backend,
            row.setting,
            rate(results.median(key, |s| s.enqueue_single)),
            rate(results.median(key, |s| s.enqueue_batch)),
            rate(results.median(key, |s| s.process)),
            ms(wait(0)),
            ms(wait(1)),
            ms(wait(2)),
        );
    }
    let process = |key: &str| results.median(key, |s| s.process);
    let p99 = |key: &str| results.median(key, |s| s.b_wait.map(|w| w[1]));
    let job_ms = args.sleep_ms as f64;
    let pg_best = match (process("pg1"), process("pgn")) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let _ = writeln!(out, "\n### Ratios (medians)\n");
    let _ = writeln!(out, "| Comparison | Ratio |");
    let _ = writeln!(out, "|---|---:|");
    let lines: Vec<(String, String)> = vec![
        (
            "Dartwing PostgreSQL ×1 process ÷ RQ SimpleWorker".into(),
            times(ratio(process("pg1"), process("rqs"))),
        ),
        (
            format!("Dartwing PostgreSQL ×{many} process ÷ RQ SimpleWorker"),
            times(ratio(process("pgn"), process("rqs"))),
        ),
        (
            "Dartwing PostgreSQL ×1 process ÷ RQ forking Worker".into(),
            times(ratio(process("pg1"), process("rqf"))),
        ),
        (
            "Dartwing PostgreSQL ×1 process ÷ BullMQ ×1".into(),
            times(ratio(process("pg1"), process("bm1"))),
        ),
        (
            format!("Dartwing PostgreSQL ×{many} process ÷ BullMQ ×{many}"),
            times(ratio(process("pgn"), process("bmn"))),
        ),
        (
            "Dartwing SQLite ×1 process ÷ BullMQ ×1".into(),
            times(ratio(process("sq1"), process("bm1"))),
        ),
        (
            format!("Dartwing SQLite ×{many} process ÷ BullMQ ×{many}"),
            times(ratio(process("sqn"), process("bmn"))),
        ),
        (
            "Dartwing PostgreSQL ×1 process, % of raw 50 jobs/txn ceiling".into(),
            percent(ratio(process("pg1"), process("raw50"))),
        ),
        (
            format!("Dartwing PostgreSQL ×{many} process, % of raw 50 jobs/txn ceiling"),
            percent(ratio(process("pgn"), process("raw50"))),
        ),
        (
            "Dartwing PostgreSQL J2 B p99 ÷ one job's run time".into(),
            times(p99("pg1").map(|v| v / job_ms)),
        ),
        (
            "Dartwing SQLite J2 B p99 ÷ one job's run time".into(),
            times(p99("sq1").map(|v| v / job_ms)),
        ),
        (
            "RQ J2 B p99 ÷ one job's run time".into(),
            times(p99("rqs").map(|v| v / job_ms)),
        ),
        (
            "BullMQ J2 B p99 ÷ one job's run time".into(),
            times(p99("bm1").map(|v| v / job_ms)),
        ),
    ];
    for (what, value) in lines {
        let _ = writeln!(out, "| {what} | {value} |");
    }

    let _ = writeln!(out, "\n### Goals\n");
    let goal = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    let vs_rq = ratio(pg_best, process("rqs"));
    let _ = writeln!(
        out,
        "- ≥ 5× RQ's J1 throughput on PostgreSQL (durable), best setting vs RQ SimpleWorker: {} ({}).",
        goal(vs_rq.map(|r| r >= 5.0)),
        times(vs_rq)
    );
    let b1 = ratio(process("pg1"), process("bm1"));
    let bn = ratio(process("pgn"), process("bmn"));
    let both = match (b1, bn) {
        (Some(a), Some(b)) => Some(a >= 1.0 && b >= 1.0),
        _ => None,
    };
    let _ = writeln!(
        out,
        "- ≥ BullMQ's J1 throughput at the same concurrency (PostgreSQL): {} (×1: {}, ×{many}: {}).",
        goal(both),
        times(b1),
        times(bn)
    );
    let ceiling = ratio(pg_best, process("raw50"));
    let _ = writeln!(
        out,
        "- ≥ 50 % of the raw SKIP LOCKED ceiling (50 jobs/txn): {} ({}).",
        goal(ceiling.map(|r| r >= 0.5)),
        percent(ceiling)
    );
    let j2 = p99("pg1").map(|v| v / job_ms);
    let _ = writeln!(
        out,
        "- J2: B's p99 wait ≤ 10× one job's run time ({} ms), PostgreSQL: {} ({}); SQLite: {}.",
        args.sleep_ms,
        goal(j2.map(|r| r <= 10.0)),
        times(j2),
        times(p99("sq1").map(|v| v / job_ms)),
    );
    print!("{out}");
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "not measured".into(), |v| format!("{:.0} %", v * 100.0))
}

/// J3's medians per backend, with RQ's enqueue rate and the raw INSERT of the same run.
fn print_http_summary(results: &Results, args: &JobsArgs, samples: &[(&'static str, HttpSample)]) {
    if samples.is_empty() {
        return;
    }
    let rq_enqueue = results.median("rqs", |s| s.enqueue_single);
    println!(
        "\n## J3 over HTTP (medians of {} runs): the `dartwing` binary, one node with its workers on",
        args.runs
    );
    println!(
        "jobs.enqueue: {} clients × 1 job/request ({} jobs); jobs.enqueue_batch: {} clients × {} jobs/request ({} jobs); \
         raw: the same rows as multi-row INSERTs of {} into a scratch copy of the job table, {} connections.\n",
        args.http_clients,
        args.http_jobs,
        args.http_batch_clients,
        args.http_batch,
        args.http_batch_jobs,
        args.http_batch,
        args.http_batch_clients
    );
    println!("| Backend | enqueue jobs/s | vs RQ enqueue | enqueue_batch jobs/s | raw INSERT rows/s | batch vs raw |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut backends: Vec<&str> = samples.iter().map(|(name, _)| *name).collect();
    backends.dedup();
    for backend in backends {
        let figure = |f: fn(&HttpSample) -> Option<f64>| {
            let values: Vec<f64> = samples
                .iter()
                .filter(|(name, _)| *name == backend)
                .filter_map(|(_, s)| f(s))
                .collect();
            median(&values)
        };
        let enqueue = figure(|s| s.enqueue);
        let batch = figure(|s| s.enqueue_batch);
        let raw = figure(|s| s.raw_insert);
        println!(
            "| {backend} | {} | {} | {} | {} | {} |",
            rate(enqueue),
            times(ratio(enqueue, rq_enqueue)),
            rate(batch),
            rate(raw),
            percent(ratio(batch, raw))
        );
    }
    if rq_enqueue.is_none() {
        println!("\n(RQ's enqueue rate was not measured in this run: give --redis-url for the ratio.)");
    }
}
