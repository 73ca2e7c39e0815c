//! J3 of `dartwing-bench jobs`: enqueueing over HTTP against the `dartwing` binary (one node,
//! workers on): `jobs.enqueue` from concurrent clients, one job per request, and
//! `jobs.enqueue_batch`, next to a raw multi-row `INSERT` of the same rows into a scratch copy of
//! the job table on the same PostgreSQL. Afterwards every answered job must be Completed exactly
//! once (one attempt) and no other job may exist.

use crate::server::{Mode, PgSchema, Server};
use anyhow::{Context, Result, anyhow, bail};
use dartwing_core::config::DatabaseConfig;
use dartwing_db::Db;
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The server's settings for J3: the defaults, with the per-organization pending cap lifted so
/// the enqueue rate is not cut by 429s while the workers catch up.
const J3_MODE: Mode = Mode {
    name: "jobs",
    env: &[("DARTWING_JOBS__QUEUES__DEFAULT__MAX_PENDING_PER_ORG", "100000000")],
    about: "defaults, default queue's max_pending_per_org lifted",
};

/// Sizes of one J3 measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpPlan {
    /// Jobs enqueued one per request.
    pub(crate) single_jobs: u32,
    /// Concurrent clients of the one-per-request phase.
    pub(crate) single_clients: u32,
    /// Jobs enqueued with `enqueue_batch` (and inserted raw).
    pub(crate) batch_jobs: u32,
    /// Jobs per `enqueue_batch` request and per raw `INSERT`.
    pub(crate) batch_size: u32,
    /// Concurrent clients (and raw connections) of the batch phase.
    pub(crate) batch_clients: u32,
}

/// What one J3 measurement produced (jobs per second).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HttpSample {
    pub(crate) enqueue: Option<f64>,
    pub(crate) enqueue_batch: Option<f64>,
    pub(crate) raw_insert: Option<f64>,
}

/// Runs J3 once on `database_url` (a fresh schema) or, when `None`, on SQLite.
pub(crate) async fn measure(
    binary: &Path,
    database_url: Option<&str>,
    plan: HttpPlan,
    timeout: Duration,
) -> Result<HttpSample> {
    let schema = match database_url {
        Some(url) => Some(PgSchema::create(url).await?),
        None => None,
    };
    let server_url = schema.as_ref().map(PgSchema::server_url);
    let client = crate::load::client(plan.single_clients.max(plan.batch_clients) as usize)?;
    let server = Server::start(binary, server_url.as_deref(), J3_MODE, &client).await?;
    let result = tokio::time::timeout(timeout, run(&server, server_url.as_deref(), &client, plan))
        .await
        .unwrap_or_else(|_| Err(anyhow!("timed out after {timeout:?}")));
    let result = result.map_err(|e| anyhow!("{e:#}; {}", server.output_tail()));
    server.stop().await?;
    if let Some(schema) = schema {
        schema.drop_schema().await?;
    }
    result
}

async fn run(server: &Server, pg_url: Option<&str>, client: &reqwest::Client, plan: HttpPlan) -> Result<HttpSample> {
    let org = server.create_organization(client).await?;
    let mut sample = HttpSample::default();
    let mut answered = Vec::new();

    let started = Instant::now();
    let ids = enqueue_one_by_one(server, client, &org, plan).await?;
    sample.enqueue = Some(f64::from(plan.single_jobs) / started.elapsed().as_secs_f64());
    answered.extend(ids);

    if plan.batch_jobs > 0 {
        let started = Instant::now();
        if let Some(ids) = enqueue_batches(server, client, &org, plan).await? {
            sample.enqueue_batch = Some(f64::from(plan.batch_jobs) / started.elapsed().as_secs_f64());
            answered.extend(ids);
        }
    }

    let db = match pg_url {
        Some(url) => Db::connect(url, &DatabaseConfig::default(), None).await,
        None => {
            let path = server.dir.path().join("dartwing.db");
            Db::connect(
                &format!("sqlite://{}", path.display()),
                &DatabaseConfig::default(),
                None,
            )
            .await
        }
    }
    .map_err(|e| anyhow!("cannot open the server's database: {e}"))?;
    if let Some(url) = pg_url
        && plan.batch_jobs > 0
    {
        sample.raw_insert = Some(raw_insert(url, &org, plan).await?);
    }
    check_exactly_once(&db, &org, &answered).await?;
    db.pool().close().await;
    Ok(sample)
}

