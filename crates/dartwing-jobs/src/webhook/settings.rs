//! Each organization's webhook settings in the database: its signing secret (generated on first
//! need, rotatable) and the hosts its deliveries may go to.

use dartwing_core::ids::random_hex;
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Db, map_db_error};
use serde::Serialize;
use std::fmt;

/// Prefix of generated signing secrets, so a leaked one is recognisable in a scan.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a signing secret.
pub const SECRET_BYTES: usize = 32;
/// Most host patterns an organization may list.
pub const MAX_HOSTS: usize = 100;

/// An organization's signing secret.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SigningSecret {
    /// The organization.
    pub organization: String,
    /// The secret (`whsec_` and 64 hex digits); the HMAC key is its UTF-8 text.
    pub secret: String,
    /// When it was generated (created or rotated).
    pub created_at: Timestamp,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSecret")
            .field("organization", &self.organization)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", random_hex(SECRET_BYTES))
}

/// A host an organization allows deliveries to: an exact host (`hooks.example.com`,
/// `203.0.113.7`, `[2001:db8::1]`) or `*.example.com`, which matches every name below
/// `example.com` but not `example.com` itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct HostPattern(String);

impl HostPattern {
    /// Parses a pattern, lower-cased; the error says what is wrong with it.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let lowered = text.to_ascii_lowercase();
        let (wildcard, host) = match lowered.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lowered.as_str()),
        };
        let canonical = url::Url::parse(&format!("http://{host}/"))
            .ok()
            .filter(|u| u.port().is_none() && u.path() == "/" && u.username().is_empty())
            .and_then(|u| u.host_str().map(str::to_string));
        let plain = host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if host.is_empty() || host.len() > 253 || !plain || canonical.as_deref() != Some(host) {
            return Err(format!(
                "'{text}' is not a host name such as hooks.example.com or *.example.com (ASCII, no scheme, port or path)"
            ));
        }
        if wildcard && (!host.contains('.') || host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()) {
            return Err(format!("'{text}': a wildcard needs a domain of at least two labels"));
        }
        Ok(Self(lowered))
    }

    /// Whether `host` (as the URL parser writes it: lower case, IPv6 in brackets) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self.0.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => self.0 == host,
        }
    }

    /// The pattern as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SQL access to the webhook settings.
#[derive(Clone)]
pub struct WebhookSettings {
    db: Db,
}

impl WebhookSettings {
    /// The settings on `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The organization's signing secret, generated and stored on first need (concurrent first
    /// callers all get the one that was stored). The organization must exist.
    pub async fn signing_secret(&self, organization: &str) -> Result<SigningSecret> {
        sqlx::query(
            "INSERT INTO webhook_signing_secret (organization, secret, created_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (organization) DO NOTHING",
        )
        .bind(organization)
        .bind(new_secret())
        .bind(Timestamp::now().as_micros())
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT secret, created_at_us FROM webhook_signing_secret WHERE organization = $1")
                .bind(organization)
                .fetch_optional(self.db.pool())
                .await
                .map_err(map_db_error)?;
        let (secret, created_at_us) = row.ok_or_else(|| {
            tracing::error!(organization, "webhook signing secret vanished after it was stored");
            Error::internal()
        })?;
        Ok(SigningSecret {
            organization: organization.to_string(),
            secret,
            created_at: Timestamp::from_micros(created_at_us),
        })
    }

    /// Replaces the organization's signing secret with a new one; the previous secret signs
    /// nothing from now on. The organization must exist.
    pub async fn rotate_signing_secret(&self, organization: &str) -> Result<SigningSecret> {
        let rotated = SigningSecret {
            organization: organization.to_string(),
            secret: new_secret(),
            created_at: Timestamp::now(),
        };
        sqlx::query(
            "INSERT INTO webhook_signing_secret (organization, secret, created_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (organization) DO UPDATE SET secret = excluded.secret, created_at_us = excluded.created_at_us",
        )
        .bind(organization)
        .bind(&rotated.secret)
        .bind(rotated.created_at.as_micros())
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(rotated)
    }

    /// The organization's allowed hosts, sorted; empty means any host (public addresses only).
    pub async fn allowed_hosts(&self, organization: &str) -> Result<Vec<HostPattern>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT pattern FROM webhook_allowed_host WHERE organization = $1 ORDER BY pattern")
                .bind(organization)
                .fetch_all(self.db.pool())
                .await
                .map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(pattern,)| HostPattern(pattern)).collect())
    }

    /// Replaces the organization's allowed hosts (in one transaction).
    pub async fn set_allowed_hosts(&self, organization: &str, hosts: &[HostPattern]) -> Result<()> {
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        sqlx::query("DELETE FROM webhook_allowed_host WHERE organization = $1")
            .bind(organization)
            .execute(&mut *tx)
            .await
            .map_err(map_db_error)?;
        for host in hosts {
            sqlx::query("INSERT INTO webhook_allowed_host (organization, pattern) VALUES ($1, $2)")
                .bind(organization)
                .bind(host.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_db_error)?;
        }
        tx.commit().await.map_err(map_db_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn host_patterns_parse_and_match() {
        let exact = HostPattern::parse("Hooks.Example.com").unwrap();
        assert_eq!(exact.as_str(), "hooks.example.com");
        assert!(exact.matches("hooks.example.com"));
        assert!(!exact.matches("evil-hooks.example.com"));
        assert!(!exact.matches("hooks.example.com.evil.net"));

        let wildcard = HostPattern::parse("*.example.com").unwrap();
        assert!(wildcard.matches("a.example.com"));
        assert!(wildcard.matches("a.b.example.com"));
        assert!(!wildcard.matches("example.com"));
        assert!(!wildcard.matches("badexample.com"));
        assert!(!wildcard.matches(".example.com"));

        assert!(HostPattern::parse("203.0.113.7").unwrap().matches("203.0.113.7"));
        assert!(HostPattern::parse("[2001:db8::1]").unwrap().matches("[2001:db8::1]"));
        for bad in [
            "",
            "*.",
            "*.com",
            "*.10.0.0.1",
            "https://example.com",
            "example.com:8080",
            "example.com/path",
            "user@example.com",
            "exa mple.com",
            "bücher.example",
            "2130706433",
            "*.*.example.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn secrets_are_long_random_and_redacted_in_debug() {
        let a = new_secret();
        assert_eq!(a.len(), SECRET_PREFIX.len() + 2 * SECRET_BYTES);
        assert_ne!(a, new_secret());
        let shown = format!(
            "{:?}",
            SigningSecret {
                organization: "ORG".into(),
                secret: a.clone(),
                created_at: Timestamp::now()
            }
        );
        assert!(!shown.contains(&a));
    }
}
