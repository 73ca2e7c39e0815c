//! What administrators and members see of an organization's integrations: never token
//! material.

use super::TokenVault;
use crate::store::{AuditEntry, IntegrationRow, IntegrationStatus};
use dartwing_core::{Action, Principal, Result, Timestamp};
use serde::Serialize;

/// What the status endpoint shows of an integration: never token material.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationInfo {
    /// Organization.
    pub organization: String,
    /// Integration (provider) name.
    pub integration: String,
    /// Connected, Expired, Error or Disconnected.
    pub status: IntegrationStatus,
    /// Access token expiry.
    pub expires_at: Option<Timestamp>,
    /// Last successful refresh.
    pub last_refreshed: Option<Timestamp>,
    /// Message of the last failure.
    pub error_message: Option<String>,
    /// Who connected it.
    pub connected_by: Option<String>,
    /// When.
    pub connected_at: Option<Timestamp>,
    /// Granted scopes.
    pub scopes: Option<String>,
}

impl From<&IntegrationRow> for IntegrationInfo {
    fn from(row: &IntegrationRow) -> Self {
        let ts = |us: Option<i64>| us.map(Timestamp::from_micros);
        Self {
            organization: row.organization.clone(),
            integration: row.integration.clone(),
            status: row.status,
            expires_at: ts(row.expires_at_us),
            last_refreshed: ts(row.last_refreshed_us),
            error_message: row.error_message.clone(),
            connected_by: row.connected_by.clone(),
            connected_at: ts(row.connected_at_us),
            scopes: row.scopes.clone(),
        }
    }
}

/// The answer to a status request.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Organization.
    pub organization: String,
    /// Stored integrations.
    pub integrations: Vec<IntegrationInfo>,
    /// Configured providers that can be connected.
    pub available: Vec<String>,
}

impl TokenVault {
    /// Integrations of an organization (any member may read; no token material).
    pub async fn status(&self, actor: &Principal, organization: &str) -> Result<StatusReport> {
        actor.authorize(Action::Read, organization)?;
        let rows = self.inner.store.list(organization).await?;
        Ok(StatusReport {
            organization: organization.into(),
            integrations: rows.iter().map(IntegrationInfo::from).collect(),
            available: self.inner.providers.names().into_iter().map(str::to_string).collect(),
        })
    }

    /// The audit log of an organization's token operations (Owners/Admins).
    pub async fn audit_log(&self, actor: &Principal, organization: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        actor.authorize(Action::ManageIntegrations, organization)?;
        self.inner.store.audit_log(organization, limit).await
    }
}
