//! `dartwing-bench sync`: offline-sync throughput through the library (in process) and over HTTP
//! against the real binary, next to the physical ceiling of the same rows on the same database,
//! measured in the same run.
//!
//! S1 upsert: `--clients` concurrent clients, each with its own organization, send `--items`
//! inserts in `upsert_batch` calls of `--batch` items (no conflicts), then the same number of
//! updates where `--conflict-pct` % carry a stale `base_modified` (field-level merges). Ceiling:
//! the same clients run raw batched `INSERT … ON CONFLICT DO UPDATE` of the documents plus one
//! change-log row per document, one transaction per batch, on the same pool.
//! S2 feed: each client pages its organization's feed (limit 500) from the beginning until
//! `has_more` is false. Ceiling: the raw indexed `SELECT` of the same change-log rows, page by page.
//!
//! Every run checks what it measured: each item answered (inserts `applied`, updates `applied` or
//! `merged`), and each organization's feed returns every written change exactly once, in the order
//! the writes were answered.

use crate::jobs::{Backend, BenchDb, create_org};
use crate::server::{self, MODE_ON, PgSchema, Server};
use crate::stats::median;
use anyhow::{Context, Result, anyhow, bail};
use dartwing_core::Principal;
use dartwing_core::config::{DatabaseConfig, SyncConfig};
use dartwing_core::publish::NoopPublisher;
use dartwing_db::Db;
use dartwing_observe::Metrics;
use dartwing_sync::model::FeedPage;
use dartwing_sync::{FeedRequest, OfflineSync};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// `--help` text of the `sync` subcommand.
pub const LONG_ABOUT: &str = "\
Offline sync through the library (in process) and over HTTP against the real `dartwing` binary,
next to the physical ceiling of the same rows on the same database in the same run, on SQLite and
(with --database-url) PostgreSQL.

S1  upsert_batch throughput: --clients clients (one organization each) insert --items documents
    in batches of --batch (no conflicts), then update them with --conflict-pct % stale items.
    Ceiling: raw batched INSERT … ON CONFLICT DO UPDATE plus one change-log row per document,
    one transaction per batch, same clients, same pool.
S2  feed throughput: every client pages its feed (limit 500) to the end. Ceiling: the raw
    indexed SELECT of the same change-log rows.

The HTTP measurements start `dartwing serve` (the binary next to this executable, or --binary;
build it with `cargo build --release -p dartwing -p dartwing-bench`) on the same backend with the
default observability settings, create one organization per client through the API, and run the
same workload with POST …sync.upsert_batch and GET …sync.feed over keep-alive connections.

Every run checks its work: every item answered, no errors, and each organization's feed returns
every written change exactly once in order. --quick runs tiny sizes once (seconds; works against
a debug build) and only checks, without timing goals.

The change -> delta on a subscribed socket latency needs the realtime gateway and is not measured
here. PostgreSQL gets a fresh schema per run (dropped afterwards); SQLite a temporary file.";

/// Options of `dartwing-bench sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Repetitions; the summary shows medians.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Documents per client.
    #[arg(long, default_value_t = 10_000)]
    items: u32,
    /// Items per upsert_batch call (and per ceiling transaction).
    #[arg(long, default_value_t = 100)]
    batch: u32,
    /// Concurrent clients (each with its own organization).
    #[arg(long, default_value_t = 2)]
    clients: u32,
    /// Share of stale updates in the conflict measurement, in percent.
    #[arg(long, default_value_t = 10)]
    conflict_pct: u32,
    /// PostgreSQL URL (a schema is created and dropped per run); unset skips PostgreSQL.
    #[arg(long)]
    database_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    skip_sqlite: bool,
    /// Skip the HTTP measurements (library and ceilings only).
    #[arg(long)]
    skip_http: bool,
    /// The `dartwing` binary for the HTTP measurements [default: `dartwing` next to this executable].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Tiny sizes, one run: checks answers and feeds on every path, no timing goals.
    #[arg(long)]
    quick: bool,
}

/// Feed page size of every feed read (the API's maximum).
const FEED_LIMIT: u32 = 500;

/// Throughput of one workload through one transport.
#[derive(Default, Clone, Copy)]
struct Rates {
    upsert: f64,
    upsert_conflicts: f64,
    feed: f64,
}

