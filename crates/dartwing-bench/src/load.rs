//! The load generator: `concurrency` tasks looping one GET over keep-alive connections for a
//! warm-up and then a measured window; each records the latency of every request that
//! completed inside the window.

use anyhow::{Context, Result};
use std::time::{Duration, Instant};

/// What one measured window produced.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Latencies of the 200 responses completed in the window, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Non-200 responses and transport errors completed in the window.
    pub errors: u64,
    /// The first few error descriptions, for the report.
    pub error_samples: Vec<String>,
    /// Length of the measured window.
    pub window: Duration,
}

/// A keep-alive HTTP client sized for `concurrency` connections to one host.
pub fn client(concurrency: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")
}

/// Runs `concurrency` tasks GETting `url` with `Authorization: Bearer <token>` for `warmup`
/// plus `duration`, and returns what completed in the last `duration`.
pub async fn run(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult> {
    let authorization = format!("Bearer {token}");
    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + duration;
    let expected = (duration.as_secs() as usize).saturating_mul(20_000) / concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        let authorization = authorization.clone();
        tasks.spawn(async move {
            let mut part = LoadResult {
                latencies_us: Vec::with_capacity(expected),
                ..Default::default()
            };
            loop {
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                let outcome = match client
                    .get(&url)
                    .header(reqwest::header::AUTHORIZATION, &authorization)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                            Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
                            Err(e) => Err(format!("{status}, body: {e}")),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                let done = Instant::now();
                if done < measure_from || done > measure_until {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        let micros = done.duration_since(sent).as_micros();
                        part.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                    Err(error) => {
                        part.errors += 1;
                        if part.error_samples.len() < 3 {
                            part.error_samples.push(error);
                        }
                    }
                }
            }
            part
        });
    }
    let mut total = LoadResult {
        window: duration,
        ..Default::default()
    };
    while let Some(part) = tasks.join_next().await {
        let part = part.context("a load task failed")?;
        total.latencies_us.extend(part.latencies_us);
        total.errors += part.errors;
        for sample in part.error_samples {
            if total.error_samples.len() < 5 {
                total.error_samples.push(sample);
            }
        }
    }
    Ok(total)
}
