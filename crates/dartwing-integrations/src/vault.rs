//! The token vault: `access_token` with single-flight refresh, the connect flow, disconnect,
//! status, the proactive refresh and expiry notifications.
//!
//! Single flight has two layers. In one process, callers for the same (organization,
//! integration) queue on an async mutex, so only one of them goes further. Across processes and
//! nodes, that one must take the row's refresh lease (a conditional `UPDATE` of
//! `refresh_lease_us`); the lease holder calls the provider, the others poll the row until it is
//! fresh. After taking either lock the row is read again, and nothing is called when someone
//! else already refreshed. The lease outlives the provider call's timeout, so a crashed holder
//! only delays the others, and no database lock is held during the HTTP call.

use crate::error::VaultError;
use crate::keyring::{Field, KeyRing};
use crate::metrics::VaultMetrics;
use crate::provider::{ProviderError, Providers, TokenGrant};
use crate::store::{ConnectState, IntegrationRow, IntegrationStatus, SealedTokens, VaultStore};
use dartwing_core::access::SharedDirectory;
use dartwing_core::config::Config;
use dartwing_core::jobs::{NewJob, SharedEnqueuer};
use dartwing_core::publish::{SharedPublisher, Target};
use dartwing_core::{Action, Error, Principal, PrincipalKind, Result, Timestamp};
use dartwing_db::Db;
use dartwing_http::{BackgroundTask, Capability};
use dartwing_observe::Metrics;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// Default lifetime of an access token whose provider gave no `expires_in`.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);
/// How often a process waiting for another process's refresh re-reads the row.
const LEASE_POLL: Duration = Duration::from_millis(20);

/// A decrypted access token and its expiry.
#[derive(Clone, Serialize)]
pub struct AccessToken {
    /// The token (secret).
    pub access_token: String,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the status endpoint shows of an integration: never token material.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationInfo {
    /// Organization.
    pub organization: String,
    /// Integration (provider) name.
    pub integration: String,
    /// Connected, Expired, Error or Disconnected.
    pub status: IntegrationStatus,
    /// Access token expiry.
    pub expires_at: Option<Timestamp>,
    /// Last successful refresh.
    pub last_refreshed: Option<Timestamp>,
    /// Message of the last failure.
    pub error_message: Option<String>,
    /// Who connected it.
    pub connected_by: Option<String>,
    /// When.
    pub connected_at: Option<Timestamp>,
    /// Granted scopes.
    pub scopes: Option<String>,
}

impl From<&IntegrationRow> for IntegrationInfo {
    fn from(row: &IntegrationRow) -> Self {
        let ts = |us: Option<i64>| us.map(Timestamp::from_micros);
        Self {
            organization: row.organization.clone(),
            integration: row.integration.clone(),
            status: row.status,
            expires_at: ts(row.expires_at_us),
            last_refreshed: ts(row.last_refreshed_us),
            error_message: row.error_message.clone(),
            connected_by: row.connected_by.clone(),
            connected_at: ts(row.connected_at_us),
            scopes: row.scopes.clone(),
        }
    }
}

/// Counts of one proactive refresh run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefreshRun {
    /// Tokens refreshed.
    pub refreshed: u32,
    /// Refreshes that failed (Error or Expired).
    pub failed: u32,
    /// Candidates someone else refreshed first.
    pub skipped: u32,
}

/// (organization, integration).
type TokenKey = (String, String);
/// The in-process single-flight lock of one token, holding the outcome of the last refresh done
/// under it and when it finished: callers that queued behind that refresh take its outcome
/// without another provider call or database read.
type RefreshLock = Arc<tokio::sync::Mutex<Option<(i64, Result<AccessToken>)>>>;

pub(crate) struct Inner {
    pub(crate) store: VaultStore,
    pub(crate) keys: KeyRing,
    pub(crate) providers: Providers,
    pub(crate) http: reqwest::Client,
    pub(crate) directory: SharedDirectory,
    pub(crate) publisher: SharedPublisher,
    pub(crate) enqueuer: SharedEnqueuer,
    pub(crate) metrics: VaultMetrics,
    pub(crate) config: dartwing_core::config::IntegrationsConfig,
    locks: Mutex<HashMap<TokenKey, RefreshLock>>,
    holder: String,
}

/// The integration token vault of a node.
#[derive(Clone)]
pub struct TokenVault {
    pub(crate) inner: Arc<Inner>,
}

