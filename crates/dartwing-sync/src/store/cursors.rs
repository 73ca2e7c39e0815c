//! Per-organization change counters.

use super::Store;
use dartwing_db::{Backend, DbError, SqlFile, Statement};
use sqlx::AnyConnection;

const CURSORS: SqlFile = SqlFile::portable("Sync Cursor", "cursors", include_str!("sql/cursors.sql"));

pub(super) struct CursorSql {
    lock: Statement,
    advance: Statement,
    read: Statement,
}

impl CursorSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = CURSORS.statements(backend)?;
        let sql = Self {
            lock: s.take("lock")?,
            advance: s.take("advance")?,
            read: s.take("read")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// Where an organization's change log stands.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub(crate) struct Cursor {
    /// The seq of the latest change.
    pub(crate) seq: i64,
    /// Changes up to this seq may have been compacted away.
    pub(crate) pruned_seq: i64,
}

impl Store {
    /// Locks the organization's change counter until the transaction ends (creating it on first
    /// use) and returns its seq. Every writer of the organization queues here, so change-log rows
    /// commit in seq order.
    pub(crate) async fn lock_cursor(&self, conn: &mut AnyConnection, organization: &str) -> Result<i64, DbError> {
        let lock = &self.sql.cursors.lock;
        self.db
            .run(lock, lock.query_scalar().bind(organization.to_owned()).fetch_one(conn))
            .await
    }

    /// Sets the organization's seq after a batch appended changes up to `seq`.
    pub(crate) async fn advance_cursor(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        seq: i64,
    ) -> Result<(), DbError> {
        let advance = &self.sql.cursors.advance;
        self.db
            .run(
                advance,
                advance.query().bind(organization.to_owned()).bind(seq).execute(conn),
            )
            .await?;
        Ok(())
    }

    /// The organization's cursor, `(0, 0)` before its first change.
    pub(crate) async fn cursor(&self, organization: &str) -> Result<Cursor, DbError> {
        let read = &self.sql.cursors.read;
        let cursor = self
            .db
            .run(
                read,
                read.query_as::<Cursor>()
                    .bind(organization.to_owned())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        Ok(cursor.unwrap_or_default())
    }
}
