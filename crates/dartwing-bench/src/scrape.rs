//! `dartwing-bench scrape`: how long one `/metrics` rendering takes when 10,000 organizations have
//! produced series, with the default bound on `org` label values and without it.

use anyhow::{Result, anyhow};
use clap::Args;
use dartwing_observe::Metrics;
use dartwing_observe::catalog;
use std::time::Instant;

/// Long help of the subcommand.
pub const LONG_ABOUT: &str = "Fills a metrics registry the way a node serving many tenants would — HTTP \
requests on 6 routes × 3 statuses, jobs enqueued and completed on 3 queues, per-organization job counts — \
for N organizations, then times rendering the Prometheus exposition (what every scrape pays). Runs with \
the default label bound (observability.max_org_label_values = 500) and with a bound of N (no bounding), \
and prints series counts, exposition size and render time (median of the repetitions).";

/// Arguments of `dartwing-bench scrape`.
#[derive(Debug, Args)]
pub struct ScrapeArgs {
    /// Organizations that produce series.
    #[arg(long, default_value_t = 10_000)]
    organizations: usize,
    /// Renderings timed per configuration.
    #[arg(long, default_value_t = 21)]
    repetitions: usize,
}

struct Outcome {
    series: usize,
    bytes: usize,
    median_ms: f64,
    p90_ms: f64,
}

fn measure(organizations: usize, bound: usize, repetitions: usize) -> Result<Outcome> {
    let metrics = Metrics::new(true, bound).map_err(|e| anyhow!(e.to_string()))?;
    let requests = metrics.http.requests_total.clone();
    let durations = metrics.http.request_duration.clone();
    let enqueued = metrics
        .counter(&catalog::JOBS_ENQUEUED_TOTAL)
        .map_err(|e| anyhow!(e.to_string()))?;
    let completed = metrics
        .counter(&catalog::JOBS_COMPLETED_TOTAL)
        .map_err(|e| anyhow!(e.to_string()))?;
    let org_jobs = metrics
        .gauge(&catalog::ORG_JOB_COUNT)
        .map_err(|e| anyhow!(e.to_string()))?;
    let routes = [
        "/api/resource/{doctype}",
        "/api/resource/{doctype}/{name}",
        "/api/method/dartwing_core.jobs.enqueue",
        "/api/method/dartwing_core.sync.feed",
        "/api/method/dartwing_core.sync.upsert_batch",
        "/api/method/dartwing_core.integrations.get_access_token",
    ];
    for index in 0..organizations {
        let organization = format!("ORG-2026-{index:05}");
        let org = metrics.org_label(&organization);
        for route in routes {
            for status in ["200", "403", "422"] {
                requests.with_label_values(&["GET", route, status, &org]).inc();
            }
            durations.with_label_values(&["GET", route]).observe(0.004);
        }
        for queue in ["critical", "default", "bulk"] {
            enqueued.with_label_values(&[queue, "core.noop", &org]).inc();
            completed
                .with_label_values(&[queue, "core.noop", &org, "Completed"])
                .inc();
            org_jobs.with_label_values(&[&org, queue]).set(1);
        }
    }
    let mut times = Vec::with_capacity(repetitions);
    let mut text = String::new();
    for _ in 0..repetitions.max(1) {
        let started = Instant::now();
        text = metrics.render();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(Outcome {
        series: text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count(),
        bytes: text.len(),
        median_ms: times[times.len() / 2],
        p90_ms: times[(times.len() * 9 / 10).min(times.len() - 1)],
    })
}

/// Runs the measurement and prints a Markdown table.
pub async fn run(args: ScrapeArgs) -> Result<()> {
    let n = args.organizations;
    println!("| {n} organizations | series | exposition | render median | render p90 |");
    println!("|---|---|---|---|---|");
    for (label, bound) in [("default bound (500 org values)", 500), ("unbounded", n.max(1))] {
        let outcome = tokio::task::spawn_blocking(move || measure(n, bound, args.repetitions)).await??;
        println!(
            "| {label} | {} | {:.1} MiB | {:.1} ms | {:.1} ms |",
            outcome.series,
            outcome.bytes as f64 / (1024.0 * 1024.0),
            outcome.median_ms,
            outcome.p90_ms
        );
    }
    Ok(())
}
