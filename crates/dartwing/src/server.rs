//! Wiring: one process serving the roles it is configured for on one HTTP listener.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dartwing_core::access::{AccessObserver, DocumentDirectories};
use dartwing_core::config::{Config, Role, Secret};
use dartwing_core::publish::{Publisher, SharedPublisher, Target};
use dartwing_db::Db;
use dartwing_db::heartbeat::WorkerHeartbeats;
use dartwing_http::listener::{self, ConnectionLimits};
use dartwing_http::stack::{self, StackConfig};
use dartwing_http::{ApiError, Authenticator, JwtVerifier, Message};
use dartwing_integrations::TokenVault;
use dartwing_jobs::{HandlerRegistry, Jobs};
use dartwing_observe::{Health, HealthCheck, Metrics};
use dartwing_realtime::{GatewayDeps, Realtime};
use dartwing_tenancy::TenancyStore;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything a running node holds.
#[derive(Clone)]
pub struct App {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// This node's id.
    pub node_id: String,
    /// The database.
    pub db: Db,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Health checks.
    pub health: Health,
    /// Tenancy storage (also the identity store).
    pub tenancy: TenancyStore,
    /// Credential verification.
    pub authenticator: Arc<Authenticator>,
    /// JWT verifier (also signs development tokens).
    pub jwt: Arc<JwtVerifier>,
    /// Background jobs.
    pub jobs: Jobs,
    /// Worker heartbeats of this node.
    pub heartbeats: WorkerHeartbeats,
    /// Realtime events from every capability go through this handle.
    pub publisher: dartwing_core::publish::SharedPublisher,
    /// The realtime gateway (its Socket.IO endpoint is served with the `realtime` role; every
    /// role publishes through it).
    pub realtime: Realtime,
    /// Keeps the gateway's access observer alive (the tenancy store holds it weakly).
    _access_observer: Arc<dyn AccessObserver>,
    /// Offline sync.
    pub sync: dartwing_sync::OfflineSync,
    /// Integration token vault.
    pub integrations: TokenVault,
}