/// `single_clients` clients, each POSTing its share of `jobs.enqueue` one after the other.
async fn enqueue_one_by_one(
    server: &Server,
    client: &reqwest::Client,
    org: &str,
    plan: HttpPlan,
) -> Result<Vec<String>> {
    let url = format!("{}/api/method/dartwing_core.jobs.enqueue", server.base);
    let body = json!({ "method": "core.noop", "organization": org, "args": {} });
    let clients = plan.single_clients.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let share = plan.single_jobs / clients + u32::from(c < plan.single_jobs % clients);
        let (client, url, body, token) = (client.clone(), url.clone(), body.clone(), server.token.clone());
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(share as usize);
            for _ in 0..share {
                let message = post(&client, &url, &token, &body).await?;
                ids.push(job_id(&message)?);
            }
            Ok::<_, anyhow::Error>(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(part) = tasks.join_next().await {
        ids.extend(part.context("an enqueue client panicked")??);
    }
    Ok(ids)
}

/// `batch_clients` clients POSTing `jobs.enqueue_batch` requests of `batch_size` jobs; `None`
/// when the server has no such method (an older build).
async fn enqueue_batches(
    server: &Server,
    client: &reqwest::Client,
    org: &str,
    plan: HttpPlan,
) -> Result<Option<Vec<String>>> {
    let url = format!("{}/api/method/dartwing_core.jobs.enqueue_batch", server.base);
    let probe = client
        .post(&url)
        .bearer_auth(&server.token)
        .json(&json!({ "jobs": [] }))
        .send()
        .await
        .context("POST enqueue_batch failed")?;
    if probe.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let sizes = batch_sizes(plan.batch_jobs, plan.batch_size);
    let clients = plan.batch_clients.max(1) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let mine: Vec<u32> = sizes.iter().skip(c).step_by(clients).copied().collect();
        let (client, url, token, org) = (client.clone(), url.clone(), server.token.clone(), org.to_string());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for size in mine {
                let job = json!({ "method": "core.noop", "organization": org, "args": {} });
                let body = json!({ "jobs": vec![job; size as usize] });
                let message = post(&client, &url, &token, &body).await?;
                let answers = message.as_array().context("enqueue_batch answered no list")?;
                if answers.len() != size as usize {
                    bail!("enqueue_batch answered {} of {size} jobs", answers.len());
                }
                for answer in answers {
                    ids.push(job_id(answer)?);
                }
            }
            Ok::<_, anyhow::Error>(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(part) = tasks.join_next().await {
        ids.extend(part.context("a batch client panicked")??);
    }
    Ok(Some(ids))
}

/// `total` split into batches of at most `size`.
fn batch_sizes(total: u32, size: u32) -> Vec<u32> {
    let size = size.max(1);
    (0..total.div_ceil(size)).map(|i| size.min(total - i * size)).collect()
}

async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<Value> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let reply: Value = response.json().await.with_context(|| format!("POST {url}: not JSON"))?;
    if status != reqwest::StatusCode::OK {
        bail!("POST {url} answered {status}: {reply}");
    }
    Ok(reply["message"].clone())
}

fn job_id(answer: &Value) -> Result<String> {
    if answer["deduplicated"] == true {
        bail!("a job without dedup key was answered as a duplicate: {answer}");
    }
    answer["job_id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("an enqueue was answered without job id: {answer}"))
}

/// The same rows as the batch phase, inserted raw: `batch_clients` connections, one multi-row
/// `INSERT` of `batch_size` rows per statement (autocommit), into a scratch copy of the job table
/// (its columns and indexes). Returns rows per second.
async fn raw_insert(url: &str, org: &str, plan: HttpPlan) -> Result<f64> {
    let mut setup = sqlx::PgConnection::connect(url).await.context("raw insert: connect")?;
    sqlx::query("CREATE TABLE bench_raw_job (LIKE job INCLUDING ALL)")
        .execute(&mut setup)
        .await
        .context("raw insert: scratch table")?;
    let sizes = batch_sizes(plan.batch_jobs, plan.batch_size);
    let clients = plan.batch_clients.max(1) as usize;
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(sqlx::PgConnection::connect(url).await.context("raw insert: connect")?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut connection) in connections.into_iter().enumerate() {
        let mine: Vec<u32> = sizes.iter().skip(c).step_by(clients).copied().collect();
        let org = org.to_string();
        tasks.spawn(async move {
            for (n, size) in mine.into_iter().enumerate() {
                let now = dartwing_core::Timestamp::now().as_micros();
                let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                    "INSERT INTO bench_raw_job (id, queue, method, org_key, args, priority, vtime, status, attempts, \
                     max_attempts, run_at_us, enqueued_at_us, timeout_us, dedup_key, dedup_until_us, trace_id, \
                     submitted_by) ",
                );
                insert.push_values(0..size, |mut row, i| {
                    row.push_bind(format!("raw-{c}-{n}-{i}"))
                        .push_bind("default")
                        .push_bind("core.noop")
                        .push_bind(org.clone())
                        .push_bind("{}")
                        .push_bind(1_i32)
                        .push_bind(i64::from(i))
                        .push_bind("Queued")
                        .push_bind(0_i32)
                        .push_bind(4_i32)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(300_000_000_i64)
                        .push_bind(None::<String>)
                        .push_bind(None::<i64>)
                        .push_bind("bench-trace")
                        .push_bind("bench@example.com");
                });
                insert.build().execute(&mut connection).await.context("raw insert")?;
            }
            let _ = connection.close().await;
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(part) = tasks.join_next().await {
        part.context("a raw insert task panicked")??;
    }
    let rate = f64::from(plan.batch_jobs) / started.elapsed().as_secs_f64();
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bench_raw_job")
        .fetch_one(&mut setup)
        .await
        .context("raw insert: count")?;
    if rows != i64::from(plan.batch_jobs) {
        bail!("raw insert stored {rows} of {} rows", plan.batch_jobs);
    }
    let _ = setup.close().await;
    Ok(rate)
}

/// Waits until the organization has no unfinished job, then checks that exactly the answered
/// jobs exist, each Completed after one attempt.
async fn check_exactly_once(db: &Db, org: &str, answered: &[String]) -> Result<()> {
    let unique: HashSet<&String> = answered.iter().collect();
    if unique.len() != answered.len() {
        bail!("{} job ids were answered twice", answered.len() - unique.len());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (unfinished,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM job WHERE org_key = $1 AND status IN ('Pending', 'Queued', 'Running')",
        )
        .bind(org)
        .fetch_one(db.pool())
        .await
        .context("counting unfinished jobs")?;
        if unfinished == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{unfinished} jobs still unfinished");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, status, CAST(attempts AS BIGINT) FROM job WHERE org_key = $1")
            .bind(org)
            .fetch_all(db.pool())
            .await
            .context("reading the jobs")?;
    if rows.len() != answered.len() {
        bail!("{} jobs stored, {} answered", rows.len(), answered.len());
    }
    for (id, status, attempts) in rows {
        if !unique.contains(&id) {
            bail!("job {id} was stored but never answered");
        }
        if status != "Completed" || attempts != 1 {
            bail!("job {id} ended {status} after {attempts} attempts");
        }
    }
    Ok(())
}
