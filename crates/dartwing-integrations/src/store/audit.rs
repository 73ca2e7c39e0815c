//! The audit log of token operations (never token material).

use super::{AuditEntry, VaultStore};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, Micros, SqlFile, Statement};
use sqlx::{Any, Executor, Transaction};

const AUDIT: SqlFile = SqlFile::portable("Integration Audit", "audit", include_str!("sql/audit.sql"));

pub(super) struct AuditSql {
    insert: Statement,
    newest_of_organization: Statement,
}

impl AuditSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = AUDIT.statements(backend)?;
        let sql = Self {
            insert: s.take("insert")?,
            newest_of_organization: s.take("newest_of_organization")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// What an audit entry records, before it gets its id and time.
pub(super) struct AuditAction<'a> {
    pub(super) organization: &'a str,
    pub(super) integration: &'a str,
    pub(super) action: &'a str,
    pub(super) actor: &'a str,
    pub(super) detail: Option<&'a str>,
}

impl VaultStore {
    /// Audit entries of an organization, newest first.
    pub async fn audit_log(&self, organization: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = &self.sql.audit.newest_of_organization;
        let entries = self
            .db
            .run(
                sql,
                sql.query_as::<AuditEntry>()
                    .bind(organization.to_owned())
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool()),
            )
            .await?;
        Ok(entries)
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
        let entry = AuditAction {
            organization,
            integration,
            action,
            actor,
            detail,
        };
        Ok(self.append_audit(self.db.pool(), entry).await?)
    }

    /// Appends `entry` to the write in `tx`, and commits both.
    pub(super) async fn commit_with_audit(
        &self,
        mut tx: Transaction<'static, Any>,
        entry: AuditAction<'_>,
    ) -> Result<(), DbError> {
        self.append_audit(&mut *tx, entry).await?;
        self.db.commit(tx).await
    }

    /// Appends `entry` on `executor` (the transaction of the write it records, or the pool).
    pub(super) async fn append_audit<'c, E>(&self, executor: E, entry: AuditAction<'_>) -> Result<(), DbError>
    where
        E: Executor<'c, Database = Any>,
    {
        let sql = &self.sql.audit.insert;
        self.db
            .run(
                sql,
                sql.query()
                    .bind(dartwing_core::ids::random_hex(12))
                    .bind(entry.organization.to_owned())
                    .bind(entry.integration.to_owned())
                    .bind(entry.action.to_owned())
                    .bind(entry.actor.to_owned())
                    .bind(entry.detail.map(str::to_owned))
                    .bind(Micros(Timestamp::now()))
                    .execute(executor),
            )
            .await?;
        Ok(())
    }
}
