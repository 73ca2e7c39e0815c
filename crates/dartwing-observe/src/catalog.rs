//! The metric catalog: the one place where a metric's name, type, labels and buckets are defined.
//!
//! Capabilities register families from these specs through [`crate::Metrics`]; documentation and
//! the catalog test read [`ALL`].

/// Type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic count.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution in buckets.
    Histogram,
}

impl MetricKind {
    /// The name Prometheus uses in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Definition of one metric family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    /// Exported name.
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names, in order.
    pub labels: &'static [&'static str],
    /// Histogram bucket bounds; empty for other kinds.
    pub buckets: &'static [f64],
}

const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> MetricSpec {
    MetricSpec {
        name,
        help,
        kind: MetricKind::Counter,
        labels,
        buckets: &[],
    }
}

const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> MetricSpec {
    MetricSpec {
        name,
        help,
        kind: MetricKind::Gauge,
        labels,
        buckets: &[],
    }
}

const fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> MetricSpec {
    MetricSpec {
        name,
        help,
        kind: MetricKind::Histogram,
        labels,
        buckets,
    }
}

/// Buckets of `http_request_duration_seconds`: 10 ms to 10 s.
pub const HTTP_DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of `db_query_duration_seconds`: 1 ms to 5 s.
pub const DB_DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Buckets of body-size histograms: 64 B to 16 MiB.
pub const SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// HTTP requests served.
pub const HTTP_REQUESTS_TOTAL: MetricSpec = counter(
    "http_requests_total",
    "HTTP requests served, by method, route template, status and organization.",
    &["method", "endpoint", "status", "org"],
);
/// HTTP request latency.
pub const HTTP_REQUEST_DURATION_SECONDS: MetricSpec = histogram(
    "http_request_duration_seconds",
    "Time from request received to response headers sent.",
    &["method", "endpoint"],
    HTTP_DURATION_BUCKETS,
);
/// HTTP request body sizes.
pub const HTTP_REQUEST_SIZE_BYTES: MetricSpec = histogram(
    "http_request_size_bytes",
    "Request body size as declared by Content-Length.",
    &["method", "endpoint"],
    SIZE_BUCKETS,
);
/// HTTP response body sizes.
pub const HTTP_RESPONSE_SIZE_BYTES: MetricSpec = histogram(
    "http_response_size_bytes",
    "Response body size where known.",
    &["method", "endpoint"],
    SIZE_BUCKETS,
);
/// Requests in flight.
pub const HTTP_ACTIVE_REQUESTS: MetricSpec =
    gauge("http_active_requests", "HTTP requests being served right now.", &[]);

/// Database queries run.
pub const DB_QUERIES_TOTAL: MetricSpec = counter(
    "db_queries_total",
    "Database queries, by doctype and operation.",
    &["doctype", "operation"],
);
/// Database query latency.
pub const DB_QUERY_DURATION_SECONDS: MetricSpec = histogram(
    "db_query_duration_seconds",
    "Database query latency, by doctype and operation.",
    &["doctype", "operation"],
    DB_DURATION_BUCKETS,
);
/// Connections checked out of the pool.
pub const DB_CONNECTIONS_ACTIVE: MetricSpec = gauge("db_connections_active", "Database connections in use.", &[]);
/// Pool capacity.
pub const DB_CONNECTIONS_POOL_SIZE: MetricSpec = gauge(
    "db_connections_pool_size",
    "Maximum size of the database connection pool.",
    &[],
);
/// Slow queries.
pub const DB_SLOW_QUERIES_TOTAL: MetricSpec = counter(
    "db_slow_queries_total",
    "Database queries slower than database.slow_query_ms.",
    &["doctype", "operation"],
);
/// Log lines lost to a full log queue.
pub const LOG_LINES_DROPPED_TOTAL: MetricSpec = counter(
    "log_lines_dropped_total",
    "Log lines dropped because the log writer's queue was full (stdout could not keep up).",
    &[],
);

