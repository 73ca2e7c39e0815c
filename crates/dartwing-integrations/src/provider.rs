//! Providers as configuration: one generic OAuth2 provider (authorization URL with PKCE, code
//! exchange, refresh, revocation) driven by `integrations.providers`, with presets for the
//! well-known services so that usually only a client id and secret are configured.

use dartwing_core::config::{IntegrationsConfig, ProviderConfig, Secret};
use oauth2::basic::{BasicClient, BasicTokenType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// Endpoints and default scopes of a well-known provider.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Name used in configuration (case-insensitive).
    pub name: &'static str,
    /// Authorization endpoint.
    pub auth_url: &'static str,
    /// Token endpoint.
    pub token_url: &'static str,
    /// Revocation endpoint, if the provider has one.
    pub revoke_url: Option<&'static str>,
    /// Scopes requested by default.
    pub scopes: &'static [&'static str],
    /// Extra authorization parameters (e.g. asking Google for a refresh token).
    pub extra_params: &'static [(&'static str, &'static str)],
}

/// The presets: Google, Slack, QuickBooks, Salesforce, Microsoft365, Zapier.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "Google",
        auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        revoke_url: Some("https://oauth2.googleapis.com/revoke"),
        scopes: &["openid", "email"],
        extra_params: &[("access_type", "offline"), ("prompt", "consent")],
    },
    Preset {
        name: "Slack",
        auth_url: "https://slack.com/oauth/v2/authorize",
        token_url: "https://slack.com/api/oauth.v2.access",
        revoke_url: None,
        scopes: &["chat:write"],
        extra_params: &[],
    },
    Preset {
        name: "QuickBooks",
        auth_url: "https://appcenter.intuit.com/connect/oauth2",
        token_url: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        revoke_url: Some("https://developer.api.intuit.com/v2/oauth2/tokens/revoke"),
        scopes: &["com.intuit.quickbooks.accounting"],
        extra_params: &[],
    },
    Preset {
        name: "Salesforce",
        auth_url: "https://login.salesforce.com/services/oauth2/authorize",
        token_url: "https://login.salesforce.com/services/oauth2/token",
        revoke_url: Some("https://login.salesforce.com/services/oauth2/revoke"),
        scopes: &["api", "refresh_token"],
        extra_params: &[],
    },
    Preset {
        name: "Microsoft365",
        auth_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        revoke_url: None,
        scopes: &["offline_access", "https://graph.microsoft.com/.default"],
        extra_params: &[],
    },
    Preset {
        name: "Zapier",
        auth_url: "https://zapier.com/oauth/authorize/",
        token_url: "https://zapier.com/oauth/token/",
        revoke_url: None,
        scopes: &["profile", "zap"],
        extra_params: &[],
    },
];

/// The preset called `name` (case-insensitive).
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;
type TokenAnswer = StandardTokenResponse<EmptyExtraTokenFields, BasicTokenType>;

/// Tokens a provider granted.
#[derive(Clone)]
pub struct TokenGrant {
    /// The access token.
    pub access_token: String,
    /// A refresh token, when the provider issued (or rotated) one.
    pub refresh_token: Option<String>,
    /// Lifetime of the access token, when the provider said.
    pub expires_in: Option<Duration>,
    /// Granted scopes, when the provider said.
    pub scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// How a provider call failed. Messages never contain token material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// The provider answered `invalid_grant`: the refresh token (or code) is no longer valid.
    InvalidGrant(String),
    /// Anything else: network failure, timeout, 5xx, other OAuth error.
    Failed(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::InvalidGrant(m) | ProviderError::Failed(m) => f.write_str(m),
        }
    }
}

