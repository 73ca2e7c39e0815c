//! Retention: finished jobs and settled dead letters are deleted after their retention periods.

use super::{JobStore, PURGE_BATCH};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const RETENTION: SqlFile = SqlFile::portable("Job", "retention", include_str!("sql/retention.sql"));

const DAY_US: i64 = 86_400 * 1_000_000;

pub(super) struct RetentionSql {
    purge_finished: Statement,
    purge_dead_letters: Statement,
}

impl RetentionSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = RETENTION.statements(backend)?;
        let sql = Self {
            purge_finished: s.take("purge_finished")?,
            purge_dead_letters: s.take("purge_dead_letters")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

impl JobStore {
    /// Deletes Resolved/Ignored dead letters older than the retention.
    pub async fn purge_dead_letters(&self) -> Result<u64> {
        let sql = &self.sql.retention;
        let cutoff = Timestamp::now().as_micros() - i64::from(self.config.dlq_retention_days) * DAY_US;
        let result = self
            .db
            .run(
                &sql.purge_dead_letters,
                sql.purge_dead_letters.query().bind(cutoff).execute(self.db.pool()),
            )
            .await?;
        Ok(result.rows_affected())
    }

    /// Deletes finished jobs (Completed, Failed, Canceled, Timed Out) that finished more than
    /// `jobs.retention_days` ago, [`PURGE_BATCH`] rows per statement until none is left. Jobs a
    /// dead letter still refers to stay (until the letter itself is purged). Returns the count.
    pub async fn purge_finished(&self) -> Result<u64> {
        let sql = &self.sql.retention;
        let cutoff = Timestamp::now().as_micros() - i64::from(self.config.retention_days) * DAY_US;
        let batch = i64::try_from(PURGE_BATCH).unwrap_or(i64::MAX);
        let mut purged = 0;
        loop {
            let result = self
                .db
                .run(
                    &sql.purge_finished,
                    sql.purge_finished
                        .query()
                        .bind(cutoff)
                        .bind(batch)
                        .execute(self.db.pool()),
                )
                .await?;
            purged += result.rows_affected();
            if result.rows_affected() < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}
