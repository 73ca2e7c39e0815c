//! The durable job store: every state change of a job is one SQL statement (or one short
//! transaction) on SQLite or PostgreSQL.
//!
//! Fair dispatch is start-time fair queuing: each job gets a virtual start time `vtime` when it
//! becomes due, `max(lane.last_vtime, queue clock) + 1` for its (queue, organization) lane, and
//! workers claim in `vtime` order. An organization that floods the queue only pushes its own
//! lane's virtual times ahead; a newcomer starts at the queue clock, so its jobs interleave with
//! the flood at once. See `docs/jobs.md`.

use crate::model::{
    DeadLetter, DeadLetterStatus, Enqueued, JobInfo, JobStatus, NewJob, Queue, org_key, organization_of, truncate,
};
use dartwing_core::config::{JobsConfig, QueueConfig};
use dartwing_core::ids::random_hex;
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Backend, Db, map_db_error};
use serde_json::Value;
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest stored failure reason.
pub const MAX_REASON_CHARS: usize = 2000;

/// How far past the queue clock (in virtual time) a claim that skips some organizations looks.
/// Fair queuing gives every organization's next due job a virtual time within about its number
/// of waiting organizations plus the largest priority shift (64) of the clock.
pub const EXCLUSION_WINDOW: i64 = 1024;

/// Finished jobs deleted per statement by [`JobStore::purge_finished`].
pub const PURGE_BATCH: u64 = 1000;

/// A job claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// Id.
    pub id: String,
    /// Queue.
    pub queue: Queue,
    /// Job type.
    pub method: String,
    /// Organization, `None` for system jobs.
    pub organization: Option<String>,
    /// Arguments.
    pub args: Value,
    /// This attempt's number (from 1).
    pub attempt: i64,
    /// Attempts allowed in all.
    pub max_attempts: i64,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Trace id of the enqueuing request.
    pub trace_id: Option<String>,
    /// Submitter.
    pub submitted_by: Option<String>,
    /// When the job was enqueued (µs).
    pub enqueued_at_us: i64,
}

/// Where a failed attempt led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Rescheduled after the queue's delay.
    Retried,
    /// Moved to the dead-letter queue with this final status.
    DeadLettered(JobStatus),
    /// The job was no longer this worker's (recovered elsewhere); nothing changed.
    Lost,
}

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Retry if attempts remain.
    Transient,
    /// Fail at once.
    Permanent,
    /// The attempt ran past the queue timeout; retry if attempts remain.
    TimedOut,
    /// The worker died or hung (lease expired): retry at once if attempts remain.
    WorkerLost,
}

/// SQL access to jobs and dead letters.
#[derive(Clone)]
pub struct JobStore {
    db: Db,
    config: Arc<JobsConfig>,
    routes: Arc<HashMap<String, Queue>>,
}

