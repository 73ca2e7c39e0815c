//! Enqueueing, set-based: a set of jobs (one job, a coalesced group of concurrent enqueues, or an
//! `enqueue_batch` request) enters its (queue, organization) lanes with one statement per lane,
//! which gives the jobs their virtual start times and makes the organizations' pending caps exact;
//! duplicates within the dedup window answer the existing job; the new jobs are written with one
//! multi-row insert. Caps and dedup apply per job, in the order of the set.

use super::JobStore;
use crate::model::{Enqueued, JobStatus, NewJob, Queue, org_key};
use dartwing_core::config::LimitMode;
use dartwing_core::ids::random_hex;
use dartwing_core::{Error, ErrorKind, Result, Timestamp};
use dartwing_db::{Backend, DbError, JsonText, SqlFile, Statement};
use serde::Serialize;
use sqlx::AnyConnection;
use std::collections::{BTreeMap, HashMap, HashSet};

const ENQUEUE: SqlFile = SqlFile::portable("Job", "enqueue", include_str!("sql/enqueue.sql"));
const ENQUEUE_BY_BACKEND: SqlFile = SqlFile::per_backend(
    "Job",
    "enqueue",
    include_str!("sql/enqueue.sqlite.sql"),
    include_str!("sql/enqueue.postgres.sql"),
);

pub(super) struct EnqueueSql {
    enter_lane: Statement,
    pending_count: Statement,
    set_lane_vtime: Statement,
    release_dedup_keys: Statement,
    existing_dedup_keys: Statement,
    insert_many: Statement,
    deduplicated: Statement,
    promote_due: Statement,
    release_dependents: Statement,
    cancel_orphaned_dependents: Statement,
}

impl EnqueueSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = ENQUEUE.statements(backend)?;
        let mut by_backend = ENQUEUE_BY_BACKEND.statements(backend)?;
        let sql = Self {
            enter_lane: s.take("enter_lane")?,
            pending_count: s.take("pending_count")?,
            set_lane_vtime: s.take("set_lane_vtime")?,
            release_dedup_keys: by_backend.take("release_dedup_keys")?,
            existing_dedup_keys: by_backend.take("existing_dedup_keys")?,
            insert_many: by_backend.take("insert_many")?,
            deduplicated: s.take("deduplicated")?,
            promote_due: s.take("promote_due")?,
            release_dependents: s.take("release_dependents")?,
            cancel_orphaned_dependents: s.take("cancel_orphaned_dependents")?,
        };
        s.finish()?;
        by_backend.finish()?;
        Ok(sql)
    }
}

/// The answer to one job of a set: the job (new or the existing duplicate) and whether its
/// organization reached the pending cap (`warn` mode), or its own error (429 in `reject` mode).
pub type EnqueueOutcome = Result<(Enqueued, bool)>;

/// The job a duplicate enqueue answers.
#[derive(sqlx::FromRow)]
struct DeduplicatedRow {
    id: String,
    queue: String,
}

/// A job holding a dedup key, as the set reads it before inserting.
#[derive(sqlx::FromRow)]
struct DedupKeyRow {
    org_key: String,
    dedup_key: String,
    id: String,
    queue: String,
}

/// One row of the multi-row insert (the statement reads the fields by name).
#[derive(Serialize)]
struct JobRow<'a> {
    id: String,
    queue: &'static str,
    method: &'a str,
    org_key: &'a str,
    args: String,
    priority: i64,
    vtime: i64,
    status: &'static str,
    max_attempts: i64,
    run_at_us: i64,
    enqueued_at_us: i64,
    timeout_us: i64,
    dedup_key: Option<&'a str>,
    dedup_until_us: Option<i64>,
    trace_id: Option<&'a str>,
    submitted_by: Option<&'a str>,
    depends_on: Option<&'a str>,
}

/// One (queue, organization) lane of a set, held by the transaction once entered.
struct Lane {
    /// Due jobs of the set in this lane (the virtual times reserved when entering).
    due: i64,
    /// The lane's last virtual time before the set.
    base: i64,
    /// Due jobs given a virtual time so far.
    taken: i64,
    /// The cap and the organization's pending jobs in the queue (counting the set's accepted ones),
    /// when a cap applies.
    cap: Option<(i64, i64)>,
}