#[derive(Default, Clone)]
struct Sample {
    library: Rates,
    http: Option<Rates>,
    write_ceiling: f64,
    read_ceiling: f64,
}

/// Runs the benchmark and prints a table of medians.
pub async fn run(mut args: SyncArgs) -> Result<()> {
    if args.quick {
        args.runs = 1;
        args.items = args.items.min(120);
        args.batch = args.batch.min(50);
        args.clients = args.clients.min(2);
    }
    if args.runs == 0 || args.items == 0 || args.batch == 0 || args.clients == 0 {
        bail!("--runs, --items, --batch and --clients must be at least 1");
    }
    let binary = if args.skip_http {
        None
    } else {
        Some(server::locate_binary(args.binary.as_deref())?)
    };
    let mut backends = Vec::new();
    if !args.skip_sqlite {
        backends.push(("SQLite", Backend::Sqlite));
    }
    if let Some(url) = &args.database_url {
        backends.push(("PostgreSQL", Backend::Postgres(url.clone())));
    }
    let mut table = Vec::new();
    for (label, backend) in backends {
        let mut samples = Vec::new();
        for run in 1..=args.runs {
            let sample = measure_run(&backend, binary.as_deref(), &args)
                .await
                .with_context(|| format!("{label} run {run}"))?;
            print_run(label, run, &sample, &args);
            samples.push(sample);
        }
        let m = |f: &dyn Fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
        let http = samples.iter().all(|s| s.http.is_some()).then(|| Rates {
            upsert: m(&|s| s.http.unwrap_or_default().upsert),
            upsert_conflicts: m(&|s| s.http.unwrap_or_default().upsert_conflicts),
            feed: m(&|s| s.http.unwrap_or_default().feed),
        });
        table.push((
            label,
            Sample {
                library: Rates {
                    upsert: m(&|s| s.library.upsert),
                    upsert_conflicts: m(&|s| s.library.upsert_conflicts),
                    feed: m(&|s| s.library.feed),
                },
                http,
                write_ceiling: m(&|s| s.write_ceiling),
                read_ceiling: m(&|s| s.read_ceiling),
            },
        ));
    }
    if args.quick {
        println!("sync --quick: every item answered, every feed complete and in order, on every path");
        return Ok(());
    }
    print_table(&table, &args);
    Ok(())
}

fn print_run(label: &str, run: u32, s: &Sample, args: &SyncArgs) {
    let http = s.http.map_or_else(String::new, |h| {
        format!(
            "; HTTP upsert {:.0}/s, with {}% conflicts {:.0}/s, feed {:.0} rows/s",
            h.upsert, args.conflict_pct, h.upsert_conflicts, h.feed
        )
    });
    eprintln!(
        "{label} run {run}: upsert {:.0}/s, with {}% conflicts {:.0}/s, raw write {:.0}/s; feed {:.0} rows/s, raw read {:.0} rows/s{http}",
        s.library.upsert,
        args.conflict_pct,
        s.library.upsert_conflicts,
        s.write_ceiling,
        s.library.feed,
        s.read_ceiling
    );
}

fn print_table(table: &[(&str, Sample)], args: &SyncArgs) {
    println!(
        "\nSync, {} clients × {} documents, batches of {}, feed pages of {FEED_LIMIT}, medians of {} runs\n",
        args.clients, args.items, args.batch, args.runs
    );
    println!("| Backend | Measurement | Dartwing | Reference | Ratio | Goal |");
    println!("|---|---|---:|---:|---:|---|");
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b * 100.0 } else { 0.0 };
    for (label, s) in table {
        let mut paths = vec![("in process", s.library, (50, 50))];
        if let Some(http) = s.http {
            paths.push(("HTTP", http, (35, 25)));
        }
        for (path, rates, (write_goal, read_goal)) in paths {
            println!(
                "| {label} | upsert_batch {path}, no conflicts (items/s) | {:.0} | raw write {:.0} | {:.0} % | ≥ {write_goal} % |",
                rates.upsert,
                s.write_ceiling,
                ratio(rates.upsert, s.write_ceiling)
            );
            println!(
                "| {label} | upsert_batch {path}, {} % stale (items/s) | {:.0} | no conflicts {:.0} | {:.0} % | ≥ 50 % |",
                args.conflict_pct,
                rates.upsert_conflicts,
                rates.upsert,
                ratio(rates.upsert_conflicts, rates.upsert)
            );
            println!(
                "| {label} | feed {path} (rows/s) | {:.0} | raw read {:.0} | {:.0} % | ≥ {read_goal} % |",
                rates.feed,
                s.read_ceiling,
                ratio(rates.feed, s.read_ceiling)
            );
        }
    }
}