impl App {
    /// Connects to the database, applies migrations and builds the node's services.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(
            config,
            HandlerRegistry::new(),
            Arc::new(dartwing_core::publish::NoopPublisher),
        )
        .await
    }

    /// [`App::build`] with extra job handlers and an extra publisher that receives every
    /// realtime event besides the gateway (tests record events with it).
    pub async fn build_with(
        config: Config,
        mut handlers: HandlerRegistry,
        publisher: dartwing_core::publish::SharedPublisher,
    ) -> anyhow::Result<Self> {
        let node_id = config.node_id();
        let metrics = Arc::new(
            Metrics::new(
                config.observability.metrics_enabled,
                config.observability.max_org_label_values,
            )
            .map_err(|e| anyhow::anyhow!(e.to_string()))?,
        );
        let url = config
            .database_url
            .as_ref()
            .map(|url| url.expose().to_string())
            .unwrap_or_else(|| Db::sqlite_url_in(&config.data_dir));
        let db = Db::connect(&url, &config.database, Some(metrics.clone())).await?;
        db.migrate().await?;
        let jwt_secret = crate::secrets::jwt_secret(&config).map_err(anyhow::Error::msg)?;
        let jwt = Arc::new(JwtVerifier::new(jwt_secret.as_ref().map(Secret::expose), &config.auth));
        let tenancy = TenancyStore::new(db.clone()).with_config(config.tenancy.clone());
        let authenticator = Arc::new(Authenticator::new(jwt.clone(), Arc::new(tenancy.clone())));
        let heartbeats = WorkerHeartbeats::new(
            db.clone(),
            node_id.clone(),
            Duration::from_secs(config.observability.worker_heartbeat_timeout_secs),
        );
        let mut health = Health::new(
            node_id.clone(),
            Duration::from_millis(config.observability.health_check_timeout_ms),
        )
        .with_check(db.health_check())
        .with_check(heartbeats.health_check());
        let redis_url = config.redis_url.as_ref().map(|url| url.expose().to_string());
        if let Some(url) = &redis_url {
            health = health.with_check(Arc::new(RedisCheck::new(url)?));
        }
        let realtime = Realtime::build(GatewayDeps {
            node_id: node_id.clone(),
            config: config.realtime.clone(),
            redis_url,
            authenticator: authenticator.clone(),
            identities: Arc::new(tenancy.clone()),
            documents: Arc::new(
                DocumentDirectories::default()
                    .with(Arc::new(tenancy.clone()))
                    .with(Arc::new(dartwing_sync::SyncDocuments::new(db.clone()))),
            ),
            metrics: metrics.clone(),
        })
        .await?;
        let access_observer: Arc<dyn AccessObserver> = Arc::new(realtime.clone());
        tenancy.access_notifier().set(&access_observer);
        let publisher: SharedPublisher = Arc::new(Fanout(vec![Arc::new(realtime.clone()), publisher]));
        let sync =
            dartwing_sync::OfflineSync::new(db.clone(), config.sync.clone(), publisher.clone(), metrics.clone())?;
        dartwing_sync::register_jobs(&mut handlers, &sync);
        let integrations = TokenVault::new(&config, &node_id, db.clone(), publisher.clone(), metrics.clone())
            .map_err(anyhow::Error::msg)?;
        integrations.register_jobs(&mut handlers);
        let jobs = Jobs::new(
            db.clone(),
            config.jobs.clone(),
            handlers,
            publisher.clone(),
            metrics.clone(),
            config.production,
        )?;
        integrations.attach_jobs(jobs.clone());
        Ok(Self {
            config: Arc::new(config),
            node_id,
            db,
            metrics,
            health,
            tenancy,
            authenticator,
            jwt,
            jobs,
            heartbeats,
            publisher,
            realtime,
            _access_observer: access_observer,
            sync,
            integrations,
        })
    }

    /// The HTTP application of this node's roles, behind the standard middleware stack.
    pub fn router(&self) -> Router {
        let mut routes = Router::new()
            .route("/health", get(health))
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .route(
                "/api/method/dartwing_core.observability.health.health",
                get(health_method),
            )
            .route("/api/openapi.json", get(openapi));
        // With a listener of their own, metrics are served only there.
        if self.config.observability.metrics_listen.is_none() {
            routes = routes
                .route("/metrics", get(metrics))
                .route("/api/method/dartwing_core.observability.api.metrics", get(metrics));
        }
        let mut routes = routes.with_state(self.clone());
        if self.config.roles.contains(Role::Api) {
            routes = routes
                .merge(dartwing_tenancy::routes::routes(self.tenancy.clone()))
                .merge(dartwing_jobs::routes::routes(self.jobs.clone()))
                .merge(dartwing_realtime::routes::routes(self.realtime.clone()))
                .merge(dartwing_sync::routes::routes(self.sync.clone()))
                .merge(dartwing_integrations::routes::routes(self.integrations.clone()));
        }
        let routes = stack::apply(
            routes,
            StackConfig {
                metrics: self.metrics.clone(),
                access_log: self.config.observability.access_log,
                body_limit_bytes: self.config.http.body_limit_bytes,
                authenticator: self.authenticator.clone(),
                organizations: Arc::new(self.tenancy.clone()),
            },
        );
        if self.config.roles.contains(Role::Realtime) {
            self.realtime.mount(routes)
        } else {
            routes
        }
    }
}

/// Sends every event to several publishers.
struct Fanout(Vec<SharedPublisher>);

impl Publisher for Fanout {
    fn publish(&self, event: &str, message: Value, target: Target, trace_id: Option<&str>) {
        for publisher in &self.0 {
            publisher.publish(event, message.clone(), target.clone(), trace_id);
        }
    }
}

