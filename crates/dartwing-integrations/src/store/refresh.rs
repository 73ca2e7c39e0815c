//! Refreshes: the proactive refresh's work list, the cross-process refresh lease, and the lease
//! holder's outcome. Only the holder of a row's lease calls the provider, and only the holder's
//! outcome is written (a conditional `UPDATE` on `refresh_lease_by`), which also gives the lease
//! back.

use super::audit::AuditAction;
use super::{DOCTYPE, IntegrationStatus, SealedTokens, VaultStore};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const REFRESH: SqlFile = SqlFile::portable(DOCTYPE, "refresh", include_str!("sql/refresh.sql"));

pub(super) struct RefreshSql {
    due_for_refresh: Statement,
    take_lease: Statement,
    release_lease: Statement,
    save_refreshed: Statement,
    save_refresh_failed: Statement,
}

impl RefreshSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = REFRESH.statements(backend)?;
        let sql = Self {
            due_for_refresh: s.take("due_for_refresh")?,
            take_lease: s.take("take_lease")?,
            release_lease: s.take("release_lease")?,
            save_refreshed: s.take("save_refreshed")?,
            save_refresh_failed: s.take("save_refresh_failed")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// (organization, integration) of a row due for refresh.
#[derive(sqlx::FromRow)]
struct DueRow {
    organization: String,
    integration: String,
}

impl VaultStore {
    /// Connected or Error rows whose token expires before `before_us` (Error rows always):
    /// the proactive refresh's work list.
    pub async fn due_for_refresh(&self, before_us: i64) -> Result<Vec<(String, String)>> {
        let sql = &self.sql.refresh.due_for_refresh;
        let due = self
            .db
            .run(sql, sql.query_as::<DueRow>().bind(before_us).fetch_all(self.db.pool()))
            .await?;
        Ok(due.into_iter().map(|r| (r.organization, r.integration)).collect())
    }

    /// Takes the cross-process refresh lease of a row until `until_us` when it is free (or its
    /// holder's lease ran out). Only the holder calls the provider.
    pub async fn try_lease(&self, organization: &str, integration: &str, holder: &str, until_us: i64) -> Result<bool> {
        let now = Timestamp::now().as_micros();
        let sql = &self.sql.refresh.take_lease;
        let done = self
            .db
            .run(
                sql,
                sql.query()
                    .bind(until_us)
                    .bind(holder.to_owned())
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .bind(now)
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back without changing anything else.
    pub async fn release_lease(&self, organization: &str, integration: &str, holder: &str) -> Result<()> {
        let sql = &self.sql.refresh.release_lease;
        self.db
            .run(
                sql,
                sql.query()
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .bind(holder.to_owned())
                    .execute(self.db.pool()),
            )
            .await?;
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
        let sql = &self.sql.refresh.save_refreshed;
        let mut tx = self.db.begin_tx().await?;
        let done = self
            .db
            .run(
                sql,
                sql.query()
                    .bind(tokens.access_token.clone())
                    .bind(tokens.refresh_token.clone())
                    .bind(tokens.key_id.clone())
                    .bind(tokens.expires_at_us)
                    .bind(now)
                    .bind(scopes.map(str::to_owned))
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .bind(holder.to_owned())
                    .execute(&mut *tx),
            )
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let entry = AuditAction {
            organization,
            integration,
            action: "refreshed",
            actor,
            detail: None,
        };
        self.commit_with_audit(tx, entry).await?;
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
        let sql = &self.sql.refresh.save_refresh_failed;
        let mut tx = self.db.begin_tx().await?;
        let done = self
            .db
            .run(
                sql,
                sql.query()
                    .bind(status.as_str())
                    .bind(message.to_owned())
                    .bind(now)
                    .bind(organization.to_owned())
                    .bind(integration.to_owned())
                    .bind(holder.to_owned())
                    .execute(&mut *tx),
            )
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let action = if status == IntegrationStatus::Expired {
            "expired"
        } else {
            "refresh_failed"
        };
        let entry = AuditAction {
            organization,
            integration,
            action,
            actor,
            detail: Some(message),
        };
        self.commit_with_audit(tx, entry).await?;
        Ok(true)
    }
}