/// One run on a fresh database per measurement: the library workload and the ceilings, then the
/// HTTP workload (when a binary is given).
async fn measure_run(backend: &Backend, binary: Option<&Path>, args: &SyncArgs) -> Result<Sample> {
    let db = BenchDb::create(backend).await?;
    let sample = measure_library(&db.url, args).await;
    db.drop().await;
    let mut sample = sample?;
    if let Some(binary) = binary {
        sample.http = Some(measure_http(binary, backend, args).await.context("over HTTP")?);
    }
    Ok(sample)
}

async fn measure_library(url: &str, args: &SyncArgs) -> Result<Sample> {
    let metrics = Arc::new(Metrics::new(true, 500).map_err(|e| anyhow!("metrics: {e}"))?);
    let db = Db::connect(url, &DatabaseConfig::default(), Some(metrics.clone()))
        .await
        .context("connecting")?;
    db.migrate(crate::MIGRATIONS).await.context("migrating")?;
    let directory = Arc::new(dartwing_tenancy::TenancyStore::new(db.clone()));
    let sync = OfflineSync::new(
        db.clone(),
        SyncConfig::default(),
        Arc::new(NoopPublisher),
        directory,
        metrics,
    )
    .map_err(|e| anyhow!("sync: {e}"))?;
    let mut orgs = Vec::new();
    for c in 0..args.clients {
        orgs.push(create_org(&db, &format!("Sync Bench {c}")).await?);
    }
    let library = workload(&Transport::Library(sync), &orgs, args).await?;

    // Ceilings on the same database.
    for sql in [
        "CREATE TABLE raw_doc (doctype TEXT NOT NULL, name TEXT NOT NULL, organization TEXT NOT NULL, data TEXT NOT NULL, modified TEXT NOT NULL, PRIMARY KEY (doctype, name))",
        "CREATE TABLE raw_change (organization TEXT NOT NULL, seq BIGINT NOT NULL, doctype TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, modified TEXT NOT NULL, PRIMARY KEY (organization, seq))",
    ] {
        sqlx::query(sql)
            .execute(db.pool())
            .await
            .context("creating ceiling tables")?;
    }
    let total = f64::from(args.items) * f64::from(args.clients);
    let started = Instant::now();
    parallel(&orgs, |org| raw_writes(db.clone(), org, args.clone())).await?;
    let write_ceiling = total / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let raw_rows = parallel(&orgs, |org| raw_reads(db.clone(), org)).await?;
    let read_ceiling = raw_rows.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64();
    Ok(Sample {
        library,
        http: None,
        write_ceiling,
        read_ceiling,
    })
}

/// The workload against `dartwing serve` on a fresh database of `backend`.
async fn measure_http(binary: &Path, backend: &Backend, args: &SyncArgs) -> Result<Rates> {
    let schema = match backend {
        Backend::Postgres(url) => Some(PgSchema::create(url).await?),
        Backend::Sqlite => None,
    };
    let database_url = schema.as_ref().map(PgSchema::server_url);
    let client = crate::load::client(args.clients as usize * 2)?;
    let outcome = async {
        let server = Server::start(binary, database_url.as_deref(), MODE_ON, &client).await?;
        let outcome = async {
            let mut orgs = Vec::new();
            for c in 0..args.clients {
                orgs.push(
                    server
                        .create_named_organization(&client, &format!("Sync Bench {c}"))
                        .await?,
                );
            }
            let transport = Transport::Http(Arc::new(HttpClient {
                client: client.clone(),
                base: server.base.clone(),
                token: server.token.clone(),
            }));
            workload(&transport, &orgs, args).await
        }
        .await
        .map_err(|e| e.context(server.output_tail()));
        server.stop().await?;
        outcome
    }
    .await;
    if let Some(schema) = schema
        && let Err(error) = schema.drop_schema().await
    {
        eprintln!("warning: {error:#}");
    }
    outcome
}

