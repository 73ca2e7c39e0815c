//! The composition root: [`Node::build`] assembles a node in one function — infrastructure, then
//! the capabilities, then what this process's roles serve — and is the only place where
//! capabilities meet. Each capability hands the node one [`Capability`] value (routes with their
//! OpenAPI operations, job types, schedules, health checks, background tasks); the node loops over
//! them, so the router, the OpenAPI document, the job registry and the task list all come from the
//! same lists.

use crate::platform::{Platform, RedisCheck};
use dartwing_core::access::{AccessChanges, DocumentDirectories, SharedDirectory};
use dartwing_core::config::{Config, Role, Secret};
use dartwing_core::publish::{Publisher, SharedPublisher, Target};
use dartwing_db::Db;
use dartwing_http::stack::{self, StackConfig};
use dartwing_http::{Authenticator, BackgroundTask, Capability, JwtVerifier, RouteDoc, Routes};
use dartwing_integrations::{TokenVault, VaultDeps};
use dartwing_jobs::{HandlerRegistry, Jobs, JobsDeps, WorkerNode};
use dartwing_observe::{Health, Metrics};
use dartwing_realtime::{GatewayDeps, Realtime};
use dartwing_sync::{OfflineSync, SyncDocuments};
use dartwing_tenancy::TenancyStore;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One node: its configuration, infrastructure and capabilities, and — until [`crate::server::start`]
/// takes them — the router and background tasks of its roles.
pub struct Node {
    config: Arc<Config>,
    node_id: String,
    db: Db,
    metrics: Arc<Metrics>,
    jwt: Arc<JwtVerifier>,
    tenancy: TenancyStore,
    jobs: Jobs,
    realtime: Realtime,
    sync: OfflineSync,
    vault: TokenVault,
    platform: Platform,
    route_docs: Arc<Vec<RouteDoc>>,
    roles: Mutex<Option<Roles>>,
}

/// What the node's roles run: the HTTP application and the background tasks.
pub(crate) struct Roles {
    /// The HTTP application (routes behind the middleware stack, Socket.IO mounted).
    pub(crate) router: axum::Router,
    /// Tasks of every capability for the roles this process runs.
    pub(crate) tasks: Vec<BackgroundTask>,
}

