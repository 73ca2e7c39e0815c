//! Sync metrics (SPEC §7) with bounded labels: `doctype` is a configured DocType or `other`,
//! `org` goes through the shared organization budget.

use dartwing_core::config::SyncConfig;
use dartwing_core::{Error, Result};
use dartwing_observe::{Metrics, catalog};
use prometheus::{IntCounterVec, IntGaugeVec};
use std::collections::HashSet;
use std::sync::Arc;

/// Label value of DocTypes that have no configured strategy.
const OTHER_DOCTYPE: &str = "other";

#[derive(Clone)]
pub(crate) struct SyncMetrics {
    metrics: Arc<Metrics>,
    known_doctypes: HashSet<String>,
    pub(crate) deltas: IntCounterVec,
    pub(crate) conflicts: IntCounterVec,
    pub(crate) lag: IntGaugeVec,
    pub(crate) queue_depth: IntGaugeVec,
    pub(crate) upsert_items: IntCounterVec,
    pub(crate) feed_rows: IntCounterVec,
    pub(crate) feed_requests: IntCounterVec,
}

impl SyncMetrics {
    pub(crate) fn new(metrics: Arc<Metrics>, config: &SyncConfig) -> Result<Self> {
        let fail = |e: dartwing_observe::metrics::RegistrationError| {
            tracing::error!(error = %e, "sync metrics registration failed");
            Error::internal()
        };
        let this = Self {
            known_doctypes: config
                .strategies
                .iter()
                .map(|s| s.doctype.clone())
                .filter(|d| d != "_default")
                .collect(),
            deltas: metrics.counter(&catalog::SYNC_DELTAS_TOTAL).map_err(fail)?,
            conflicts: metrics.counter(&catalog::SYNC_CONFLICTS_TOTAL).map_err(fail)?,
            lag: metrics.gauge(&catalog::SYNC_LAG_SECONDS).map_err(fail)?,
            queue_depth: metrics.gauge(&catalog::SYNC_QUEUE_DEPTH).map_err(fail)?,
            upsert_items: metrics.counter(&catalog::SYNC_UPSERT_ITEMS_TOTAL).map_err(fail)?,
            feed_rows: metrics.counter(&catalog::SYNC_FEED_ROWS_TOTAL).map_err(fail)?,
            feed_requests: metrics.counter(&catalog::SYNC_FEED_REQUESTS_TOTAL).map_err(fail)?,
            metrics,
        };
        // Families appear in scrapes from the start: zero series for the configured strategies
        // and the request outcomes, and node-wide (`org=""`) lag and queue depth.
        for entry in &config.strategies {
            let doctype = this.doctype(&entry.doctype);
            this.conflicts
                .with_label_values(&[doctype, entry.strategy.as_str()])
                .inc_by(0);
        }
        for outcome in ["ok", "resync", "denied", "error"] {
            this.feed_requests.with_label_values(&[outcome]).inc_by(0);
        }
        this.feed_rows.with_label_values(&[""]).inc_by(0);
        this.upsert_items.with_label_values(&["", "applied"]).inc_by(0);
        this.deltas.with_label_values(&["", "", "insert"]).inc_by(0);
        this.lag.with_label_values(&[""]).set(0);
        this.queue_depth.with_label_values(&[""]).set(0);
        Ok(this)
    }

    /// The bounded `doctype` label.
    pub(crate) fn doctype<'a>(&self, doctype: &'a str) -> &'a str {
        if doctype.is_empty() || self.known_doctypes.contains(doctype) {
            doctype
        } else {
            OTHER_DOCTYPE
        }
    }

    /// The bounded `org` label.
    pub(crate) fn org(&self, organization: &str) -> String {
        self.metrics.org_label(organization).into_owned()
    }
}