/// S1 and S2 through `transport`, one organization per client; checks every answer and feed.
async fn workload(transport: &Transport, orgs: &[String], args: &SyncArgs) -> Result<Rates> {
    let total = f64::from(args.items) * f64::from(args.clients);

    // S1, no conflicts: inserts.
    let started = Instant::now();
    let inserted = parallel(orgs, |org| insert_all(transport.clone(), org, args.clone())).await?;
    let upsert = total / started.elapsed().as_secs_f64();

    // S1, conflicts: updates, a share of them stale.
    let mut expected = Vec::new();
    let mut handles = Vec::new();
    for (org, answers) in orgs.iter().cloned().zip(inserted) {
        let answers = check_answers(answers, &["applied"])?;
        let bases: Vec<String> = answers.iter().map(|a| a.modified.clone()).collect();
        expected.push(answers);
        handles.push((org.clone(), bases));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (org, bases) in handles {
        tasks.push(tokio::spawn(update_all(transport.clone(), org, bases, args.clone())));
    }
    let mut updated = Vec::new();
    for task in tasks {
        updated.push(task.await.context("update task")??);
    }
    let upsert_conflicts = total / started.elapsed().as_secs_f64();
    for (expected, answers) in expected.iter_mut().zip(updated) {
        expected.extend(check_answers(answers, &["applied", "merged"])?);
    }

    // S2: feed from the beginning (inserts and updates: 2 rows per document).
    let started = Instant::now();
    let feeds = parallel(orgs, |org| read_feed(transport.clone(), org)).await?;
    let feed = feeds.iter().map(FeedRead::len).sum::<usize>() as f64 / started.elapsed().as_secs_f64();
    for ((org, expected), read) in orgs.iter().zip(&expected).zip(feeds) {
        check_feed(org, expected, &read.keys()?)?;
    }
    Ok(Rates {
        upsert,
        upsert_conflicts,
        feed,
    })
}

/// Where the workload sends its calls.
#[derive(Clone)]
enum Transport {
    /// The library in this process.
    Library(OfflineSync),
    /// The API of a running server.
    Http(Arc<HttpClient>),
}

/// A keep-alive client of a running server with the bench user's token.
struct HttpClient {
    client: reqwest::Client,
    base: String,
    token: String,
}

/// The part of a feed row (or of an answer's `resolved_doc`) the checks compare.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct RowKey {
    name: String,
    modified: String,
}

/// The part of an item's answer the checks read.
#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    resolved_doc: Option<RowKey>,
    #[serde(default)]
    message: Option<String>,
}

/// `{"message": …}` around every API answer.
#[derive(Deserialize)]
struct Envelope<T> {
    message: T,
}

/// A feed page as the API sends it (rows reduced to their keys).
#[derive(Deserialize)]
struct HttpFeedPage {
    rows: Vec<RowKey>,
    next_since: String,
    has_more: bool,
}

/// What a client read from its feed; library pages are reduced to keys after the clock stops.
enum FeedRead {
    Library(Vec<FeedPage>),
    Http(Vec<RowKey>),
}

impl FeedRead {
    fn len(&self) -> usize {
        match self {
            FeedRead::Library(pages) => pages.iter().map(|p| p.rows.len()).sum(),
            FeedRead::Http(keys) => keys.len(),
        }
    }

    fn keys(self) -> Result<Vec<RowKey>> {
        match self {
            FeedRead::Http(keys) => Ok(keys),
            FeedRead::Library(pages) => pages
                .iter()
                .flat_map(|p| p.rows.iter())
                .map(|row| Ok(serde_json::from_str(&serde_json::to_string(row)?)?))
                .collect(),
        }
    }
}