/// Buckets of `jobs_duration_seconds`: 1 ms to 10 min.
pub const JOB_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// Jobs accepted.
pub const JOBS_ENQUEUED_TOTAL: MetricSpec = counter(
    "jobs_enqueued_total",
    "Jobs enqueued, by queue, job type and organization.",
    &["queue", "method", "org"],
);
/// Jobs finished.
pub const JOBS_COMPLETED_TOTAL: MetricSpec = counter(
    "jobs_completed_total",
    "Jobs that reached a final status (Completed, Failed, Canceled, Timed Out).",
    &["queue", "method", "org", "status"],
);
/// Attempt durations.
pub const JOBS_DURATION_SECONDS: MetricSpec = histogram(
    "jobs_duration_seconds",
    "Run time of job attempts, by queue and job type.",
    &["queue", "method"],
    JOB_DURATION_BUCKETS,
);
/// Waiting jobs.
pub const QUEUE_DEPTH: MetricSpec = gauge("queue_depth", "Jobs waiting (Pending or Queued) per queue.", &["queue"]);
/// Pending dead letters.
pub const DLQ_DEPTH: MetricSpec = gauge("dlq_depth", "Dead letters waiting for an administrator.", &[]);
/// Unfinished jobs per organization.
pub const ORG_JOB_COUNT: MetricSpec = gauge(
    "org_job_count",
    "Unfinished jobs per organization and queue.",
    &["org", "queue"],
);
/// Retries scheduled.
pub const JOBS_RETRIED_TOTAL: MetricSpec = counter(
    "jobs_retried_total",
    "Failed attempts rescheduled for a retry.",
    &["queue", "method"],
);

/// Running jobs recovered by stuck-job detection.
pub const JOBS_STUCK_RECOVERED_TOTAL: MetricSpec = counter(
    "jobs_stuck_recovered_total",
    "Running jobs whose worker stopped renewing their lease or that overran twice their timeout, recovered by jobs.stuck_detection, by outcome (retried, dead_lettered).",
    &["outcome"],
);
/// Live workers per queue.
pub const JOB_WORKERS_ALIVE: MetricSpec = gauge(
    "job_workers_alive",
    "Workers of the cluster serving each queue whose heartbeat is recent (within observability.worker_heartbeat_timeout_secs), read from the database.",
    &["queue"],
);
/// Finished jobs purged.
pub const JOBS_PURGED_TOTAL: MetricSpec = counter(
    "jobs_purged_total",
    "Finished jobs (Completed, Failed, Canceled, Timed Out) deleted after jobs.retention_days by jobs.purge_finished.",
    &[],
);

/// Buckets of `socketio_redis_latency_ms`: 0.25 ms to 2.5 s.
pub const REALTIME_LATENCY_MS_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];

