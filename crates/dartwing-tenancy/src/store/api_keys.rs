//! Service API keys: issued by system administrators, stored as a SHA-256 digest of the secret.

use super::TenancyStore;
use dartwing_core::ids::random_hex;
use dartwing_core::names::validate_name;
use dartwing_core::{Error, Principal, Result, Timestamp};
use dartwing_db::SqlFile;
use serde::Serialize;
use sha2::{Digest, Sha256};

const API_KEYS: SqlFile = SqlFile::portable("API Key", "api_keys", include_str!("sql/api_keys.sql"));

statements! {
    /// Statements of API keys.
    ApiKeySql from API_KEYS {
        insert,
        revoke,
        list,
        select,
    }
}

/// A newly created API key. The secret is shown once and stored only as a hash.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedApiKey {
    /// Public part, sent as `token <api_key>:<api_secret>`.
    pub api_key: String,
    /// Secret part.
    pub api_secret: String,
    /// Organization the key is scoped to; `None` for a system key.
    pub organization: Option<String>,
}

/// A stored API key, without its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyInfo {
    /// Public part.
    pub api_key: String,
    /// Scope; `None` for system.
    pub organization: Option<String>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// A stored key with the status of the organization it is scoped to.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ServiceKeyRow {
    secret_sha256: String,
    /// Scope; `None` for system.
    pub(super) organization: Option<String>,
    revoked_at: Option<String>,
    /// Status of the scope's organization.
    pub(super) org_status: Option<String>,
}

impl ServiceKeyRow {
    /// Whether the key is in force and `secret` is its secret.
    pub(super) fn admits(&self, secret: &str) -> bool {
        self.revoked_at.is_none() && same_digest(&self.secret_sha256, &secret_digest(secret))
    }
}

fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TenancyStore {
    /// Creates an API key, system-wide or scoped to `organization` (system administrators).
    pub async fn create_api_key(
        &self,
        actor: &Principal,
        organization: Option<&str>,
        description: &str,
    ) -> Result<IssuedApiKey> {
        actor.authorize_system()?;
        if let Some(org) = organization {
            validate_name(org)?;
            if !self.organization_exists(org).await? {
                return Err(Error::not_found(format!("Organization {org} not found")));
            }
        }
        let issued = IssuedApiKey {
            api_key: random_hex(8),
            api_secret: random_hex(24),
            organization: organization.map(str::to_string),
        };
        let insert = &self.sql()?.api_keys.insert;
        self.db
            .run(
                insert,
                insert
                    .query()
                    .bind(issued.api_key.clone())
                    .bind(secret_digest(&issued.api_secret))
                    .bind(issued.organization.clone())
                    .bind(description.to_string())
                    .bind(Timestamp::now().to_string())
                    .bind(actor.id().to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        tracing::info!(api_key = %issued.api_key, organization = organization.unwrap_or("system"), "API key created");
        Ok(issued)
    }

    /// Revokes an API key (system administrators).
    pub async fn revoke_api_key(&self, actor: &Principal, api_key: &str) -> Result<()> {
        actor.authorize_system()?;
        if api_key.len() > 64 || api_key.chars().any(char::is_control) {
            return Err(Error::not_found("No such API key"));
        }
        let revoke = &self.sql()?.api_keys.revoke;
        let result = self
            .db
            .run(
                revoke,
                revoke
                    .query()
                    .bind(Timestamp::now().to_string())
                    .bind(api_key.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("No active API key {api_key}")));
        }
        Ok(())
    }

    /// Lists API keys without secrets (system administrators).
    pub async fn list_api_keys(&self, actor: &Principal) -> Result<Vec<ApiKeyInfo>> {
        actor.authorize_system()?;
        let list = &self.sql()?.api_keys.list;
        let keys = self.db.run(list, list.query_as().fetch_all(self.db.pool())).await?;
        Ok(keys)
    }

    /// The stored key `api_key`, if any.
    pub(super) async fn service_key(&self, api_key: &str) -> Result<Option<ServiceKeyRow>> {
        let select = &self.sql()?.api_keys.select;
        let row = self
            .db
            .run(
                select,
                select
                    .query_as()
                    .bind(api_key.to_string())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        Ok(row)
    }
}
