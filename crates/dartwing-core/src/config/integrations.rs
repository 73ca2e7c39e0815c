//! `[integrations]`: the integration token vault, its OAuth2 providers and outgoing mail (SPEC §6).

use super::validate::is_http_url;
use super::{ConfigErrors, Secret, Validate, text};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Integration token vault settings (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegrationsConfig {
    /// The current encryption key (base64 of 32 bytes); new ciphertexts use it. Also read from
    /// `DARTWING_INTEGRATION_KEY`.
    pub key: Option<Secret>,
    /// Older keys (base64) that stay readable until `dartwing keys rotate` has re-encrypted every row.
    pub previous_keys: Vec<Secret>,
    /// Key file used when `key` is unset: first line the current key, further lines older keys.
    /// Default `<data_dir>/integration-key` (generated with mode 0600 outside production mode).
    pub key_file: Option<PathBuf>,
    /// `access_token` refreshes first when the token expires within this many seconds.
    pub refresh_buffer_secs: u64,
    /// How often the proactive refresh job runs.
    pub proactive_refresh_interval_secs: u64,
    /// The proactive refresh job refreshes Connected tokens expiring within this many seconds.
    pub proactive_refresh_window_secs: u64,
    /// Time limit of each call to a provider (token exchange, refresh, revocation).
    pub http_timeout_ms: u64,
    /// How long a connect flow's `state` stays valid.
    pub state_ttl_secs: u64,
    /// Failed calls in a row to one provider (no answer, or a server error) that open its circuit
    /// breaker on a node; 0 never opens it.
    pub circuit_breaker_failures: u32,
    /// How long an open circuit refuses calls before one trial call may go out.
    pub circuit_breaker_open_secs: u64,
    /// Public base URL of the API (e.g. `https://api.example.com`); the OAuth redirect URI is
    /// `<public_base_url>/api/method/dartwing_core.integrations.callback`. Default `http://<listen>`.
    #[serde(deserialize_with = "text::optional")]
    pub public_base_url: Option<String>,
    /// OAuth2 providers by integration name (e.g. `Google`); see [`ProviderConfig`].
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Outgoing mail for expiry notifications.
    pub smtp: SmtpConfig,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        Self {
            key: None,
            previous_keys: Vec::new(),
            key_file: None,
            refresh_buffer_secs: 300,
            proactive_refresh_interval_secs: 300,
            proactive_refresh_window_secs: 600,
            http_timeout_ms: 10_000,
            state_ttl_secs: 600,
            circuit_breaker_failures: 5,
            circuit_breaker_open_secs: 30,
            public_base_url: None,
            providers: BTreeMap::new(),
            smtp: SmtpConfig::default(),
        }
    }
}

/// One OAuth2 provider. A preset (Google, Slack, QuickBooks, Salesforce, Microsoft365, Zapier)
/// supplies the URLs and default scopes; any field given here overrides it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Preset whose URLs and scopes are the defaults; default: the provider's own name when it names a preset.
    #[serde(deserialize_with = "text::optional")]
    pub preset: Option<String>,
    /// Authorization endpoint.
    #[serde(deserialize_with = "text::optional")]
    pub auth_url: Option<String>,
    /// Token endpoint (code exchange and refresh).
    #[serde(deserialize_with = "text::optional")]
    pub token_url: Option<String>,
    /// Revocation endpoint (RFC 7009); disconnect skips revocation when unset.
    #[serde(deserialize_with = "text::optional")]
    pub revoke_url: Option<String>,
    /// OAuth2 client id.
    #[serde(deserialize_with = "text::required")]
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: Option<Secret>,
    /// Scopes requested on connect (replace the preset's).
    pub scopes: Option<Vec<String>>,
    /// Extra query parameters of the authorization URL (e.g. `access_type = "offline"`).
    pub extra_params: BTreeMap<String, String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (local relays and tests only).
    None,
}

/// Outgoing mail settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// SMTP server host; unset = notification emails are logged as skipped.
    #[serde(deserialize_with = "text::optional")]
    pub host: Option<String>,
    /// SMTP server port.
    pub port: u16,
    /// `starttls`, `tls` or `none`.
    pub security: SmtpSecurity,
    /// Login user name; no authentication when unset.
    #[serde(deserialize_with = "text::optional")]
    pub username: Option<String>,
    /// Login password.
    pub password: Option<Secret>,
    /// Sender address of notification emails.
    #[serde(deserialize_with = "text::required")]
    pub from: String,
    /// Time limit of one SMTP delivery.
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: "Dartwing <no-reply@localhost>".into(),
            timeout_ms: 10_000,
        }
    }
}

