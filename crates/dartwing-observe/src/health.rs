//! Health checks: each dependency reports ok or a failure with latency and detail; the node is
//! healthy when every check passes (SPEC §9).

use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One dependency's check.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Name in the report, e.g. `database`.
    fn name(&self) -> &'static str;
    /// `Ok(detail)` when healthy, `Err(reason)` when not. Must not leak secrets.
    async fn check(&self) -> Result<String, String>;
    /// Whether the node can serve without this dependency. Readiness fails only when a
    /// dependency that is not optional fails (the database); an optional one (Redis, workers)
    /// only degrades it.
    fn optional_for_readiness(&self) -> bool {
        false
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// How long the check took.
    pub latency_ms: f64,
    /// What was found.
    pub detail: String,
    /// Whether the node stays ready while this check fails.
    #[serde(skip)]
    pub optional: bool,
}

/// The node's health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthReport {
    /// `ok` when every check passed, else `unhealthy`.
    pub status: &'static str,
    /// The reporting node.
    pub node_id: String,
    /// Per-dependency results.
    pub checks: BTreeMap<&'static str, CheckResult>,
}

impl HealthReport {
    /// Whether every check passed.
    pub fn healthy(&self) -> bool {
        self.status == "ok"
    }

    /// Readiness: `ok` when every check passed, `degraded` when only optional dependencies
    /// failed (the node still serves: e.g. Redis down means local-only realtime delivery),
    /// `unhealthy` when a required one failed. The HTTP status is 200 unless `unhealthy`.
    pub fn readiness(&self) -> &'static str {
        if self.healthy() {
            "ok"
        } else if self.checks.values().all(|c| c.status == "ok" || c.optional) {
            "degraded"
        } else {
            "unhealthy"
        }
    }
}

/// The set of checks of this node, run concurrently, each bounded by a timeout.
#[derive(Clone)]
pub struct Health {
    node_id: String,
    timeout: Duration,
    checks: Vec<Arc<dyn HealthCheck>>,
}

impl Health {
    /// No checks yet; each check may take at most `timeout`.
    pub fn new(node_id: impl Into<String>, timeout: Duration) -> Self {
        Self {
            node_id: node_id.into(),
            timeout,
            checks: Vec::new(),
        }
    }

    /// Adds a check.
    pub fn with_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs every check.
    pub async fn report(&self) -> HealthReport {
        let runs = self.checks.iter().map(|check| async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(self.timeout, check.check()).await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let (status, detail) = match outcome {
                Ok(Ok(detail)) => ("ok", detail),
                Ok(Err(reason)) => ("unhealthy", reason),
                Err(_) => ("unhealthy", format!("no answer within {} ms", self.timeout.as_millis())),
            };
            (
                check.name(),
                CheckResult {
                    status,
                    latency_ms,
                    detail,
                    optional: check.optional_for_readiness(),
                },
            )
        });
        let checks: BTreeMap<_, _> = futures::future::join_all(runs).await.into_iter().collect();
        let healthy = checks.values().all(|c| c.status == "ok");
        HealthReport {
            status: if healthy { "ok" } else { "unhealthy" },
            node_id: self.node_id.clone(),
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Result<&'static str, &'static str>, u64);

    #[async_trait]
    impl HealthCheck for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn check(&self) -> Result<String, String> {
            tokio::time::sleep(Duration::from_millis(self.2)).await;
            self.1.map(String::from).map_err(String::from)
        }
    }

    #[tokio::test]
    async fn one_failing_or_slow_check_makes_the_node_unhealthy() {
        let ok = Health::new("n", Duration::from_millis(200)).with_check(Arc::new(Fixed("db", Ok("up"), 0)));
        assert!(ok.report().await.healthy());
        let slow = ok.clone().with_check(Arc::new(Fixed("redis", Ok("up"), 1_000)));
        let report = slow.report().await;
        assert!(!report.healthy());
        assert_eq!(report.checks["redis"].status, "unhealthy");
        assert_eq!(report.checks["db"].status, "ok");
        let failing = ok.with_check(Arc::new(Fixed("workers", Err("none alive"), 0)));
        assert_eq!(failing.report().await.checks["workers"].detail, "none alive");
    }
}
