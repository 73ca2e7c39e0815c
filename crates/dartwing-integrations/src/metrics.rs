//! Vault metrics (SPEC §6 and §9), created eagerly for every configured provider.

use crate::store::{IntegrationStatus, TokenCount, TokenExpiry};
use dartwing_observe::Metrics;
use dartwing_observe::catalog;
use dartwing_observe::metrics::RegistrationError;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Outcomes (`status`) of `integration_token_refresh_total`.
const REFRESH_RESULTS: [&str; 3] = ["success", "invalid_grant", "error"];
/// Operations of the provider call families.
const OPERATIONS: [&str; 3] = ["exchange", "refresh", "revoke"];

/// The vault's metric families.
#[derive(Clone)]
pub struct VaultMetrics {
    metrics: Arc<Metrics>,
    tokens: IntGaugeVec,
    refresh_total: IntCounterVec,
    refresh_latency: HistogramVec,
    expiring_soon: IntGaugeVec,
    token_expiry: IntGaugeVec,
    requests_total: IntCounterVec,
    duration: HistogramVec,
    circuit_state: IntGaugeVec,
    providers: Vec<String>,
}

impl VaultMetrics {
    /// Registers the families and their zero series for `providers`.
    pub fn new(metrics: Arc<Metrics>, providers: &[&str]) -> Result<Self, RegistrationError> {
        let this = Self {
            tokens: metrics.gauge(&catalog::INTEGRATION_TOKENS_TOTAL)?,
            refresh_total: metrics.counter(&catalog::INTEGRATION_TOKEN_REFRESH_TOTAL)?,
            refresh_latency: metrics.histogram(&catalog::INTEGRATION_REFRESH_LATENCY_MS)?,
            expiring_soon: metrics.gauge(&catalog::INTEGRATION_EXPIRING_SOON)?,
            token_expiry: metrics.gauge(&catalog::INTEGRATION_TOKEN_EXPIRY_SECONDS)?,
            requests_total: metrics.counter(&catalog::INTEGRATION_REQUESTS_TOTAL)?,
            duration: metrics.histogram(&catalog::INTEGRATION_DURATION_SECONDS)?,
            circuit_state: metrics.gauge(&catalog::INTEGRATION_CIRCUIT_BREAKER_STATE)?,
            providers: providers.iter().map(|p| p.to_string()).collect(),
            metrics,
        };
        for provider in providers {
            for status in IntegrationStatus::ALL {
                this.tokens.with_label_values(&[provider, status.as_str()]).set(0);
            }
            for result in REFRESH_RESULTS {
                this.refresh_total.with_label_values(&[provider, result]);
            }
            this.refresh_latency.with_label_values(&[provider]);
            this.expiring_soon.with_label_values(&[provider]).set(0);
            this.circuit_state.with_label_values(&[provider]).set(0);
            for operation in OPERATIONS {
                this.duration.with_label_values(&[provider, operation]);
                for result in ["ok", "error"] {
                    this.requests_total.with_label_values(&[provider, operation, result]);
                }
            }
        }
        Ok(this)
    }

    /// The circuit breaker state gauge, when metrics are on.
    pub fn circuit_state(&self) -> Option<IntGaugeVec> {
        self.on().then(|| self.circuit_state.clone())
    }

    fn on(&self) -> bool {
        self.metrics.enabled()
    }

    /// One refresh finished with `result` (`success`, `invalid_grant`, `error`).
    pub fn refreshed(&self, integration: &str, result: &str) {
        if self.on() {
            self.refresh_total.with_label_values(&[integration, result]).inc();
        }
    }

    /// Time of one refresh.
    pub fn refresh_latency(&self, integration: &str, elapsed: Duration) {
        if self.on() {
            self.refresh_latency
                .with_label_values(&[integration])
                .observe(elapsed.as_secs_f64() * 1000.0);
        }
    }

    /// One HTTP call to a provider.
    pub fn provider_call(&self, integration: &str, operation: &str, ok: bool, elapsed: Duration) {
        if self.on() {
            let result = if ok { "ok" } else { "error" };
            self.requests_total
                .with_label_values(&[integration, operation, result])
                .inc();
            self.duration
                .with_label_values(&[integration, operation])
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Replaces the sampled gauges: counts by (integration, status) and the expiry of every
    /// Connected token. Organizations beyond the label budget fold into `other`, which keeps the
    /// soonest expiry among them.
    pub fn sample(&self, counts: &[TokenCount], expiries: &[TokenExpiry], now_us: i64) {
        if !self.on() {
            return;
        }
        self.tokens.reset();
        for provider in &self.providers {
            for status in IntegrationStatus::ALL {
                self.tokens
                    .with_label_values(&[provider.as_str(), status.as_str()])
                    .set(0);
            }
        }
        for count in counts {
            self.tokens
                .with_label_values(&[count.integration.as_str(), count.status.as_str()])
                .set(count.tokens);
        }
        let mut soonest: HashMap<(String, String), i64> = HashMap::new();
        let mut expiring_soon: HashMap<&str, i64> = self.providers.iter().map(|p| (p.as_str(), 0)).collect();
        for expiry in expiries {
            let seconds = (expiry.expires_at_us - now_us) / 1_000_000;
            if seconds < 3600 {
                *expiring_soon.entry(expiry.integration.as_str()).or_default() += 1;
            }
            let org = self.metrics.org_label(&expiry.organization).into_owned();
            soonest
                .entry((expiry.integration.clone(), org))
                .and_modify(|s| *s = (*s).min(seconds))
                .or_insert(seconds);
        }
        self.token_expiry.reset();
        for ((integration, org), seconds) in soonest {
            self.token_expiry.with_label_values(&[&integration, &org]).set(seconds);
        }
        for (integration, tokens) in expiring_soon {
            self.expiring_soon.with_label_values(&[integration]).set(tokens);
        }
    }
}
