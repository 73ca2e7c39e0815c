//! Authentication (SPEC §3): end users by `Authorization: Bearer <JWT>` (HS256 with the
//! configured secret, RS256/ES256 against a JWKS URL), services by Frappe-style
//! `Authorization: token <api_key>:<api_secret>`. The [`Auth`] extractor yields the
//! [`Principal`] that the permission module judges.

use crate::{ApiError, RequestContext};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use dartwing_core::config::AuthConfig;
use dartwing_core::identity::{ExternalIdentity, IdentityStore, VerifiedToken, VerifiedUser};
use dartwing_core::tenancy::normalize_email;
use dartwing_core::{Error, Principal, Result};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Turns credentials into principals; placed in request extensions by the server stack.
pub struct Authenticator {
    jwt: Arc<JwtVerifier>,
    identities: Arc<dyn IdentityStore>,
}

impl Authenticator {
    /// An authenticator verifying JWTs with `jwt` and resolving identities through `identities`.
    pub fn new(jwt: Arc<JwtVerifier>, identities: Arc<dyn IdentityStore>) -> Self {
        Self { jwt, identities }
    }

    /// The principal of an `Authorization` header value.
    pub async fn authenticate_header(&self, header: &str) -> Result<Principal> {
        let header = header.trim();
        if let Some(token) = strip_scheme(header, "bearer") {
            self.authenticate_bearer(token).await
        } else if let Some(credentials) = strip_scheme(header, "token") {
            let (key, secret) = credentials
                .split_once(':')
                .filter(|(k, s)| !k.is_empty() && !s.is_empty())
                .ok_or_else(|| Error::unauthenticated("Expected 'token <api_key>:<api_secret>'"))?;
            self.identities.service_principal(key, secret).await
        } else {
            Err(Error::unauthenticated(
                "Unsupported Authorization scheme; use 'Bearer <JWT>' or 'token <key>:<secret>'",
            ))
        }
    }

    /// The principal of a bearer JWT (also used by the Socket.IO handshake): the user signs in,
    /// which provisions their Person at the first request.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal> {
        let token = self.jwt.verify(token).await?;
        self.identities.sign_in(&token).await
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The authenticated principal of a request. Rejects with 401 when credentials are missing or
/// invalid. Its successful authorizations name the request's organization (see [`RequestContext`]).
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = parts.extensions.get::<Arc<Authenticator>>().cloned().ok_or_else(|| {
            tracing::error!(
                error_type = "Misconfiguration",
                "no authenticator in request extensions"
            );
            ApiError(Error::internal())
        })?;
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError(Error::unauthenticated("Missing Authorization header")))?
            .to_str()
            .map_err(|_| ApiError(Error::unauthenticated("Malformed Authorization header")))?;
        let mut principal = authenticator.authenticate_header(header).await?;
        if let Some(context) = parts.extensions.get::<RequestContext>() {
            context.set_user(principal.id());
            principal = context.witnessed(principal);
        }
        Ok(Auth(principal))
    }
}

/// Verifies end-user JWTs and reads the user, name and administrator role from their claims.
pub struct JwtVerifier {
    hs256: Option<(DecodingKey, EncodingKey)>,
    jwks: Option<JwksCache>,
    config: AuthConfig,
}

impl JwtVerifier {
    /// A verifier accepting HS256 tokens signed with `hs256_secret` (when set) and RS256/ES256
    /// tokens whose key is in `config.jwks_url` (when set).
    pub fn new(hs256_secret: Option<&str>, config: &AuthConfig) -> Self {
        let hs256 = hs256_secret.map(|s| {
            (
                DecodingKey::from_secret(s.as_bytes()),
                EncodingKey::from_secret(s.as_bytes()),
            )
        });
        let jwks = config
            .jwks_url
            .as_ref()
            .map(|url| JwksCache::new(url, Duration::from_secs(config.jwks_cache_secs)));
        Self {
            hs256,
            jwks,
            config: config.clone(),
        }
    }

