//! `dartwing-bench vault`: the token vault's `access_token` hot path (a valid stored token:
//! one indexed row read + AES-256-GCM decrypt) next to a bare decrypt of the same ciphertext in
//! the same run, and a thundering herd of callers hitting an expiring token at once.

use crate::stats::{median, percentile};
use anyhow::{Context, Result, bail};
use axum::routing::post;
use dartwing_core::Principal;
use dartwing_core::config::{Config, ProviderConfig};
use dartwing_core::publish::NoopPublisher;
use dartwing_core::tenancy::OrgType;
use dartwing_db::Db;
use dartwing_integrations::keyring::{Field, KeyRing, generate_key};
use dartwing_integrations::{TokenGrant, TokenVault};
use dartwing_observe::Metrics;
use dartwing_tenancy::{NewOrganization, TenancyStore};
use sqlx::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `--help` text of the `vault` subcommand.
pub const LONG_ABOUT: &str = "\
Token vault, in process through dartwing-integrations, on SQLite (temporary file) and PostgreSQL
(fresh schema, when --database-url is given).

V1  hot path: TokenVault::access_token of a valid stored token (row read + AES-256-GCM decrypt),
    --calls sequential calls for p50/p99, then --calls calls from --concurrency tasks for calls/s.
    Reference in the same run: a bare AEAD decrypt of the same ciphertext (p50/p99, calls/s on 1 task).
V2  thundering herd: a token inside the refresh buffer and --herd callers at once; the provider's
    token endpoint (served by this program, --provider-delay-ms per call) counts calls; reports the
    herd's p50/p99 and the number of provider calls (goal: 1).

Each backend is measured --runs times (fresh database each time) and the medians are reported.
Every answer is checked against the stored token.

--quick: one run with 200 calls, 2 tasks and a herd of 20 (provider 10 ms), failing on any error,
wrong token or more than one provider call per herd; a check that the bench still works, not a
measurement (a debug build will do).";

/// Options of `dartwing-bench vault`.
#[derive(Debug, Clone, clap::Args)]
pub struct VaultArgs {
    /// PostgreSQL admin URL (a fresh schema is created and dropped); SQLite only when unset.
    #[arg(long, env = "DARTWING_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Calls per hot-path measurement.
    #[arg(long, default_value_t = 20_000)]
    calls: u32,
    /// Concurrent tasks of the throughput measurement.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// Callers of the thundering-herd measurement.
    #[arg(long, default_value_t = 1_000)]
    herd: u32,
    /// Latency of the test provider's token endpoint.
    #[arg(long, default_value_t = 100)]
    provider_delay_ms: u64,
    /// Measured runs per backend (medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// One small run that fails on any error (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
}

impl VaultArgs {
    /// The arguments of `--quick`.
    fn quickened(mut self) -> Self {
        if self.quick {
            self.calls = 200;
            self.concurrency = 2;
            self.herd = 20;
            self.provider_delay_ms = 10;
            self.runs = 1;
        }
        self
    }
}

/// One backend's figures.
struct Figures {
    backend: &'static str,
    hot_p50_us: f64,
    hot_p99_us: f64,
    hot_calls_per_s: f64,
    aead_p50_us: f64,
    aead_p99_us: f64,
    aead_calls_per_s: f64,
    herd_p50_ms: f64,
    herd_p99_ms: f64,
    herd_provider_calls: u32,
}

impl Figures {
    /// The medians of several runs of one backend (the largest provider-call count).
    fn median_of(runs: &[Figures]) -> Figures {
        let med = |get: fn(&Figures) -> f64| median(&runs.iter().map(get).collect::<Vec<_>>());
        Figures {
            backend: runs.first().map_or("", |f| f.backend),
            hot_p50_us: med(|f| f.hot_p50_us),
            hot_p99_us: med(|f| f.hot_p99_us),
            hot_calls_per_s: med(|f| f.hot_calls_per_s),
            aead_p50_us: med(|f| f.aead_p50_us),
            aead_p99_us: med(|f| f.aead_p99_us),
            aead_calls_per_s: med(|f| f.aead_calls_per_s),
            herd_p50_ms: med(|f| f.herd_p50_ms),
            herd_p99_ms: med(|f| f.herd_p99_ms),
            herd_provider_calls: runs.iter().map(|f| f.herd_provider_calls).max().unwrap_or(0),
        }
    }
}

