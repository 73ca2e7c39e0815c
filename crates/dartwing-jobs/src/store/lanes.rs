//! Lanes and paused organizations: each (queue, organization) lane counts its claims in the
//! current rate window; the jobs of paused (Suspended) organizations are not claimed.

use super::JobStore;
use crate::model::Queue;
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const LANES: SqlFile = SqlFile::portable("Job Lane", "lanes", include_str!("sql/lanes.sql"));

pub(super) struct LanesSql {
    count_claims: Statement,
    uncount_claims: Statement,
    pause: Statement,
    resume: Statement,
    resume_paused_before: Statement,
}

impl LanesSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = LANES.statements(backend)?;
        let sql = Self {
            count_claims: s.take("count_claims")?,
            uncount_claims: s.take("uncount_claims")?,
            pause: s.take("pause")?,
            resume: s.take("resume")?,
            resume_paused_before: s.take("resume_paused_before")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

impl JobStore {
    /// Counts `count` claims of organization `key` in `queue`'s rate window; a window that
    /// started at or before `window_start` restarts `now`.
    pub(super) async fn count_claims(
        &self,
        queue: Queue,
        key: &str,
        count: i64,
        window_start: i64,
        now: i64,
    ) -> Result<()> {
        let sql = &self.sql.lanes;
        self.db
            .run(
                &sql.count_claims,
                sql.count_claims
                    .query()
                    .bind(window_start)
                    .bind(count)
                    .bind(now)
                    .bind(queue.as_str())
                    .bind(key.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(())
    }

    /// Takes back `count` claims of organization `key` in `queue`'s rate window.
    pub(super) async fn uncount_claims(&self, queue: Queue, key: &str, count: i64) -> Result<()> {
        let sql = &self.sql.lanes;
        self.db
            .run(
                &sql.uncount_claims,
                sql.uncount_claims
                    .query()
                    .bind(count)
                    .bind(queue.as_str())
                    .bind(key.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(())
    }

    /// Pauses or resumes the jobs of `organization` (its status changed to Suspended or back):
    /// workers claim no job of a paused organization.
    pub async fn set_paused(&self, organization: &str, paused: bool) -> Result<()> {
        let sql = &self.sql.lanes;
        if paused {
            self.db
                .run(
                    &sql.pause,
                    sql.pause
                        .query()
                        .bind(organization.to_string())
                        .bind(Timestamp::now().as_micros())
                        .execute(self.db.pool()),
                )
                .await?;
        } else {
            self.db
                .run(
                    &sql.resume,
                    sql.resume
                        .query()
                        .bind(organization.to_string())
                        .execute(self.db.pool()),
                )
                .await?;
        }
        Ok(())
    }

    /// Makes the paused organizations exactly `suspended`, the directory's list as read at
    /// `as_of` (after a start, in case a status change happened while no node listened). A pause
    /// recorded after `as_of` is newer than the list and stays.
    pub async fn reconcile_paused(&self, suspended: &[String], as_of: Timestamp) -> Result<()> {
        let sql = &self.sql.lanes;
        let mut tx = self.db.begin_tx().await?;
        self.db
            .run(
                &sql.resume_paused_before,
                sql.resume_paused_before
                    .query()
                    .bind(as_of.as_micros())
                    .execute(&mut *tx),
            )
            .await?;
        let now = Timestamp::now().as_micros();
        for organization in suspended {
            self.db
                .run(
                    &sql.pause,
                    sql.pause
                        .query()
                        .bind(organization.as_str())
                        .bind(now)
                        .execute(&mut *tx),
                )
                .await?;
        }
        self.db.commit(tx).await?;
        Ok(())
    }
}
