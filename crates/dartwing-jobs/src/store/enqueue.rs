//! Enqueueing: a job enters its (queue, organization) lane, which gives it its virtual start
//! time and makes the organization's pending cap exact; duplicates within the dedup window
//! answer the existing job.

use super::JobStore;
use crate::model::{Enqueued, JobStatus, NewJob, org_key};
use dartwing_core::config::LimitMode;
use dartwing_core::ids::random_hex;
use dartwing_core::{Error, ErrorKind, Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};
use sqlx::AnyConnection;

const ENQUEUE: SqlFile = SqlFile::portable("Job", "enqueue", include_str!("sql/enqueue.sql"));

pub(super) struct EnqueueSql {
    enter_lane: Statement,
    pending_count: Statement,
    release_dedup_key: Statement,
    insert: Statement,
    deduplicated: Statement,
    promote_due: Statement,
}

impl EnqueueSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = ENQUEUE.statements(backend)?;
        let sql = Self {
            enter_lane: s.take("enter_lane")?,
            pending_count: s.take("pending_count")?,
            release_dedup_key: s.take("release_dedup_key")?,
            insert: s.take("insert")?,
            deduplicated: s.take("deduplicated")?,
            promote_due: s.take("promote_due")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// The job a duplicate enqueue answers.
#[derive(sqlx::FromRow)]
struct DeduplicatedRow {
    id: String,
    queue: String,
}

impl JobStore {
    /// Enqueues inside the caller's transaction, so the job commits or rolls back with the
    /// caller's writes. Returns the job and whether its organization reached the pending cap
    /// (in `warn` mode; in `reject` mode reaching the cap is a 429 error).
    pub async fn enqueue_in(&self, conn: &mut AnyConnection, job: &NewJob) -> Result<(Enqueued, bool)> {
        let sql = &self.sql.enqueue;
        let queue = self.queue_for(&job.method);
        let key = org_key(job.organization.as_deref()).to_string();
        let now = Timestamp::now().as_micros();
        let run_at = job.run_at.map(Timestamp::as_micros).unwrap_or(now);
        let due = run_at <= now;

        let last_vtime: i64 = self
            .db
            .run(
                &sql.enter_lane,
                sql.enter_lane
                    .query_scalar()
                    .bind(queue.as_str())
                    .bind(key.clone())
                    .bind(i64::from(due))
                    .fetch_one(&mut *conn),
            )
            .await?;
        let at_limit = self.check_pending_cap(conn, job, &key).await?;

        if let Some(dedup_key) = &job.dedup_key {
            self.db
                .run(
                    &sql.release_dedup_key,
                    sql.release_dedup_key
                        .query()
                        .bind(key.clone())
                        .bind(dedup_key.clone())
                        .bind(now)
                        .execute(&mut *conn),
                )
                .await?;
        }
        let Some(id) = self.insert_job(conn, job, &key, last_vtime, now, run_at).await? else {
            let existing: DeduplicatedRow = self
                .db
                .run(
                    &sql.deduplicated,
                    sql.deduplicated
                        .query_as()
                        .bind(key)
                        .bind(job.dedup_key.clone())
                        .fetch_one(&mut *conn),
                )
                .await?;
            return Ok((
                Enqueued {
                    job_id: existing.id,
                    queue: existing.queue.parse()?,
                    deduplicated: true,
                },
                at_limit,
            ));
        };
        Ok((
            Enqueued {
                job_id: id,
                queue,
                deduplicated: false,
            },
            at_limit,
        ))
    }

    /// Inserts `job` with its virtual start time `last_vtime` (shifted by priority) and returns
    /// its new id; `None` when a job with the same dedup key is still in its window.
    async fn insert_job(
        &self,
        conn: &mut AnyConnection,
        job: &NewJob,
        key: &str,
        last_vtime: i64,
        now: i64,
        run_at: i64,
    ) -> Result<Option<String>> {
        let sql = &self.sql.enqueue;
        let queue = self.queue_for(&job.method);
        let config = self.queue_config(queue);
        let due = run_at <= now;
        let window = job.dedup_window_secs.unwrap_or(self.config.dedup_window_secs);
        let timeout_us = i64::try_from(config.timeout_secs).unwrap_or(i64::MAX / 2_000_000) * 1_000_000;
        let id = random_hex(12);
        let inserted = self
            .db
            .run(
                &sql.insert,
                sql.insert
                    .query()
                    .bind(id.clone())
                    .bind(queue.as_str())
                    .bind(job.method.clone())
                    .bind(key.to_string())
                    .bind(job.args.to_string())
                    .bind(job.priority.rank())
                    .bind(last_vtime - job.priority.vtime_shift())
                    .bind(if due { JobStatus::Queued } else { JobStatus::Pending }.as_str())
                    .bind(i64::from(config.retries) + 1)
                    .bind(run_at)
                    .bind(now)
                    .bind(timeout_us)
                    .bind(job.dedup_key.clone())
                    .bind(
                        job.dedup_key
                            .as_ref()
                            .map(|_| now + i64::try_from(window).unwrap_or(0) * 1_000_000),
                    )
                    .bind(job.trace_id.clone())
                    .bind(job.submitted_by.clone())
                    .execute(&mut *conn),
            )
            .await?;
        Ok((inserted.rows_affected() > 0).then_some(id))
    }

    /// Whether the job's organization reached its pending cap in the job's queue (a 429 error in
    /// `reject` mode). The caller holds the lane row, so the count is exact.
    async fn check_pending_cap(&self, conn: &mut AnyConnection, job: &NewJob, key: &str) -> Result<bool> {
        let queue = self.queue_for(&job.method);
        let (Some(cap), Some(_)) = (self.queue_config(queue).max_pending_per_org, job.organization.as_ref()) else {
            return Ok(false);
        };
        let sql = &self.sql.enqueue;
        let pending: i64 = self
            .db
            .run(
                &sql.pending_count,
                sql.pending_count
                    .query_scalar()
                    .bind(key.to_string())
                    .bind(queue.as_str())
                    .fetch_one(&mut *conn),
            )
            .await?;
        if pending < i64::from(cap) {
            return Ok(false);
        }
        if self.config.limit_mode == LimitMode::Reject {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!("queue full: organization has {pending} pending jobs in queue {queue} (limit {cap})"),
            )
            .with_exc_type("QueueFullError"));
        }
        Ok(true)
    }

    /// Enqueues in a transaction of its own.
    pub async fn enqueue(&self, job: &NewJob) -> Result<(Enqueued, bool)> {
        let mut tx = self.db.begin_tx().await?;
        let result = self.enqueue_in(&mut tx, job).await?;
        self.db.commit(tx).await?;
        Ok(result)
    }

    /// Enqueues many jobs in one transaction (all or none).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(Enqueued, bool)>> {
        let mut tx = self.db.begin_tx().await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(self.enqueue_in(&mut tx, job).await?);
        }
        self.db.commit(tx).await?;
        Ok(out)
    }

    /// Moves due Pending jobs (scheduled or backing off) to Queued at the queue clock.
    pub async fn promote_due(&self) -> Result<u64> {
        let sql = &self.sql.enqueue;
        let result = self
            .db
            .run(
                &sql.promote_due,
                sql.promote_due
                    .query()
                    .bind(Timestamp::now().as_micros())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(result.rows_affected())
    }
}