/// Runs the benchmark and prints the table.
pub async fn run(args: VaultArgs) -> Result<()> {
    let args = args.quickened();
    if args.calls == 0 || args.concurrency == 0 || args.herd == 0 {
        bail!("--calls, --concurrency and --herd must be at least 1");
    }
    let provider = start_provider(args.provider_delay_ms).await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# dartwing-bench vault");
    println!(
        "{cores}-core machine shared with the database; in process; metrics on; {} calls per hot-path measurement, \
         {} tasks for calls/s; herd of {} callers, provider token endpoint {} ms per call; medians of {} run(s).",
        args.calls, args.concurrency, args.herd, args.provider_delay_ms, args.runs
    );
    let mut sqlite_runs = Vec::new();
    let mut postgres_runs = Vec::new();
    for _ in 0..args.runs {
        let dir = tempfile::tempdir()?;
        let sqlite = Db::sqlite_url_in(dir.path());
        sqlite_runs.push(measure("SQLite", &sqlite, dir.path(), &args, &provider).await?);
        if let Some(admin) = &args.database_url {
            postgres_runs.push(measure_postgres(admin, dir.path(), &args, &provider).await?);
        }
    }
    let mut all = vec![Figures::median_of(&sqlite_runs)];
    if !postgres_runs.is_empty() {
        all.push(Figures::median_of(&postgres_runs));
    }
    if args.quick
        && let Some(f) = all.iter().find(|f| f.herd_provider_calls != 1)
    {
        bail!(
            "{}: the herd caused {} provider calls, not 1",
            f.backend,
            f.herd_provider_calls
        );
    }
    print_table(&all, &args);
    Ok(())
}

/// [`measure`] in a fresh schema of the PostgreSQL database at `admin`, dropped afterwards.
async fn measure_postgres(
    admin: &str,
    dir: &std::path::Path,
    args: &VaultArgs,
    provider: &Provider,
) -> Result<Figures> {
    let schema = format!("dw_vault_bench_{}", dartwing_core::ids::random_hex(4));
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await?;
    let separator = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{separator}options=-c%20search_path%3D{schema}");
    let result = measure("PostgreSQL", &url, dir, args, provider).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await?;
    result
}

fn print_table(all: &[Figures], args: &VaultArgs) {
    println!();
    println!(
        "| Backend | access_token p50 | p99 | calls/s ({} tasks) | bare AEAD decrypt p50 | p99 | calls/s (1 task) | hot path / decrypt (p50) | herd of {} p50 | p99 | provider calls |",
        args.concurrency, args.herd
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in all {
        println!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} | {:.2} µs | {:.2} µs | {:.0} | {:.0}× | {:.1} ms | {:.1} ms | {} |",
            f.backend,
            f.hot_p50_us,
            f.hot_p99_us,
            f.hot_calls_per_s,
            f.aead_p50_us,
            f.aead_p99_us,
            f.aead_calls_per_s,
            f.hot_p50_us / f.aead_p50_us.max(0.001),
            f.herd_p50_ms,
            f.herd_p99_ms,
            f.herd_provider_calls
        );
    }
}

struct Provider {
    token_url: String,
    calls: Arc<AtomicU32>,
}