/// One configured provider.
pub struct Provider {
    name: String,
    client: OAuthClient,
    client_id: String,
    client_secret: Option<Secret>,
    revoke_url: Option<String>,
    scopes: Vec<String>,
    extra_params: BTreeMap<String, String>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds provider `name` from its configuration and preset; the error names the key.
    pub fn from_config(name: &str, config: &ProviderConfig, redirect_url: &str) -> Result<Self, String> {
        let key = format!("integrations.providers.{name}");
        let preset_name = config.preset.as_deref().unwrap_or(name);
        let preset = preset(preset_name);
        if config.preset.is_some() && preset.is_none() {
            return Err(format!(
                "invalid configuration key `{key}.preset`: unknown preset '{preset_name}' (known: {})",
                PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            ));
        }
        let auth_url = config
            .auth_url
            .clone()
            .or_else(|| preset.map(|p| p.auth_url.to_string()))
            .ok_or_else(|| format!("invalid configuration key `{key}.auth_url`: required (no preset named {name})"))?;
        let token_url = config
            .token_url
            .clone()
            .or_else(|| preset.map(|p| p.token_url.to_string()))
            .ok_or_else(|| format!("invalid configuration key `{key}.token_url`: required (no preset named {name})"))?;
        let revoke_url = config
            .revoke_url
            .clone()
            .or_else(|| preset.and_then(|p| p.revoke_url.map(str::to_string)));
        let bad = |field: &str| format!("invalid configuration key `{key}.{field}`: not a valid URL");
        if let Some(url) = &revoke_url {
            reqwest::Url::parse(url).map_err(|_| bad("revoke_url"))?;
        }
        let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(AuthUrl::new(auth_url).map_err(|_| bad("auth_url"))?)
            .set_token_uri(TokenUrl::new(token_url).map_err(|_| bad("token_url"))?)
            .set_redirect_uri(RedirectUrl::new(redirect_url.to_string()).map_err(|_| {
                "invalid configuration key `integrations.public_base_url`: not a valid URL".to_string()
            })?);
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        let scopes = config.scopes.clone().unwrap_or_else(|| {
            preset
                .map(|p| p.scopes.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default()
        });
        let mut extra_params: BTreeMap<String, String> = preset
            .map(|p| {
                p.extra_params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        extra_params.extend(config.extra_params.clone());
        Ok(Self {
            name: name.to_string(),
            client,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            revoke_url,
            scopes,
            extra_params,
        })
    }

    /// The provider's (integration's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether disconnect can revoke tokens at the provider.
    pub fn can_revoke(&self) -> bool {
        self.revoke_url.is_some()
    }

    /// The authorization URL for `state`, with a fresh PKCE challenge; returns the URL and the
    /// PKCE verifier to keep until the callback.
    pub fn authorize_url(&self, state: &str) -> (String, String) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let mut request = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (key, value) in &self.extra_params {
            request = request.add_extra_param(key.clone(), value.clone());
        }
        let (url, _) = request.url();
        (url.to_string(), verifier.secret().clone())
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<TokenGrant, ProviderError> {
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(http)
            .await
            .map_err(classify)?;
        Ok(grant(answer))
    }

    /// Exchanges a refresh token for a new access token (and possibly a rotated refresh token).
    pub async fn refresh(&self, http: &reqwest::Client, refresh_token: &str) -> Result<TokenGrant, ProviderError> {
        let token = RefreshToken::new(refresh_token.to_string());
        let answer = self
            .client
            .exchange_refresh_token(&token)
            .request_async(http)
            .await
            .map_err(classify)?;
        Ok(grant(answer))
    }

    /// Revokes `token` (`token_type_hint` `refresh_token` or `access_token`) at the provider
    /// (RFC 7009: a form POST of `token` and `token_type_hint`, client authenticated like the token
    /// requests). `Ok(false)` when the provider has no revocation endpoint. (Done here rather than
    /// through `oauth2`, which refuses non-HTTPS revocation URLs, so that local providers and tests
    /// work the same way.)
    pub async fn revoke(
        &self,
        http: &reqwest::Client,
        token: &str,
        token_type_hint: &str,
    ) -> Result<bool, ProviderError> {
        let Some(url) = &self.revoke_url else {
            return Ok(false);
        };
        let mut form = vec![("token", token), ("token_type_hint", token_type_hint)];
        let mut request = http.post(url);
        match &self.client_secret {
            Some(secret) => request = request.basic_auth(&self.client_id, Some(secret.expose())),
            None => form.push(("client_id", &self.client_id)),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Failed(format!("revocation request failed: {}", source_chain(&e))))?;
        if response.status().is_success() {
            Ok(true)
        } else {
            Err(ProviderError::Failed(format!(
                "revocation answered HTTP {}",
                response.status().as_u16()
            )))
        }
    }
}

fn grant(answer: TokenAnswer) -> TokenGrant {
    TokenGrant {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|t| t.secret().clone()),
        expires_in: answer.expires_in(),
        scopes: answer.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()),
    }
}

/// Maps an oauth2 error to a token-free message (provider bodies are never included verbatim
/// except the standard `error` and `error_description` fields).
fn classify<RE, T>(error: RequestTokenError<RE, T>) -> ProviderError
where
    RE: std::error::Error + 'static,
    T: oauth2::ErrorResponse + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => {
            let text = serde_json::to_value(&response).unwrap_or_default();
            let code = text["error"].as_str().unwrap_or("error").to_string();
            let description = text["error_description"].as_str().map(str::to_string);
            let message = match description {
                Some(d) => format!("provider answered {code}: {d}"),
                None => format!("provider answered {code}"),
            };
            if code == "invalid_grant" {
                ProviderError::InvalidGrant(message)
            } else {
                ProviderError::Failed(message)
            }
        }
        RequestTokenError::Request(e) => {
            ProviderError::Failed(format!("request to provider failed: {}", source_chain(&e)))
        }
        RequestTokenError::Parse(_, _) => {
            ProviderError::Failed("provider answered with an unexpected response (not an OAuth2 token answer)".into())
        }
        RequestTokenError::Other(message) => ProviderError::Failed(format!("provider answered: {message}")),
    }
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Every configured provider, by integration name.
#[derive(Debug, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Provider>,
}

