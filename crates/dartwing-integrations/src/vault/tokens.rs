//! Reading and storing tokens: the access token of an integration (refreshed first when it
//! expires soon), tokens of a completed connect flow, and sealing and opening ciphertexts.

use super::token_cache::MARGIN_BEFORE_REFRESH_US;
use super::{TokenVault, micros, now_us};
use crate::error::VaultError;
use crate::keyring::Field;
use crate::provider::TokenGrant;
use crate::store::{IntegrationRow, IntegrationStatus, SealedTokens};
use dartwing_core::access::AccessChange;
use dartwing_core::{Action, Error, Principal, PrincipalKind, Result, Timestamp};
use serde::Serialize;
use std::time::Duration;

/// Default lifetime of an access token whose provider gave no `expires_in`.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);

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

impl TokenVault {
    /// The access token of `integration` for `organization` (SPEC §6): not connected →
    /// [`VaultError::NotConnected`]; Expired → [`VaultError::ReauthRequired`]; expiring within the
    /// refresh buffer → refreshed first (single flight). No permission check: callers authorize.
    pub async fn access_token(&self, integration: &str, organization: &str) -> Result<AccessToken> {
        let now = now_us();
        if let Some(token) = self.inner.tokens.get(organization, integration, now) {
            return Ok(token);
        }
        let buffer = Duration::from_secs(self.inner.config.refresh_buffer_secs);
        let ticket = self.inner.tokens.ticket();
        let row = self.usable(
            self.inner.store.get(organization, integration).await?,
            integration,
            organization,
        )?;
        if fresh(&row, buffer) {
            let token = self.open(&row)?;
            if let Some(expires_at_us) = row.expires_at_us {
                let refresh_point = expires_at_us - micros(buffer);
                self.inner.tokens.insert(
                    ticket,
                    organization,
                    integration,
                    token.clone(),
                    refresh_point - MARGIN_BEFORE_REFRESH_US,
                );
            }
            return Ok(token);
        }
        self.refresh(integration, organization, buffer, "system").await
    }

    /// Drops every copy of the tokens of `integration` for `organization`, here and, through the
    /// access changes, on every node of the cluster (after they changed in the database).
    pub(super) async fn tokens_changed(&self, organization: &str, integration: &str) {
        let change = AccessChange::IntegrationTokens {
            organization: organization.to_string(),
            integration: integration.to_string(),
        };
        match self.inner.access.get() {
            Some(access) => access.announce(change).await,
            None => self.inner.tokens.invalidate(&change),
        }
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

    /// Stores tokens for an integration as if a connect flow had completed (used by the
    /// callback, by operators importing tokens, and by tests and benchmarks). The organization must exist.
    pub async fn store_tokens(
        &self,
        organization: &str,
        integration: &str,
        grant: &TokenGrant,
        connected_by: &str,
    ) -> Result<()> {
        if !self.inner.directory.exists(organization).await? {
            return Err(Error::not_found(format!("Organization {organization} not found")));
        }
        let tokens = self.seal(organization, integration, grant, None)?;
        let scopes = grant.scopes.as_ref().map(|s| s.join(" "));
        self.inner
            .store
            .save_connected(organization, integration, &tokens, scopes.as_deref(), connected_by)
            .await?;
        self.tokens_changed(organization, integration).await;
        tracing::info!(organization, integration, actor = connected_by, "integration connected");
        Ok(())
    }

    /// Encrypts a grant's tokens under the current key; a grant without a refresh token keeps
    /// `previous_refresh`.
    pub(super) fn seal(
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
            expires_at_us: now_us() + micros(expires_in),
        })
    }

    /// The decrypted access token of a row.
    pub(super) fn open(&self, row: &IntegrationRow) -> std::result::Result<AccessToken, VaultError> {
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

    /// The row when its tokens may be used or refreshed; why not otherwise.
    pub(super) fn usable(
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
}

/// Whether the row's access token stays valid for `min_validity`.
pub(super) fn fresh(row: &IntegrationRow, min_validity: Duration) -> bool {
    matches!(row.status, IntegrationStatus::Connected | IntegrationStatus::Error)
        && row.expires_at_us.is_some_and(|at| at > now_us() + micros(min_validity))
}
