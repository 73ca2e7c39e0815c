//! Single-flight refresh of an access token.
//!
//! Single flight has two layers. In one process, callers for the same (organization,
//! integration) queue on an async mutex, so only one of them goes further. Across processes and
//! nodes, that one must take the row's refresh lease (a conditional `UPDATE` of
//! `refresh_lease_us`); the lease holder calls the provider, the others poll the row until it is
//! fresh. After taking either lock the row is read again, and nothing is called when someone
//! else already refreshed. The lease outlives the provider call's timeout, so a crashed holder
//! only delays the others, and no database lock is held during the HTTP call.

use super::tokens::{AccessToken, fresh};
use super::{EXPIRED_MESSAGE, TokenVault, micros, now_us, truncate};
use crate::error::VaultError;
use crate::keyring::Field;
use crate::provider::{ProviderError, TokenGrant};
use crate::store::{IntegrationRow, IntegrationStatus};
use dartwing_core::{Error, Result, Timestamp};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a process waiting for another process's refresh re-reads the row.
const LEASE_POLL: Duration = Duration::from_millis(20);

/// (organization, integration).
pub(super) type TokenKey = (String, String);
/// The in-process single-flight lock of one token, holding the outcome of the last refresh done
/// under it and when it finished: callers that queued behind that refresh take its outcome
/// without another provider call or database read.
pub(super) type RefreshLock = Arc<tokio::sync::Mutex<Option<(i64, Result<AccessToken>)>>>;

/// What the lease holder finds when it reads the row again under the lease.
enum UnderLease {
    /// Someone else finished meanwhile: their outcome stands.
    Settled(AccessToken),
    /// The provider must be called, with this (decrypted) refresh token, if any is stored.
    Refresh(Option<String>),
}

impl TokenVault {
    /// The in-process single-flight lock of a token.
    pub(super) fn lock_of(&self, organization: &str, integration: &str) -> RefreshLock {
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
            let margin = micros(min_validity);
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
            let until = now_us() + micros(lease_for);
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

    /// The lease holder's refresh: reads the row again, calls the provider and records the
    /// outcome (which gives the lease back). When it ends before the call, it gives the lease
    /// back without changing anything.
    async fn refresh_holding_lease(
        &self,
        integration: &str,
        organization: &str,
        min_validity: Duration,
        started: i64,
        actor: &str,
    ) -> Result<AccessToken> {
        let refresh_token = match self
            .read_under_lease(integration, organization, min_validity, started)
            .await
        {
            Ok(UnderLease::Refresh(token)) => token,
            Ok(UnderLease::Settled(token)) => {
                self.give_back_lease(organization, integration).await;
                return Ok(token);
            }
            Err(e) => {
                self.give_back_lease(organization, integration).await;
                return Err(e);
            }
        };
        // An open circuit refuses at once and leaves the row as it is.
        if let Err(open) = self.inner.breakers.permit(integration) {
            self.give_back_lease(organization, integration).await;
            return Err(open);
        }
        let outcome = self.call_provider(integration, refresh_token.as_deref()).await;
        match outcome {
            Ok(grant) => {
                self.record_refreshed(integration, organization, actor, refresh_token.as_deref(), grant)
                    .await
            }
            Err(ProviderError::InvalidGrant(detail)) => {
                self.record_expired(integration, organization, actor, &detail).await
            }
            Err(ProviderError::Failed(message)) => self.record_failed(integration, organization, actor, &message).await,
        }
    }

    /// Reads the row again under the lease (someone may have finished between our last read and
    /// the lease) and decrypts its refresh token. A wrong key changes nothing and is reported
    /// clearly.
    async fn read_under_lease(
        &self,
        integration: &str,
        organization: &str,
        min_validity: Duration,
        started: i64,
    ) -> Result<UnderLease> {
        let row = self.inner.store.get(organization, integration).await?;
        let row = self.usable(row, integration, organization)?;
        if let Some(token) = self.settled(&row, min_validity, started)? {
            return Ok(UnderLease::Settled(token));
        }
        let refresh_token = row
            .refresh_token
            .as_deref()
            .map(|sealed| {
                self.inner
                    .keys
                    .decrypt(organization, integration, Field::RefreshToken, sealed)
            })
            .transpose()?;
        Ok(UnderLease::Refresh(refresh_token))
    }

    /// Gives the lease back without changing anything else (a failure only delays the others
    /// until the lease runs out).
    async fn give_back_lease(&self, organization: &str, integration: &str) {
        let _ = self
            .inner
            .store
            .release_lease(organization, integration, &self.inner.holder)
            .await;
    }

    /// Asks the provider for new tokens with `refresh_token`.
    async fn call_provider(
        &self,
        integration: &str,
        refresh_token: Option<&str>,
    ) -> std::result::Result<TokenGrant, ProviderError> {
        match (refresh_token, self.inner.providers.get(integration)) {
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
                // A refused refresh token is an answer: the provider is up.
                let provider_up = !matches!(result, Err(ProviderError::Failed(_)));
                self.inner.breakers.record(integration, provider_up);
                self.inner.metrics.refresh_latency(integration, begun.elapsed());
                result
            }
        }
    }

    /// Stores the refreshed tokens (keeping the old refresh token when the provider sent none).
    async fn record_refreshed(
        &self,
        integration: &str,
        organization: &str,
        actor: &str,
        refresh_token: Option<&str>,
        grant: TokenGrant,
    ) -> Result<AccessToken> {
        let tokens = self.seal(organization, integration, &grant, refresh_token)?;
        let scopes = grant.scopes.as_ref().map(|s| s.join(" "));
        if !self
            .inner
            .store
            .save_refreshed(
                organization,
                integration,
                &self.inner.holder,
                &tokens,
                scopes.as_deref(),
                actor,
            )
            .await?
        {
            tracing::warn!(
                organization,
                integration,
                "refresh lease lost before saving; the other holder's tokens stand"
            );
        }
        self.tokens_changed(organization, integration).await;
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

    /// The provider refused the refresh token: the row becomes Expired and the administrators
    /// are told.
    async fn record_expired(
        &self,
        integration: &str,
        organization: &str,
        actor: &str,
        detail: &str,
    ) -> Result<AccessToken> {
        self.inner
            .store
            .save_refresh_failed(
                organization,
                integration,
                &self.inner.holder,
                IntegrationStatus::Expired,
                EXPIRED_MESSAGE,
                actor,
            )
            .await?;
        self.tokens_changed(organization, integration).await;
        self.inner.metrics.refreshed(integration, "invalid_grant");
        tracing::warn!(organization, integration, detail = %truncate(detail), "integration refresh token expired; reconnection required");
        self.notify_expired(organization, integration).await;
        Err(VaultError::ReauthRequired {
            integration: integration.into(),
            organization: organization.into(),
        }
        .into())
    }

    /// The refresh failed for another reason: the row goes to Error, retried by the next cycle.
    async fn record_failed(
        &self,
        integration: &str,
        organization: &str,
        actor: &str,
        message: &str,
    ) -> Result<AccessToken> {
        let message = truncate(message);
        self.inner
            .store
            .save_refresh_failed(
                organization,
                integration,
                &self.inner.holder,
                IntegrationStatus::Error,
                &message,
                actor,
            )
            .await?;
        self.tokens_changed(organization, integration).await;
        self.inner.metrics.refreshed(integration, "error");
        tracing::warn!(organization, integration, error = %message, "integration token refresh failed");
        Err(VaultError::RefreshFailed {
            integration: integration.into(),
            message,
        }
        .into())
    }
}