impl Transport {
    async fn upsert(&self, org: &str, items: Vec<Value>) -> Result<Vec<Answer>> {
        let sent = items.len();
        let answers: Vec<Answer> = match self {
            Transport::Library(sync) => sync
                .upsert_batch(&Principal::system("bench"), org, items, None)
                .await
                .map_err(|e| anyhow!("upsert: {e}"))?
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()?,
            Transport::Http(http) => {
                let body = json!({ "org": org, "items": items });
                http.call::<Vec<Answer>>(http.client.post(http.url("upsert_batch")).json(&body))
                    .await?
            }
        };
        if answers.len() != sent {
            bail!("{sent} items sent, {} answered", answers.len());
        }
        Ok(answers)
    }

    /// Pages the organization's `Task` feed from the beginning to the end.
    async fn read_feed(&self, org: &str) -> Result<FeedRead> {
        let mut since: Option<String> = None;
        match self {
            Transport::Library(sync) => {
                let actor = Principal::system("bench");
                let mut pages = Vec::new();
                loop {
                    let request = FeedRequest {
                        org: org.to_string(),
                        doctype: Some("Task".into()),
                        since: since.take(),
                        limit: Some(FEED_LIMIT),
                    };
                    let page = sync.feed(&actor, &request).await.map_err(|e| anyhow!("feed: {e}"))?;
                    let more = page.has_more;
                    since = Some(page.next_since.clone());
                    pages.push(page);
                    if !more {
                        return Ok(FeedRead::Library(pages));
                    }
                }
            }
            Transport::Http(http) => {
                let mut keys = Vec::new();
                loop {
                    let limit = FEED_LIMIT.to_string();
                    let mut query = vec![("org", org), ("doctype", "Task"), ("limit", limit.as_str())];
                    if let Some(since) = &since {
                        query.push(("since", since.as_str()));
                    }
                    let page: HttpFeedPage = http.call(http.client.get(http.url("feed")).query(&query)).await?;
                    keys.extend(page.rows);
                    since = Some(page.next_since);
                    if !page.has_more {
                        return Ok(FeedRead::Http(keys));
                    }
                }
            }
        }
    }
}

impl HttpClient {
    fn url(&self, method: &str) -> String {
        format!("{}/api/method/dartwing_core.sync.{method}", self.base)
    }

    /// Sends `request` with the token; anything but 200 with `{"message": T}` is an error.
    async fn call<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != reqwest::StatusCode::OK {
            bail!("answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let envelope: Envelope<T> = serde_json::from_slice(&body)
            .with_context(|| format!("unexpected answer: {}", String::from_utf8_lossy(&body)))?;
        Ok(envelope.message)
    }
}

/// The written rows of `answers`, each of which must have one of `statuses`.
fn check_answers(answers: Vec<Answer>, statuses: &[&str]) -> Result<Vec<RowKey>> {
    answers
        .into_iter()
        .map(|a| match a.resolved_doc {
            Some(row) if statuses.contains(&a.status.as_str()) => Ok(row),
            _ => bail!(
                "unexpected answer: status {} ({})",
                a.status,
                a.message.unwrap_or_default()
            ),
        })
        .collect()
}

/// The organization's feed must hold every written change exactly once, in write order.
fn check_feed(org: &str, expected: &[RowKey], read: &[RowKey]) -> Result<()> {
    if let Some((i, (want, got))) = expected.iter().zip(read).enumerate().find(|(_, (a, b))| a != b) {
        bail!("{org}: feed row {i} is {got:?}, the write answered was {want:?}");
    }
    if expected.len() != read.len() {
        bail!(
            "{org}: {} changes written, the feed returned {}",
            expected.len(),
            read.len()
        );
    }
    Ok(())
}

async fn parallel<T, F, Fut>(orgs: &[String], work: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let handles: Vec<_> = orgs.iter().cloned().map(|org| tokio::spawn(work(org))).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.context("client task")??);
    }
    Ok(out)
}

fn document(n: u32) -> Value {
    json!({"title": format!("Task number {n}"), "status": "Open", "priority": "Low", "notes": "", "assigned_to": "someone@example.com"})
}

