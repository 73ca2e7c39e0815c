//! `dartwing-bench sync`: offline-sync throughput through the library (in process) next to the
//! physical ceiling of the same rows on the same database, measured in the same run.
//!
//! S1 upsert: `--clients` concurrent clients, each with its own organization, send `--items`
//! inserts in `upsert_batch` calls of `--batch` items (no conflicts), then the same number of
//! updates where `--conflict-pct` % carry a stale `base_modified` (field-level merges). Ceiling:
//! the same clients run raw batched `INSERT … ON CONFLICT DO UPDATE` of the documents plus one
//! change-log row per document, one transaction per batch, on the same pool.
//! S2 feed: each client pages its organization's feed (limit 500) from the beginning until
//! `has_more` is false. Ceiling: the raw indexed `SELECT` of the same change-log rows, page by page.

use crate::jobs::{Backend, BenchDb, create_org};
use crate::stats::median;
use anyhow::{Context, Result, anyhow, bail};
use dartwing_core::Principal;
use dartwing_core::config::{DatabaseConfig, SyncConfig};
use dartwing_core::publish::NoopPublisher;
use dartwing_db::Db;
use dartwing_observe::Metrics;
use dartwing_sync::{FeedRequest, OfflineSync};
use serde_json::{Value, json};
use sqlx::Row;
use std::sync::Arc;
use std::time::Instant;

/// `--help` text of the `sync` subcommand.
pub const LONG_ABOUT: &str = "\
Offline sync through the library (in process), next to the physical ceiling of the same rows on
the same database in the same run, on SQLite and (with --database-url) PostgreSQL.

S1  upsert_batch throughput: --clients clients (one organization each) insert --items documents
    in batches of --batch (no conflicts), then update them with --conflict-pct % stale items.
    Ceiling: raw batched INSERT … ON CONFLICT DO UPDATE plus one change-log row per document,
    one transaction per batch, same clients, same pool.
S2  feed throughput: every client pages its feed (limit 500) to the end. Ceiling: the raw
    indexed SELECT of the same change-log rows.

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
}

#[derive(Default, Clone)]
struct Sample {
    upsert: f64,
    upsert_conflicts: f64,
    write_ceiling: f64,
    feed: f64,
    read_ceiling: f64,
}

/// Runs the benchmark and prints a table of medians.
pub async fn run(args: SyncArgs) -> Result<()> {
    if args.runs == 0 || args.items == 0 || args.batch == 0 || args.clients == 0 {
        bail!("--runs, --items, --batch and --clients must be at least 1");
    }
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
            let db = BenchDb::create(&backend).await?;
            let sample = measure(&db.url, &args).await;
            db.drop().await;
            let sample = sample.with_context(|| format!("{label} run {run}"))?;
            eprintln!(
                "{label} run {run}: upsert {:.0}/s, with {}% conflicts {:.0}/s, raw write {:.0}/s; feed {:.0} rows/s, raw read {:.0} rows/s",
                sample.upsert,
                args.conflict_pct,
                sample.upsert_conflicts,
                sample.write_ceiling,
                sample.feed,
                sample.read_ceiling
            );
            samples.push(sample);
        }
        let m = |f: fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
        table.push((
            label,
            Sample {
                upsert: m(|s| s.upsert),
                upsert_conflicts: m(|s| s.upsert_conflicts),
                write_ceiling: m(|s| s.write_ceiling),
                feed: m(|s| s.feed),
                read_ceiling: m(|s| s.read_ceiling),
            },
        ));
    }
    println!(
        "\nSync, {} clients × {} documents, batches of {}, medians of {} runs\n",
        args.clients, args.items, args.batch, args.runs
    );
    println!("| Backend | Measurement | Dartwing | Raw ceiling | Ratio | Goal |");
    println!("|---|---|---|---|---|---|");
    for (label, s) in &table {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b * 100.0 } else { 0.0 };
        println!(
            "| {label} | upsert_batch, no conflicts (items/s) | {:.0} | {:.0} | {:.0} % | ≥ 50 % |",
            s.upsert,
            s.write_ceiling,
            ratio(s.upsert, s.write_ceiling)
        );
        println!(
            "| {label} | upsert_batch, {} % conflicts (items/s) | {:.0} | {:.0} | {:.0} % | ≥ 50 % |",
            args.conflict_pct,
            s.upsert_conflicts,
            s.write_ceiling,
            ratio(s.upsert_conflicts, s.write_ceiling)
        );
        println!(
            "| {label} | feed (rows/s) | {:.0} | {:.0} | {:.0} % | ≥ 70 % |",
            s.feed,
            s.read_ceiling,
            ratio(s.feed, s.read_ceiling)
        );
    }
    Ok(())
}

