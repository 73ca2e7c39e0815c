//! The connect flow: an administrator is sent to the provider with a single-use `state` and a
//! PKCE challenge; the provider sends the browser back to the callback with a code, which is
//! exchanged for tokens.

use super::status::IntegrationInfo;
use super::{TokenVault, micros, now_us, truncate};
use crate::keyring::Field;
use crate::provider::ProviderError;
use crate::store::ConnectState;
use dartwing_core::{Action, Error, Principal, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

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

/// SHA-256 of a connect flow's `state` (only the hash is stored).
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl TokenVault {
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
                now_us() + micros(ttl),
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
        self.inner.breakers.permit(integration)?;
        let begun = Instant::now();
        let result = provider.exchange_code(&self.inner.http, code, &verifier).await;
        self.inner
            .metrics
            .provider_call(integration, "exchange", result.is_ok(), begun.elapsed());
        self.inner
            .breakers
            .record(integration, !matches!(result, Err(ProviderError::Failed(_))));
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
}
