//! `dartwing-bench vault`: the token vault's `access_token` hot path (a valid stored token:
//! one indexed row read + AES-256-GCM decrypt) next to a bare decrypt of the same ciphertext in
//! the same run, and a thundering herd of callers hitting an expiring token at once.

use crate::stats::percentile;
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
    herd's p50/p99 and the number of provider calls (goal: 1).";

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
}

/// One backend's figures.
struct Figures {
    backend: &'static str,
    hot_p50_us: u32,
    hot_p99_us: u32,
    hot_calls_per_s: f64,
    aead_p50_us: f64,
    aead_p99_us: f64,
    aead_calls_per_s: f64,
    herd_p50_ms: f64,
    herd_p99_ms: f64,
    herd_provider_calls: u32,
}

/// Runs the benchmark and prints the table.
pub async fn run(args: VaultArgs) -> Result<()> {
    if args.calls == 0 || args.concurrency == 0 || args.herd == 0 {
        bail!("--calls, --concurrency and --herd must be at least 1");
    }
    let provider = start_provider(args.provider_delay_ms).await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# dartwing-bench vault");
    println!(
        "{cores}-core machine shared with the database; in process; metrics on; {} calls per hot-path measurement, \
         {} tasks for calls/s; herd of {} callers, provider token endpoint {} ms per call.",
        args.calls, args.concurrency, args.herd, args.provider_delay_ms
    );
    let mut all = Vec::new();
    let dir = tempfile::tempdir()?;
    let sqlite = Db::sqlite_url_in(dir.path());
    all.push(measure("SQLite", &sqlite, dir.path(), &args, &provider).await?);
    if let Some(admin) = &args.database_url {
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
        let result = measure("PostgreSQL", &url, dir.path(), &args, &provider).await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        all.push(result?);
    }
    println!();
    println!(
        "| Backend | access_token p50 | p99 | calls/s ({} tasks) | bare AEAD decrypt p50 | p99 | calls/s (1 task) | hot path / decrypt (p50) | herd of {} p50 | p99 | provider calls |",
        args.concurrency, args.herd
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in all {
        println!(
            "| {} | {} µs | {} µs | {:.0} | {:.2} µs | {:.2} µs | {:.0} | {:.0}× | {:.1} ms | {:.1} ms | {} |",
            f.backend,
            f.hot_p50_us,
            f.hot_p99_us,
            f.hot_calls_per_s,
            f.aead_p50_us,
            f.aead_p99_us,
            f.aead_calls_per_s,
            f64::from(f.hot_p50_us) / f.aead_p50_us.max(0.001),
            f.herd_p50_ms,
            f.herd_p99_ms,
            f.herd_provider_calls
        );
    }
    Ok(())
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
        latencies.push(started.elapsed().as_micros() as u32);
        std::hint::black_box(token);
    }
    latencies.sort_unstable();
    // V1: throughput from concurrent tasks.
    let per_task = args.calls / args.concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (vault, org) = (vault.clone(), org.clone());
            tokio::spawn(async move {
                for _ in 0..per_task {
                    vault.access_token("Bench", &org).await?;
                }
                Ok::<_, dartwing_core::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?.map_err(fail)?;
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
        hot_p50_us: percentile(&latencies, 50.0),
        hot_p99_us: percentile(&latencies, 99.0),
        hot_calls_per_s,
        aead_p50_us: f64::from(percentile(&aead, 50.0)) / 1000.0,
        aead_p99_us: f64::from(percentile(&aead, 99.0)) / 1000.0,
        aead_calls_per_s: f64::from(args.calls) / (total_ns as f64 / 1e9),
        herd_p50_ms: f64::from(percentile(&herd, 50.0)) / 1000.0,
        herd_p99_ms: f64::from(percentile(&herd, 99.0)) / 1000.0,
        herd_provider_calls,
    })
}
