//! Deleting what the vault keeps for a deleted organization: its integrations and pending connect
//! flows. The audit log stays (it never referenced the organization).

use super::VaultStore;
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const ORGANIZATIONS: SqlFile = SqlFile::portable(
    "Integration Organization",
    "organizations",
    include_str!("sql/organizations.sql"),
);

pub(super) struct OrganizationSql {
    /// One `DELETE` per table.
    deletes: [Statement; 2],
}

impl OrganizationSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = ORGANIZATIONS.statements(backend)?;
        let sql = Self {
            deletes: [s.take("delete_integrations")?, s.take("delete_connect_states")?],
        };
        s.finish()?;
        Ok(sql)
    }
}

impl VaultStore {
    /// Deletes the integrations and pending connect flows of `organization`, in one transaction;
    /// returns the rows removed.
    pub async fn delete_organization(&self, organization: &str) -> Result<u64, DbError> {
        let mut tx = self.db.begin_tx().await?;
        let mut removed = 0;
        for delete in &self.sql.organizations.deletes {
            removed += self
                .db
                .run(delete, delete.query().bind(organization.to_owned()).execute(&mut *tx))
                .await?
                .rows_affected();
        }
        self.db.commit(tx).await?;
        Ok(removed)
    }
}
