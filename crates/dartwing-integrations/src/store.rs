//! The vault's SQL: Organization Integration rows, pending connect flows and the audit log.
//! Token columns only ever receive ciphertexts from [`crate::keyring::KeyRing`].

use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Db, map_db_error};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::fmt;
use std::str::FromStr;

/// DocType label of query metrics.
pub const DOCTYPE: &str = "Organization Integration";

/// Status of an Organization Integration (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IntegrationStatus {
    /// Tokens are usable.
    Connected,
    /// The refresh token was refused (`invalid_grant`); an administrator must reconnect.
    Expired,
    /// The last refresh failed for another reason; retried by the next cycle.
    Error,
    /// Disconnected by an administrator; no tokens are stored.
    Disconnected,
}

impl IntegrationStatus {
    /// Every status.
    pub const ALL: [IntegrationStatus; 4] = [
        IntegrationStatus::Connected,
        IntegrationStatus::Expired,
        IntegrationStatus::Error,
        IntegrationStatus::Disconnected,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Connected => "Connected",
            IntegrationStatus::Expired => "Expired",
            IntegrationStatus::Error => "Error",
            IntegrationStatus::Disconnected => "Disconnected",
        }
    }
}

impl fmt::Display for IntegrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        IntegrationStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown integration status '{s}'"))
    }
}

/// One stored Organization Integration (tokens still encrypted).
#[derive(Clone)]
pub struct IntegrationRow {
    /// Organization name.
    pub organization: String,
    /// Integration (provider) name.
    pub integration: String,
    /// Status.
    pub status: IntegrationStatus,
    /// Encrypted access token.
    pub access_token: Option<String>,
    /// Encrypted refresh token.
    pub refresh_token: Option<String>,
    /// Id of the key that encrypted the tokens.
    pub key_id: Option<String>,
    /// Access token expiry (µs since the epoch).
    pub expires_at_us: Option<i64>,
    /// Last successful refresh.
    pub last_refreshed_us: Option<i64>,
    /// Last refresh attempt, successful or not.
    pub last_attempt_us: Option<i64>,
    /// Message of the last failure.
    pub error_message: Option<String>,
    /// Who connected it.
    pub connected_by: Option<String>,
    /// When it was connected.
    pub connected_at_us: Option<i64>,
    /// Granted scopes, space-separated.
    pub scopes: Option<String>,
}

impl fmt::Debug for IntegrationRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntegrationRow")
            .field("organization", &self.organization)
            .field("integration", &self.integration)
            .field("status", &self.status)
            .field("key_id", &self.key_id)
            .field("expires_at_us", &self.expires_at_us)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "organization, integration, status, access_token, refresh_token, key_id, expires_at_us, \
     last_refreshed_us, last_attempt_us, error_message, connected_by, connected_at_us, scopes";

fn row(r: &AnyRow) -> std::result::Result<IntegrationRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(IntegrationRow {
        organization: r.try_get("organization")?,
        integration: r.try_get("integration")?,
        status: status.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        access_token: r.try_get("access_token")?,
        refresh_token: r.try_get("refresh_token")?,
        key_id: r.try_get("key_id")?,
        expires_at_us: r.try_get("expires_at_us")?,
        last_refreshed_us: r.try_get("last_refreshed_us")?,
        last_attempt_us: r.try_get("last_attempt_us")?,
        error_message: r.try_get("error_message")?,
        connected_by: r.try_get("connected_by")?,
        connected_at_us: r.try_get("connected_at_us")?,
        scopes: r.try_get("scopes")?,
    })
}

/// Freshly encrypted tokens to store.
#[derive(Clone)]
pub struct SealedTokens {
    /// Encrypted access token.
    pub access_token: String,
    /// Encrypted refresh token, if any.
    pub refresh_token: Option<String>,
    /// Key that encrypted both.
    pub key_id: String,
    /// Access token expiry.
    pub expires_at_us: i64,
}

/// A pending connect flow.
pub struct ConnectState {
    /// Organization being connected.
    pub organization: String,
    /// Integration being connected.
    pub integration: String,
    /// Who started the flow.
    pub requested_by: String,
    /// Encrypted PKCE verifier.
    pub pkce_verifier: String,
}

/// One audit log entry (never token material).
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Organization.
    pub organization: String,
    /// Integration.
    pub integration: String,
    /// `connected`, `disconnected`, `refreshed`, `refresh_failed`, `expired`, `rotated`.
    pub action: String,
    /// Who did it (email, API key, `system`).
    pub actor: String,
    /// Extra non-secret detail.
    pub detail: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// SQL access of the vault.
