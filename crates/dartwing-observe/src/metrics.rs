//! The metrics registry of one node: families built from [`crate::catalog`] specs, bounded tenant
//! labels, and Prometheus text exposition.

use crate::catalog::{self, MetricSpec, OTHER_LABEL_VALUE};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, RwLock};

/// Callback run before each scrape to refresh sampled gauges (e.g. pool usage).
pub type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// The node's metric registry and the families shared by every capability.
pub struct Metrics {
    registry: Registry,
    enabled: bool,
    org_values: RwLock<HashSet<String>>,
    max_org_values: usize,
    scrape_hooks: Mutex<Vec<ScrapeHook>>,
    /// HTTP families.
    pub http: HttpMetrics,
    /// Database families.
    pub db: DbMetrics,
}

/// HTTP request metrics (SPEC §9).
pub struct HttpMetrics {
    /// `http_requests_total`.
    pub requests_total: IntCounterVec,
    /// `http_request_duration_seconds`.
    pub request_duration: HistogramVec,
    /// `http_request_size_bytes`.
    pub request_size: HistogramVec,
    /// `http_response_size_bytes`.
    pub response_size: HistogramVec,
    /// `http_active_requests`.
    pub active_requests: IntGauge,
}

/// Database metrics (SPEC §9).
pub struct DbMetrics {
    /// `db_queries_total`.
    pub queries_total: IntCounterVec,
    /// `db_query_duration_seconds`.
    pub query_duration: HistogramVec,
    /// `db_connections_active`.
    pub connections_active: IntGauge,
    /// `db_connections_pool_size`.
    pub pool_size: IntGauge,
    /// `db_slow_queries_total`.
    pub slow_queries_total: IntCounterVec,
}

/// A metric could not be registered (a programming error: duplicate name or bad spec).
#[derive(Debug)]
pub struct RegistrationError(String);

impl std::fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "metric registration failed: {}", self.0)
    }
}

impl std::error::Error for RegistrationError {}

impl From<prometheus::Error> for RegistrationError {
    fn from(e: prometheus::Error) -> Self {
        Self(e.to_string())
    }
}

impl Metrics {
    /// A registry with the shared families and process metrics. `enabled = false` keeps the
    /// families but asks recorders to skip their work (to measure the cost of metrics).
    pub fn new(enabled: bool, max_org_values: usize) -> Result<Self, RegistrationError> {
        let registry = Registry::new();
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let http = HttpMetrics {
            requests_total: register_counter(&registry, &catalog::HTTP_REQUESTS_TOTAL)?,
            request_duration: register_histogram(&registry, &catalog::HTTP_REQUEST_DURATION_SECONDS)?,
            request_size: register_histogram(&registry, &catalog::HTTP_REQUEST_SIZE_BYTES)?,
            response_size: register_histogram(&registry, &catalog::HTTP_RESPONSE_SIZE_BYTES)?,
            active_requests: register_plain_gauge(&registry, &catalog::HTTP_ACTIVE_REQUESTS)?,
        };
        let db = DbMetrics {
            queries_total: register_counter(&registry, &catalog::DB_QUERIES_TOTAL)?,
            query_duration: register_histogram(&registry, &catalog::DB_QUERY_DURATION_SECONDS)?,
            connections_active: register_plain_gauge(&registry, &catalog::DB_CONNECTIONS_ACTIVE)?,
            pool_size: register_plain_gauge(&registry, &catalog::DB_CONNECTIONS_POOL_SIZE)?,
            slow_queries_total: register_counter(&registry, &catalog::DB_SLOW_QUERIES_TOTAL)?,
        };
        let log_lines_dropped =
            register_counter(&registry, &catalog::LOG_LINES_DROPPED_TOTAL)?.with_label_values::<&str>(&[]);
        let sync_log_lines_dropped: ScrapeHook = Box::new(move || {
            let dropped = crate::logging::dropped_lines();
            log_lines_dropped.inc_by(dropped.saturating_sub(log_lines_dropped.get()));
        });
        Ok(Self {
            registry,
            enabled,
            org_values: RwLock::new(HashSet::new()),
            max_org_values,
            scrape_hooks: Mutex::new(vec![sync_log_lines_dropped]),
            http,
            db,
        })
    }

    /// Whether recorders should record.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Registers a counter family from its catalog spec (for capability crates).
    pub fn counter(&self, spec: &MetricSpec) -> Result<IntCounterVec, RegistrationError> {
        register_counter(&self.registry, spec)
    }

    /// Registers a gauge family from its catalog spec.
    pub fn gauge(&self, spec: &MetricSpec) -> Result<IntGaugeVec, RegistrationError> {
        let gauge = IntGaugeVec::new(Opts::new(spec.name, spec.help), spec.labels)?;
        self.registry.register(Box::new(gauge.clone()))?;
        Ok(gauge)
    }

    /// Registers a histogram family from its catalog spec.
    pub fn histogram(&self, spec: &MetricSpec) -> Result<HistogramVec, RegistrationError> {
        register_histogram(&self.registry, spec)
    }

    /// Runs `hook` before every scrape.
    pub fn on_scrape(&self, hook: ScrapeHook) {
        if let Ok(mut hooks) = self.scrape_hooks.lock() {
            hooks.push(hook);
        }
    }

