//! The vault's typed error and its single mapping to client-facing errors.

use dartwing_core::Error;

/// `exc_type` of "this organization has no such connected integration".
pub const NOT_CONNECTED: &str = "IntegrationNotConnected";
/// `exc_type` of "the refresh token expired; an administrator must reconnect".
pub const REAUTH_REQUIRED: &str = "IntegrationReauthRequired";
/// `exc_type` of "the provider refused or failed the refresh".
pub const REFRESH_FAILED: &str = "IntegrationRefreshFailed";
/// `exc_type` of "the configured key ring cannot decrypt the stored token".
pub const KEY_ERROR: &str = "IntegrationKeyError";

/// Failures of the token vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The key configuration is unusable (message names the setting).
    #[error("{0}")]
    KeyConfig(String),
    /// A ciphertext names a key that is not in the ring.
    #[error(
        "stored token was encrypted with key {0}, which is not in the configured key ring; add that key to integrations.previous_keys"
    )]
    UnknownKey(String),
    /// Decryption failed (wrong key, tampering, corrupt value).
    #[error("{0}")]
    Crypto(String),
    /// The organization has no connected integration of that name.
    #[error("{integration} is not connected for organization {organization}")]
    NotConnected {
        /// Integration name.
        integration: String,
        /// Organization name.
        organization: String,
    },
    /// The refresh token is no longer accepted by the provider.
    #[error("{integration} needs to be reconnected for organization {organization}: refresh token expired")]
    ReauthRequired {
        /// Integration name.
        integration: String,
        /// Organization name.
        organization: String,
    },
    /// The provider failed the refresh (message without token material).
    #[error("refreshing {integration} failed: {message}")]
    RefreshFailed {
        /// Integration name.
        integration: String,
        /// What the provider said.
        message: String,
    },
}

impl From<VaultError> for Error {
    fn from(error: VaultError) -> Self {
        match &error {
            VaultError::NotConnected { .. } => Error::not_found(error.to_string()).with_exc_type(NOT_CONNECTED),
            VaultError::ReauthRequired { .. } => Error::conflict(error.to_string()).with_exc_type(REAUTH_REQUIRED),
            VaultError::RefreshFailed { .. } => Error::unavailable(error.to_string()).with_exc_type(REFRESH_FAILED),
            VaultError::KeyConfig(_) | VaultError::UnknownKey(_) | VaultError::Crypto(_) => {
                tracing::error!(error_type = KEY_ERROR, error = %error, "integration token cannot be decrypted");
                Error::unavailable(format!(
                    "The token vault cannot decrypt this integration's tokens: {error}"
                ))
                .with_exc_type(KEY_ERROR)
            }
        }
    }
}
