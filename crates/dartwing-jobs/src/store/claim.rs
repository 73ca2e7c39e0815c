//! Claiming: workers take due jobs in virtual-time order, skipping paused organizations,
//! organizations over the queue's rate limit and, when asked, organizations at their share of
//! the worker's slots; and hand back jobs they claimed but will not run.

use super::{ClaimedJob, EXCLUSION_WINDOW, JobStore, RunnableJobRow, json_list};
use crate::model::{Queue, org_key};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};
use std::collections::HashMap;

const CLAIM: SqlFile = SqlFile::per_backend(
    "Job",
    "claim",
    include_str!("sql/claim.sqlite.sql"),
    include_str!("sql/claim.postgres.sql"),
);

pub(super) struct ClaimSql {
    claim: Statement,
    claim_rate_limited: Statement,
    claim_except: Statement,
    claim_except_rate_limited: Statement,
    /// SQLite only: PostgreSQL advances the queue clock in the claim's own statement.
    advance_clock: Option<Statement>,
    unclaim: Statement,
}

impl ClaimSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = CLAIM.statements(backend)?;
        let sql = Self {
            claim: s.take("claim")?,
            claim_rate_limited: s.take("claim_rate_limited")?,
            claim_except: s.take("claim_except")?,
            claim_except_rate_limited: s.take("claim_except_rate_limited")?,
            advance_clock: match backend {
                Backend::Sqlite => Some(s.take("advance_clock")?),
                Backend::Postgres => None,
            },
            unclaim: s.take("unclaim")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// A claimed job and its virtual time.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    job: RunnableJobRow,
    vtime: i64,
}

impl JobStore {
    /// Claims up to `limit` due jobs of `queue` for `worker`, in fair order, skipping suspended
    /// organizations and organizations over the queue's rate limit.
    pub async fn claim(&self, queue: Queue, worker: &str, limit: u32) -> Result<Vec<ClaimedJob>> {
        self.claim_except(queue, worker, limit, &[]).await
    }

    /// [`JobStore::claim`] skipping the organizations (stored keys) in `excluded` as well: the
    /// worker looks for organizations below their share of its slots. With exclusions the claim
    /// only looks [`EXCLUSION_WINDOW`] virtual times past the queue clock, so an excluded
    /// organization's backlog of any size costs a bounded scan; fair queuing puts every other
    /// organization's claim due job within that window.
    pub async fn claim_except(
        &self,
        queue: Queue,
        worker: &str,
        limit: u32,
        excluded: &[String],
    ) -> Result<Vec<ClaimedJob>> {
        let sql = &self.sql.claim;
        let now = Timestamp::now().as_micros();
        let window_start = now - 60_000_000;
        let rate_limit = self.queue_config(queue).rate_limit_per_min.map(i64::from);
        let statement = match (rate_limit.is_some(), excluded.is_empty()) {
            (false, true) => &sql.claim,
            (true, true) => &sql.claim_rate_limited,
            (false, false) => &sql.claim_except,
            (true, false) => &sql.claim_except_rate_limited,
        };
        let mut query = statement
            .query_as::<ClaimRow>()
            .bind(now)
            .bind(self.lease_until(now))
            .bind(worker.to_string())
            .bind(queue.as_str())
            .bind(i64::from(limit));
        if let Some(per_window) = rate_limit {
            query = query.bind(window_start).bind(per_window);
        }
        if !excluded.is_empty() {
            query = query.bind(json_list(excluded)).bind(EXCLUSION_WINDOW);
        }
        let rows = self.db.run(statement, query.fetch_all(self.db.pool())).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(advance_clock) = &sql.advance_clock {
            let max_vtime = rows.iter().map(|r| r.vtime).max().unwrap_or(0);
            self.db
                .run(
                    advance_clock,
                    advance_clock
                        .query()
                        .bind(max_vtime)
                        .bind(queue.as_str())
                        .execute(self.db.pool()),
                )
                .await?;
        }
        if rate_limit.is_some() {
            let mut per_org: HashMap<&str, i64> = HashMap::new();
            for row in &rows {
                *per_org.entry(row.job.org_key.as_str()).or_default() += 1;
            }
            for (org, count) in per_org {
                self.count_claims(queue, org, count, window_start, now).await?;
            }
        }
        Ok(rows.into_iter().map(|row| row.job.into_claimed(queue)).collect())
    }

    /// Puts jobs `worker` has just claimed but will not run back in the queue, as if never
    /// claimed: the attempt is not counted, the job keeps its place (virtual time), and it no
    /// longer counts against its organization's rate limit.
    pub async fn unclaim(&self, worker: &str, jobs: &[ClaimedJob]) -> Result<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let sql = &self.sql.claim;
        let result = self
            .db
            .run(
                &sql.unclaim,
                sql.unclaim
                    .query()
                    .bind(worker.to_string())
                    .bind(json_list(jobs.iter().map(|job| job.id.as_str())))
                    .execute(self.db.pool()),
            )
            .await?;
        let mut per_lane: HashMap<(Queue, &str), i64> = HashMap::new();
        for job in jobs {
            if self.queue_config(job.queue).rate_limit_per_min.is_some() {
                *per_lane
                    .entry((job.queue, org_key(job.organization.as_deref())))
                    .or_default() += 1;
            }
        }
        for ((queue, key), count) in per_lane {
            self.uncount_claims(queue, key, count).await?;
        }
        Ok(result.rows_affected())
    }
}