async fn start_provider(delay_ms: u64) -> Result<Provider> {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/token",
        post(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                axum::Json(serde_json::json!({
                    "access_token": format!("bench-access-{n}"), "token_type": "Bearer", "expires_in": 3600
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let token_url = format!("http://{}/token", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Provider { token_url, calls })
}

async fn measure(
    backend: &'static str,
    url: &str,
    dir: &std::path::Path,
    args: &VaultArgs,
    provider: &Provider,
) -> Result<Figures> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.database.max_connections = 10;
    config.integrations.providers.insert(
        "Bench".into(),
        ProviderConfig {
            client_id: "bench".into(),
            auth_url: Some("http://127.0.0.1:9/authorize".into()),
            token_url: Some(provider.token_url.clone()),
            ..Default::default()
        },
    );
    let metrics = Arc::new(Metrics::new(true, 500).map_err(|e| anyhow::anyhow!(e.to_string()))?);
    let db = Db::connect(url, &config.database, Some(metrics.clone())).await?;
    db.migrate(crate::MIGRATIONS).await?;
    let tenancy = TenancyStore::new(db.clone());
    let operator = Principal::system("bench");
    let org = tenancy
        .create_organization(
            &operator,
            NewOrganization {
                name: None,
                org_name: "Bench".into(),
                org_type: OrgType::Company,
                status: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?
        .name;
    let keys = KeyRing::new(&[generate_key()])?;
    let directory = Arc::new(TenancyStore::new(db.clone()));
    let jobs = dartwing_jobs::Jobs::new(dartwing_jobs::JobsDeps {
        db: db.clone(),
        config: config.jobs.clone(),
        production: false,
        publisher: Arc::new(NoopPublisher),
        directory: directory.clone(),
        access: dartwing_core::access::AccessChanges::new(),
        metrics: metrics.clone(),
    })
    .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let vault = TokenVault::with_keys(
        &config,
        "bench",
        dartwing_integrations::VaultDeps {
            db: db.clone(),
            publisher: Arc::new(NoopPublisher),
            directory,
            enqueuer: Arc::new(jobs),
            metrics,
        },
        keys.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let plaintext = "ya29.bench-access-token-with-a-realistic-length-0123456789abcdefghijklmnopqrstuvwxyz";
    let grant = |expires: u64| TokenGrant {
        access_token: plaintext.into(),
        refresh_token: Some("bench-refresh".into()),
        expires_in: Some(Duration::from_secs(expires)),
        scopes: None,
    };
    let fail = |e: dartwing_core::Error| anyhow::anyhow!(e.to_string());
    vault
        .store_tokens(&org, "Bench", &grant(3600), "bench")
        .await
        .map_err(fail)?;

    // V1: sequential latency.
    for _ in 0..200 {
        vault.access_token("Bench", &org).await.map_err(fail)?;
    }
    let mut latencies = Vec::with_capacity(args.calls as usize);
    for _ in 0..args.calls {
        let started = Instant::now();
        let token = vault.access_token("Bench", &org).await.map_err(fail)?;
        latencies.push(started.elapsed().as_nanos() as u32);
        if token.access_token != plaintext {
            bail!("access_token answered another token");
        }
    }
    latencies.sort_unstable();
    // V1: throughput from concurrent tasks.
    let per_task = args.calls / args.concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (vault, org) = (vault.clone(), org.clone());
            tokio::spawn(async move {
                let mut wrong = 0u32;
                for _ in 0..per_task {
                    wrong += u32::from(vault.access_token("Bench", &org).await?.access_token != plaintext);
                }
                Ok::<_, dartwing_core::Error>(wrong)
            })
        })
        .collect();
    for task in tasks {
        if task.await?.map_err(fail)? > 0 {
            bail!("access_token answered another token under concurrency");
        }
    }
    let hot_calls_per_s = f64::from(per_task * args.concurrency) / started.elapsed().as_secs_f64();

    // Reference: bare AEAD decrypt of the same ciphertext.
    let row = vault.store().get(&org, "Bench").await.map_err(fail)?.context("row")?;
    let sealed = row.access_token.context("sealed")?;
    let mut aead = Vec::with_capacity(args.calls as usize);
    for _ in 0..args.calls {
        let started = Instant::now();
        let plain = keys.decrypt(&org, "Bench", Field::AccessToken, &sealed)?;
        aead.push(started.elapsed().as_nanos() as u32);
        std::hint::black_box(plain);
    }
    let total_ns: u64 = aead.iter().map(|n| u64::from(*n)).sum();
    aead.sort_unstable();

    // V2: thundering herd at expiry.
    vault
        .store_tokens(&org, "Bench", &grant(60), "bench")
        .await
        .map_err(fail)?;
    let before = provider.calls.load(Ordering::SeqCst);
    let barrier = Arc::new(tokio::sync::Barrier::new(args.herd as usize));
    let callers: Vec<_> = (0..args.herd)
        .map(|_| {
            let (vault, org, barrier) = (vault.clone(), org.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                vault.access_token("Bench", &org).await?;
                Ok::<_, dartwing_core::Error>(started.elapsed().as_micros() as u32)
            })
        })
        .collect();
    let mut herd = Vec::with_capacity(args.herd as usize);
    for caller in callers {
        herd.push(caller.await?.map_err(fail)?);
    }
    herd.sort_unstable();
    let herd_provider_calls = provider.calls.load(Ordering::SeqCst) - before;
    println!("{backend}: done");
    Ok(Figures {
        backend,
        hot_p50_us: f64::from(percentile(&latencies, 50.0)) / 1000.0,
        hot_p99_us: f64::from(percentile(&latencies, 99.0)) / 1000.0,
        hot_calls_per_s,
        aead_p50_us: f64::from(percentile(&aead, 50.0)) / 1000.0,
        aead_p99_us: f64::from(percentile(&aead, 99.0)) / 1000.0,
        aead_calls_per_s: f64::from(args.calls) / (total_ns as f64 / 1e9),
        herd_p50_ms: f64::from(percentile(&herd, 50.0)) / 1000.0,
        herd_p99_ms: f64::from(percentile(&herd, 99.0)) / 1000.0,
        herd_provider_calls,
    })
}
