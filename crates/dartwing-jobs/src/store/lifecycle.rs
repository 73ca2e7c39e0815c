//! The life of a claimed job: completion in batches, failure (retried after the queue's delay or
//! dead-lettered), cancellation, leases, release on shutdown and recovery of stuck jobs.

use super::{ClaimedJob, FailureKind, FailureOutcome, JobStore, MAX_REASON_CHARS, RunnableJobRow, json_list};
use crate::model::{JobStatus, truncate};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, SqlFile, Statement};
use serde_json::Value;

const LIFECYCLE: SqlFile = SqlFile::portable("Job", "lifecycle", include_str!("sql/lifecycle.sql"));
const LIFECYCLE_BY_BACKEND: SqlFile = SqlFile::per_backend(
    "Job",
    "lifecycle",
    include_str!("sql/lifecycle.sqlite.sql"),
    include_str!("sql/lifecycle.postgres.sql"),
);

pub(super) struct LifecycleSql {
    complete: Statement,
    retry: Statement,
    finish_failed: Statement,
    mark_canceled: Statement,
    renew_leases: Statement,
    release: Statement,
    cancel_requests: Statement,
    stuck: Statement,
    set_progress: Statement,
    set_output_reference: Statement,
    cancel_waiting: Statement,
    request_cancel: Statement,
}

impl LifecycleSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = LIFECYCLE.statements(backend)?;
        let mut by_backend = LIFECYCLE_BY_BACKEND.statements(backend)?;
        let sql = Self {
            complete: by_backend.take("complete")?,
            retry: s.take("retry")?,
            finish_failed: s.take("finish_failed")?,
            mark_canceled: s.take("mark_canceled")?,
            renew_leases: s.take("renew_leases")?,
            release: s.take("release")?,
            cancel_requests: s.take("cancel_requests")?,
            stuck: s.take("stuck")?,
            set_progress: s.take("set_progress")?,
            set_output_reference: s.take("set_output_reference")?,
            cancel_waiting: s.take("cancel_waiting")?,
            request_cancel: s.take("request_cancel")?,
        };
        s.finish()?;
        by_backend.finish()?;
        Ok(sql)
    }
}

/// A running job that stopped renewing its lease or runs too long.
#[derive(sqlx::FromRow)]
struct StuckRow {
    #[sqlx(flatten)]
    job: RunnableJobRow,
    queue: String,
    lease_until_us: i64,
    worker: Option<String>,
}

impl JobStore {
    /// Records successful attempts of `worker` in one statement.
    pub async fn complete_many(&self, worker: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = &self.sql.lifecycle;
        let result = self
            .db
            .run(
                &sql.complete,
                sql.complete
                    .query()
                    .bind(Timestamp::now().as_micros())
                    .bind(worker.to_string())
                    .bind(json_list(ids))
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(result.rows_affected())
    }

    /// Records a failed attempt: reschedule after the queue's delay while attempts remain (and
    /// the failure is not permanent), else fail the job and dead-letter it.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        worker: &str,
        kind: FailureKind,
        reason: &str,
    ) -> Result<FailureOutcome> {
        let reason = truncate(reason, MAX_REASON_CHARS);
        let now = Timestamp::now().as_micros();
        if kind != FailureKind::Permanent && job.attempt < job.max_attempts {
            return self.retry(job, worker, kind, reason, now).await;
        }
        let status = if kind == FailureKind::TimedOut {
            JobStatus::TimedOut
        } else {
            JobStatus::Failed
        };
        let sql = &self.sql.lifecycle;
        let mut tx = self.db.begin_tx().await?;
        let result = self
            .db
            .run(
                &sql.finish_failed,
                sql.finish_failed
                    .query()
                    .bind(status.as_str())
                    .bind(now)
                    .bind(reason.clone())
                    .bind(job.id.clone())
                    .bind(worker.to_string())
                    .execute(&mut *tx),
            )
            .await?;
        if result.rows_affected() == 0 {
            return Ok(FailureOutcome::Lost);
        }
        self.insert_dead_letter(&mut tx, job, &reason, now).await?;
        self.db.commit(tx).await?;
        Ok(FailureOutcome::DeadLettered(status))
    }

