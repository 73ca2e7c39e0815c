//! `dartwing-bench driver`: what sqlx's `Any` driver, through which every store runs its SQL, costs
//! on PostgreSQL next to sqlx's native PostgreSQL driver, on the statement shapes of the hot paths.

use crate::server::PgSchema;
use crate::stats::median;
use anyhow::{Context, Result, bail};
use dartwing_core::config::DatabaseConfig;
use dartwing_db::Db;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AnyPool, PgPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `--help` text of the `driver` subcommand.
pub const LONG_ABOUT: &str = "\
The database driver on PostgreSQL (fresh schema of --rows documents): the same statements, from
--concurrency tasks for --duration-secs each, through

  runtime  the pool the runtime opens (dartwing_db::Db: sqlx Any driver, a connection idle for
           less than a second handed out without a ping),
  any      an Any pool with sqlx's defaults (a ping before every use of a pooled connection),
  native   sqlx's native PostgreSQL pool with the runtime's settings,

each with --pool connections. Statements: a point read by primary key (an authenticated document
read), a 100-row range read in key order (a feed page), a single-row upsert (a write in its own
transaction). Reports statements/s per pool (medians of --runs) and runtime / native: the runtime's
cost of the portable driver.

--quick: one run of one second per cell with 2 tasks, failing on any error (a smoke test, not a
measurement).";

/// Options of `dartwing-bench driver`.
#[derive(Debug, Clone, clap::Args)]
pub struct DriverArgs {
    /// PostgreSQL admin URL (a fresh schema is created and dropped).
    #[arg(
        long,
        env = "DARTWING_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// Documents in the table.
    #[arg(long, default_value_t = 10_000)]
    rows: u32,
    /// Concurrent tasks per measurement.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// Connections per pool (the runtime's default is 10).
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// One short run that fails on any error (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
}

impl DriverArgs {
    fn quickened(mut self) -> Self {
        if self.quick {
            self.rows = 500;
            self.concurrency = 2;
            self.pool = 2;
            self.duration_secs = 1;
            self.runs = 1;
        }
        self
    }
}

/// The statements measured.
#[derive(Debug, Clone, Copy)]
enum Statement {
    PointRead,
    RangeRead,
    Upsert,
}

impl Statement {
    const ALL: [Statement; 3] = [Statement::PointRead, Statement::RangeRead, Statement::Upsert];

    fn label(self) -> &'static str {
        match self {
            Statement::PointRead => "point read by key",
            Statement::RangeRead => "100-row range read",
            Statement::Upsert => "single-row upsert",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Statement::PointRead => "SELECT name, organization, data, modified FROM driver_doc WHERE name = $1",
            Statement::RangeRead => {
                "SELECT name, organization, data, modified FROM driver_doc WHERE name >= $1 ORDER BY name LIMIT 100"
            }
            Statement::Upsert => {
                "INSERT INTO driver_doc (name, organization, data, modified) VALUES ($1, 'ORG-1', $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET data = excluded.data, modified = excluded.modified"
            }
        }
    }
}

/// The pools compared.
#[derive(Clone)]
enum Pool {
    Runtime(AnyPool),
    AnyDefaults(AnyPool),
    Native(PgPool),
}

impl Pool {
    fn label(&self) -> &'static str {
        match self {
            Pool::Runtime(_) => "runtime (Any)",
            Pool::AnyDefaults(_) => "Any, sqlx defaults",
            Pool::Native(_) => "native PgPool",
        }
    }

    /// Runs `statement` once for document `n`; the rows read or written.
    async fn run(&self, statement: Statement, n: u32, rows: u32) -> Result<u64> {
        let name = doc_name(n % rows);
        let data = format!(r#"{{"title":"doc {n}","n":{n}}}"#);
        let modified = i64::from(n);
        let count = match (self, statement) {
            (Pool::Runtime(pool) | Pool::AnyDefaults(pool), Statement::Upsert) => sqlx::query(statement.sql())
                .bind(name)
                .bind(data)
                .bind(modified)
                .execute(pool)
                .await?
                .rows_affected(),
            (Pool::Runtime(pool) | Pool::AnyDefaults(pool), _) => {
                sqlx::query_as::<_, (String, String, String, i64)>(statement.sql())
                    .bind(name)
                    .fetch_all(pool)
                    .await?
                    .len() as u64
            }
            (Pool::Native(pool), Statement::Upsert) => sqlx::query(statement.sql())
                .bind(name)
                .bind(data)
                .bind(modified)
                .execute(pool)
                .await?
                .rows_affected(),
            (Pool::Native(pool), _) => sqlx::query_as::<_, (String, String, String, i64)>(statement.sql())
                .bind(name)
                .fetch_all(pool)
                .await?
                .len() as u64,
        };
        Ok(count)
    }
}