impl Node {
    /// Connects to the database, applies migrations and assembles the node.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(
            config,
            HandlerRegistry::new(),
            Arc::new(dartwing_core::publish::NoopPublisher),
        )
        .await
    }

    /// [`Node::build`] with extra job types, and an extra publisher that receives every realtime
    /// event besides the gateway (tests record events with it).
    pub async fn build_with(
        config: Config,
        extra_jobs: HandlerRegistry,
        observer: SharedPublisher,
    ) -> anyhow::Result<Self> {
        // Infrastructure.
        let node_id = config.node_id();
        let metrics = Arc::new(
            Metrics::new(
                config.observability.metrics_enabled,
                config.observability.max_org_label_values,
            )
            .map_err(|e| anyhow::anyhow!(e.to_string()))?,
        );
        let db = connect(&config, &metrics).await?;
        db.migrate(&MIGRATIONS).await?;
        let access = AccessChanges::new();
        let carrier = crate::cluster::Carrier::install(&config, &node_id, &db, &access)?;
        let jwt_secret = crate::secrets::jwt_secret(&config).map_err(anyhow::Error::msg)?;
        let jwt = Arc::new(JwtVerifier::new(jwt_secret.as_ref().map(Secret::expose), &config.auth));
        let redis_url = config.redis_url.as_ref().map(|url| url.expose().to_string());

        // Capabilities, each built on the infrastructure and the small core handles of the ones
        // before it (identities, directory, publisher, enqueuer).
        let tenancy = TenancyStore::new(db.clone())
            .with_config(config.tenancy.clone())
            .with_access_changes(access.clone());
        let directory: SharedDirectory = Arc::new(tenancy.clone());
        let authenticator = Arc::new(Authenticator::new(jwt.clone(), Arc::new(tenancy.clone())));
        let realtime = Realtime::build(GatewayDeps {
            node_id: node_id.clone(),
            config: config.realtime.clone(),
            redis_url: redis_url.clone(),
            authenticator: authenticator.clone(),
            identities: Arc::new(tenancy.clone()),
            documents: Arc::new(
                DocumentDirectories::default()
                    .with(Arc::new(tenancy.clone()))
                    .with(Arc::new(SyncDocuments::new(db.clone()))),
            ),
            metrics: metrics.clone(),
            access: access.clone(),
        })
        .await?;
        let publisher: SharedPublisher = Arc::new(Fanout(vec![Arc::new(realtime.clone()), observer]));
        let jobs = Jobs::new(JobsDeps {
            db: db.clone(),
            config: config.jobs.clone(),
            production: config.production,
            publisher: publisher.clone(),
            directory: directory.clone(),
            access: access.clone(),
            metrics: metrics.clone(),
        })?;
        let sync = OfflineSync::new(
            db.clone(),
            config.sync.clone(),
            publisher.clone(),
            directory.clone(),
            metrics.clone(),
        )?;
        sync.follow_organization_deletions(&access);
        let vault = TokenVault::new(
            &config,
            &node_id,
            VaultDeps {
                db: db.clone(),
                publisher: publisher.clone(),
                directory,
                enqueuer: Arc::new(jobs.clone()),
                metrics: metrics.clone(),
            },
        )
        .map_err(anyhow::Error::msg)?;
        vault.follow_access_changes(&access);
        let sample_metrics = config.observability.metrics_enabled;
        let mut capabilities = vec![
            tenancy.capability(),
            jobs.capability(WorkerNode {
                node_id: node_id.clone(),
                heartbeat_timeout: Duration::from_secs(config.observability.worker_heartbeat_timeout_secs),
                grace: Duration::from_secs(config.http.shutdown_grace_secs),
                sample_metrics,
            }),
            realtime.capability(),
            sync.capability(),
            vault.capability(sample_metrics),
            Capability {
                job_types: extra_jobs.job_types(),
                ..Capability::new("extra job types")
            },
        ];
        if let Some(carrier) = carrier {
            capabilities.push(
                Capability::new("cluster").task(BackgroundTask::new("access-change carrier", move |shutdown| {
                    carrier.spawn(shutdown)
                })),
            );
        }

        // Roles: what this process serves and runs, from the capabilities' lists. The platform's
        // own routes (health, metrics, OpenAPI) are served whatever the roles.
        let mut checks = vec![db.health_check()];
        if let Some(url) = &redis_url {
            checks.push(Arc::new(RedisCheck::new(url)?));
        }
        let mut routes = Routes::default();
        let mut tasks = Vec::new();
        for capability in capabilities {
            jobs.install(capability.job_types, capability.schedules);
            checks.extend(capability.health_checks);
            if config.roles.contains(Role::Api) {
                routes = routes.merge(capability.routes);
            }
            tasks.extend(
                capability
                    .tasks
                    .into_iter()
                    .filter(|task| task.role.is_none_or(|role| config.roles.contains(role))),
            );
        }
        let platform = Platform::new(
            &config,
            &node_id,
            metrics.clone(),
            Platform::health(&config, &node_id, checks),
        );
        let (router, route_docs) = platform.capability().routes.merge(routes).into_parts();
        let route_docs = Arc::new(route_docs);
        platform.describe(dartwing_http::openapi::document(env!("CARGO_PKG_VERSION"), &route_docs));
        let router = stack::apply(
            router,
            StackConfig {
                metrics: metrics.clone(),
                access_log: config.observability.access_log,
                body_limit_bytes: config.http.body_limit_bytes,
                authenticator,
                organizations: Arc::new(tenancy.clone()),
            },
        );
        let router = if config.roles.contains(Role::Realtime) {
            realtime.mount(router)
        } else {
            router
        };
        Ok(Self {
            config: Arc::new(config),
            node_id,
            db,
            metrics,
            jwt,
            tenancy,
            jobs,
            realtime,
            sync,
            vault,
            platform,
            route_docs,
            roles: Mutex::new(Some(Roles { router, tasks })),
        })
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The JWT verifier (also signs development tokens).
    pub fn jwt(&self) -> &JwtVerifier {
        &self.jwt
    }

    /// A shared handle of the JWT verifier.
    pub fn jwt_handle(&self) -> Arc<JwtVerifier> {
        self.jwt.clone()
    }

    /// Tenancy (also the identity store and the organization directory).
    pub fn tenancy(&self) -> &TenancyStore {
        &self.tenancy
    }

    /// The job engine.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The realtime gateway.
    pub fn realtime(&self) -> &Realtime {
        &self.realtime
    }

    /// Offline sync.
    pub fn sync(&self) -> &OfflineSync {
        &self.sync
    }

    /// The integration token vault.
    pub fn vault(&self) -> &TokenVault {
        &self.vault
    }

    /// The health checks.
    pub fn health(&self) -> &Health {
        self.platform.health_checks()
    }

    /// Every route this node serves, with its OpenAPI operation.
    pub fn route_docs(&self) -> &[RouteDoc] {
        &self.route_docs
    }

    /// The platform routes' state (health, metrics), for the metrics listener.
    pub(crate) fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The router and tasks of this node's roles; `None` once a server took them.
    pub(crate) fn take_roles(&self) -> Option<Roles> {
        self.roles.lock().ok()?.take()
    }
}

/// The tables of every capability.
pub const MIGRATIONS: [&dartwing_db::Migrations; 4] = [
    &dartwing_tenancy::MIGRATIONS,
    &dartwing_jobs::MIGRATIONS,
    &dartwing_sync::MIGRATIONS,
    &dartwing_integrations::MIGRATIONS,
];

/// Connects to the configured database (the embedded SQLite file by default).
pub(crate) async fn connect(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<Db> {
    let url = config
        .database_url
        .as_ref()
        .map(|url| url.expose().to_string())
        .unwrap_or_else(|| Db::sqlite_url_in(&config.data_dir));
    Ok(Db::connect(&url, &config.database, Some(metrics.clone())).await?)
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