    /// The label value for a tenant: the organization itself (cut to [`MAX_ORG_LABEL_BYTES`])
    /// while fewer than the configured number of distinct values have been seen, else `other`.
    /// Keeps series bounded in number and size. Callers pass only organizations that exist and
    /// that the actor was authorized for.
    pub fn org_label<'a>(&self, organization: &'a str) -> Cow<'a, str> {
        let organization = truncate(organization, MAX_ORG_LABEL_BYTES);
        if organization.is_empty() {
            return Cow::Borrowed("");
        }
        if self.org_values.read().is_ok_and(|seen| seen.contains(organization)) {
            return Cow::Borrowed(organization);
        }
        match self.org_values.write() {
            Ok(mut seen) if seen.len() < self.max_org_values => {
                seen.insert(organization.to_string());
                Cow::Borrowed(organization)
            }
            _ => Cow::Borrowed(OTHER_LABEL_VALUE),
        }
    }

    /// Whether `organization` already has its own label value, or the budget of distinct values
    /// is spent (so [`Metrics::org_label`] would answer `other` without taking it): either way
    /// recording it cannot add a new value.
    pub fn org_label_settled(&self, organization: &str) -> bool {
        let organization = truncate(organization, MAX_ORG_LABEL_BYTES);
        self.org_values
            .read()
            .is_ok_and(|seen| seen.contains(organization) || seen.len() >= self.max_org_values)
    }

    /// The registry in Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        if let Ok(hooks) = self.scrape_hooks.lock() {
            for hook in hooks.iter() {
                hook();
            }
        }
        let mut buffer = Vec::with_capacity(16 * 1024);
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %error, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Content type of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

/// Longest value of an `org` label, in bytes.
pub const MAX_ORG_LABEL_BYTES: usize = 64;

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn register_counter(registry: &Registry, spec: &MetricSpec) -> Result<IntCounterVec, RegistrationError> {
    let counter = IntCounterVec::new(Opts::new(spec.name, spec.help), spec.labels)?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn register_histogram(registry: &Registry, spec: &MetricSpec) -> Result<HistogramVec, RegistrationError> {
    let opts = HistogramOpts::new(spec.name, spec.help).buckets(spec.buckets.to_vec());
    let histogram = HistogramVec::new(opts, spec.labels)?;
    registry.register(Box::new(histogram.clone()))?;
    Ok(histogram)
}

fn register_plain_gauge(registry: &Registry, spec: &MetricSpec) -> Result<IntGauge, RegistrationError> {
    let gauge = IntGauge::new(spec.name, spec.help)?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_labels_fold_into_other_beyond_the_budget() -> Result<(), RegistrationError> {
        let metrics = Metrics::new(true, 2)?;
        assert_eq!(metrics.org_label("ORG-1"), "ORG-1");
        assert_eq!(metrics.org_label("ORG-2"), "ORG-2");
        assert_eq!(metrics.org_label("ORG-3"), OTHER_LABEL_VALUE);
        assert_eq!(metrics.org_label("ORG-1"), "ORG-1");
        assert!(metrics.org_label_settled("ORG-1") && metrics.org_label_settled("ORG-9"));
        Ok(())
    }

    #[test]
    fn org_labels_are_cut_to_64_bytes_and_count_toward_the_budget() -> Result<(), RegistrationError> {
        let metrics = Metrics::new(true, 2)?;
        let long = "é".repeat(100);
        let label = metrics.org_label(&long).into_owned();
        assert!(label.len() <= MAX_ORG_LABEL_BYTES && label.len() >= MAX_ORG_LABEL_BYTES - 1);
        assert!(long.starts_with(&label));
        assert!(metrics.org_label_settled(&long), "the cut value is tracked");
        assert!(!metrics.org_label_settled("ORG-1"));
        assert_eq!(metrics.org_label("ORG-1"), "ORG-1");
        assert_eq!(
            metrics.org_label(&"x".repeat(20_000)),
            OTHER_LABEL_VALUE,
            "budget of 2 spent"
        );
        Ok(())
    }

    #[test]
    fn render_lists_every_catalog_family() -> Result<(), RegistrationError> {
        let metrics = Metrics::new(true, 10)?;
        metrics
            .http
            .requests_total
            .with_label_values(&["GET", "/health", "200", ""])
            .inc();
        metrics
            .http
            .request_duration
            .with_label_values(&["GET", "/health"])
            .observe(0.01);
        metrics
            .http
            .request_size
            .with_label_values(&["GET", "/health"])
            .observe(0.0);
        metrics
            .http
            .response_size
            .with_label_values(&["GET", "/health"])
            .observe(10.0);
        metrics
            .db
            .queries_total
            .with_label_values(&["Organization", "select"])
            .inc();
        metrics
            .db
            .query_duration
            .with_label_values(&["Organization", "select"])
            .observe(0.001);
        metrics
            .db
            .slow_queries_total
            .with_label_values(&["Organization", "select"])
            .inc();
        let text = metrics.render();
        // Capability families are registered by their crates; the end-to-end catalog test covers them.
        for spec in catalog::ALL
            .iter()
            .filter(|s| s.name.starts_with("http_") || s.name.starts_with("db_"))
        {
            assert!(
                text.contains(&format!("# TYPE {} {}", spec.name, spec.kind.as_str())),
                "{}",
                spec.name
            );
        }
        Ok(())
    }
}

/// A label whose values come from outside (event names, provider keys…): the first `max`
/// distinct values are kept, later ones are reported as `other`, so series stay bounded.
#[derive(Debug)]
pub struct BoundedLabel {
    max: usize,
    seen: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl BoundedLabel {
    /// A label keeping at most `max` distinct values.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: std::sync::RwLock::default(),
        }
    }

    /// The value to record for `value`.
    pub fn value<'a>(&self, value: &'a str) -> Cow<'a, str> {
        if self.seen.read().is_ok_and(|seen| seen.contains(value)) {
            return Cow::Borrowed(value);
        }
        match self.seen.write() {
            Ok(mut seen) if seen.len() < self.max => {
                seen.insert(value.to_string());
                Cow::Borrowed(value)
            }
            _ => Cow::Borrowed(OTHER_LABEL_VALUE),
        }
    }
}
