//! Disconnecting: the refresh token is revoked at the provider when it can be, and the tokens
//! are removed either way.

use super::TokenVault;
use crate::error::VaultError;
use crate::keyring::Field;
use crate::store::{IntegrationRow, IntegrationStatus};
use dartwing_core::{Action, Principal, Result};
use serde::Serialize;
use std::time::Instant;

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

impl TokenVault {
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
        let revoked = self.revoke_at_provider(&row).await;
        let detail = if revoked {
            "revoked at provider"
        } else {
            "not revoked at provider"
        };
        self.inner
            .store
            .save_disconnected(organization, integration, actor.id(), detail)
            .await?;
        self.tokens_changed(organization, integration).await;
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

    /// Revokes the row's tokens at its provider (the refresh token, then the access token, as
    /// RFC 7009 allows); whether the provider confirmed the first of them. A token that cannot be
    /// decrypted, a failed call or an open circuit is logged and not revoked.
    async fn revoke_at_provider(&self, row: &IntegrationRow) -> bool {
        let (organization, integration) = (row.organization.as_str(), row.integration.as_str());
        let Some(provider) = self.inner.providers.get(integration).filter(|p| p.can_revoke()) else {
            return false;
        };
        let tokens = [
            (Field::RefreshToken, row.refresh_token.as_deref()),
            (Field::AccessToken, row.access_token.as_deref()),
        ];
        let mut confirmed = None;
        for (field, sealed) in tokens {
            let Some(sealed) = sealed else { continue };
            let token = match self.inner.keys.decrypt(organization, integration, field, sealed) {
                Ok(token) => token,
                Err(e) => {
                    tracing::warn!(organization, integration, token = field.as_str(), error = %e, "cannot decrypt the token to revoke it; removing it anyway");
                    confirmed.get_or_insert(false);
                    continue;
                }
            };
            if let Err(open) = self.inner.breakers.permit(integration) {
                tracing::warn!(organization, integration, error = %open, "not revoking: the provider's circuit is open; removing the tokens anyway");
                return confirmed.unwrap_or(false);
            }
            let begun = Instant::now();
            let result = provider.revoke(&self.inner.http, &token, field.as_str()).await;
            self.inner
                .metrics
                .provider_call(integration, "revoke", result.is_ok(), begun.elapsed());
            self.inner.breakers.record(integration, result.is_ok());
            let done = result.unwrap_or_else(|e| {
                tracing::warn!(organization, integration, token = field.as_str(), error = %e, "revocation failed; removing the tokens anyway");
                false
            });
            confirmed.get_or_insert(done);
        }
        confirmed.unwrap_or(false)
    }
}
