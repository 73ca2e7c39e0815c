//! Deleting what sync keeps for a deleted organization.

use super::Store;
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const ORGANIZATIONS: SqlFile = SqlFile::portable(
    "Sync Organization",
    "organizations",
    include_str!("sql/organizations.sql"),
);

pub(super) struct OrganizationSql {
    /// One `DELETE` per table, the cursor last.
    deletes: [Statement; 6],
}

impl OrganizationSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = ORGANIZATIONS.statements(backend)?;
        let sql = Self {
            deletes: [
                s.take("delete_documents")?,
                s.take("delete_versions")?,
                s.take("delete_changes")?,
                s.take("delete_op_answers")?,
                s.take("delete_conflicts")?,
                s.take("delete_cursor")?,
            ],
        };
        s.finish()?;
        Ok(sql)
    }
}

impl Store {
    /// Deletes the documents, history, change log, stored answers, conflicts and cursor of
    /// `organization`, in one transaction; returns the rows removed.
    pub(crate) async fn delete_organization(&self, organization: &str) -> Result<u64, DbError> {
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
