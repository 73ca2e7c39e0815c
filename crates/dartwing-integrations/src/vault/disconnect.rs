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

    /// Revokes the row's refresh token at its provider; whether the provider confirmed it. A
    /// token that cannot be decrypted, or a failed call, is logged and not revoked.
    async fn revoke_at_provider(&self, row: &IntegrationRow) -> bool {
        let (organization, integration) = (row.organization.as_str(), row.integration.as_str());
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
                    Ok(done) => done,
                    Err(e) => {
                        tracing::warn!(organization, integration, error = %e, "revocation failed; removing the tokens anyway");
                        false
                    }
                }
            }
            (Err(e), _) => {
                tracing::warn!(organization, integration, error = %e, "cannot decrypt the refresh token to revoke it; removing it anyway");
                false
            }
            _ => false,
        }
    }
}