/// Socket.IO connections on this node.
pub const SOCKETIO_CONNECTIONS_TOTAL: MetricSpec = gauge(
    "socketio_connections_total",
    "Socket.IO connections currently open on this node.",
    &["server_id"],
);
/// Rooms with at least one socket on this node.
pub const SOCKETIO_ROOMS_TOTAL: MetricSpec = gauge(
    "socketio_rooms_total",
    "Rooms with at least one socket connected to this node (user rooms included).",
    &["server_id"],
);
/// Whether the node's realtime channel to Redis is up.
pub const REALTIME_REDIS_CONNECTED: MetricSpec = gauge(
    "realtime_redis_connected",
    "1 while this node's realtime connection to Redis is up, 0 while it is down: events published on other nodes do not reach this node's sockets while it is 0. Always 1 on a node without Redis (nothing to connect to).",
    &["server_id"],
);
/// Events published through this node.
pub const SOCKETIO_MESSAGES_PUBLISHED: MetricSpec = counter(
    "socketio_messages_published",
    "Realtime events published through this node (in-process, HTTP), by event name.",
    &["event_type"],
);
/// Event deliveries to sockets on this node.
pub const SOCKETIO_MESSAGES_DELIVERED: MetricSpec = counter(
    "socketio_messages_delivered",
    "Realtime events delivered to sockets on this node, one per receiving socket, by event name.",
    &["event_type"],
);
/// Events this node could not publish or deliver.
pub const SOCKETIO_MESSAGES_DROPPED: MetricSpec = counter(
    "socketio_messages_dropped",
    "Realtime events dropped: queue_full (publish queue at capacity), redis_unavailable (not sent to other nodes), invalid (bad channel payload).",
    &["reason"],
);
/// Publish → receipt latency through Redis.
pub const SOCKETIO_REDIS_LATENCY_MS: MetricSpec = histogram(
    "socketio_redis_latency_ms",
    "Milliseconds from publish to receipt on this node through the Redis channel (events that carry sent_at_ms).",
    &[],
    REALTIME_LATENCY_MS_BUCKETS,
);
/// Changes applied by sync and published as deltas.
pub const SYNC_DELTAS_TOTAL: MetricSpec = counter(
    "sync_deltas_total",
    "Sync changes applied and published to sync rooms, by doctype (configured or other), organization and operation.",
    &["doctype", "org", "operation"],
);
/// Sync conflicts detected.
pub const SYNC_CONFLICTS_TOTAL: MetricSpec = counter(
    "sync_conflicts_total",
    "Stale sync writes whose values differed from the server's, by doctype and the strategy that handled them.",
    &["doctype", "strategy"],
);
/// Offline lag of the latest batch.
pub const SYNC_LAG_SECONDS: MetricSpec = gauge(
    "sync_lag_seconds",
    "Age (now minus client_ts) of the oldest item in the organization's latest upsert batch.",
    &["org"],
);
/// Size of the latest batch.
pub const SYNC_QUEUE_DEPTH: MetricSpec = gauge(
    "sync_queue_depth",
    "Items in the organization's latest upsert batch (the depth of the client's offline queue as delivered).",
    &["org"],
);
/// Upsert items by outcome.
pub const SYNC_UPSERT_ITEMS_TOTAL: MetricSpec = counter(
    "sync_upsert_items_total",
    "Queued sync writes answered, by doctype and status (applied, merged, discarded, conflict, rejected).",
    &["doctype", "status"],
);
/// Feed rows served.
pub const SYNC_FEED_ROWS_TOTAL: MetricSpec = counter(
    "sync_feed_rows_total",
    "Change-feed rows served, by requested doctype (empty: all doctypes).",
    &["doctype"],
);
/// Feed requests by outcome.
pub const SYNC_FEED_REQUESTS_TOTAL: MetricSpec = counter(
    "sync_feed_requests_total",
    "Change-feed requests, by outcome (ok, resync, denied, error).",
    &["outcome"],
);
/// Buckets of `integration_refresh_latency_ms`: 5 ms to 10 s.
pub const INTEGRATION_REFRESH_LATENCY_BUCKETS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Buckets of `integration_duration_seconds`: 5 ms to 10 s.
pub const INTEGRATION_DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Stored integrations by status.
pub const INTEGRATION_TOKENS_TOTAL: MetricSpec = gauge(
    "integration_tokens_total",
    "Organization integrations by provider and status (Connected, Expired, Error, Disconnected).",
    &["integration", "status"],
);
/// Token refreshes.
pub const INTEGRATION_TOKEN_REFRESH_TOTAL: MetricSpec = counter(
    "integration_token_refresh_total",
    "Token refreshes by provider and outcome (status: success, invalid_grant, error).",
    &["integration", "status"],
);
/// Token refresh latency.
pub const INTEGRATION_REFRESH_LATENCY_MS: MetricSpec = histogram(
    "integration_refresh_latency_ms",
    "Time of one token refresh including the provider call, in milliseconds.",
    &["integration"],
    INTEGRATION_REFRESH_LATENCY_BUCKETS,
);
/// Tokens close to expiry.
pub const INTEGRATION_EXPIRING_SOON: MetricSpec = gauge(
    "integration_expiring_soon",
    "Connected integrations whose access token expires within an hour, per provider.",
    &["integration"],
);
/// Seconds until each token expires.
pub const INTEGRATION_TOKEN_EXPIRY_SECONDS: MetricSpec = gauge(
    "integration_token_expiry_seconds",
    "Seconds until the access token of a Connected integration expires (negative when past), per provider and organization.",
    &["integration", "org"],
);
/// Calls to providers.
pub const INTEGRATION_REQUESTS_TOTAL: MetricSpec = counter(
    "integration_requests_total",
    "HTTP calls to OAuth2 providers by provider, operation (exchange, refresh, revoke) and result (ok, error).",
    &["integration", "operation", "result"],
);
/// Provider call latency.
pub const INTEGRATION_DURATION_SECONDS: MetricSpec = histogram(
    "integration_duration_seconds",
    "Latency of HTTP calls to OAuth2 providers by provider and operation.",
    &["integration", "operation"],
    INTEGRATION_DURATION_BUCKETS,
);

