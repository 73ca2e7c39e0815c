//! The token vault: `access_token` with single-flight refresh, the connect flow, disconnect,
//! status, the proactive refresh and expiry notifications.
//!
//! One module per concern: reading and storing tokens (`tokens`), the single-flight refresh
//! (`refresh`), the proactive refresh (`proactive`), expiry notifications (`expiry`), the connect
//! flow (`connect`), disconnecting (`disconnect`), what administrators see (`status`), the
//! token gauges (`gauges`) and deleting what the vault keeps for a deleted organization
//! (`organizations`).

mod connect;
mod disconnect;
mod expiry;
mod gauges;
mod organizations;
mod proactive;
mod refresh;
mod status;
mod token_cache;
mod tokens;

pub use connect::ConnectStart;
pub use disconnect::Disconnected;
pub use proactive::RefreshRun;
pub use status::{IntegrationInfo, StatusReport};
pub use tokens::AccessToken;

use crate::breaker::CircuitBreakers;
use crate::keyring::KeyRing;
use crate::metrics::VaultMetrics;
use crate::provider::Providers;
use crate::store::VaultStore;
use dartwing_core::Timestamp;
use dartwing_core::access::{AccessChanges, SharedDirectory};
use dartwing_core::config::Config;
use dartwing_core::jobs::SharedEnqueuer;
use dartwing_core::publish::SharedPublisher;
use dartwing_db::Db;
use dartwing_http::{BackgroundTask, Capability};
use dartwing_observe::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Message stored when the provider refuses the refresh token (SPEC §6).
pub const EXPIRED_MESSAGE: &str = "Refresh token expired - reconnection required";
/// Longest stored error message.
pub const MAX_ERROR_CHARS: usize = 500;
/// Job type of the proactive refresh (routed to the `critical` queue by default).
pub const REFRESH_JOB: &str = "integration.refresh_token";
/// Job type of the expiry notification email.
pub const NOTIFY_JOB: &str = "integrations.notify_expired";
/// Realtime event sent to Owners/Admins when an integration expires.
pub const EXPIRED_EVENT: &str = "integration_expired";
/// Path of the OAuth callback route.
pub const CALLBACK_PATH: &str = "/api/method/dartwing_core.integrations.callback";

pub(crate) struct Inner {
    pub(crate) store: VaultStore,
    pub(crate) keys: KeyRing,
    pub(crate) providers: Providers,
    pub(crate) http: reqwest::Client,
    pub(crate) directory: SharedDirectory,
    pub(crate) publisher: SharedPublisher,
    pub(crate) enqueuer: SharedEnqueuer,
    pub(crate) metrics: VaultMetrics,
    /// Per provider: calls stop for a while after repeated failures.
    pub(crate) breakers: CircuitBreakers,
    pub(crate) config: dartwing_core::config::IntegrationsConfig,
    locks: Mutex<HashMap<refresh::TokenKey, refresh::RefreshLock>>,
    holder: String,
    /// Valid access tokens read recently.
    tokens: Arc<token_cache::TokenCache>,
    /// The node's access-change hub, once the vault follows it.
    access: OnceLock<AccessChanges>,
}

/// The integration token vault of a node.
#[derive(Clone)]
pub struct TokenVault {
    pub(crate) inner: Arc<Inner>,
}

fn now_us() -> i64 {
    Timestamp::now().as_micros()
}

/// `duration` in microseconds, for adding to a microsecond timestamp.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX / 2)
}

fn truncate(message: &str) -> String {
    message.chars().take(MAX_ERROR_CHARS).collect()
}

/// What the vault needs from the node.
pub struct VaultDeps {
    /// The database.
    pub db: Db,
    /// Where `integration_expired` goes.
    pub publisher: SharedPublisher,
    /// What organizations are (their Owners/Admins, their names).
    pub directory: SharedDirectory,
    /// Where expiry emails are queued (as `integrations.notify_expired` jobs).
    pub enqueuer: SharedEnqueuer,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
}

impl TokenVault {
    /// Builds the vault: loads the key ring (failing in production mode without a key) and the
    /// configured providers.
    pub fn new(config: &Config, node_id: &str, deps: VaultDeps) -> std::result::Result<Self, String> {
        let keys = KeyRing::from_config(config).map_err(|e| e.to_string())?;
        Self::with_keys(config, node_id, deps, keys)
    }

    /// [`TokenVault::new`] with an explicit key ring (tests, benchmarks).
    pub fn with_keys(
        config: &Config,
        node_id: &str,
        deps: VaultDeps,
        keys: KeyRing,
    ) -> std::result::Result<Self, String> {
        let VaultDeps {
            db,
            publisher,
            directory,
            enqueuer,
            metrics,
        } = deps;
        let settings = config.integrations.clone();
        let base = settings
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let redirect = format!("{}{CALLBACK_PATH}", base.trim_end_matches('/'));
        let providers = Providers::from_config(&settings, &redirect)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(settings.http_timeout_ms))
            .build()
            .map_err(|e| format!("cannot build the provider HTTP client: {e}"))?;
        let metrics = VaultMetrics::new(metrics, &providers.names()).map_err(|e| e.to_string())?;
        let store = VaultStore::new(db).map_err(|e| e.to_string())?;
        let breakers = CircuitBreakers::new(
            settings.circuit_breaker_failures,
            Duration::from_secs(settings.circuit_breaker_open_secs),
            metrics.circuit_state(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                keys,
                providers,
                http,
                directory,
                publisher,
                enqueuer,
                metrics,
                breakers,
                config: settings,
                locks: Mutex::new(HashMap::new()),
                holder: format!("{node_id}/{}", dartwing_core::ids::random_hex(4)),
                tokens: Arc::default(),
                access: OnceLock::new(),
            }),
        })
    }

    /// The vault as a capability of the node: its routes, the proactive refresh (a schedule and
    /// its job type), the expiry email job type, and, when metrics are on, the sampler of its
    /// token gauges.
    pub fn capability(&self, sample_metrics: bool) -> Capability {
        let mut capability = crate::jobs::add_job_types(self, Capability::new("integrations"))
            .routes(crate::routes::routes(self.clone()));
        if sample_metrics {
            let vault = self.clone();
            capability = capability.task(BackgroundTask::new("integration gauges", move |shutdown| {
                vault.spawn_metrics_sampler(shutdown)
            }));
        }
        capability
    }

    /// The store.
    pub fn store(&self) -> &VaultStore {
        &self.inner.store
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The configured providers.
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }
}