/// Inserts the client's documents; returns every answer.
async fn insert_all(transport: Transport, org: String, args: SyncArgs) -> Result<Vec<Answer>> {
    let mut answers = Vec::with_capacity(args.items as usize);
    let now = dartwing_core::Timestamp::now().to_string();
    for start in (0..args.items).step_by(args.batch as usize) {
        let items = (start..(start + args.batch).min(args.items))
            .map(|n| json!({"op_id": format!("i-{n}"), "op": "insert", "doctype": "Task", "name": format!("{org}-T-{n}"), "data": document(n), "client_ts": now}))
            .collect();
        answers.extend(transport.upsert(&org, items).await?);
    }
    Ok(answers)
}

/// Updates the client's documents from `bases` (each document's `modified`), a share of them
/// with a stale base; returns every answer.
async fn update_all(transport: Transport, org: String, bases: Vec<String>, args: SyncArgs) -> Result<Vec<Answer>> {
    let now = dartwing_core::Timestamp::now().to_string();
    let stale_every = if args.conflict_pct == 0 {
        u32::MAX
    } else {
        100 / args.conflict_pct.min(100)
    };
    let mut answers = Vec::with_capacity(args.items as usize);
    for start in (0..args.items).step_by(args.batch as usize) {
        let items = (start..(start + args.batch).min(args.items))
            .map(|n| {
                let base = if n % stale_every == 0 {
                    "2020-01-01T00:00:00.000000Z"
                } else {
                    bases[n as usize].as_str()
                };
                json!({"op_id": format!("u-{n}"), "op": "update", "doctype": "Task", "name": format!("{org}-T-{n}"),
                    "data": {"status": "Done", "notes": format!("note {n}")}, "client_ts": now, "base_modified": base})
            })
            .collect();
        answers.extend(transport.upsert(&org, items).await?);
    }
    Ok(answers)
}

async fn read_feed(transport: Transport, org: String) -> Result<FeedRead> {
    transport.read_feed(&org).await
}

fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..cols).map(|c| format!("${}", r * cols + c + 1)).collect();
            format!("({})", cells.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The ceiling: the same documents as raw batched upserts plus one change-log row each.
async fn raw_writes(db: Db, org: String, args: SyncArgs) -> Result<()> {
    let now = dartwing_core::Timestamp::now().to_string();
    let mut seq = 0i64;
    for start in (0..args.items).step_by(args.batch as usize) {
        let range: Vec<u32> = (start..(start + args.batch).min(args.items)).collect();
        let docs: Vec<(String, String)> = range
            .iter()
            .map(|n| (format!("{org}-T-{n}"), document(*n).to_string()))
            .collect();
        let mut tx = db.begin_tx().await?;
        let sql = format!(
            "INSERT INTO raw_doc (doctype, name, organization, data, modified) VALUES {} \
             ON CONFLICT (doctype, name) DO UPDATE SET data = excluded.data, modified = excluded.modified",
            placeholders(docs.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for (name, data) in &docs {
            q = q
                .bind("Task")
                .bind(name.as_str())
                .bind(org.as_str())
                .bind(data.as_str())
                .bind(now.as_str());
        }
        q.execute(&mut *tx).await?;
        let sql = format!(
            "INSERT INTO raw_change (organization, seq, doctype, name, data, modified) VALUES {}",
            placeholders(docs.len(), 6)
        );
        let mut q = sqlx::query(&sql);
        for (name, data) in &docs {
            seq += 1;
            q = q
                .bind(org.as_str())
                .bind(seq)
                .bind("Task")
                .bind(name.as_str())
                .bind(data.as_str())
                .bind(now.as_str());
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The ceiling: the feed's change-log rows read with the raw indexed range query, page by page.
async fn raw_reads(db: Db, org: String) -> Result<u64> {
    let mut after = 0i64;
    let mut rows = 0u64;
    loop {
        let page = sqlx::query(
            "SELECT seq, doctype, name, modified, docstatus, data, deleted FROM sync_change \
             WHERE organization = $1 AND seq > $2 AND doctype = $3 ORDER BY seq LIMIT 500",
        )
        .bind(org.as_str())
        .bind(after)
        .bind("Task")
        .fetch_all(db.pool())
        .await?;
        if page.is_empty() {
            return Ok(rows);
        }
        for row in &page {
            let _: (String, String, i64, i64, String, i64) = (
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            );
        }
        rows += page.len() as u64;
        after = page.last().map_or(after, |r| r.try_get(0).unwrap_or(after));
    }
}