impl Providers {
    /// Builds the configured providers; `redirect_url` is the connect flow's callback URL.
    pub fn from_config(config: &IntegrationsConfig, redirect_url: &str) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for (name, provider) in &config.providers {
            by_name.insert(name.clone(), Provider::from_config(name, provider, redirect_url)?);
        }
        Ok(Self { by_name })
    }

    /// The provider of `integration`.
    pub fn get(&self, integration: &str) -> Option<&Provider> {
        self.by_name.get(integration)
    }

    /// Configured integration names.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const REDIRECT: &str = "https://api.example.com/api/method/dartwing_core.integrations.callback";

    #[test]
    fn a_preset_needs_only_client_credentials() {
        let config = ProviderConfig {
            client_id: "id".into(),
            client_secret: Some("secret".into()),
            ..Default::default()
        };
        for preset in PRESETS {
            let provider = Provider::from_config(preset.name, &config, REDIRECT).unwrap();
            let (url, verifier) = provider.authorize_url("state-123");
            assert!(url.starts_with(preset.auth_url), "{url}");
            assert!(url.contains("state=state-123") && url.contains("code_challenge_method=S256"));
            assert!(!url.contains(&verifier), "the verifier stays secret");
            assert_eq!(provider.can_revoke(), preset.revoke_url.is_some());
        }
        let google = Provider::from_config("Google", &config, REDIRECT).unwrap();
        assert!(google.authorize_url("s").0.contains("access_type=offline"));
    }

    #[test]
    fn unknown_providers_need_endpoints_and_errors_name_the_key() {
        let config = ProviderConfig {
            client_id: "id".into(),
            ..Default::default()
        };
        let error = Provider::from_config("Acme", &config, REDIRECT).unwrap_err();
        assert!(error.contains("integrations.providers.Acme.auth_url"), "{error}");
        let bad_preset = ProviderConfig {
            preset: Some("Nope".into()),
            ..config.clone()
        };
        let error = Provider::from_config("Acme", &bad_preset, REDIRECT).unwrap_err();
        assert!(error.contains("integrations.providers.Acme.preset"), "{error}");
        let custom = ProviderConfig {
            auth_url: Some("https://auth.acme.example/authorize".into()),
            token_url: Some("https://auth.acme.example/token".into()),
            scopes: Some(vec!["read".into()]),
            ..config
        };
        let provider = Provider::from_config("Acme", &custom, REDIRECT).unwrap();
        assert!(provider.authorize_url("s").0.contains("scope=read"));
        assert!(!provider.can_revoke());
    }
}
