//! `[observability]`: metrics, logs and health.

use super::{ConfigErrors, Secret, Validate, text};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Metrics, logs and health settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Log filter in `tracing` syntax, e.g. `info` or `info,sqlx=warn`.
    #[serde(deserialize_with = "text::required")]
    pub log_level: String,
    /// `json` or `text`.
    pub log_format: LogFormat,
    /// Log one line per HTTP request.
    pub access_log: bool,
    /// Record metrics (turning it off is for measuring their cost).
    pub metrics_enabled: bool,
    /// When set, scraping metrics requires `Authorization: Bearer <token>`. Required in
    /// production mode unless `metrics_listen` is set.
    pub metrics_token: Option<Secret>,
    /// A listener of its own for `/metrics` (e.g. `127.0.0.1:9100`, reachable only by the
    /// scraper); metrics are then no longer served on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Distinct tenant values (`org` label) tracked per metric family before they fold into `other`.
    pub max_org_label_values: usize,
    /// A worker whose heartbeat is older than this is considered dead.
    pub worker_heartbeat_timeout_secs: u64,
    /// Time limit of each health check.
    pub health_check_timeout_ms: u64,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            log_format: LogFormat::Json,
            access_log: true,
            metrics_enabled: true,
            metrics_token: None,
            metrics_listen: None,
            max_org_label_values: 500,
            worker_heartbeat_timeout_secs: 60,
            health_check_timeout_ms: 2_000,
        }
    }
}

impl Validate for ObservabilityConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.max_org_label_values >= 1,
            "observability.max_org_label_values",
            "must be at least 1",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::reported_keys;
    use super::*;

    #[test]
    fn each_unusable_observability_value_is_reported_under_its_key() {
        assert_eq!(reported_keys(&ObservabilityConfig::default()), Vec::<String>::new());
        let section = ObservabilityConfig {
            max_org_label_values: 0,
            ..ObservabilityConfig::default()
        };
        assert_eq!(reported_keys(&section), ["observability.max_org_label_values"]);
    }
}
