//! Cron ticks: each (schedule, tick) is recorded once across nodes, by the node that enqueues it.

use super::JobStore;
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};
use sqlx::AnyConnection;

const CRON: SqlFile = SqlFile::portable("Cron Tick", "cron", include_str!("sql/cron.sql"));

/// How long tick records are kept (µs): a week.
const TICK_RETENTION_US: i64 = 7 * 86_400 * 1_000_000;

pub(super) struct CronSql {
    claim_tick: Statement,
    prune_ticks: Statement,
}

impl CronSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = CRON.statements(backend)?;
        let sql = Self {
            claim_tick: s.take("claim_tick")?,
            prune_ticks: s.take("prune_ticks")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

impl JobStore {
    /// Records a cron tick; true only for the first node to record it (exactly once per tick).
    pub async fn claim_cron_tick(&self, conn: &mut AnyConnection, name: &str, tick_us: i64) -> Result<bool> {
        let sql = &self.sql.cron;
        let result = self
            .db
            .run(
                &sql.claim_tick,
                sql.claim_tick
                    .query()
                    .bind(name.to_string())
                    .bind(tick_us)
                    .execute(conn),
            )
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes cron tick records older than a week.
    pub async fn prune_cron_ticks(&self) -> Result<u64> {
        let sql = &self.sql.cron;
        let cutoff = Timestamp::now().as_micros() - TICK_RETENTION_US;
        let result = self
            .db
            .run(
                &sql.prune_ticks,
                sql.prune_ticks.query().bind(cutoff).execute(self.db.pool()),
            )
            .await?;
        Ok(result.rows_affected())
    }
}
