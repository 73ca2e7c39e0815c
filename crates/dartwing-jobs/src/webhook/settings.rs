//! Each organization's webhook settings in the database: its signing secret (generated on first
//! need, rotatable) and the hosts its deliveries may go to.

use dartwing_core::access::SharedDirectory;
use dartwing_core::ids::random_hex;
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Backend, Db, DbError, Micros, SqlFile, Statement};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

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

const SETTINGS: SqlFile = SqlFile::portable("Webhook Settings", "settings", include_str!("sql/settings.sql"));

struct SettingsSql {
    create_secret: Statement,
    secret: Statement,
    rotate_secret: Statement,
    allowed_hosts: Statement,
    clear_allowed_hosts: Statement,
    allow_host: Statement,
    delete_organization_secret: Statement,
    delete_organization_hosts: Statement,
}

impl SettingsSql {
    fn new(backend: Backend) -> std::result::Result<Self, DbError> {
        let mut s = SETTINGS.statements(backend)?;
        let sql = Self {
            create_secret: s.take("create_secret")?,
            secret: s.take("secret")?,
            rotate_secret: s.take("rotate_secret")?,
            allowed_hosts: s.take("allowed_hosts")?,
            clear_allowed_hosts: s.take("clear_allowed_hosts")?,
            allow_host: s.take("allow_host")?,
            delete_organization_secret: s.take("delete_organization_secret")?,
            delete_organization_hosts: s.take("delete_organization_hosts")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// A stored signing secret.
#[derive(sqlx::FromRow)]
pub(crate) struct SecretRow {
    secret: String,
    created_at_us: Micros,
}

impl SecretRow {
    fn into_secret(self, organization: &str) -> SigningSecret {
        SigningSecret {
            organization: organization.to_string(),
            secret: self.secret,
            created_at: self.created_at_us.into(),
        }
    }
}

/// SQL access to the webhook settings.
#[derive(Clone)]
pub struct WebhookSettings {
    db: Db,
    sql: Arc<SettingsSql>,
    directory: SharedDirectory,
}

impl WebhookSettings {
    /// The settings on `db`; `directory` tells which organizations exist. Fails when the
    /// statement file does not match the code.
    pub fn new(db: Db, directory: SharedDirectory) -> std::result::Result<Self, DbError> {
        let sql = Arc::new(SettingsSql::new(db.backend())?);
        Ok(Self { db, sql, directory })
    }

    /// The organization's signing secret, generated and stored on first need (concurrent first
    /// callers all get the one that was stored). A secret is generated only for an organization
    /// that exists (a delivery of a deleted organization's job gets none).
    pub async fn signing_secret(&self, organization: &str) -> Result<SigningSecret> {
        if let Some(row) = self.stored_secret(organization).await? {
            return Ok(row.into_secret(organization));
        }
        if !self.directory.exists(organization).await? {
            return Err(Error::not_found(format!("Organization {organization} not found")));
        }
        let sql = &self.sql;
        self.db
            .run(
                &sql.create_secret,
                sql.create_secret
                    .query()
                    .bind(organization.to_string())
                    .bind(new_secret())
                    .bind(Timestamp::now().as_micros())
                    .execute(self.db.pool()),
            )
            .await?;
        let row = self.stored_secret(organization).await?.ok_or_else(|| {
            tracing::error!(organization, "webhook signing secret vanished after it was stored");
            Error::internal()
        })?;
        Ok(row.into_secret(organization))
    }

    /// The organization's stored signing secret, if any.
    pub(crate) async fn stored_secret(&self, organization: &str) -> Result<Option<SecretRow>> {
        let sql = &self.sql;
        Ok(self
            .db
            .run(
                &sql.secret,
                sql.secret
                    .query_as()
                    .bind(organization.to_string())
                    .fetch_optional(self.db.pool()),
            )
            .await?)
    }

    /// Replaces the organization's signing secret with a new one; the previous secret signs
    /// nothing from now on. The organization must exist.
    pub async fn rotate_signing_secret(&self, organization: &str) -> Result<SigningSecret> {
        let rotated = SigningSecret {
            organization: organization.to_string(),
            secret: new_secret(),
            created_at: Timestamp::now(),
        };
        let sql = &self.sql;
        self.db
            .run(
                &sql.rotate_secret,
                sql.rotate_secret
                    .query()
                    .bind(organization.to_string())
                    .bind(rotated.secret.clone())
                    .bind(Micros(rotated.created_at))
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(rotated)
    }

    /// The organization's allowed hosts, sorted; empty means any host (public addresses only).
    pub async fn allowed_hosts(&self, organization: &str) -> Result<Vec<HostPattern>> {
        let sql = &self.sql;
        let patterns: Vec<String> = self
            .db
            .run(
                &sql.allowed_hosts,
                sql.allowed_hosts
                    .query_scalar()
                    .bind(organization.to_string())
                    .fetch_all(self.db.pool()),
            )
            .await?;
        Ok(patterns.into_iter().map(HostPattern).collect())
    }

    /// Replaces the organization's allowed hosts (in one transaction).
    pub async fn set_allowed_hosts(&self, organization: &str, hosts: &[HostPattern]) -> Result<()> {
        let sql = &self.sql;
        let mut tx = self.db.begin_tx().await?;
        self.db
            .run(
                &sql.clear_allowed_hosts,
                sql.clear_allowed_hosts
                    .query()
                    .bind(organization.to_string())
                    .execute(&mut *tx),
            )
            .await?;
        for host in hosts {
            self.db
                .run(
                    &sql.allow_host,
                    sql.allow_host
                        .query()
                        .bind(organization.to_string())
                        .bind(host.as_str().to_string())
                        .execute(&mut *tx),
                )
                .await?;
        }
        self.db.commit(tx).await?;
        Ok(())
    }

    /// Deletes a deleted organization's signing secret and allowed hosts (in one transaction);
    /// returns the rows removed.
    pub async fn delete_organization(&self, organization: &str) -> Result<u64> {
        let sql = &self.sql;
        let mut tx = self.db.begin_tx().await?;
        let mut removed = 0;
        for delete in [&sql.delete_organization_secret, &sql.delete_organization_hosts] {
            removed += self
                .db
                .run(delete, delete.query().bind(organization.to_string()).execute(&mut *tx))
                .await?
                .rows_affected();
        }
        self.db.commit(tx).await?;
        Ok(removed)
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
    fn settings_statements_build_on_both_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if let Err(e) = SettingsSql::new(backend) {
                panic!("{}: {e}", backend.as_str());
            }
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