/// Where one job of a set stands while the set is decided.
enum Decision {
    /// Refused or answered without a row.
    Answered(EnqueueOutcome),
    /// A row of the insert, at this index; with the job's at-cap flag.
    Inserted { row: usize, at_limit: bool },
    /// A duplicate of an earlier job of the same set (by index).
    SameAs { earlier: usize, at_limit: bool },
}

impl JobStore {
    /// Enqueues inside the caller's transaction, so the job commits or rolls back with the
    /// caller's writes. Returns the job and whether its organization reached the pending cap
    /// (in `warn` mode; in `reject` mode reaching the cap is a 429 error).
    pub async fn enqueue_in(&self, conn: &mut AnyConnection, job: &NewJob) -> Result<(Enqueued, bool)> {
        let mut outcomes = self.enqueue_set_in(conn, &[job]).await?;
        outcomes.pop().unwrap_or_else(|| Err(Error::internal()))
    }

    /// Enqueues a set of jobs inside the caller's transaction, answering each in order: its job
    /// (or the existing duplicate) or its own error (at the pending cap in `reject` mode). The
    /// outer error is a database failure: the transaction is then unusable and nothing may commit.
    pub async fn enqueue_set_in(&self, conn: &mut AnyConnection, jobs: &[&NewJob]) -> Result<Vec<EnqueueOutcome>> {
        let sql = &self.sql.enqueue;
        let now = Timestamp::now().as_micros();
        let keys: Vec<&str> = jobs.iter().map(|job| org_key(job.organization.as_deref())).collect();
        let queues: Vec<Queue> = jobs.iter().map(|job| self.queue_for(&job.method)).collect();
        let run_ats: Vec<i64> = jobs
            .iter()
            .map(|job| job.run_at.map(Timestamp::as_micros).unwrap_or(now))
            .collect();

        // Lanes in one order for every transaction, so concurrent sets never wait on each other
        // in a cycle.
        let mut lanes: BTreeMap<(&'static str, &str), Lane> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let lane = lanes.entry((queues[i].as_str(), keys[i])).or_insert(Lane {
                due: 0,
                base: 0,
                taken: 0,
                cap: None,
            });
            lane.due += i64::from(run_ats[i] <= now);
            if job.organization.is_some() {
                lane.cap = self
                    .queue_config(queues[i])
                    .max_pending_per_org
                    .map(|cap| (i64::from(cap), 0));
            }
        }
        for ((queue, key), lane) in &mut lanes {
            let last_vtime: i64 = self
                .db
                .run(
                    &sql.enter_lane,
                    sql.enter_lane
                        .query_scalar()
                        .bind(*queue)
                        .bind(key.to_string())
                        .bind(lane.due)
                        .fetch_one(&mut *conn),
                )
                .await?;
            lane.base = last_vtime - lane.due;
            if let Some((cap, _)) = lane.cap {
                let pending: i64 = self
                    .db
                    .run(
                        &sql.pending_count,
                        sql.pending_count
                            .query_scalar()
                            .bind(key.to_string())
                            .bind(*queue)
                            .fetch_one(&mut *conn),
                    )
                    .await?;
                lane.cap = Some((cap, pending));
            }
        }

        let existing = self.existing_dedup_keys(conn, jobs, &keys, now).await?;
        let mut rows: Vec<JobRow<'_>> = Vec::with_capacity(jobs.len());
        let mut decisions: Vec<Decision> = Vec::with_capacity(jobs.len());
        let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let (queue, key) = (queues[i], keys[i]);
            let Some(lane) = lanes.get_mut(&(queue.as_str(), key)) else {
                return Err(Error::internal());
            };
            let at_limit = match lane.cap {
                Some((cap, pending)) if pending >= cap => {
                    if self.config.limit_mode == LimitMode::Reject {
                        decisions.push(Decision::Answered(Err(queue_full(pending, queue, cap))));
                        continue;
                    }
                    true
                }
                _ => false,
            };
            if let Some(dedup_key) = job.dedup_key.as_deref() {
                if let Some(found) = existing.get(&(key.to_string(), dedup_key.to_string())) {
                    decisions.push(Decision::Answered(Ok((found.clone(), at_limit))));
                    continue;
                }
                if let Some(&earlier) = first_with_key.get(&(key, dedup_key)) {
                    decisions.push(Decision::SameAs { earlier, at_limit });
                    continue;
                }
                first_with_key.insert((key, dedup_key), i);
            }
            let due = run_ats[i] <= now;
            if due {
                lane.taken += 1;
            }
            if let Some((_, pending)) = &mut lane.cap {
                *pending += 1;
            }
            decisions.push(Decision::Inserted {
                row: rows.len(),
                at_limit,
            });
            rows.push(self.job_row(job, queue, key, lane.base + lane.taken, due, now, run_ats[i]));
        }

        let inserted: HashSet<String> = if rows.is_empty() {
            HashSet::new()
        } else {
            let ids: Vec<String> = self
                .db
                .run(
                    &sql.insert_many,
                    sql.insert_many
                        .query_scalar()
                        .bind(JsonText(&rows))
                        .fetch_all(&mut *conn),
                )
                .await?;
            ids.into_iter().collect()
        };

        let mut outcomes: Vec<EnqueueOutcome> = Vec::with_capacity(jobs.len());
        for (i, decision) in decisions.into_iter().enumerate() {
            let outcome = match decision {
                Decision::Answered(outcome) => outcome,
                Decision::Inserted { row, at_limit } => {
                    let row = &rows[row];
                    if inserted.contains(&row.id) {
                        Ok((
                            Enqueued {
                                job_id: row.id.clone(),
                                queue: queues[i],
                                deduplicated: false,
                            },
                            at_limit,
                        ))
                    } else {
                        // A concurrent enqueue took the dedup key after the set read the keys (the
                        // virtual time this row reserved stays unused, which fairness tolerates).
                        Ok((self.deduplicated(conn, row.org_key, row.dedup_key).await?, at_limit))
                    }
                }
                Decision::SameAs { earlier, at_limit } => match &outcomes[earlier] {
                    Ok((enqueued, _)) => Ok((
                        Enqueued {
                            deduplicated: true,
                            ..enqueued.clone()
                        },
                        at_limit,
                    )),
                    Err(e) => Err(e.clone()),
                },
            };
            outcomes.push(outcome);
        }

        for ((queue, key), lane) in &lanes {
            if lane.taken != lane.due {
                self.db
                    .run(
                        &sql.set_lane_vtime,
                        sql.set_lane_vtime
                            .query()
                            .bind(*queue)
                            .bind(key.to_string())
                            .bind(lane.base + lane.taken)
                            .execute(&mut *conn),
                    )
                    .await?;
            }
        }
        Ok(outcomes)
    }

    /// The jobs already holding the set's dedup keys within their windows (keys whose window
    /// ended are released first), by (organization key, dedup key).
    async fn existing_dedup_keys(
        &self,
        conn: &mut AnyConnection,
        jobs: &[&NewJob],
        keys: &[&str],
        now: i64,
    ) -> Result<HashMap<(String, String), Enqueued>> {
        let pairs: Vec<[&str; 2]> = jobs
            .iter()
            .zip(keys)
            .filter_map(|(job, key)| job.dedup_key.as_deref().map(|dedup_key| [*key, dedup_key]))
            .collect();
        if pairs.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = &self.sql.enqueue;
        self.db
            .run(
                &sql.release_dedup_keys,
                sql.release_dedup_keys
                    .query()
                    .bind(now)
                    .bind(JsonText(&pairs))
                    .execute(&mut *conn),
            )
            .await?;
        let found: Vec<DedupKeyRow> = self
            .db
            .run(
                &sql.existing_dedup_keys,
                sql.existing_dedup_keys
                    .query_as()
                    .bind(JsonText(&pairs))
                    .fetch_all(&mut *conn),
            )
            .await?;
        found
            .into_iter()
            .map(|row| {
                Ok((
                    (row.org_key, row.dedup_key),
                    Enqueued {
                        job_id: row.id,
                        queue: row.queue.parse()?,
                        deduplicated: true,
                    },
                ))
            })
            .collect()
    }

    /// The existing job holding `dedup_key` of organization key `key`.
    async fn deduplicated(&self, conn: &mut AnyConnection, key: &str, dedup_key: Option<&str>) -> Result<Enqueued> {
        let sql = &self.sql.enqueue;
        let existing: DeduplicatedRow = self
            .db
            .run(
                &sql.deduplicated,
                sql.deduplicated
                    .query_as()
                    .bind(key.to_string())
                    .bind(dedup_key.map(str::to_string))
                    .fetch_one(&mut *conn),
            )
            .await?;
        Ok(Enqueued {
            job_id: existing.id,
            queue: existing.queue.parse()?,
            deduplicated: true,
        })
    }

    /// The row of `job` with its virtual start time `lane_vtime` (shifted by priority) and a new id.
    #[allow(clippy::too_many_arguments)]
    fn job_row<'a>(
        &self,
        job: &'a NewJob,
        queue: Queue,
        key: &'a str,
        lane_vtime: i64,
        due: bool,
        now: i64,
        run_at: i64,
    ) -> JobRow<'a> {
        let settings = self.type_settings(&job.method);
        let window = job.dedup_window_secs.unwrap_or(settings.dedup_window_secs);
        let timeout_us = i64::try_from(settings.timeout_secs).unwrap_or(i64::MAX / 2_000_000) * 1_000_000;
        JobRow {
            id: random_hex(12),
            queue: queue.as_str(),
            method: &job.method,
            org_key: key,
            args: job.args.to_string(),
            priority: job.priority.rank(),
            vtime: lane_vtime - job.priority.vtime_shift(),
            status: if due { JobStatus::Queued } else { JobStatus::Pending }.as_str(),
            max_attempts: i64::from(settings.retries) + 1,
            run_at_us: run_at,
            enqueued_at_us: now,
            timeout_us,
            dedup_key: job.dedup_key.as_deref(),
            dedup_until_us: job
                .dedup_key
                .as_ref()
                .map(|_| now + i64::try_from(window).unwrap_or(0) * 1_000_000),
            trace_id: job.trace_id.as_deref(),
            submitted_by: job.submitted_by.as_deref(),
            depends_on: job.depends_on.as_deref(),
        }
    }

    /// Enqueues a set of jobs in a transaction of its own, answering each in order (see
    /// [`JobStore::enqueue_set_in`]); the outer error is a database failure (nothing committed).
    pub async fn enqueue_set(&self, jobs: &[&NewJob]) -> Result<Vec<EnqueueOutcome>> {
        let mut tx = self.db.begin_tx().await?;
        let outcomes = self.enqueue_set_in(&mut tx, jobs).await?;
        self.db.commit(tx).await?;
        Ok(outcomes)
    }

    /// Enqueues many jobs in one transaction (all or none: the first refused job fails the call).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(Enqueued, bool)>> {
        let refs: Vec<&NewJob> = jobs.iter().collect();
        let mut tx = self.db.begin_tx().await?;
        let outcomes = self.enqueue_set_in(&mut tx, &refs).await?;
        let all = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
        self.db.commit(tx).await?;
        Ok(all)
    }

    /// Jobs waiting for a parent: those whose parent Completed become due now (the next
    /// promotion queues them), those whose parent ended any other way are canceled and returned.
    pub async fn settle_dependents(&self) -> Result<Vec<CanceledDependent>> {
        let sql = &self.sql.enqueue;
        let now = Timestamp::now().as_micros();
        self.db
            .run(
                &sql.release_dependents,
                sql.release_dependents
                    .query()
                    .bind(now)
                    .bind(WAITING_FOR_PARENT_US)
                    .execute(self.db.pool()),
            )
            .await?;
        let canceled: Vec<CanceledDependent> = self
            .db
            .run(
                &sql.cancel_orphaned_dependents,
                sql.cancel_orphaned_dependents
                    .query_as()
                    .bind(now)
                    .bind(WAITING_FOR_PARENT_US)
                    .fetch_all(self.db.pool()),
            )
            .await?;
        Ok(canceled)
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

/// `run_at_us` of a job waiting for its parent (9999-12-31T23:59:59Z): never due by itself.
pub const WAITING_FOR_PARENT_US: i64 = 253_402_300_799_000_000;

/// A waiting job canceled because its parent did not complete.
#[derive(Debug, sqlx::FromRow)]
pub struct CanceledDependent {
    /// The job.
    pub id: String,
    /// Its type.
    pub method: String,
    /// Its organization's stored key.
    pub org_key: String,
    /// Who submitted it.
    pub submitted_by: Option<String>,
}

/// The 429 of a job refused at its organization's pending cap (`reject` mode).
fn queue_full(pending: i64, queue: Queue, cap: i64) -> Error {
    Error::new(
        ErrorKind::RateLimited,
        format!("queue full: organization has {pending} pending jobs in queue {queue} (limit {cap})"),
    )
    .with_exc_type("QueueFullError")
}
