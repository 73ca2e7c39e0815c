//! `[auth]`: end-user authentication (JWT).

use super::validate::is_http_url;
use super::{ConfigErrors, Validate, text};
use serde::{Deserialize, Serialize};

/// End-user authentication (JWT) settings. The HS256 secret is the top-level `jwt_secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWKS URL for RS256/ES256 tokens (e.g. Keycloak's `…/protocol/openid-connect/certs`).
    #[serde(deserialize_with = "text::optional")]
    pub jwks_url: Option<String>,
    /// Expected `iss`; unchecked when unset.
    #[serde(deserialize_with = "text::optional")]
    pub issuer: Option<String>,
    /// Expected `aud`; unchecked when unset.
    #[serde(deserialize_with = "text::optional")]
    pub audience: Option<String>,
    /// Claim holding the user's email.
    #[serde(deserialize_with = "text::required")]
    pub user_claim: String,
    /// Dotted path of the claim listing roles (Keycloak realm roles by default).
    #[serde(deserialize_with = "text::required")]
    pub roles_claim: String,
    /// Role value that makes a user a platform administrator.
    #[serde(deserialize_with = "text::required")]
    pub admin_role: String,
    /// How long fetched JWKS keys are trusted before a refetch.
    pub jwks_cache_secs: u64,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Lifetime of tokens printed by `dartwing token issue`.
    pub dev_token_ttl_secs: u64,
    /// Refuse tokens whose `email_verified` claim is false (tokens without the claim are accepted).
    pub require_verified_email: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: None,
            issuer: None,
            audience: None,
            user_claim: "email".into(),
            roles_claim: "realm_access.roles".into(),
            admin_role: "System Manager".into(),
            jwks_cache_secs: 300,
            leeway_secs: 30,
            dev_token_ttl_secs: 86_400,
            require_verified_email: true,
        }
    }
}

impl Validate for AuthConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.jwks_url.as_deref().is_none_or(is_http_url),
            "auth.jwks_url",
            "must be an http:// or https:// URL",
        );
        errors.require(!self.user_claim.is_empty(), "auth.user_claim", "must not be empty");
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    #[test]
    fn each_unusable_auth_value_is_reported_under_its_key() {
        let with_jwks = AuthConfig {
            jwks_url: Some("https://idp.example.com/certs".into()),
            ..AuthConfig::default()
        };
        assert_each_reported(
            &with_jwks,
            reported_keys,
            &[
                (
                    |c| c.jwks_url = Some("ftp://idp.example.com/certs".into()),
                    "auth.jwks_url",
                ),
                (|c| c.user_claim = String::new(), "auth.user_claim"),
            ],
        );
        assert_eq!(
            reported_keys(&AuthConfig::default()),
            Vec::<String>::new(),
            "unset is fine"
        );
    }
}