/// State of each provider's circuit breaker.
pub const INTEGRATION_CIRCUIT_BREAKER_STATE: MetricSpec = gauge(
    "integration_circuit_breaker_state",
    "Circuit breaker of calls to each OAuth2 provider on this node: 0 closed, 1 half-open, 2 open.",
    &["integration"],
);

/// Every metric family the runtime exports, for documentation and the catalog test.
pub const ALL: &[MetricSpec] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    HTTP_REQUEST_SIZE_BYTES,
    HTTP_RESPONSE_SIZE_BYTES,
    HTTP_ACTIVE_REQUESTS,
    DB_QUERIES_TOTAL,
    DB_QUERY_DURATION_SECONDS,
    DB_CONNECTIONS_ACTIVE,
    DB_CONNECTIONS_POOL_SIZE,
    DB_SLOW_QUERIES_TOTAL,
    LOG_LINES_DROPPED_TOTAL,
    JOBS_ENQUEUED_TOTAL,
    JOBS_COMPLETED_TOTAL,
    JOBS_DURATION_SECONDS,
    QUEUE_DEPTH,
    DLQ_DEPTH,
    ORG_JOB_COUNT,
    JOBS_RETRIED_TOTAL,
    JOBS_PURGED_TOTAL,
    SOCKETIO_CONNECTIONS_TOTAL,
    SOCKETIO_ROOMS_TOTAL,
    SOCKETIO_MESSAGES_PUBLISHED,
    SOCKETIO_MESSAGES_DELIVERED,
    SOCKETIO_MESSAGES_DROPPED,
    SOCKETIO_REDIS_LATENCY_MS,
    SYNC_DELTAS_TOTAL,
    SYNC_CONFLICTS_TOTAL,
    SYNC_LAG_SECONDS,
    SYNC_QUEUE_DEPTH,
    SYNC_UPSERT_ITEMS_TOTAL,
    SYNC_FEED_ROWS_TOTAL,
    SYNC_FEED_REQUESTS_TOTAL,
    INTEGRATION_TOKENS_TOTAL,
    INTEGRATION_TOKEN_REFRESH_TOTAL,
    INTEGRATION_REFRESH_LATENCY_MS,
    INTEGRATION_EXPIRING_SOON,
    INTEGRATION_TOKEN_EXPIRY_SECONDS,
    INTEGRATION_REQUESTS_TOTAL,
    INTEGRATION_DURATION_SECONDS,
    INTEGRATION_CIRCUIT_BREAKER_STATE,
    REALTIME_REDIS_CONNECTED,
    JOBS_STUCK_RECOVERED_TOTAL,
    JOB_WORKERS_ALIVE,
];

/// Label value used for tenants beyond the tracked budget.
pub const OTHER_LABEL_VALUE: &str = "other";

/// The metrics reference of `docs/operations.md`, generated from [`ALL`] so it cannot drift.
pub fn markdown_reference() -> String {
    let mut out = String::from("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n");
    for spec in ALL {
        let labels = if spec.labels.is_empty() {
            "–".to_string()
        } else {
            spec.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut meaning = spec.help.replace('|', "\\|");
        if !spec.buckets.is_empty() {
            let bounds: Vec<String> = spec.buckets.iter().map(|b| b.to_string()).collect();
            meaning.push_str(&format!(" Buckets: {}.", bounds.join(", ")));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            spec.name,
            spec.kind.as_str(),
            labels,
            meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_histograms_have_buckets() {
        let mut seen = HashSet::new();
        for spec in ALL {
            assert!(seen.insert(spec.name), "{} defined twice", spec.name);
            assert_eq!(
                spec.kind == MetricKind::Histogram,
                !spec.buckets.is_empty(),
                "{}",
                spec.name
            );
        }
    }
}
