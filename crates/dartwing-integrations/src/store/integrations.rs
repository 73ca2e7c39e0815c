//! Organization Integration rows: reading them, connecting and disconnecting.

use super::audit::AuditAction;
use super::{DOCTYPE, IntegrationRow, SealedTokens, VaultStore};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const INTEGRATIONS: SqlFile = SqlFile::portable(DOCTYPE, "integrations", include_str!("sql/integrations.sql"));

pub(super) struct IntegrationSql {
    get: Statement,
    list: Statement,
    save_connected: Statement,
    save_disconnected: Statement,
}

impl IntegrationSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = INTEGRATIONS.statements(backend)?;
        let sql = Self {
            get: s.take("get")?,
            list: s.take("list")?,
            save_connected: s.take("save_connected")?,
            save_disconnected: s.take("save_disconnected")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

impl VaultStore {
    /// The row of (`organization`, `integration`).
    pub async fn get(&self, organization: &str, integration: &str) -> Result<Option<IntegrationRow>> {
        let sql = &self.sql.integrations.get;
        let row = self
            .db
            .run(
                sql,
                sql.query_as::<IntegrationRow>()
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        Ok(row)
    }

    /// Every row of `organization`.
    pub async fn list(&self, organization: &str) -> Result<Vec<IntegrationRow>> {
        let sql = &self.sql.integrations.list;
        let rows = self
            .db
            .run(
                sql,
                sql.query_as::<IntegrationRow>()
                    .bind(organization.to_owned())
                    .fetch_all(self.db.pool()),
            )
            .await?;
        Ok(rows)
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
        let sql = &self.sql.integrations.save_connected;
        let mut tx = self.db.begin_tx().await?;
        self.db
            .run(
                sql,
                sql.query()
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .bind(tokens.access_token.clone())
                    .bind(tokens.refresh_token.clone())
                    .bind(tokens.key_id.clone())
                    .bind(tokens.expires_at_us)
                    .bind(now)
                    .bind(connected_by.to_owned())
                    .bind(scopes.map(str::to_owned))
                    .execute(&mut *tx),
            )
            .await?;
        let entry = AuditAction {
            organization,
            integration,
            action: "connected",
            actor: connected_by,
            detail: scopes,
        };
        Ok(self.commit_with_audit(tx, entry).await?)
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
        let sql = &self.sql.integrations.save_disconnected;
        let mut tx = self.db.begin_tx().await?;
        self.db
            .run(
                sql,
                sql.query()
                    .bind(now)
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .execute(&mut *tx),
            )
            .await?;
        let entry = AuditAction {
            organization,
            integration,
            action: "disconnected",
            actor,
            detail: Some(detail),
        };
        Ok(self.commit_with_audit(tx, entry).await?)
    }
}