fn now_us() -> i64 {
    Timestamp::now().as_micros()
}

fn truncate(message: &str) -> String {
    message.chars().take(MAX_ERROR_CHARS).collect()
}

/// SHA-256 of a connect flow's `state` (only the hash is stored).
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
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
                config: settings,
                locks: Mutex::new(HashMap::new()),
                holder: format!("{node_id}/{}", dartwing_core::ids::random_hex(4)),
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

    /// The access token of `integration` for `organization` (SPEC §6): not connected →
    /// [`VaultError::NotConnected`]; Expired → [`VaultError::ReauthRequired`]; expiring within the
    /// refresh buffer → refreshed first (single flight). No permission check: callers authorize.
    pub async fn access_token(&self, integration: &str, organization: &str) -> Result<AccessToken> {
        let buffer = Duration::from_secs(self.inner.config.refresh_buffer_secs);
        let row = self.usable(
            self.inner.store.get(organization, integration).await?,
            integration,
            organization,
        )?;
        if fresh(&row, buffer) {
            return Ok(self.open(&row)?);
        }
        self.refresh(integration, organization, buffer, "system").await
    }

    /// Stores tokens for an integration as if a connect flow had completed (used by the
    /// callback, by operators importing tokens, and by tests and benchmarks).
    pub async fn store_tokens(
        &self,
        organization: &str,
        integration: &str,
        grant: &TokenGrant,
        connected_by: &str,
    ) -> Result<()> {
        let tokens = self.seal(organization, integration, grant, None)?;
        let scopes = grant.scopes.as_ref().map(|s| s.join(" "));
        self.inner
            .store
            .save_connected(organization, integration, &tokens, scopes.as_deref(), connected_by)
            .await?;
        tracing::info!(organization, integration, actor = connected_by, "integration connected");
        Ok(())
    }

    fn seal(
        &self,
        organization: &str,
        integration: &str,
        grant: &TokenGrant,
        previous_refresh: Option<&str>,
    ) -> Result<SealedTokens> {
        let keys = &self.inner.keys;
        let refresh = grant.refresh_token.as_deref().or(previous_refresh);
        let expires_in = grant.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
        Ok(SealedTokens {
            access_token: keys.encrypt(organization, integration, Field::AccessToken, &grant.access_token)?,
            refresh_token: refresh
                .map(|r| keys.encrypt(organization, integration, Field::RefreshToken, r))
                .transpose()?,
            key_id: keys.current_id().to_string(),
            expires_at_us: now_us() + i64::try_from(expires_in.as_micros()).unwrap_or(i64::MAX / 2),
        })
    }

    fn open(&self, row: &IntegrationRow) -> std::result::Result<AccessToken, VaultError> {
        let sealed = row.access_token.as_deref().ok_or_else(|| VaultError::NotConnected {
            integration: row.integration.clone(),
            organization: row.organization.clone(),
        })?;
        let access_token = self
            .inner
            .keys
            .decrypt(&row.organization, &row.integration, Field::AccessToken, sealed)?;
        Ok(AccessToken {
            access_token,
            expires_at: row.expires_at_us.map(Timestamp::from_micros),
        })
    }

    fn usable(
        &self,
        row: Option<IntegrationRow>,
        integration: &str,
        organization: &str,
    ) -> std::result::Result<IntegrationRow, VaultError> {
        match row {
            None => Err(VaultError::NotConnected {
                integration: integration.into(),
                organization: organization.into(),
            }),
            Some(row) if row.status == IntegrationStatus::Disconnected || row.access_token.is_none() => {
                Err(VaultError::NotConnected {
                    integration: integration.into(),
                    organization: organization.into(),
                })
            }
            Some(row) if row.status == IntegrationStatus::Expired => Err(VaultError::ReauthRequired {
                integration: integration.into(),
                organization: organization.into(),
            }),
            Some(row) => Ok(row),
        }
    }

    fn lock_of(&self, organization: &str, integration: &str) -> RefreshLock {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        locks
            .entry((organization.to_string(), integration.to_string()))
            .or_default()
            .clone()
    }

    /// Refreshes unless the token stays valid for `min_validity` (single flight in and across
    /// processes); returns the valid token.
    pub async fn refresh(
        &self,
        integration: &str,
        organization: &str,
        min_validity: Duration,
        actor: &str,
    ) -> Result<AccessToken> {
        let started = now_us();
        let lock = self.lock_of(organization, integration);
        let mut last = lock.lock().await;
        if let Some((finished, outcome)) = last.as_ref()
            && *finished >= started
        {
            let margin = i64::try_from(min_validity.as_micros()).unwrap_or(i64::MAX / 2);
            match outcome {
                Ok(token) if token.expires_at.is_some_and(|at| at.as_micros() > now_us() + margin) => {
                    return Ok(token.clone());
                }
                Err(error) => return Err(error.clone()),
                Ok(_) => {}
            }
        }
        let outcome = self
            .refresh_across_processes(integration, organization, min_validity, started, actor)
            .await;
        *last = Some((now_us(), outcome.clone()));
        outcome
    }

    async fn refresh_across_processes(
        &self,
        integration: &str,
        organization: &str,
        min_validity: Duration,
        started: i64,
        actor: &str,
    ) -> Result<AccessToken> {
        let lease_for = Duration::from_millis(self.inner.config.http_timeout_ms) + Duration::from_secs(5);
        let give_up = Instant::now() + lease_for * 2;
        loop {
            let row = self.usable(
                self.inner.store.get(organization, integration).await?,
                integration,
                organization,
            )?;
            if let Some(done) = self.settled(&row, min_validity, started)? {
                return Ok(done);
            }
            let until = now_us() + i64::try_from(lease_for.as_micros()).unwrap_or(i64::MAX / 2);
            if self
                .inner
                .store
                .try_lease(organization, integration, &self.inner.holder, until)
                .await?
            {
                return self
                    .refresh_holding_lease(integration, organization, min_validity, started, actor)
                    .await;
            }
            if Instant::now() > give_up {
                return Err(Error::unavailable(format!(
                    "Another node is refreshing {integration} for {organization}; try again shortly"
                )));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// The outcome when nothing needs to be called: the token is fresh enough, or a refresh that
    /// began after `started` already failed (its waiters share the failure instead of retrying).
    fn settled(&self, row: &IntegrationRow, min_validity: Duration, started: i64) -> Result<Option<AccessToken>> {
        if row.status == IntegrationStatus::Connected && fresh(row, min_validity) {
            return Ok(Some(self.open(row)?));
        }
        if row.status == IntegrationStatus::Error && row.last_attempt_us.is_some_and(|t| t >= started) {
            return Err(VaultError::RefreshFailed {
                integration: row.integration.clone(),
                message: row.error_message.clone().unwrap_or_default(),
            }
            .into());
        }
        Ok(None)
    }

    async fn refresh_holding_lease(
        &self,
        integration: &str,
        organization: &str,
        min_validity: Duration,
        started: i64,
        actor: &str,
    ) -> Result<AccessToken> {
        let store = &self.inner.store;
        let holder = &self.inner.holder;
        let release = || store.release_lease(organization, integration, holder);
        // Someone may have finished between our last read and the lease.
        let row = match store.get(organization, integration).await {
            Ok(row) => row,
            Err(e) => {
                let _ = release().await;
                return Err(e);
            }
        };
        let row = match self.usable(row, integration, organization) {
            Ok(row) => row,
            Err(e) => {
                let _ = release().await;
                return Err(e.into());
            }
        };
        match self.settled(&row, min_validity, started) {
            Ok(None) => {}
            other => {
                let _ = release().await;
                return other.and_then(|t| t.ok_or_else(Error::internal));
            }
        }
        let refresh_token = match row
            .refresh_token
            .as_deref()
            .map(|sealed| {
                self.inner
                    .keys
                    .decrypt(organization, integration, Field::RefreshToken, sealed)
            })
            .transpose()
        {
            Ok(token) => token,
            Err(e) => {
                // Wrong key: change nothing, report clearly.
                let _ = release().await;
                return Err(e.into());
            }
        };
        let outcome = match (refresh_token.as_deref(), self.inner.providers.get(integration)) {
            (None, _) => Err(ProviderError::InvalidGrant("no refresh token stored".into())),
            (Some(_), None) => Err(ProviderError::Failed(format!(
                "provider {integration} is not configured (integrations.providers.{integration})"
            ))),
            (Some(token), Some(provider)) => {
                let begun = Instant::now();
                let result = provider.refresh(&self.inner.http, token).await;
                self.inner
                    .metrics
                    .provider_call(integration, "refresh", result.is_ok(), begun.elapsed());
                self.inner.metrics.refresh_latency(integration, begun.elapsed());
                result
            }
        };
        match outcome {
            Ok(grant) => {
                let tokens = self.seal(organization, integration, &grant, refresh_token.as_deref())?;
                let scopes = grant.scopes.as_ref().map(|s| s.join(" "));
                if !store
                    .save_refreshed(organization, integration, holder, &tokens, scopes.as_deref(), actor)
                    .await?
                {
                    tracing::warn!(
                        organization,
                        integration,
                        "refresh lease lost before saving; the other holder's tokens stand"
                    );
                }
                self.inner.metrics.refreshed(integration, "success");
                tracing::info!(
                    organization,
                    integration,
                    rotated = grant.refresh_token.is_some(),
                    "integration token refreshed"
                );
                Ok(AccessToken {
                    access_token: grant.access_token,
                    expires_at: Some(Timestamp::from_micros(tokens.expires_at_us)),
                })
            }
            Err(ProviderError::InvalidGrant(detail)) => {
                store
                    .save_refresh_failed(
                        organization,
                        integration,
                        holder,
                        IntegrationStatus::Expired,
                        EXPIRED_MESSAGE,
                        actor,
                    )
                    .await?;
                self.inner.metrics.refreshed(integration, "invalid_grant");
                tracing::warn!(organization, integration, detail = %truncate(&detail), "integration refresh token expired; reconnection required");
                self.notify_expired(organization, integration).await;
                Err(VaultError::ReauthRequired {
                    integration: integration.into(),
                    organization: organization.into(),
                }
                .into())
            }
            Err(ProviderError::Failed(message)) => {
                let message = truncate(&message);
                store
                    .save_refresh_failed(
                        organization,
                        integration,
                        holder,
                        IntegrationStatus::Error,
                        &message,
                        actor,
                    )
                    .await?;
                self.inner.metrics.refreshed(integration, "error");
                tracing::warn!(organization, integration, error = %message, "integration token refresh failed");
                Err(VaultError::RefreshFailed {
                    integration: integration.into(),
                    message,
                }
                .into())
            }
        }
    }

    /// Tells every Active Owner/Admin: a realtime `integration_expired` event now, an email
    /// through a queued job.
    async fn notify_expired(&self, organization: &str, integration: &str) {
        let message = json!({
            "organization": organization,
            "integration": integration,
            "status": IntegrationStatus::Expired,
            "message": EXPIRED_MESSAGE,
        });
        match self.inner.directory.admin_emails(organization).await {
            Ok(admins) => {
                for email in admins {
                    self.inner
                        .publisher
                        .publish(EXPIRED_EVENT, message.clone(), Target::User(email), None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list organization admins for integration_expired"),
        }
        // The job runs in the organization's context; the arguments only say which integration.
        let mut job = NewJob::new(NOTIFY_JOB, Some(organization), json!({ "integration": integration }));
        job.dedup_key = Some(format!("integration-expired:{integration}"));
        job.submitted_by = Some("integrations".into());
        if let Err(e) = self
            .inner
            .enqueuer
            .enqueue(&Principal::system("integrations"), job)
            .await
        {
            tracing::warn!(organization, integration, error = %e, "cannot queue the expiry email");
        }
    }

    /// The proactive refresh: every Connected token expiring within the window (and every Error
    /// row) is refreshed, single flight with callers. Logs the counts.
    pub async fn refresh_expiring(&self) -> Result<RefreshRun> {
        let window = Duration::from_secs(self.inner.config.proactive_refresh_window_secs);
        let before = now_us() + i64::try_from(window.as_micros()).unwrap_or(i64::MAX / 2);
        let due = self.inner.store.due_for_refresh(before).await?;
        let mut run = RefreshRun::default();
        for (organization, integration) in due {
            let previous = self.inner.store.get(&organization, &integration).await?;
            let last = previous.as_ref().and_then(|r| r.last_attempt_us);
            match self.refresh(&integration, &organization, window, "scheduler").await {
                Ok(_) => {
                    let now = self.inner.store.get(&organization, &integration).await?;
                    if now.and_then(|r| r.last_attempt_us) != last {
                        run.refreshed += 1;
                    } else {
                        run.skipped += 1;
                    }
                }
                Err(e) if e.exc_type() == crate::error::KEY_ERROR => {
                    run.failed += 1;
                }
                Err(_) => run.failed += 1,
            }
        }
        tracing::info!(
            refreshed = run.refreshed,
            failed = run.failed,
            skipped = run.skipped,
            "proactive integration refresh finished"
        );
        self.sample_metrics().await;
        Ok(run)
    }

    /// Starts a connect flow for `actor` (an Owner/Admin of the organization): returns the
    /// provider's authorization URL carrying a single-use `state` and a PKCE challenge.
    pub async fn connect(&self, actor: &Principal, organization: &str, integration: &str) -> Result<ConnectStart> {
        actor.authorize(Action::ManageIntegrations, organization)?;
        if !self.inner.directory.exists(organization).await? {
            return Err(Error::not_found(format!("Organization {organization} not found")));
        }
        let provider = self.inner.providers.get(integration).ok_or_else(|| {
            Error::validation(format!("Integration '{integration}' is not configured"))
                .with_exc_type("LinkValidationError")
        })?;
        let state = dartwing_core::ids::random_hex(32);
        let (authorize_url, verifier) = provider.authorize_url(&state);
        let sealed = self
            .inner
            .keys
            .encrypt(organization, integration, Field::PkceVerifier, &verifier)?;
        let ttl = Duration::from_secs(self.inner.config.state_ttl_secs);
        self.inner
            .store
            .save_state(
                &state_hash(&state),
                &ConnectState {
                    organization: organization.into(),
                    integration: integration.into(),
                    requested_by: actor.id().into(),
                    pkce_verifier: sealed,
                },
                now_us() + i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX / 2),
            )
            .await?;
        Ok(ConnectStart {
            authorize_url,
            state,
            expires_in: ttl.as_secs(),
        })
    }

    /// Completes a connect flow: checks the single-use `state`, exchanges `code` (with the PKCE
    /// verifier) and stores the encrypted tokens.
    pub async fn callback(&self, state: &str, code: &str) -> Result<IntegrationInfo> {
        let pending = self.inner.store.take_state(&state_hash(state)).await?.ok_or_else(|| {
            Error::bad_request("Unknown or expired 'state'; start the connection again")
                .with_exc_type("IntegrationStateInvalid")
        })?;
        let (organization, integration) = (&pending.organization, &pending.integration);
        let provider = self
            .inner
            .providers
            .get(integration)
            .ok_or_else(|| Error::validation(format!("Integration '{integration}' is not configured")))?;
        let verifier =
            self.inner
                .keys
                .decrypt(organization, integration, Field::PkceVerifier, &pending.pkce_verifier)?;
        let begun = Instant::now();
        let result = provider.exchange_code(&self.inner.http, code, &verifier).await;
        self.inner
            .metrics
            .provider_call(integration, "exchange", result.is_ok(), begun.elapsed());
        let grant = result.map_err(|e| {
            tracing::warn!(organization, integration, error = %e, "authorization code exchange failed");
            Error::new(
                dartwing_core::ErrorKind::Validation,
                format!("The provider refused the authorization: {}", truncate(&e.to_string())),
            )
            .with_exc_type("IntegrationAuthorizationFailed")
        })?;
        self.store_tokens(organization, integration, &grant, &pending.requested_by)
            .await?;
        self.sample_metrics().await;
        let row = self
            .inner
            .store
            .get(organization, integration)
            .await?
            .ok_or_else(|| crate::store::corrupt("row missing after connect"))?;
        Ok(IntegrationInfo::from(&row))
    }

    /// Drops a pending connect flow (the provider reported an error to the callback).
    pub async fn abandon_connect(&self, state: &str) {
        if let Err(e) = self.inner.store.take_state(&state_hash(state)).await {
            tracing::warn!(error = %e, "cannot remove an abandoned connect flow");
        }
    }

    /// Disconnects: revokes the refresh token at the provider (when it has a revocation
    /// endpoint), then removes the tokens. Owners/Admins only.
    pub async fn disconnect(&self, actor: &Principal, organization: &str, integration: &str) -> Result<Disconnected> {
        actor.authorize(Action::ManageIntegrations, organization)?;
        let lock = self.lock_of(organization, integration);
        let mut last = lock.lock().await;
        *last = None;
        let row = self.inner.store.get(organization, integration).await?;
        let row = match row {
            Some(row) if row.status != IntegrationStatus::Disconnected => row,
            _ => {
                return Err(VaultError::NotConnected {
                    integration: integration.into(),
                    organization: organization.into(),
                }
                .into());
            }
        };
        let mut revoked = false;
        let token = row
            .refresh_token
            .as_deref()
            .map(|s| {
                self.inner
                    .keys
                    .decrypt(organization, integration, Field::RefreshToken, s)
            })
            .transpose();
        match (token, self.inner.providers.get(integration)) {
            (Ok(Some(token)), Some(provider)) if provider.can_revoke() => {
                let begun = Instant::now();
                let result = provider.revoke(&self.inner.http, &token).await;
                self.inner
                    .metrics
                    .provider_call(integration, "revoke", result.is_ok(), begun.elapsed());
                match result {
                    Ok(done) => revoked = done,
                    Err(e) => {
                        tracing::warn!(organization, integration, error = %e, "revocation failed; removing the tokens anyway")
                    }
                }
            }
            (Err(e), _) => {
                tracing::warn!(organization, integration, error = %e, "cannot decrypt the refresh token to revoke it; removing it anyway")
            }
            _ => {}
        }
        let detail = if revoked {
            "revoked at provider"
        } else {
            "not revoked at provider"
        };
        self.inner
            .store
            .save_disconnected(organization, integration, actor.id(), detail)
            .await?;
        tracing::info!(
            organization,
            integration,
            actor = actor.id(),
            revoked,
            "integration disconnected"
        );
        self.sample_metrics().await;
        Ok(Disconnected {
            organization: organization.into(),
            integration: integration.into(),
            status: IntegrationStatus::Disconnected,
            revoked,
        })
    }

    /// Integrations of an organization (any member may read; no token material).
    pub async fn status(&self, actor: &Principal, organization: &str) -> Result<StatusReport> {
        actor.authorize(Action::Read, organization)?;
        let rows = self.inner.store.list(organization).await?;
        Ok(StatusReport {
            organization: organization.into(),
            integrations: rows.iter().map(IntegrationInfo::from).collect(),
            available: self.inner.providers.names().into_iter().map(str::to_string).collect(),
        })
    }

    /// The audit log of an organization's token operations (Owners/Admins).
    pub async fn audit_log(
        &self,
        actor: &Principal,
        organization: &str,
        limit: u32,
    ) -> Result<Vec<crate::store::AuditEntry>> {
        actor.authorize(Action::ManageIntegrations, organization)?;
        self.inner.store.audit_log(organization, limit).await
    }

    /// The service-only token read: a service API key with access to the organization.
    pub async fn service_access_token(
        &self,
        actor: &Principal,
        integration: &str,
        organization: &str,
    ) -> Result<AccessToken> {
        if !matches!(actor.kind, PrincipalKind::Service { .. }) {
            return Err(Error::permission_denied(
                "Only service API keys may read integration tokens",
            ));
        }
        actor.authorize(Action::Read, organization)?;
        let token = self.access_token(integration, organization).await?;
        tracing::info!(
            organization,
            integration,
            actor = actor.id(),
            "integration access token read"
        );
        Ok(token)
    }

    /// Refreshes the sampled integration gauges now.
    pub async fn sample_metrics(&self) {
        match self.inner.store.metric_samples().await {
            Ok((counts, expiries)) => self.inner.metrics.sample(&counts, &expiries, now_us()),
            Err(e) => tracing::warn!(error = %e, "cannot sample integration metrics"),
        }
    }

    /// Samples the integration gauges every 15 s until `shutdown`.
    pub fn spawn_metrics_sampler(&self, shutdown: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        let vault = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => vault.sample_metrics().await,
                }
            }
        })
    }
}

/// The start of a connect flow.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectStart {
    /// Where to send the user's browser.
    pub authorize_url: String,
    /// The single-use `state` carried through the provider back to the callback.
    pub state: String,
    /// Seconds the state stays valid.
    pub expires_in: u64,
}

/// The answer to a disconnect.
#[derive(Debug, Clone, Serialize)]
pub struct Disconnected {
    /// Organization.
    pub organization: String,
    /// Integration.
    pub integration: String,
    /// Always Disconnected.
    pub status: IntegrationStatus,
    /// Whether the provider confirmed the revocation.
    pub revoked: bool,
}

/// The answer to a status request.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Organization.
    pub organization: String,
    /// Stored integrations.
    pub integrations: Vec<IntegrationInfo>,
    /// Configured providers that can be connected.
    pub available: Vec<String>,
}

fn fresh(row: &IntegrationRow, min_validity: Duration) -> bool {
    let margin = i64::try_from(min_validity.as_micros()).unwrap_or(i64::MAX / 2);
    matches!(row.status, IntegrationStatus::Connected | IntegrationStatus::Error)
        && row.expires_at_us.is_some_and(|at| at > now_us() + margin)
}
