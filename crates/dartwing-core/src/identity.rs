//! How an authenticated credential becomes a [`Principal`]: implemented by the tenancy store,
//! used by the HTTP authenticator and the realtime gateway.
//!
//! A user's identity is keyed by the email in their token (see
//! [`normalize_email`](crate::tenancy::normalize_email)). Only the authenticated-request path
//! ([`IdentityStore::sign_in`]) creates or changes anything; re-checks of a user already signed in
//! ([`IdentityStore::user_principal`]) only read.

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

/// The identity provider's own key for a user: the token's `iss` and `sub` claims. The first one
/// seen for an email is bound to its Person; a later token for that email from another issuer or
/// subject is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The `iss` claim; empty when the token has none.
    pub issuer: String,
    /// The `sub` claim.
    pub subject: String,
}

/// Everything a verified token says about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user.
    pub user: VerifiedUser,
    /// `iss` and `sub`, when the token has a `sub` claim (development tokens have none).
    pub external: Option<ExternalIdentity>,
}

/// Resolves credentials to principals with their current memberships.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The principal of an authenticated request: provisions a Person just in time when none has
    /// the token's email, binds the token's `iss`+`sub` to the Person on first sight (401 when
    /// another one is bound), and accepts open invitations when the platform auto-accepts them.
    /// Fails with 403 when the Person is Inactive.
    async fn sign_in(&self, token: &VerifiedToken) -> Result<Principal>;

    /// The current principal of a user who signed in earlier (realtime subscriptions and access
    /// re-checks). Never creates anything: fails with 403 when no Active Person has this email
    /// any more (it was renamed, deleted or deactivated).
    async fn user_principal(&self, user: &VerifiedUser) -> Result<Principal>;

    /// The principal of a service API key; fails with 401 when the key or secret is wrong or revoked.
    async fn service_principal(&self, api_key: &str, api_secret: &str) -> Result<Principal>;
}
