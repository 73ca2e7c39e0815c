//! Change-log retention.

use super::Store;
use dartwing_core::Timestamp;
use dartwing_db::{Backend, DbError, Micros, SqlFile, Statement};

const RETENTION: SqlFile = SqlFile::portable("Sync Change", "retention", include_str!("sql/retention.sql"));

pub(super) struct RetentionSql {
    superseded_per_organization: Statement,
    raise_pruned_seq: Statement,
    delete_superseded: Statement,
}

impl RetentionSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = RETENTION.statements(backend)?;
        let sql = Self {
            superseded_per_organization: s.take("superseded_per_organization")?,
            raise_pruned_seq: s.take("raise_pruned_seq")?,
            delete_superseded: s.take("delete_superseded")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// The last superseded change of an organization that compaction removes.
#[derive(sqlx::FromRow)]
struct Superseded {
    organization: String,
    last_seq: i64,
}

impl Store {
    /// Compacts change-log rows older than `cutoff` that a later change of the same document
    /// supersedes (each document's latest change stays, so reading from the beginning still
    /// yields every live document), and raises each organization's `pruned_seq`. Returns the rows
    /// removed.
    pub(crate) async fn compact_change_log(&self, cutoff: Timestamp) -> Result<u64, DbError> {
        let sql = &self.sql.retention;
        let mut tx = self.db.begin_tx().await?;
        let superseded = &sql.superseded_per_organization;
        let organizations: Vec<Superseded> = self
            .db
            .run(
                superseded,
                superseded.query_as().bind(Micros(cutoff)).fetch_all(&mut *tx),
            )
            .await?;
        let raise = &sql.raise_pruned_seq;
        for Superseded { organization, last_seq } in organizations {
            self.db
                .run(
                    raise,
                    raise
                        .query()
                        .bind(organization.to_owned())
                        .bind(last_seq)
                        .execute(&mut *tx),
                )
                .await?;
        }
        let delete = &sql.delete_superseded;
        let removed = self
            .db
            .run(delete, delete.query().bind(Micros(cutoff)).execute(&mut *tx))
            .await?
            .rows_affected();
        self.db.commit(tx).await?;
        Ok(removed)
    }
}