#[derive(Clone)]
pub struct VaultStore {
    db: Db,
}

impl VaultStore {
    /// A store on `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The row of (`organization`, `integration`).
    pub async fn get(&self, organization: &str, integration: &str) -> Result<Option<IntegrationRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM organization_integration WHERE organization = $1 AND integration = $2");
        let found = self
            .db
            .observe(
                DOCTYPE,
                "select",
                sqlx::query(&sql)
                    .bind(organization)
                    .bind(integration)
                    .fetch_optional(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        found.as_ref().map(row).transpose().map_err(map_db_error)
    }

    /// Every row of `organization`.
    pub async fn list(&self, organization: &str) -> Result<Vec<IntegrationRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM organization_integration WHERE organization = $1 ORDER BY integration");
        let rows = self
            .db
            .observe(
                DOCTYPE,
                "select",
                sqlx::query(&sql).bind(organization).fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        rows.iter()
            .map(row)
            .collect::<std::result::Result<_, _>>()
            .map_err(map_db_error)
    }

    /// Connected or Error rows whose token expires before `before_us` (Error rows always):
    /// the proactive refresh's work list.
    pub async fn due_for_refresh(&self, before_us: i64) -> Result<Vec<(String, String)>> {
        self.db
            .observe(
                DOCTYPE,
                "select",
                sqlx::query_as(
                    "SELECT organization, integration FROM organization_integration \
                     WHERE (status = 'Connected' AND expires_at_us < $1) OR status = 'Error' \
                     ORDER BY expires_at_us",
                )
                .bind(before_us)
                .fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)
    }

    /// Stores freshly connected tokens (inserting or replacing the row) and records the audit entry.
    pub async fn save_connected(
        &self,
        organization: &str,
        integration: &str,
        tokens: &SealedTokens,
        scopes: Option<&str>,
        connected_by: &str,
    ) -> Result<()> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        sqlx::query(
            "INSERT INTO organization_integration (organization, integration, status, access_token, refresh_token, \
             key_id, expires_at_us, last_refreshed_us, last_attempt_us, error_message, connected_by, connected_at_us, \
             scopes, refresh_lease_us, refresh_lease_by, modified_us) \
             VALUES ($1, $2, 'Connected', $3, $4, $5, $6, $7, $7, NULL, $8, $7, $9, NULL, NULL, $7) \
             ON CONFLICT (organization, integration) DO UPDATE SET status = 'Connected', \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, key_id = excluded.key_id, \
             expires_at_us = excluded.expires_at_us, last_refreshed_us = excluded.last_refreshed_us, \
             last_attempt_us = excluded.last_attempt_us, error_message = NULL, connected_by = excluded.connected_by, \
             connected_at_us = excluded.connected_at_us, scopes = excluded.scopes, refresh_lease_us = NULL, \
             refresh_lease_by = NULL, modified_us = excluded.modified_us",
        )
        .bind(organization)
        .bind(integration)
        .bind(&tokens.access_token)
        .bind(&tokens.refresh_token)
        .bind(&tokens.key_id)
        .bind(tokens.expires_at_us)
        .bind(now)
        .bind(connected_by)
        .bind(scopes)
        .execute(&mut *tx)
        .await
        .map_err(map_db_error)?;
        audit(&mut tx, organization, integration, "connected", connected_by, scopes).await?;
        tx.commit().await.map_err(map_db_error)
    }

