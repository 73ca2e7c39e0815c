//! How an authenticated credential becomes a [`Principal`]: implemented by the tenancy store,
//! used by the HTTP authenticator and the realtime handshake.

use crate::{Principal, Result};
use async_trait::async_trait;

/// A user whose JWT has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// Lower-cased email taken from the configured user claim.
    pub email: String,
    /// Display name from the token (`name` claim), used when provisioning a Person.
    pub full_name: Option<String>,
    /// Whether the token carries the platform-administrator role.
    pub system_admin: bool,
}

/// Resolves credentials to principals with their current memberships.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The principal of a verified user; provisions a Person just in time when none exists.
    /// Fails with 403 when the Person exists but is Inactive.
    async fn user_principal(&self, user: &VerifiedUser) -> Result<Principal>;

    /// The principal of a service API key; fails with 401 when the key or secret is wrong or revoked.
    async fn service_principal(&self, api_key: &str, api_secret: &str) -> Result<Principal>;
}