/// Columns returned by a claim.
type ClaimRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
);
/// Columns read by stuck-job recovery.
type StuckRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
);
type JobRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl JobStore {
    /// A store on `db` with the queue configuration.
    pub fn new(db: Db, config: Arc<JobsConfig>) -> Self {
        let mut routes = HashMap::new();
        for queue in Queue::ALL {
            for method in &queue_config(&config, queue).job_types {
                routes.insert(method.clone(), queue);
            }
        }
        Self {
            db,
            config,
            routes: Arc::new(routes),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The jobs configuration.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// The queue a job type is routed to (unknown types: `default`).
    pub fn queue_for(&self, method: &str) -> Queue {
        self.routes.get(method).copied().unwrap_or(Queue::Default)
    }

    /// The settings of `queue`.
    pub fn queue_config(&self, queue: Queue) -> &QueueConfig {
        queue_config(&self.config, queue)
    }

    fn greatest(&self) -> &'static str {
        match self.db.backend() {
            Backend::Sqlite => "MAX",
            Backend::Postgres => "GREATEST",
        }
    }

    fn skip_locked(&self) -> &'static str {
        match self.db.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Enqueues inside the caller's transaction, so the job commits or rolls back with the
    /// caller's writes. Returns the job and whether its organization reached the pending cap
    /// (in `warn` mode; in `reject` mode reaching the cap is a 429 error).
    pub async fn enqueue_in(&self, conn: &mut AnyConnection, job: &NewJob) -> Result<(Enqueued, bool)> {
        let queue = self.queue_for(&job.method);
        let config = self.queue_config(queue);
        let key = org_key(job.organization.as_deref()).to_string();
        let now = Timestamp::now().as_micros();
        let run_at = job.run_at.map(Timestamp::as_micros).unwrap_or(now);
        let due = run_at <= now;

        // The lane row serializes enqueues of one organization and queue, so the cap check
        // below is exact, and gives a due job its virtual start time.
        let slots = i64::from(due);
        let (last_vtime,): (i64,) = sqlx::query_as(&format!(
            "INSERT INTO job_lane (queue, org_key, last_vtime, window_start_us, window_count) \
             VALUES ($1, $2, (SELECT vclock FROM job_queue_clock WHERE queue = $1) + $3, 0, 0) \
             ON CONFLICT (queue, org_key) DO UPDATE SET last_vtime = {}(job_lane.last_vtime, \
             (SELECT vclock FROM job_queue_clock WHERE queue = $1)) + $3 RETURNING last_vtime",
            self.greatest()
        ))
        .bind(queue.as_str())
        .bind(&key)
        .bind(slots)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_db_error)?;

        let mut at_limit = false;
        if let (Some(cap), Some(_)) = (config.max_pending_per_org, job.organization.as_ref()) {
            let (pending,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM job WHERE org_key = $1 AND queue = $2 \
                 AND status IN ('Pending', 'Queued', 'Running')",
            )
            .bind(&key)
            .bind(queue.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(map_db_error)?;
            if pending >= i64::from(cap) {
                at_limit = true;
                if self.config.limit_mode == dartwing_core::config::LimitMode::Reject {
                    return Err(Error::new(
                        dartwing_core::ErrorKind::RateLimited,
                        format!("queue full: organization has {pending} pending jobs in queue {queue} (limit {cap})"),
                    )
                    .with_exc_type("QueueFullError"));
                }
            }
        }

        if let Some(dedup_key) = &job.dedup_key {
            sqlx::query(
                "UPDATE job SET dedup_key = NULL WHERE org_key = $1 AND dedup_key = $2 AND dedup_until_us <= $3",
            )
            .bind(&key)
            .bind(dedup_key)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(map_db_error)?;
        }
        let window = job.dedup_window_secs.unwrap_or(self.config.dedup_window_secs);
        let id = random_hex(12);
        let attempts = i64::from(config.retries) + 1;
        let timeout_us = i64::try_from(config.timeout_secs).unwrap_or(i64::MAX / 2_000_000) * 1_000_000;
        let inserted = sqlx::query(
            "INSERT INTO job (id, queue, method, org_key, args, priority, vtime, status, attempts, max_attempts, \
             run_at_us, enqueued_at_us, timeout_us, dedup_key, dedup_until_us, trace_id, submitted_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (org_key, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
        )
        .bind(&id)
        .bind(queue.as_str())
        .bind(&job.method)
        .bind(&key)
        .bind(job.args.to_string())
        .bind(job.priority.rank())
        .bind(last_vtime - job.priority.vtime_shift())
        .bind(if due { JobStatus::Queued } else { JobStatus::Pending }.as_str())
        .bind(attempts)
        .bind(run_at)
        .bind(now)
        .bind(timeout_us)
        .bind(job.dedup_key.as_deref())
        .bind(
            job.dedup_key
                .as_ref()
                .map(|_| now + i64::try_from(window).unwrap_or(0) * 1_000_000),
        )
        .bind(job.trace_id.as_deref())
        .bind(job.submitted_by.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(map_db_error)?;
        if inserted.rows_affected() == 0 {
            let (existing, existing_queue): (String, String) =
                sqlx::query_as("SELECT id, queue FROM job WHERE org_key = $1 AND dedup_key = $2")
                    .bind(&key)
                    .bind(job.dedup_key.as_deref())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_db_error)?;
            return Ok((
                Enqueued {
                    job_id: existing,
                    queue: existing_queue.parse()?,
                    deduplicated: true,
                },
                at_limit,
            ));
        }
        Ok((
            Enqueued {
                job_id: id,
                queue,
                deduplicated: false,
            },
            at_limit,
        ))
    }

    /// Enqueues in a transaction of its own.
    pub async fn enqueue(&self, job: &NewJob) -> Result<(Enqueued, bool)> {
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        let result = self.enqueue_in(&mut tx, job).await?;
        tx.commit().await.map_err(map_db_error)?;
        Ok(result)
    }

    /// Enqueues many jobs in one transaction (all or none).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(Enqueued, bool)>> {
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(self.enqueue_in(&mut tx, job).await?);
        }
        tx.commit().await.map_err(map_db_error)?;
        Ok(out)
    }

    /// Moves due Pending jobs (scheduled or backing off) to Queued at the queue clock.
    pub async fn promote_due(&self) -> Result<u64> {
        let now = Timestamp::now().as_micros();
        let result = sqlx::query(
            "UPDATE job SET status = 'Queued', vtime = (SELECT vclock FROM job_queue_clock c WHERE c.queue = job.queue) + 1 \
             - CASE priority WHEN 3 THEN 256 WHEN 2 THEN 64 WHEN 0 THEN -64 ELSE 0 END \
             WHERE status = 'Pending' AND run_at_us <= $1",
        )
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(result.rows_affected())
    }

    /// Claims up to `limit` due jobs of `queue` for `worker`, in fair order, skipping suspended
    /// organizations and organizations over the queue's rate limit.
    pub async fn claim(&self, queue: Queue, worker: &str, limit: u32) -> Result<Vec<ClaimedJob>> {
        self.claim_except(queue, worker, limit, &[]).await
    }

    /// [`JobStore::claim`] skipping the organizations (stored keys) in `excluded` as well: the
    /// worker looks for organizations below their share of its slots. With exclusions the claim
    /// only looks [`EXCLUSION_WINDOW`] virtual times past the queue clock, so an excluded
    /// organization's backlog of any size costs a bounded scan; fair queuing puts every other
    /// organization's next due job within that window.
    pub async fn claim_except(
        &self,
        queue: Queue,
        worker: &str,
        limit: u32,
        excluded: &[String],
    ) -> Result<Vec<ClaimedJob>> {
        let config = self.queue_config(queue);
        let now = Timestamp::now().as_micros();
        let lease_until = now + i64::try_from(self.config.lease_secs).unwrap_or(30) * 1_000_000;
        let window_start = now - 60_000_000;
        let rate_clause = if config.rate_limit_per_min.is_some() {
            "AND org_key NOT IN (SELECT org_key FROM job_lane WHERE queue = $4 AND window_start_us > $6 AND window_count >= $7)"
        } else {
            "AND $6 = $6 AND $7 = $7"
        };
        let exclusion_clause = if excluded.is_empty() {
            String::new()
        } else {
            let placeholders: Vec<String> = (0..excluded.len()).map(|i| format!("${}", i + 8)).collect();
            format!(
                "AND org_key NOT IN ({}) AND vtime <= (SELECT vclock FROM job_queue_clock WHERE queue = $4) + {EXCLUSION_WINDOW}",
                placeholders.join(", ")
            )
        };
        let update = format!(
            "UPDATE job SET status = 'Running', attempts = attempts + 1, started_at_us = $1, lease_until_us = $2, \
             worker = $3, cancel_requested = 0 \
             WHERE id IN (SELECT id FROM job WHERE queue = $4 AND status = 'Queued' \
               AND org_key NOT IN (SELECT org_key FROM job_paused_org) {rate_clause} \
               {exclusion_clause} ORDER BY vtime, id LIMIT $5 {}) \
             RETURNING id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by, \
               enqueued_at_us, vtime",
            self.skip_locked()
        );
        // On PostgreSQL the queue clock advances in the claim's own statement, and that one
        // statement's commit does not wait for its WAL flush (`set_config(..., true)` applies to
        // the statement's own transaction, evaluated for every row it returns): one round trip
        // and no fsync per claim. A claim lost in a server crash only puts the job back in the
        // queue (at least once), and any later durable commit (a completion, a failure) flushes
        // the WAL up to and including the claim. SQLite cannot update in a WITH clause.
        let sql = match self.db.backend() {
            Backend::Sqlite => update,
            Backend::Postgres => format!(
                "WITH claimed AS ({update}), \
                 clock AS (UPDATE job_queue_clock SET vclock = (SELECT MAX(vtime) FROM claimed) \
                   WHERE queue = $4 AND vclock < (SELECT MAX(vtime) FROM claimed)) \
                 SELECT id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by, \
                   enqueued_at_us, vtime FROM claimed \
                 WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL"
            ),
        };
        let mut query = sqlx::query_as::<_, ClaimRow>(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(worker)
            .bind(queue.as_str())
            .bind(i64::from(limit))
            .bind(window_start)
            .bind(i64::from(config.rate_limit_per_min.unwrap_or(0)));
        for key in excluded {
            query = query.bind(key);
        }
        let rows: Vec<ClaimRow> = self
            .db
            .observe("Job", "claim", query.fetch_all(self.db.pool()))
            .await
            .map_err(map_db_error)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if self.db.backend() == Backend::Sqlite {
            let max_vtime = rows.iter().map(|r| r.10).max().unwrap_or(0);
            sqlx::query("UPDATE job_queue_clock SET vclock = $1 WHERE queue = $2 AND vclock < $1")
                .bind(max_vtime)
                .bind(queue.as_str())
                .execute(self.db.pool())
                .await
                .map_err(map_db_error)?;
        }
        if config.rate_limit_per_min.is_some() {
            let mut per_org: HashMap<&str, i64> = HashMap::new();
            for row in &rows {
                *per_org.entry(row.2.as_str()).or_default() += 1;
            }
            for (org, count) in per_org {
                sqlx::query(
                    "UPDATE job_lane SET \
                     window_count = CASE WHEN window_start_us <= $1 THEN $2 ELSE window_count + $2 END, \
                     window_start_us = CASE WHEN window_start_us <= $1 THEN $3 ELSE window_start_us END \
                     WHERE queue = $4 AND org_key = $5",
                )
                .bind(window_start)
                .bind(count)
                .bind(now)
                .bind(queue.as_str())
                .bind(org)
                .execute(self.db.pool())
                .await
                .map_err(map_db_error)?;
            }
        }
        rows.into_iter()
            .map(
                |(
                    id,
                    method,
                    key,
                    args,
                    attempt,
                    max_attempts,
                    timeout_us,
                    trace_id,
                    submitted_by,
                    enqueued_at_us,
                    _,
                )| {
                    Ok(ClaimedJob {
                        id,
                        queue,
                        method,
                        organization: organization_of(key),
                        args: serde_json::from_str(&args).unwrap_or(Value::Null),
                        attempt,
                        max_attempts,
                        timeout: Duration::from_micros(u64::try_from(timeout_us).unwrap_or(0)),
                        trace_id,
                        submitted_by,
                        enqueued_at_us,
                    })
                },
            )
            .collect()
    }

    /// Puts jobs `worker` has just claimed but will not run back in the queue, as if never
    /// claimed: the attempt is not counted, the job keeps its place (virtual time), and it no
    /// longer counts against its organization's rate limit.
    pub async fn unclaim(&self, worker: &str, jobs: &[ClaimedJob]) -> Result<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let placeholders: Vec<String> = (0..jobs.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE job SET status = 'Queued', attempts = attempts - 1, worker = NULL, lease_until_us = NULL, \
             started_at_us = NULL WHERE worker = $1 AND status = 'Running' AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(worker);
        for job in jobs {
            query = query.bind(&job.id);
        }
        let result = query.execute(self.db.pool()).await.map_err(map_db_error)?;
        let mut per_lane: HashMap<(Queue, &str), i64> = HashMap::new();
        for job in jobs {
            if self.queue_config(job.queue).rate_limit_per_min.is_some() {
                *per_lane
                    .entry((job.queue, org_key(job.organization.as_deref())))
                    .or_default() += 1;
            }
        }
        for ((queue, key), count) in per_lane {
            sqlx::query(
                "UPDATE job_lane SET window_count = CASE WHEN window_count > $1 THEN window_count - $1 ELSE 0 END \
                 WHERE queue = $2 AND org_key = $3",
            )
            .bind(count)
            .bind(queue.as_str())
            .bind(key)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
        }
        Ok(result.rows_affected())
    }

    /// Records successful attempts of `worker` in one statement.
    pub async fn complete_many(&self, worker: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE job SET status = 'Completed', finished_at_us = $1, lease_until_us = NULL, error = NULL \
             WHERE worker = $2 AND status = 'Running' AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(Timestamp::now().as_micros()).bind(worker);
        for id in ids {
            query = query.bind(id);
        }
        let result = self
            .db
            .observe("Job", "complete", query.execute(self.db.pool()))
            .await
            .map_err(map_db_error)?;
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
            let delays = &self.queue_config(job.queue).retry_delays_secs;
            let index = usize::try_from(job.attempt - 1)
                .unwrap_or(0)
                .min(delays.len().saturating_sub(1));
            let delay = if kind == FailureKind::WorkerLost {
                0
            } else {
                delays.get(index).copied().unwrap_or(0)
            };
            let result = sqlx::query(
                "UPDATE job SET status = 'Pending', run_at_us = $1, error = $2, worker = NULL, lease_until_us = NULL \
                 WHERE id = $3 AND worker = $4 AND status = 'Running'",
            )
            .bind(now + i64::try_from(delay).unwrap_or(0) * 1_000_000)
            .bind(&reason)
            .bind(&job.id)
            .bind(worker)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
            return Ok(if result.rows_affected() == 1 {
                FailureOutcome::Retried
            } else {
                FailureOutcome::Lost
            });
        }
        let status = if kind == FailureKind::TimedOut {
            JobStatus::TimedOut
        } else {
            JobStatus::Failed
        };
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        let result = sqlx::query(
            "UPDATE job SET status = $1, finished_at_us = $2, error = $3, lease_until_us = NULL \
             WHERE id = $4 AND worker = $5 AND status = 'Running'",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(&reason)
        .bind(&job.id)
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(map_db_error)?;
        if result.rows_affected() == 0 {
            return Ok(FailureOutcome::Lost);
        }
        insert_dead_letter(&mut tx, job, &reason, now).await?;
        tx.commit().await.map_err(map_db_error)?;
        Ok(FailureOutcome::DeadLettered(status))
    }

    /// Marks a running job of `worker` as cancelled.
    pub async fn mark_canceled(&self, job_id: &str, worker: &str) -> Result<()> {
        sqlx::query(
            "UPDATE job SET status = 'Canceled', finished_at_us = $1, lease_until_us = NULL \
             WHERE id = $2 AND worker = $3 AND status = 'Running'",
        )
        .bind(Timestamp::now().as_micros())
        .bind(job_id)
        .bind(worker)
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(())
    }

    /// Extends the leases of every job `worker` is running.
    pub async fn renew_leases(&self, worker: &str) -> Result<u64> {
        let until = Timestamp::now().as_micros() + i64::try_from(self.config.lease_secs).unwrap_or(30) * 1_000_000;
        let result = sqlx::query("UPDATE job SET lease_until_us = $1 WHERE worker = $2 AND status = 'Running'")
            .bind(until)
            .bind(worker)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(result.rows_affected())
    }

    /// Puts the running jobs of a stopping `worker` back in the queue (the attempt is not counted).
    pub async fn release(&self, worker: &str) -> Result<u64> {
        let result = sqlx::query(
            "UPDATE job SET status = 'Queued', attempts = attempts - 1, worker = NULL, lease_until_us = NULL, \
             started_at_us = NULL, vtime = (SELECT vclock FROM job_queue_clock c WHERE c.queue = job.queue) \
             WHERE worker = $1 AND status = 'Running'",
        )
        .bind(worker)
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        Ok(result.rows_affected())
    }

    /// Jobs of `worker` whose cancellation was requested.
    pub async fn cancel_requests(&self, worker: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM job WHERE worker = $1 AND status = 'Running' AND cancel_requested = 1")
                .bind(worker)
                .fetch_all(self.db.pool())
                .await
                .map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Recovers running jobs whose worker stopped renewing the lease, or that run longer than
    /// twice their timeout: retried while attempts remain, dead-lettered otherwise.
    /// Returns (retried, dead-lettered).
    pub async fn recover_stuck(&self) -> Result<(u64, u64)> {
        let now = Timestamp::now().as_micros();
        let rows: Vec<StuckRow> = sqlx::query_as(
            "SELECT id, queue, method, org_key, args, attempts, max_attempts, timeout_us, lease_until_us, \
                 trace_id, submitted_by, enqueued_at_us, worker FROM job \
                 WHERE status = 'Running' AND (lease_until_us < $1 OR started_at_us + 2 * timeout_us < $1)",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await
        .map_err(map_db_error)?;
        let (mut retried, mut dead) = (0, 0);
        for (
            id,
            queue,
            method,
            key,
            args,
            attempts,
            max_attempts,
            timeout_us,
            lease,
            trace_id,
            submitted_by,
            enqueued_at_us,
            worker,
        ) in rows
        {
            let job = ClaimedJob {
                id,
                queue: queue.parse()?,
                method,
                organization: organization_of(key),
                args: serde_json::from_str(&args).unwrap_or(Value::Null),
                attempt: attempts,
                max_attempts,
                timeout: Duration::from_micros(u64::try_from(timeout_us).unwrap_or(0)),
                trace_id,
                submitted_by,
                enqueued_at_us,
            };
            let reason = if lease < now {
                format!(
                    "recovered: worker {} stopped renewing its lease",
                    worker.as_deref().unwrap_or("?")
                )
            } else {
                "recovered: running longer than twice the queue timeout".to_string()
            };
            let worker = worker.unwrap_or_default();
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
        sqlx::query("UPDATE job SET progress = $1 WHERE id = $2")
            .bind(progress.to_string())
            .bind(job_id)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(())
    }

    /// A job's state.
    pub async fn info(&self, job_id: &str) -> Result<JobInfo> {
        let row: Option<JobRow> = sqlx::query_as(&format!("{JOB_INFO_SELECT} WHERE id = $1"))
            .bind(job_id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(map_db_error)?;
        job_info(row.ok_or_else(|| Error::not_found(format!("Job {job_id} not found")))?)
    }

    /// Jobs of the given organizations (`None`: all), newest first.
    pub async fn list(
        &self,
        organizations: Option<&[String]>,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<JobInfo>> {
        let mut sql = format!("{JOB_INFO_SELECT} WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(orgs) = organizations {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            let placeholders: Vec<String> = orgs.iter().enumerate().map(|(i, _)| format!("${}", i + 1)).collect();
            sql.push_str(&format!(" AND org_key IN ({})", placeholders.join(", ")));
            binds.extend(orgs.iter().cloned());
        }
        if let Some(status) = status {
            binds.push(status.as_str().to_string());
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY enqueued_at_us DESC, id LIMIT {limit}"));
        let mut query = sqlx::query_as::<_, JobRow>(&sql);
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query.fetch_all(self.db.pool()).await.map_err(map_db_error)?;
        rows.into_iter().map(job_info).collect()
    }

    /// Cancels a job: Pending/Queued jobs at once, Running jobs cooperatively (their worker
    /// notices within a second). Returns the status after the request.
    pub async fn cancel(&self, job_id: &str) -> Result<JobStatus> {
        let now = Timestamp::now().as_micros();
        let immediate = sqlx::query(
            "UPDATE job SET status = 'Canceled', finished_at_us = $1 WHERE id = $2 AND status IN ('Pending', 'Queued')",
        )
        .bind(now)
        .bind(job_id)
        .execute(self.db.pool())
        .await
        .map_err(map_db_error)?;
        if immediate.rows_affected() == 1 {
            return Ok(JobStatus::Canceled);
        }
        sqlx::query("UPDATE job SET cancel_requested = 1 WHERE id = $1 AND status = 'Running'")
            .bind(job_id)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(self.info(job_id).await?.status)
    }

    /// Pending dead letters.
    pub async fn dlq_depth(&self) -> Result<i64> {
        let (depth,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dead_letter WHERE status = 'Pending'")
            .fetch_one(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(depth)
    }

    /// Dead letters of the given organizations (`None`: all), newest first.
    pub async fn dead_letters(&self, organizations: Option<&[String]>, limit: u32) -> Result<Vec<DeadLetter>> {
        let mut sql = String::from(DEAD_LETTER_SELECT);
        let orgs = organizations.unwrap_or_default();
        if organizations.is_some() {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            let placeholders: Vec<String> = (1..=orgs.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" WHERE org_key IN ({})", placeholders.join(", ")));
        }
        sql.push_str(&format!(" ORDER BY failed_at_us DESC, id LIMIT {limit}"));
        let mut query = sqlx::query_as::<_, DeadLetterRow>(&sql);
        for org in orgs {
            query = query.bind(org);
        }
        let rows = query.fetch_all(self.db.pool()).await.map_err(map_db_error)?;
        rows.into_iter().map(dead_letter).collect()
    }

    /// One dead letter.
    pub async fn dead_letter(&self, name: &str) -> Result<DeadLetter> {
        let row: Option<DeadLetterRow> = sqlx::query_as(&format!("{DEAD_LETTER_SELECT} WHERE id = $1"))
            .bind(name)
            .fetch_optional(self.db.pool())
            .await
            .map_err(map_db_error)?;
        dead_letter(row.ok_or_else(|| Error::not_found(format!("Dead letter {name} not found")))?)
    }

    /// Sets a Pending dead letter's status (Retried, Resolved or Ignored) with notes; 409 when
    /// it is no longer Pending.
    pub async fn settle_dead_letter(
        &self,
        conn: &mut AnyConnection,
        name: &str,
        status: DeadLetterStatus,
        notes: Option<&str>,
        by: &str,
    ) -> Result<()> {
        let result = sqlx::query(
            "UPDATE dead_letter SET status = $1, resolution_notes = $2, resolved_by = $3, resolved_at_us = $4 \
             WHERE id = $5 AND status = 'Pending'",
        )
        .bind(status.as_str())
        .bind(notes)
        .bind(by)
        .bind(Timestamp::now().as_micros())
        .bind(name)
        .execute(conn)
        .await
        .map_err(map_db_error)?;
        if result.rows_affected() == 0 {
            return Err(Error::conflict(format!("Dead letter {name} is not Pending")));
        }
        Ok(())
    }

    /// Deletes Resolved/Ignored dead letters older than the retention.
    pub async fn purge_dead_letters(&self) -> Result<u64> {
        let cutoff = Timestamp::now().as_micros() - i64::from(self.config.dlq_retention_days) * 86_400 * 1_000_000;
        let result =
            sqlx::query("DELETE FROM dead_letter WHERE status IN ('Resolved', 'Ignored') AND failed_at_us < $1")
                .bind(cutoff)
                .execute(self.db.pool())
                .await
                .map_err(map_db_error)?;
        Ok(result.rows_affected())
    }

    /// Pauses or resumes the jobs of `organization` (its status changed to Suspended or back):
    /// workers claim no job of a paused organization.
    pub async fn set_paused(&self, organization: &str, paused: bool) -> Result<()> {
        let query = if paused {
            sqlx::query(
                "INSERT INTO job_paused_org (org_key, paused_at_us) VALUES ($1, $2) ON CONFLICT (org_key) DO NOTHING",
            )
            .bind(organization)
            .bind(Timestamp::now().as_micros())
        } else {
            sqlx::query("DELETE FROM job_paused_org WHERE org_key = $1").bind(organization)
        };
        query.execute(self.db.pool()).await.map_err(map_db_error)?;
        Ok(())
    }

    /// Makes the paused organizations exactly `suspended` (after a start, in case a status change
    /// happened while no node listened).
    pub async fn reconcile_paused(&self, suspended: &[String]) -> Result<()> {
        let mut tx = self.db.begin().await.map_err(map_db_error)?;
        sqlx::query("DELETE FROM job_paused_org")
            .execute(&mut *tx)
            .await
            .map_err(map_db_error)?;
        let now = Timestamp::now().as_micros();
        for organization in suspended {
            sqlx::query("INSERT INTO job_paused_org (org_key, paused_at_us) VALUES ($1, $2)")
                .bind(organization)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_db_error)?;
        }
        tx.commit().await.map_err(map_db_error)?;
        Ok(())
    }

    /// Deletes finished jobs (Completed, Failed, Canceled, Timed Out) that finished more than
    /// `jobs.retention_days` ago, [`PURGE_BATCH`] rows per statement until none is left. Jobs a
    /// dead letter still refers to stay (until the letter itself is purged). Returns the count.
    pub async fn purge_finished(&self) -> Result<u64> {
        let cutoff = Timestamp::now().as_micros() - i64::from(self.config.retention_days) * 86_400 * 1_000_000;
        let sql = format!(
            "DELETE FROM job WHERE id IN (SELECT j.id FROM job j \
             WHERE j.finished_at_us < $1 AND j.status IN ('Completed', 'Failed', 'Canceled', 'Timed Out') \
             AND NOT EXISTS (SELECT 1 FROM dead_letter d WHERE d.job_id = j.id) LIMIT {PURGE_BATCH})"
        );
        let mut purged = 0;
        loop {
            let result = self
                .db
                .observe("Job", "purge", sqlx::query(&sql).bind(cutoff).execute(self.db.pool()))
                .await
                .map_err(map_db_error)?;
            purged += result.rows_affected();
            if result.rows_affected() < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    /// Deletes cron tick records older than a week.
    pub async fn prune_cron_ticks(&self) -> Result<u64> {
        let cutoff = Timestamp::now().as_micros() - 7 * 86_400 * 1_000_000;
        let result = sqlx::query("DELETE FROM cron_tick WHERE tick_us < $1")
            .bind(cutoff)
            .execute(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(result.rows_affected())
    }

    /// Jobs waiting (Pending or Queued) per queue.
    pub async fn queue_depths(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query_as("SELECT queue, COUNT(*) FROM job WHERE status IN ('Pending', 'Queued') GROUP BY queue")
            .fetch_all(self.db.pool())
            .await
            .map_err(map_db_error)
    }

    /// Unfinished jobs per organization and queue.
    pub async fn org_job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        sqlx::query_as(
            "SELECT org_key, queue, COUNT(*) FROM job WHERE status IN ('Pending', 'Queued', 'Running') \
             GROUP BY org_key, queue",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(map_db_error)
    }

    /// Records a cron tick; true only for the first node to record it (exactly once per tick).
    pub async fn claim_cron_tick(&self, conn: &mut AnyConnection, name: &str, tick_us: i64) -> Result<bool> {
        let result = sqlx::query("INSERT INTO cron_tick (name, tick_us) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(tick_us)
            .execute(conn)
            .await
            .map_err(map_db_error)?;
        Ok(result.rows_affected() == 1)
    }
}

fn queue_config(config: &JobsConfig, queue: Queue) -> &QueueConfig {
    match queue {
        Queue::Critical => &config.queues.critical,
        Queue::Default => &config.queues.default,
        Queue::Bulk => &config.queues.bulk,
    }
}

const JOB_INFO_SELECT: &str = "SELECT id, method, status, queue, org_key, attempts, enqueued_at_us, started_at_us, \
     finished_at_us, progress, error FROM job";

fn job_info(row: JobRow) -> Result<JobInfo> {
    let (id, method, status, queue, key, attempts, enqueued, started, finished, progress, error) = row;
    Ok(JobInfo {
        job_id: id,
        method,
        status: status.parse()?,
        queue: queue.parse()?,
        organization: organization_of(key),
        progress: progress.and_then(|p| serde_json::from_str(&p).ok()),
        attempts,
        error,
        enqueued_at: Timestamp::from_micros(enqueued),
        started_at: started.map(Timestamp::from_micros),
        finished_at: finished.map(Timestamp::from_micros),
    })
}

const DEAD_LETTER_SELECT: &str = "SELECT id, job_id, method, org_key, queue, reason, args, failed_at_us, \
     retry_count, status, resolution_notes FROM dead_letter";

type DeadLetterRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
);

fn dead_letter(row: DeadLetterRow) -> Result<DeadLetter> {
    let (name, job_id, method, key, queue, reason, args, failed_at, retry_count, status, notes) = row;
    Ok(DeadLetter {
        name,
        job_id,
        method,
        organization: organization_of(key),
        queue: queue.parse()?,
        failure_reason: reason,
        job_data: serde_json::from_str(&args).unwrap_or(Value::Null),
        failed_at: Timestamp::from_micros(failed_at),
        retry_count,
        status,
        resolution_notes: notes,
    })
}

async fn insert_dead_letter(conn: &mut AnyConnection, job: &ClaimedJob, reason: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO dead_letter (id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Pending')",
    )
    .bind(format!("DLQ-{}", random_hex(8)))
    .bind(&job.id)
    .bind(&job.method)
    .bind(org_key(job.organization.as_deref()))
    .bind(job.queue.as_str())
    .bind(reason)
    .bind(job.args.to_string())
    .bind(now)
    .bind(job.attempt - 1)
    .execute(conn)
    .await
    .map_err(map_db_error)?;
    Ok(())
}