async fn health(State(app): State<App>) -> Response {
    let report = app.health.report().await;
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

/// Liveness: the process serves HTTP. No dependency is consulted, so a database outage does not
/// get healthy processes restarted.
async fn live(State(app): State<App>) -> Response {
    axum::Json(serde_json::json!({"status": "ok", "node_id": app.node_id})).into_response()
}

/// Readiness: whether this node should receive traffic. 503 only when a required dependency
/// (the database) fails; optional ones (Redis, workers) make it `degraded` with 200.
async fn ready(State(app): State<App>) -> Response {
    let report = app.health.report().await;
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

async fn health_method(State(app): State<App>) -> Response {
    let report = app.health.report().await;
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Message(report)).into_response()
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &app.config.observability.metrics_token {
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
    Ok(([(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], app.metrics.render()).into_response())
}

async fn openapi() -> axum::Json<Value> {
    axum::Json(dartwing_http::openapi::document(
        env!("CARGO_PKG_VERSION"),
        dartwing_tenancy::routes::openapi_paths()
            .into_iter()
            .chain(dartwing_realtime::routes::openapi_paths())
            .chain(dartwing_jobs::routes::openapi_paths())
            .chain(dartwing_sync::routes::openapi_paths())
            .collect::<Vec<_>>(),
    ))
}

/// Redis reachability, through a connection manager that reconnects on its own.
struct RedisCheck {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

impl RedisCheck {
    fn new(url: &str) -> anyhow::Result<Self> {
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

/// A node serving on a bound address, with its background roles, until shut down.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound address of the metrics listener (`observability.metrics_listen`), if any.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    roles_shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    metrics_task: Option<JoinHandle<std::io::Result<()>>>,
    background: Vec<JoinHandle<()>>,
    realtime: Realtime,
}

impl RunningServer {
    /// Stops accepting connections and work, lets in-flight requests and jobs finish within the
    /// grace period, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.realtime.close().await;
        self.roles_shutdown.cancel();
        for task in self.background {
            let _ = task.await;
        }
        if let Some(task) = self.metrics_task {
            task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
        }
        self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Serves `/metrics` alone on `address` (`observability.metrics_listen`) until `stop` turns true.
async fn start_metrics_listener(
    app: &App,
    address: SocketAddr,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} (`observability.metrics_listen`): {e}"))?;
    let addr = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError(dartwing_core::Error::not_found("This listener serves /metrics only")) })
        .with_state(app.clone());
    let task = tokio::spawn(listener::serve(listener, router, limits, async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }));
    Ok((addr, task))
}

/// Binds the configured listener, serves `app` and starts the configured background roles.
pub async fn start(app: &App) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(app.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (`listen`): {e}", app.config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, mut signal) = watch::channel(false);
    let router = app.router();
    let grace = Duration::from_secs(app.config.http.shutdown_grace_secs);
    let limits = ConnectionLimits::from_config(&app.config.http);
    let (metrics_addr, metrics_task) = match app.config.observability.metrics_listen {
        Some(address) => {
            let (addr, task) = start_metrics_listener(app, address, limits, signal.clone()).await?;
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let task = tokio::spawn(async move {
        let mut grace_timer = signal.clone();
        let server = listener::serve(listener, router, limits, async move {
            let _ = signal.wait_for(|stop| *stop).await;
        });
        tokio::select! {
            result = server => result,
            _ = async {
                let _ = grace_timer.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace period over; closing remaining connections");
                Ok(())
            }
        }
    });
    let roles_shutdown = CancellationToken::new();
    let mut background = Vec::new();
    if app.config.roles.contains(Role::Worker) {
        background.push(
            app.jobs
                .spawn_workers(&app.node_id, app.heartbeats.clone(), roles_shutdown.clone(), grace),
        );
    }
    if app.config.roles.contains(Role::Scheduler) {
        background.push(app.jobs.spawn_scheduler(roles_shutdown.clone()));
    }
    if app.config.observability.metrics_enabled {
        background.push(app.jobs.spawn_metrics_sampler(roles_shutdown.clone()));
        background.push(app.integrations.spawn_metrics_sampler(roles_shutdown.clone()));
    }
    background.extend(app.realtime.spawn(roles_shutdown.clone()));
    Ok(RunningServer {
        addr,
        metrics_addr,
        shutdown,
        roles_shutdown,
        task,
        metrics_task,
        background,
        realtime: app.realtime.clone(),
    })
}
