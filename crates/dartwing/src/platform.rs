//! The node's own routes: health (`/health`, `/health/live`, `/health/ready`), metrics
//! (`/metrics`, unless they have a listener of their own) and the OpenAPI document — a capability
//! like the others, so they appear in the route list and the document too.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dartwing_core::config::{Config, Secret};
use dartwing_http::openapi::error_ref;
use dartwing_http::{ApiError, Capability, Message, Routes};
use dartwing_observe::{Health, HealthCheck, Metrics};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Name of the platform capability (its routes are served whatever the roles).
pub const CAPABILITY: &str = "platform";

/// State of the platform routes.
#[derive(Clone)]
pub struct Platform(Arc<Inner>);

struct Inner {
    node_id: String,
    health: Health,
    metrics: Arc<Metrics>,
    metrics_token: Option<Secret>,
    metrics_here: bool,
    openapi: OnceLock<Value>,
}

impl Platform {
    /// The platform of `node_id`, with `health` holding every check of the node.
    pub fn new(config: &Config, node_id: &str, metrics: Arc<Metrics>, health: Health) -> Self {
        Self(Arc::new(Inner {
            node_id: node_id.to_string(),
            health,
            metrics,
            metrics_token: config.observability.metrics_token.clone(),
            metrics_here: config.observability.metrics_listen.is_none(),
            openapi: OnceLock::new(),
        }))
    }

    /// A node's health checks: the database, Redis when configured, and the capabilities' own.
    pub fn health(config: &Config, node_id: &str, checks: Vec<Arc<dyn HealthCheck>>) -> Health {
        checks.into_iter().fold(
            Health::new(
                node_id,
                Duration::from_millis(config.observability.health_check_timeout_ms),
            ),
            Health::with_check,
        )
    }

    /// The health checks.
    pub fn health_checks(&self) -> &Health {
        &self.0.health
    }

    /// Sets the OpenAPI document (made from every served route, these included).
    pub fn describe(&self, document: Value) {
        let _ = self.0.openapi.set(document);
    }

    /// The platform routes (metrics only when they have no listener of their own).
    pub fn capability(&self) -> Capability {
        let op =
            |tag: &str, summary: &str, errors: &[(u16, &str)]| dartwing_http::openapi::operation(tag, summary, errors);
        let unavailable = [(503, "Unavailable")];
        let mut routes = Routes::builder()
            .get(
                "/health",
                health,
                op(
                    "Operations",
                    "Health of this node: every check with status, latency and detail; 503 when one fails",
                    &unavailable,
                ),
            )
            .get(
                "/health/live",
                live,
                op(
                    "Operations",
                    "Liveness: the process serves HTTP (no dependency consulted)",
                    &[],
                ),
            )
            .get(
                "/health/ready",
                ready,
                op(
                    "Operations",
                    "Readiness: 503 only without the database; Redis or workers down answer 200 `degraded`",
                    &unavailable,
                ),
            )
            .read(
                "/api/method/dartwing_core.observability.health.health",
                health_method,
                op(
                    "Operations",
                    "Health of this node in the {\"message\": …} envelope",
                    &unavailable,
                ),
            )
            .get(
                "/api/openapi.json",
                openapi,
                json!({ "summary": "This document", "tags": ["Operations"], "responses": {
                    "200": { "description": "The OpenAPI 3.1 document" } } }),
            );
        if self.0.metrics_here {
            let metrics_op = || {
                json!({ "summary": "Prometheus metrics (text exposition format); Bearer `observability.metrics_token` when set",
                        "tags": ["Operations"], "responses": {
                            "200": { "description": "text/plain; version=0.0.4" },
                            "401": error_ref("Unauthenticated") } })
            };
            routes = routes.get("/metrics", metrics, metrics_op()).read(
                "/api/method/dartwing_core.observability.api.metrics",
                metrics,
                metrics_op(),
            );
        }
        Capability::new(CAPABILITY).routes(routes.with_state(self.clone()))
    }

    /// The router of a listener that serves `/metrics` alone (`observability.metrics_listen`).
    pub fn metrics_router(&self) -> axum::Router {
        axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .fallback(|| async { ApiError(dartwing_core::Error::not_found("This listener serves /metrics only")) })
            .with_state(self.clone())
    }
}

async fn health(State(platform): State<Platform>) -> Response {
    let report = platform.0.health.report().await;
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

/// Liveness: the process serves HTTP. No dependency is consulted, so a database outage does not
/// get healthy processes restarted.
async fn live(State(platform): State<Platform>) -> Response {
    axum::Json(json!({"status": "ok", "node_id": platform.0.node_id})).into_response()
}

/// Readiness: whether this node should receive traffic. 503 only when a required dependency
/// (the database) fails; optional ones (Redis, workers) make it `degraded` with 200.
async fn ready(State(platform): State<Platform>) -> Response {
    let report = platform.0.health.report().await;
    let readiness = report.readiness();
    let status = if readiness == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    body["status"] = Value::from(readiness);
    (status, axum::Json(body)).into_response()
}

async fn health_method(State(platform): State<Platform>) -> Response {
    let report = platform.0.health.report().await;
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Message(report)).into_response()
}

async fn metrics(State(platform): State<Platform>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &platform.0.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| token.matches(given)) {
            return Err(ApiError(dartwing_core::Error::unauthenticated(
                "Metrics need the configured bearer token",
            )));
        }
    }
    Ok((
        [(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)],
        platform.0.metrics.render(),
    )
        .into_response())
}

async fn openapi(State(platform): State<Platform>) -> axum::Json<Value> {
    axum::Json(platform.0.openapi.get().cloned().unwrap_or(Value::Null))
}

/// Redis reachability, through a connection manager that reconnects on its own.
pub(crate) struct RedisCheck {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

impl RedisCheck {
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|_| anyhow::anyhow!("invalid configuration key `redis_url`: not a Redis URL"))?;
        Ok(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
        })
    }
}

#[async_trait::async_trait]
impl HealthCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn optional_for_readiness(&self) -> bool {
        true
    }

    async fn check(&self) -> Result<String, String> {
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            let manager = self
                .client
                .get_connection_manager()
                .await
                .map_err(|e| format!("unreachable: {}", e.kind_str()))?;
            *slot = Some(manager);
        }
        let Some(connection) = slot.as_mut() else {
            return Err("no connection".into());
        };
        let pong: Result<String, _> = redis::cmd("PING").query_async(connection).await;
        match pong {
            Ok(_) => Ok("reachable".into()),
            Err(e) => Err(format!("unreachable: {}", e.kind_str())),
        }
    }
}

trait RedisErrorKind {
    fn kind_str(&self) -> String;
}

impl RedisErrorKind for redis::RedisError {
    fn kind_str(&self) -> String {
        if self.is_connection_refusal() || self.is_io_error() || self.is_timeout() || self.is_connection_dropped() {
            "connection failed".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}