    /// Takes the cross-process refresh lease of a row until `until_us` when it is free (or its
    /// holder's lease ran out). Only the holder calls the provider.
    pub async fn try_lease(&self, organization: &str, integration: &str, holder: &str, until_us: i64) -> Result<bool> {
        let now = Timestamp::now().as_micros();
        let done = self
            .db
            .observe(
                DOCTYPE,
                "lease",
                sqlx::query(
                    "UPDATE organization_integration SET refresh_lease_us = $1, refresh_lease_by = $2 \
                     WHERE organization = $3 AND integration = $4 AND (refresh_lease_us IS NULL OR refresh_lease_us < $5)",
                )
                .bind(until_us)
                .bind(holder)
                .bind(organization)
                .bind(integration)
                .bind(now)
                .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back without changing anything else.
    pub async fn release_lease(&self, organization: &str, integration: &str, holder: &str) -> Result<()> {
        self.db
            .observe(
                DOCTYPE,
                "lease",
                sqlx::query(
                    "UPDATE organization_integration SET refresh_lease_us = NULL, refresh_lease_by = NULL \
                     WHERE organization = $1 AND integration = $2 AND refresh_lease_by = $3",
                )
                .bind(organization)
                .bind(integration)
                .bind(holder)
                .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        Ok(())
    }

    /// Records a successful refresh by the lease holder and releases the lease. `false` when the
    /// lease was lost meanwhile (nothing written).
    pub async fn save_refreshed(
        &self,
        organization: &str,
        integration: &str,
        holder: &str,
        tokens: &SealedTokens,
        scopes: Option<&str>,
        actor: &str,
    ) -> Result<bool> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        let done = sqlx::query(
            "UPDATE organization_integration SET status = 'Connected', access_token = $1, refresh_token = $2, \
             key_id = $3, expires_at_us = $4, last_refreshed_us = $5, last_attempt_us = $5, error_message = NULL, \
             scopes = COALESCE($6, scopes), refresh_lease_us = NULL, refresh_lease_by = NULL, modified_us = $5 \
             WHERE organization = $7 AND integration = $8 AND refresh_lease_by = $9",
        )
        .bind(&tokens.access_token)
        .bind(&tokens.refresh_token)
        .bind(&tokens.key_id)
        .bind(tokens.expires_at_us)
        .bind(now)
        .bind(scopes)
        .bind(organization)
        .bind(integration)
        .bind(holder)
        .execute(&mut *tx)
        .await
        .map_err(map_db_error)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit(&mut tx, organization, integration, "refreshed", actor, None).await?;
        tx.commit().await.map_err(map_db_error)?;
        Ok(true)
    }

    /// Records a failed refresh (status Expired or Error with `message`) and releases the lease.
    pub async fn save_refresh_failed(
        &self,
        organization: &str,
        integration: &str,
        holder: &str,
        status: IntegrationStatus,
        message: &str,
        actor: &str,
    ) -> Result<bool> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        let done = sqlx::query(
            "UPDATE organization_integration SET status = $1, error_message = $2, last_attempt_us = $3, \
             refresh_lease_us = NULL, refresh_lease_by = NULL, modified_us = $3 \
             WHERE organization = $4 AND integration = $5 AND refresh_lease_by = $6",
        )
        .bind(status.as_str())
        .bind(message)
        .bind(now)
        .bind(organization)
        .bind(integration)
        .bind(holder)
        .execute(&mut *tx)
        .await
        .map_err(map_db_error)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let action = if status == IntegrationStatus::Expired {
            "expired"
        } else {
            "refresh_failed"
        };
        audit(&mut tx, organization, integration, action, actor, Some(message)).await?;
        tx.commit().await.map_err(map_db_error)?;
        Ok(true)
    }

    /// Marks a row Disconnected and removes its tokens.
    pub async fn save_disconnected(
        &self,
        organization: &str,
        integration: &str,
        actor: &str,
        detail: &str,
    ) -> Result<()> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        sqlx::query(
            "UPDATE organization_integration SET status = 'Disconnected', access_token = NULL, refresh_token = NULL, \
             key_id = NULL, expires_at_us = NULL, error_message = NULL, refresh_lease_us = NULL, \
             refresh_lease_by = NULL, modified_us = $1 WHERE organization = $2 AND integration = $3",
        )
        .bind(now)
        .bind(organization)
        .bind(integration)
        .execute(&mut *tx)
        .await
        .map_err(map_db_error)?;
        audit(&mut tx, organization, integration, "disconnected", actor, Some(detail)).await?;
        tx.commit().await.map_err(map_db_error)
    }