async fn measure(url: &str, args: &SyncArgs) -> Result<Sample> {
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
    let total = f64::from(args.items) * f64::from(args.clients);

    // S1, no conflicts: inserts.
    let started = Instant::now();
    let bases = parallel(&orgs, |org| insert_all(sync.clone(), org, args.clone())).await?;
    let upsert = total / started.elapsed().as_secs_f64();

    // S1, conflicts: updates, a share of them stale.
    let started = Instant::now();
    let work = orgs.iter().cloned().zip(bases).collect::<Vec<_>>();
    let mut handles = Vec::new();
    for (org, base) in work {
        handles.push(tokio::spawn(update_all(sync.clone(), org, base, args.clone())));
    }
    for h in handles {
        h.await.context("update task")??;
    }
    let upsert_conflicts = total / started.elapsed().as_secs_f64();

    // S2: feed from the beginning (inserts and updates: 2 rows per document).
    let started = Instant::now();
    let rows = parallel(&orgs, |org| read_feed(sync.clone(), org)).await?;
    let feed = rows.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64();

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
    let started = Instant::now();
    parallel(&orgs, |org| raw_writes(db.clone(), org, args.clone())).await?;
    let write_ceiling = total / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let raw_rows = parallel(&orgs, |org| raw_reads(db.clone(), org)).await?;
    let read_ceiling = raw_rows.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64();
    Ok(Sample {
        upsert,
        upsert_conflicts,
        write_ceiling,
        feed,
        read_ceiling,
    })
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

/// Inserts the client's documents; returns each document's `modified` (its base for updates).
async fn insert_all(sync: OfflineSync, org: String, args: SyncArgs) -> Result<Vec<String>> {
    let actor = Principal::system("bench");
    let mut bases = Vec::with_capacity(args.items as usize);
    let now = dartwing_core::Timestamp::now().to_string();
    for start in (0..args.items).step_by(args.batch as usize) {
        let items = (start..(start + args.batch).min(args.items))
            .map(|n| json!({"op_id": format!("i-{n}"), "op": "insert", "doctype": "Task", "name": format!("{org}-T-{n}"), "data": document(n), "client_ts": now}))
            .collect();
        let answers = sync
            .upsert_batch(&actor, &org, items, None)
            .await
            .map_err(|e| anyhow!("upsert: {e}"))?;
        for a in answers {
            if a["status"] != "applied" {
                bail!("unexpected answer {a}");
            }
            bases.push(a["server_ts"].as_str().unwrap_or_default().to_string());
        }
    }
    Ok(bases)
}

async fn update_all(sync: OfflineSync, org: String, bases: Vec<String>, args: SyncArgs) -> Result<()> {
    let actor = Principal::system("bench");
    let now = dartwing_core::Timestamp::now().to_string();
    let stale_every = if args.conflict_pct == 0 {
        u32::MAX
    } else {
        100 / args.conflict_pct.min(100)
    };
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
        sync.upsert_batch(&actor, &org, items, None)
            .await
            .map_err(|e| anyhow!("upsert: {e}"))?;
    }
    Ok(())
}

async fn read_feed(sync: OfflineSync, org: String) -> Result<u64> {
    let actor = Principal::system("bench");
    let mut rows = 0u64;
    let mut since = None;
    loop {
        let page = sync
            .feed(
                &actor,
                &FeedRequest {
                    org: org.clone(),
                    doctype: Some("Task".into()),
                    since: since.take(),
                    limit: Some(500),
                },
            )
            .await
            .map_err(|e| anyhow!("feed: {e}"))?;
        rows += page.rows.len() as u64;
        since = Some(page.next_since);
        if !page.has_more {
            return Ok(rows);
        }
    }
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
            let _: (String, String, String, i64, String, i64) = (
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