    /// Checks signature, `exp`, `nbf`, and issuer/audience when configured; refuses an
    /// `email_verified: false` claim when `auth.require_verified_email` is on.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::unauthenticated("Malformed token or unsupported algorithm"))?;
        let key = match header.alg {
            Algorithm::HS256 => {
                let (key, _) = self
                    .hs256
                    .as_ref()
                    .ok_or_else(|| Error::unauthenticated("HS256 tokens are not accepted by this server"))?;
                key.clone()
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or_else(|| Error::unauthenticated("Tokens signed with public keys need auth.jwks_url"))?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| Error::unauthenticated("Token has no key id (kid)"))?;
                jwks.key(kid).await?
            }
            _ => return Err(Error::unauthenticated("Unsupported token algorithm")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        // jsonwebtoken checks `iss`/`aud` only when the token carries them: a configured issuer
        // or audience must also make the claim required, or a token without it would pass.
        let mut required = vec!["exp"];
        match &self.config.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            Error::unauthenticated(match e.kind() {
                K::ExpiredSignature => "Token has expired",
                K::ImmatureSignature => "Token is not valid yet",
                K::InvalidIssuer => "Token issuer is not accepted",
                K::InvalidAudience => "Token audience is not accepted",
                K::InvalidSignature => "Token signature is invalid",
                K::MissingRequiredClaim(_) => "Token lacks a required claim",
                _ => "Token is invalid",
            })
        })?;
        self.user_from_claims(&data.claims)
    }

    fn user_from_claims(&self, claims: &Value) -> Result<VerifiedToken> {
        let email = claims
            .get(&self.config.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::unauthenticated(format!("Token lacks the '{}' claim", self.config.user_claim)))?;
        let email = normalize_email(email).map_err(Error::unauthenticated)?;
        // IdPs write the claim as a boolean; some as the text "false".
        let unverified = match claims.get("email_verified") {
            Some(Value::Bool(verified)) => !verified,
            Some(Value::String(verified)) => verified.eq_ignore_ascii_case("false"),
            _ => false,
        };
        if unverified && self.config.require_verified_email {
            return Err(Error::unauthenticated("The token's email address is not verified"));
        }
        let external = external_identity(claims)?;
        let roles = self
            .config
            .roles_claim
            .split('.')
            .try_fold(claims, |value, key| value.get(key));
        let system_admin = roles.and_then(Value::as_array).is_some_and(|roles| {
            roles
                .iter()
                .any(|r| r.as_str() == Some(self.config.admin_role.as_str()))
        });
        let full_name = claims.get("name").and_then(Value::as_str).map(str::to_string);
        Ok(VerifiedToken {
            user: VerifiedUser {
                email,
                full_name,
                system_admin,
            },
            external,
        })
    }

    /// Signs a development HS256 token for `email` valid for `ttl`; fails without a secret.
    pub fn issue_dev_token(&self, email: &str, system_admin: bool, ttl: Duration) -> Result<String> {
        let (_, key) = self
            .hs256
            .as_ref()
            .ok_or_else(|| Error::validation("No HS256 secret configured (set DARTWING_JWT_SECRET)"))?;
        let email = normalize_email(email).map_err(Error::validation)?;
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = serde_json::json!({
            "email": email,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
        });
        claims[&self.config.user_claim] = Value::from(email.as_str());
        if let Some(issuer) = &self.config.issuer {
            claims["iss"] = Value::from(issuer.as_str());
        }
        if let Some(audience) = &self.config.audience {
            claims["aud"] = Value::from(audience.as_str());
        }
        if system_admin {
            let mut roles = Value::from(vec![self.config.admin_role.clone()]);
            for key in self.config.roles_claim.rsplit('.') {
                roles = serde_json::json!({ key: roles });
            }
            if let (Some(obj), Some(extra)) = (claims.as_object_mut(), roles.as_object()) {
                obj.extend(extra.clone());
            }
        }
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key).map_err(|e| {
            tracing::error!(error_type = "TokenSigning", error = %e, "signing a development token failed");
            Error::internal()
        })
    }
}

/// The token's `iss` and `sub` claims, when it has a `sub`. Both are at most 255 bytes of
/// printable text (OpenID Connect's limit for `sub`), or the token is refused.
fn external_identity(claims: &Value) -> Result<Option<ExternalIdentity>> {
    let text = |name: &str| -> Result<Option<String>> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) if value.len() <= 255 && !value.chars().any(char::is_control) => {
                Ok(Some(value.clone()))
            }
            Some(_) => Err(Error::unauthenticated(format!("Token has an invalid '{name}' claim"))),
        }
    };
    let issuer = text("iss")?;
    Ok(text("sub")?
        .filter(|subject| !subject.is_empty())
        .map(|subject| ExternalIdentity {
            issuer: issuer.unwrap_or_default(),
            subject,
        }))
}

/// Keys fetched from a JWKS URL, cached for a time and refetched when a token names an unknown
/// key id (at most once per [`JwksCache::MIN_REFETCH`], so forged key ids cannot flood the IdP).
struct JwksCache {
    url: String,
    ttl: Duration,
    client: reqwest::Client,
    keys: RwLock<(HashMap<String, DecodingKey>, Option<Instant>)>,
    refetch: Mutex<()>,
}

impl JwksCache {
    const MIN_REFETCH: Duration = Duration::from_secs(5);

    fn new(url: &str, ttl: Duration) -> Self {
        Self {
            url: url.to_string(),
            ttl,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new((HashMap::new(), None)),
            refetch: Mutex::new(()),
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey> {
        {
            let keys = self.keys.read().await;
            if let (Some(key), Some(at)) = (keys.0.get(kid), keys.1)
                && at.elapsed() < self.ttl
            {
                return Ok(key.clone());
            }
        }
        let _single_flight = self.refetch.lock().await;
        let stale = {
            let keys = self.keys.read().await;
            if let Some(key) = keys.0.get(kid)
                && keys.1.is_some_and(|at| at.elapsed() < self.ttl)
            {
                return Ok(key.clone());
            }
            keys.1.is_none_or(|at| at.elapsed() >= Self::MIN_REFETCH)
        };
        if stale {
            let fetched = self.fetch().await?;
            *self.keys.write().await = (fetched, Some(Instant::now()));
        }
        let keys = self.keys.read().await;
        let key = keys
            .0
            .get(kid)
            .ok_or_else(|| Error::unauthenticated("Token key id is unknown"))?;
        Ok(key.clone())
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>> {
        let unavailable = |what: &str| {
            tracing::warn!(error_type = "JwksUnavailable", url = %self.url, "{what}");
            Error::unavailable("The identity provider's keys cannot be fetched")
        };
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|_| unavailable("JWKS request failed"))?;
        if !response.status().is_success() {
            return Err(unavailable("JWKS endpoint answered an error status"));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|_| unavailable("JWKS document is not a key set"))?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect())
    }
}