    /// Reschedules a failed attempt after the queue's delay for it (at once for a lost worker).
    async fn retry(
        &self,
        job: &ClaimedJob,
        worker: &str,
        kind: FailureKind,
        reason: String,
        now: i64,
    ) -> Result<FailureOutcome> {
        let delays = &self.queue_config(job.queue).retry_delays_secs;
        let index = usize::try_from(job.attempt - 1)
            .unwrap_or(0)
            .min(delays.len().saturating_sub(1));
        let delay = if kind == FailureKind::WorkerLost {
            0
        } else {
            delays.get(index).copied().unwrap_or(0)
        };
        let sql = &self.sql.lifecycle;
        let result = self
            .db
            .run(
                &sql.retry,
                sql.retry
                    .query()
                    .bind(now + i64::try_from(delay).unwrap_or(0) * 1_000_000)
                    .bind(reason)
                    .bind(job.id.clone())
                    .bind(worker.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(if result.rows_affected() == 1 {
            FailureOutcome::Retried
        } else {
            FailureOutcome::Lost
        })
    }

    /// Marks a running job of `worker` as cancelled.
    pub async fn mark_canceled(&self, job_id: &str, worker: &str) -> Result<()> {
        let sql = &self.sql.lifecycle;
        self.db
            .run(
                &sql.mark_canceled,
                sql.mark_canceled
                    .query()
                    .bind(Timestamp::now().as_micros())
                    .bind(job_id.to_string())
                    .bind(worker.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(())
    }

    /// Extends the leases of every job `worker` is running.
    pub async fn renew_leases(&self, worker: &str) -> Result<u64> {
        let sql = &self.sql.lifecycle;
        let until = self.lease_until(Timestamp::now().as_micros());
        let result = self
            .db
            .run(
                &sql.renew_leases,
                sql.renew_leases
                    .query()
                    .bind(until)
                    .bind(worker.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(result.rows_affected())
    }

    /// Puts the running jobs of a stopping `worker` back in the queue (the attempt is not counted).
    pub async fn release(&self, worker: &str) -> Result<u64> {
        let sql = &self.sql.lifecycle;
        let result = self
            .db
            .run(
                &sql.release,
                sql.release.query().bind(worker.to_string()).execute(self.db.pool()),
            )
            .await?;
        Ok(result.rows_affected())
    }

    /// Jobs of `worker` whose cancellation was requested.
    pub async fn cancel_requests(&self, worker: &str) -> Result<Vec<String>> {
        let sql = &self.sql.lifecycle;
        Ok(self
            .db
            .run(
                &sql.cancel_requests,
                sql.cancel_requests
                    .query_scalar()
                    .bind(worker.to_string())
                    .fetch_all(self.db.pool()),
            )
            .await?)
    }

    /// Recovers running jobs whose worker stopped renewing the lease, or that run longer than
    /// twice their timeout: retried while attempts remain, dead-lettered otherwise.
    /// Returns (retried, dead-lettered).
    pub async fn recover_stuck(&self) -> Result<(u64, u64)> {
        let sql = &self.sql.lifecycle;
        let now = Timestamp::now().as_micros();
        let rows: Vec<StuckRow> = self
            .db
            .run(&sql.stuck, sql.stuck.query_as().bind(now).fetch_all(self.db.pool()))
            .await?;
        let (mut retried, mut dead) = (0, 0);
        for row in rows {
            let reason = if row.lease_until_us < now {
                format!(
                    "recovered: worker {} stopped renewing its lease",
                    row.worker.as_deref().unwrap_or("?")
                )
            } else {
                "recovered: running longer than twice the queue timeout".to_string()
            };
            let job = row.job.into_claimed(row.queue.parse()?);
            let worker = row.worker.unwrap_or_default();
            match self.fail(&job, &worker, FailureKind::WorkerLost, &reason).await? {
                FailureOutcome::Retried => retried += 1,
                FailureOutcome::DeadLettered(_) => dead += 1,
                FailureOutcome::Lost => {}
            }
        }
        if retried + dead > 0 {
            tracing::warn!(retried, dead_lettered = dead, "recovered stuck jobs");
        }
        Ok((retried, dead))
    }

    /// Stores handler progress.
    pub async fn set_progress(&self, job_id: &str, progress: &Value) -> Result<()> {
        let sql = &self.sql.lifecycle;
        self.db
            .run(
                &sql.set_progress,
                sql.set_progress
                    .query()
                    .bind(progress.to_string())
                    .bind(job_id.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(())
    }

    /// Records where a job's result is.
    pub async fn set_output_reference(&self, job_id: &str, reference: &str) -> Result<()> {
        let sql = &self.sql.lifecycle;
        self.db
            .run(
                &sql.set_output_reference,
                sql.set_output_reference
                    .query()
                    .bind(reference.to_string())
                    .bind(job_id.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(())
    }

    /// Cancels a job: Pending/Queued jobs at once, Running jobs cooperatively (their worker
    /// notices within a second). Returns the status after the request.
    pub async fn cancel(&self, job_id: &str) -> Result<JobStatus> {
        let sql = &self.sql.lifecycle;
        let immediate = self
            .db
            .run(
                &sql.cancel_waiting,
                sql.cancel_waiting
                    .query()
                    .bind(Timestamp::now().as_micros())
                    .bind(job_id.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        if immediate.rows_affected() == 1 {
            return Ok(JobStatus::Canceled);
        }
        self.db
            .run(
                &sql.request_cancel,
                sql.request_cancel
                    .query()
                    .bind(job_id.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(self.info(job_id).await?.status)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::NewJob;
    use dartwing_core::ErrorKind;
    use dartwing_core::config::{DatabaseConfig, JobsConfig};
    use dartwing_db::Db;
    use serde_json::json;
    use std::sync::Arc;

    async fn store() -> JobStore {
        let config = DatabaseConfig {
            max_connections: 1,
            ..DatabaseConfig::default()
        };
        let db = Db::connect("sqlite::memory:", &config, None).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        JobStore::new(db, Arc::new(JobsConfig::default())).unwrap()
    }

    #[tokio::test]
    async fn progress_that_does_not_decode_fails_the_read_instead_of_becoming_null() {
        let store = store().await;
        let (enqueued, _) = store.enqueue(&NewJob::new("core.noop", None, json!({}))).await.unwrap();
        let set_progress = &store.sql.lifecycle.set_progress;
        store
            .db
            .run(
                set_progress,
                set_progress
                    .query()
                    .bind("{\"percent\": 5")
                    .bind(enqueued.job_id.clone())
                    .execute(store.db.pool()),
            )
            .await
            .unwrap();
        let error = store.info(&enqueued.job_id).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Internal);

        store
            .set_progress(&enqueued.job_id, &json!({"percent": 5}))
            .await
            .unwrap();
        let info = store.info(&enqueued.job_id).await.unwrap();
        assert_eq!(info.progress, Some(json!({"percent": 5})));
    }
}
