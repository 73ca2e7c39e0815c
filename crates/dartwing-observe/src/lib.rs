//! Observability of the Dartwing runtime: the metric catalog (every metric name defined once),
//! the metrics registry and exposition, JSON logging with trace ids, and health checks.

pub mod catalog;
pub mod health;
pub mod logging;
pub mod metrics;

pub use health::{Health, HealthCheck, HealthReport};
pub use metrics::Metrics;