fn doc_name(n: u32) -> String {
    format!("DOC-{n:08}")
}

/// Runs the benchmark.
pub async fn run(args: DriverArgs) -> Result<()> {
    let args = args.quickened();
    let schema = PgSchema::create(&args.database_url).await?;
    let result = measure(&args, &schema.server_url()).await;
    if let Err(e) = schema.drop_schema().await {
        eprintln!("warning: {e:#}");
    }
    result
}

async fn measure(args: &DriverArgs, url: &str) -> Result<()> {
    let config = DatabaseConfig {
        max_connections: args.pool,
        min_connections: args.pool,
        ..DatabaseConfig::default()
    };
    let runtime = Db::connect(url, &config, None)
        .await
        .context("cannot open the runtime's pool")?;
    sqlx::query(
        "CREATE TABLE driver_doc (name TEXT PRIMARY KEY, organization TEXT NOT NULL, data TEXT NOT NULL, modified BIGINT NOT NULL)",
    )
    .execute(runtime.pool())
    .await?;
    sqlx::query(
        "INSERT INTO driver_doc SELECT 'DOC-' || lpad(n::text, 8, '0'), 'ORG-1', '{\"title\":\"doc\"}', n FROM generate_series(0, $1 - 1) AS n",
    )
    .bind(i64::from(args.rows))
    .execute(runtime.pool())
    .await?;
    let any_defaults = sqlx::any::AnyPoolOptions::new()
        .max_connections(args.pool)
        .min_connections(args.pool)
        .connect(url)
        .await?;
    let native = PgPoolOptions::new()
        .max_connections(args.pool)
        .min_connections(args.pool)
        .test_before_acquire(false)
        .connect(url)
        .await?;
    let pools = [
        Pool::Runtime(runtime.pool().clone()),
        Pool::AnyDefaults(any_defaults),
        Pool::Native(native),
    ];
    // Statement × pool → statements/s of each run.
    let mut rates: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); pools.len()]; Statement::ALL.len()];
    for run in 1..=args.runs {
        for (s, statement) in Statement::ALL.into_iter().enumerate() {
            for (p, pool) in pools.iter().enumerate() {
                let rate = load(pool, statement, args).await?;
                eprintln!(
                    "run {run}/{}: {} through {}: {rate:.0}/s",
                    args.runs,
                    statement.label(),
                    pool.label()
                );
                rates[s][p].push(rate);
            }
        }
    }
    println!(
        "\nDriver cost on PostgreSQL: {} tasks, {} connections per pool, {} s per cell, medians of {} run(s)\n",
        args.concurrency, args.pool, args.duration_secs, args.runs
    );
    println!("| Statement | runtime (Any) /s | Any, sqlx defaults /s | native PgPool /s | runtime / native |");
    println!("|---|---:|---:|---:|---:|");
    for (s, statement) in Statement::ALL.into_iter().enumerate() {
        let m: Vec<f64> = rates[s].iter().map(|runs| median(runs)).collect();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} % |",
            statement.label(),
            m[0],
            m[1],
            m[2],
            100.0 * m[0] / m[2]
        );
    }
    Ok(())
}

/// Statements/s of `statement` through `pool` from `args.concurrency` tasks for the duration.
async fn load(pool: &Pool, statement: Statement, args: &DriverArgs) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let (pool, done, stop, rows) = (pool.clone(), done.clone(), stop.clone(), args.rows);
        tasks.push(tokio::spawn(async move {
            let mut n = task.wrapping_mul(7_919);
            while !stop.load(Ordering::Relaxed) {
                let count = pool.run(statement, n, rows).await?;
                if count == 0 {
                    bail!("{} of document {} answered no row", statement.label(), n % rows);
                }
                done.fetch_add(1, Ordering::Relaxed);
                n = n.wrapping_add(stride(task));
            }
            Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.context("a load task panicked")??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The stride of task `task` through the documents (distinct per task, so concurrent upserts
/// rarely meet on one row).
fn stride(task: u32) -> u32 {
    101 + 2 * task
}