/// Whether `name` may name a provider: 1-64 ASCII letters, digits, `_` or `-` (a bare TOML key).
fn is_provider_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl ProviderConfig {
    /// Adds the errors of this provider, found at `key` (e.g. `integrations.providers.Google`),
    /// to `errors`.
    fn validate_at(&self, key: &str, errors: &mut ConfigErrors) {
        errors.require(
            !self.client_id.is_empty(),
            format!("{key}.client_id"),
            "must not be empty",
        );
        for (field, url) in [
            ("auth_url", &self.auth_url),
            ("token_url", &self.token_url),
            ("revoke_url", &self.revoke_url),
        ] {
            errors.require(
                url.as_deref().is_none_or(is_http_url),
                format!("{key}.{field}"),
                "must be an http:// or https:// URL",
            );
        }
    }
}

impl Validate for IntegrationsConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.refresh_buffer_secs >= 1,
            "integrations.refresh_buffer_secs",
            "must be at least 1",
        );
        errors.require(
            self.proactive_refresh_interval_secs >= 1,
            "integrations.proactive_refresh_interval_secs",
            "must be at least 1",
        );
        errors.require(
            self.proactive_refresh_window_secs >= self.proactive_refresh_interval_secs,
            "integrations.proactive_refresh_window_secs",
            "must be at least integrations.proactive_refresh_interval_secs",
        );
        errors.require(
            self.http_timeout_ms >= 1,
            "integrations.http_timeout_ms",
            "must be at least 1",
        );
        errors.require(
            self.state_ttl_secs >= 1,
            "integrations.state_ttl_secs",
            "must be at least 1",
        );
        errors.require(
            self.circuit_breaker_open_secs >= 1,
            "integrations.circuit_breaker_open_secs",
            "must be at least 1",
        );
        errors.require(
            self.public_base_url.as_deref().is_none_or(is_http_url),
            "integrations.public_base_url",
            "must be an http:// or https:// URL",
        );
        for (name, provider) in &self.providers {
            let key = if is_provider_name(name) {
                format!("integrations.providers.{name}")
            } else {
                // Quoted as in TOML, so that the key shows where the name begins and ends.
                let quoted = serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"));
                errors.push(
                    format!("integrations.providers.{quoted}"),
                    "provider names must be 1-64 letters, digits, '_' or '-'",
                );
                format!("integrations.providers.{quoted}")
            };
            provider.validate_at(&key, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    fn with_google() -> IntegrationsConfig {
        let mut section = IntegrationsConfig::default();
        section.providers.insert(
            "Google".into(),
            ProviderConfig {
                client_id: "client".into(),
                auth_url: Some("https://accounts.example.com/auth".into()),
                ..ProviderConfig::default()
            },
        );
        section
    }

    fn google(section: &mut IntegrationsConfig) -> &mut ProviderConfig {
        section.providers.entry("Google".into()).or_default()
    }

    #[test]
    fn each_unusable_integrations_value_is_reported_under_its_key() {
        assert_eq!(reported_keys(&IntegrationsConfig::default()), Vec::<String>::new());
        assert_each_reported(
            &with_google(),
            reported_keys,
            &[
                (|c| c.refresh_buffer_secs = 0, "integrations.refresh_buffer_secs"),
                (
                    |c| c.proactive_refresh_interval_secs = 0,
                    "integrations.proactive_refresh_interval_secs",
                ),
                (
                    |c| c.proactive_refresh_window_secs = 299,
                    "integrations.proactive_refresh_window_secs",
                ),
                (|c| c.http_timeout_ms = 0, "integrations.http_timeout_ms"),
                (
                    |c| c.circuit_breaker_open_secs = 0,
                    "integrations.circuit_breaker_open_secs",
                ),
                (|c| c.state_ttl_secs = 0, "integrations.state_ttl_secs"),
                (
                    |c| c.public_base_url = Some("api.example.com".into()),
                    "integrations.public_base_url",
                ),
                (
                    |c| {
                        let google = c.providers.remove("Google").unwrap_or_default();
                        c.providers.insert("My Google".into(), google);
                    },
                    "integrations.providers.\"My Google\"",
                ),
                (
                    |c| google(c).client_id.clear(),
                    "integrations.providers.Google.client_id",
                ),
                (
                    |c| google(c).token_url = Some("file:///etc/passwd".into()),
                    "integrations.providers.Google.token_url",
                ),
                (
                    |c| google(c).revoke_url = Some("localhost/revoke".into()),
                    "integrations.providers.Google.revoke_url",
                ),
                (
                    |c| google(c).auth_url = Some("accounts.example.com".into()),
                    "integrations.providers.Google.auth_url",
                ),
            ],
        );
        let long = "x".repeat(65);
        let mut section = IntegrationsConfig::default();
        section
            .providers
            .insert(long.clone(), with_google().providers["Google"].clone());
        assert_eq!(reported_keys(&section), [format!("integrations.providers.\"{long}\"")]);
    }

    #[test]
    fn a_provider_with_a_bad_name_still_has_its_settings_checked() {
        let mut section = IntegrationsConfig::default();
        section.providers.insert("".into(), ProviderConfig::default());
        assert_eq!(
            reported_keys(&section),
            ["integrations.providers.\"\"", "integrations.providers.\"\".client_id"]
        );
    }
}