    /// Stores a pending connect flow under the hash of its `state`.
    pub async fn save_state(&self, state_hash: &str, state: &ConnectState, expires_at_us: i64) -> Result<()> {
        let now = Timestamp::now().as_micros();
        sqlx::query("DELETE FROM integration_connect_state WHERE expires_at_us < $1")
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
        sqlx::query(
            "INSERT INTO integration_connect_state (state_hash, organization, integration, requested_by, \
             pkce_verifier, expires_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(state_hash)
        .bind(&state.organization)
        .bind(&state.integration)
        .bind(&state.requested_by)
        .bind(&state.pkce_verifier)
        .bind(expires_at_us)
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(())
    }

    /// Removes and returns the unexpired connect flow of `state_hash` (single use).
    pub async fn take_state(&self, state_hash: &str) -> Result<Option<ConnectState>> {
        let now = Timestamp::now().as_micros();
        let found: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "DELETE FROM integration_connect_state WHERE state_hash = $1 \
             RETURNING organization, integration, requested_by, pkce_verifier, expires_at_us",
        )
        .bind(state_hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(found.filter(|(.., expires)| *expires >= now).map(
            |(organization, integration, requested_by, pkce_verifier, _)| ConnectState {
                organization,
                integration,
                requested_by,
                pkce_verifier,
            },
        ))
    }

    /// Audit entries of an organization, newest first.
    pub async fn audit_log(&self, organization: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows: Vec<(String, String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT organization, integration, action, actor, detail, at_us FROM integration_audit \
             WHERE organization = $1 ORDER BY at_us DESC, id DESC LIMIT $2",
        )
        .bind(organization)
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(rows
            .into_iter()
            .map(|(organization, integration, action, actor, detail, at)| AuditEntry {
                organization,
                integration,
                action,
                actor,
                detail,
                at: Timestamp::from_micros(at),
            })
            .collect())
    }

    /// Appends an audit entry outside a token write (e.g. a key rotation).
    pub async fn record(
        &self,
        organization: &str,
        integration: &str,
        action: &str,
        actor: &str,
        detail: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.db.pool().acquire().await.map_err(map_db_error)?;
        audit(&mut conn, organization, integration, action, actor, detail).await
    }

    /// Counts by (integration, status), and (integration, organization, expires_at_us) of Connected rows.
    #[allow(clippy::type_complexity)]
    pub async fn metric_samples(&self) -> Result<(Vec<(String, String, i64)>, Vec<(String, String, i64)>)> {
        let counts: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT integration, status, COUNT(*) FROM organization_integration GROUP BY integration, status",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(map_db_error)?;
        let expiries: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT integration, organization, expires_at_us FROM organization_integration \
             WHERE status = 'Connected' AND expires_at_us IS NOT NULL",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok((counts, expiries))
    }

    /// Up to `limit` rows whose tokens are not encrypted with `current_key_id`, after `after`
    /// (organization, integration) in key order: the key rotation's next batch.
    pub async fn rotation_batch(
        &self,
        current_key_id: &str,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<IntegrationRow>> {
        let (org, integ) = after.cloned().unwrap_or_default();
        let sql = format!(
            "SELECT {COLUMNS} FROM organization_integration WHERE key_id IS NOT NULL AND key_id <> $1 \
             AND (organization > $2 OR (organization = $2 AND integration > $3)) \
             ORDER BY organization, integration LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(current_key_id)
            .bind(org)
            .bind(integ)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await
            .map_err(map_db_error)?;
        rows.iter()
            .map(row)
            .collect::<std::result::Result<_, _>>()
            .map_err(map_db_error)
    }

    /// Rows still encrypted with a key other than `current_key_id`.
    pub async fn count_not_under(&self, current_key_id: &str) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM organization_integration WHERE key_id IS NOT NULL AND key_id <> $1")
                .bind(current_key_id)
                .fetch_one(self.db.pool())
                .await
                .map_err(map_db_error)?;
        Ok(n)
    }

    /// Replaces a row's ciphertexts with re-encrypted ones if they are still `old` (a refresh in
    /// between wins, and its tokens are already under the current key). Returns whether it wrote.
    pub async fn replace_ciphertexts(
        &self,
        old: &IntegrationRow,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
        key_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE organization_integration SET access_token = $1, refresh_token = $2, key_id = $3 \
             WHERE organization = $4 AND integration = $5 AND key_id = $6 \
             AND COALESCE(access_token, '') = $7 AND COALESCE(refresh_token, '') = $8",
        )
        .bind(access_token)
        .bind(refresh_token)
        .bind(key_id)
        .bind(&old.organization)
        .bind(&old.integration)
        .bind(old.key_id.as_deref().unwrap_or_default())
        .bind(old.access_token.as_deref().unwrap_or_default())
        .bind(old.refresh_token.as_deref().unwrap_or_default())
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(done.rows_affected() == 1)
    }
}

async fn audit(
    conn: &mut sqlx::AnyConnection,
    organization: &str,
    integration: &str,
    action: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO integration_audit (id, organization, integration, action, actor, detail, at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(dartwing_core::ids::random_hex(12))
    .bind(organization)
    .bind(integration)
    .bind(action)
    .bind(actor)
    .bind(detail)
    .bind(Timestamp::now().as_micros())
    .execute(conn)
    .await
    .map_err(map_db_error)?;
    Ok(())
}

/// A stored value that should be a known status but is not (corrupt row).
pub fn corrupt(what: &str) -> Error {
    tracing::error!(
        error_type = "CorruptIntegration",
        what,
        "organization integration row is inconsistent"
    );
    Error::internal()
}
