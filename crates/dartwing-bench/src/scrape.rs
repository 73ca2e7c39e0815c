//! `dartwing-bench scrape`: how long one `/metrics` rendering takes when 10,000 organizations have
//! produced series, with the default bound on `org` label values and without it.

use anyhow::{Result, anyhow, ensure};
use clap::Args;
use dartwing_observe::Metrics;
use dartwing_observe::catalog;
use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

/// Long help of the subcommand.
pub const LONG_ABOUT: &str = "Fills a metrics registry the way a node serving many tenants would — HTTP \
requests on 6 routes × 3 statuses, jobs enqueued and completed on 3 queues, per-organization job counts — \
for N organizations, then times rendering the Prometheus exposition (what every scrape pays). Runs with \
the default label bound (observability.max_org_label_values = 500) and with a bound of N (no bounding), \
and prints series counts, exposition size and render time (median of the repetitions). Every rendering is \
checked: no series twice, every recorded request counted (under its organization or `other`), at most the \
bound of distinct organizations. --quick: 200 organizations, a bound of 50, 3 repetitions (seconds; no \
timing asserted).";

/// Arguments of `dartwing-bench scrape`.
#[derive(Debug, Args)]
pub struct ScrapeArgs {
    /// Organizations that produce series.
    #[arg(long, default_value_t = 10_000)]
    organizations: usize,
    /// Renderings timed per configuration.
    #[arg(long, default_value_t = 21)]
    repetitions: usize,
    /// Distinct organization label values of the bounded configuration.
    #[arg(long, default_value_t = 500)]
    bound: usize,
    /// Tiny sizes (see the long help); overrides the sizes given.
    #[arg(long)]
    quick: bool,
}

struct Outcome {
    series: usize,
    bytes: usize,
    median_ms: f64,
    p90_ms: f64,
}

/// HTTP request series recorded per organization: 6 routes × 3 statuses, one request each.
const REQUESTS_PER_ORGANIZATION: u64 = 6 * 3;

/// Checks one rendering of `organizations` organizations under a bound of `bound` label values:
/// no series appears twice, every recorded request is counted (under its organization or the
/// overflow value), and there are at most `bound` organizations plus the overflow value.
fn check(text: &str, requests_family: &str, organizations: usize, bound: usize) -> Result<()> {
    let mut series = HashSet::new();
    let mut orgs = BTreeSet::new();
    let mut requests = 0u64;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (key, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow!("malformed exposition line {line:?}"))?;
        ensure!(series.insert(key), "series {key} appears twice");
        if let Some(org) = key.split("org=\"").nth(1).and_then(|rest| rest.split('"').next()) {
            orgs.insert(org);
        }
        if key.starts_with(&format!("{requests_family}{{")) {
            requests += value
                .parse::<u64>()
                .map_err(|_| anyhow!("counter value {value:?} of {key}"))?;
        }
    }
    let expected = organizations as u64 * REQUESTS_PER_ORGANIZATION;
    ensure!(requests == expected, "{requests} requests counted, {expected} recorded");
    let overflow = usize::from(orgs.contains(catalog::OTHER_LABEL_VALUE));
    ensure!(
        orgs.len() - overflow <= bound,
        "{} organization label values exceed the bound of {bound}",
        orgs.len() - overflow
    );
    let own = organizations.min(bound);
    ensure!(
        orgs.len() - overflow == own && overflow == usize::from(organizations > bound),
        "expected {own} organizations with their own label value{}, found {} ({} overflow)",
        if organizations > bound { " and `other`" } else { "" },
        orgs.len() - overflow,
        overflow
    );
    Ok(())
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
    let requests_family = catalog::HTTP_REQUESTS_TOTAL.name;
    let mut times = Vec::with_capacity(repetitions);
    let mut text = String::new();
    for _ in 0..repetitions.max(1) {
        let started = Instant::now();
        text = metrics.render();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        check(&text, requests_family, organizations, bound)?;
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
    let args = if args.quick {
        ScrapeArgs {
            organizations: 200,
            repetitions: 3,
            bound: 50,
            quick: true,
        }
    } else {
        args
    };
    let n = args.organizations;
    println!("| {n} organizations | series | exposition | render median | render p90 |");
    println!("|---|---|---|---|---|");
    let bounded = format!("bound of {} org values", args.bound);
    for (label, bound) in [(bounded.as_str(), args.bound), ("unbounded", n.max(1))] {
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
