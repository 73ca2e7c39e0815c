//! The durable job store: every state change of a job is one SQL statement (or one short
//! transaction) on SQLite or PostgreSQL.
//!
//! Fair dispatch is start-time fair queuing: each job gets a virtual start time `vtime` when it
//! becomes due, `max(lane.last_vtime, queue clock) + 1` for its (queue, organization) lane, and
//! workers claim in `vtime` order. An organization that floods the queue only pushes its own
//! lane's virtual times ahead; a newcomer starts at the queue clock, so its jobs interleave with
//! the flood at once. See `docs/jobs.md`.
//!
//! The statements live in `sql/`, one file per concern (`<concern>.sql` for both backends and,
//! where the dialects differ, `<concern>.sqlite.sql` / `<concern>.postgres.sql`); each concern's
//! module builds its statements once, when the store is built.

mod claim;
mod cron;
mod dead_letters;
mod enqueue;
mod group_commit;
mod heartbeats;
mod inspect;
mod lanes;
mod lifecycle;
mod retention;

pub use enqueue::{CanceledDependent, EnqueueOutcome, WAITING_FOR_PARENT_US};
pub use heartbeats::Heartbeat;
pub use inspect::JobMetricsRows;

use crate::model::{JobStatus, Queue, organization_of};
use dartwing_core::config::{JobsConfig, QueueConfig};
use dartwing_db::{Backend, Db, DbError, JsonText};
use serde_json::Value;
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

/// SQL access to jobs, dead letters, lanes, cron ticks and worker heartbeats.
#[derive(Clone)]
pub struct JobStore {
    db: Db,
    config: Arc<JobsConfig>,
    routes: Arc<HashMap<String, Queue>>,
    sql: Arc<JobsSql>,
    /// The node's group commit of enqueues (shared by the store's clones).
    group_commit: Arc<group_commit::GroupCommit>,
}

/// What a job type's jobs get when enqueued (see [`JobStore::type_settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSettings {
    /// Its queue.
    pub queue: Queue,
    /// Run time limit of one attempt.
    pub timeout_secs: u64,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Default dedup window.
    pub dedup_window_secs: u64,
}

/// The statements of every concern, for the store's backend.
struct JobsSql {
    enqueue: enqueue::EnqueueSql,
    claim: claim::ClaimSql,
    lifecycle: lifecycle::LifecycleSql,
    inspect: inspect::InspectSql,
    dead_letters: dead_letters::DeadLettersSql,
    lanes: lanes::LanesSql,
    cron: cron::CronSql,
    retention: retention::RetentionSql,
    heartbeats: heartbeats::HeartbeatsSql,
}

impl JobsSql {
    fn new(backend: Backend) -> Result<Self, DbError> {
        Ok(Self {
            enqueue: enqueue::EnqueueSql::new(backend)?,
            claim: claim::ClaimSql::new(backend)?,
            lifecycle: lifecycle::LifecycleSql::new(backend)?,
            inspect: inspect::InspectSql::new(backend)?,
            dead_letters: dead_letters::DeadLettersSql::new(backend)?,
            lanes: lanes::LanesSql::new(backend)?,
            cron: cron::CronSql::new(backend)?,
            retention: retention::RetentionSql::new(backend)?,
            heartbeats: heartbeats::HeartbeatsSql::new(backend)?,
        })
    }
}

impl JobStore {
    /// A store on `db` with the queue configuration; fails when a statement file does not match
    /// the code that runs it.
    pub fn new(db: Db, config: Arc<JobsConfig>) -> Result<Self, DbError> {
        let mut routes = HashMap::new();
        for queue in Queue::ALL {
            for method in &queue_config(&config, queue).job_types {
                routes.insert(method.clone(), queue);
            }
        }
        // A job type's own setting wins over the queues' lists.
        for (method, job_type) in &config.job_types {
            if let Some(queue) = job_type.queue {
                routes.insert(method.clone(), queue);
            }
        }
        let sql = Arc::new(JobsSql::new(db.backend())?);
        Ok(Self {
            db,
            config,
            routes: Arc::new(routes),
            sql,
            group_commit: Arc::default(),
        })
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

    /// A job type's run time limit, retries and default dedup window: its own settings
    /// (`jobs.job_types`), else its queue's (the window: `jobs.dedup_window_secs`).
    pub fn type_settings(&self, method: &str) -> TypeSettings {
        let queue = self.queue_for(method);
        let queue_config = self.queue_config(queue);
        let own = self.config.job_types.get(method);
        TypeSettings {
            queue,
            timeout_secs: own.and_then(|t| t.timeout_secs).unwrap_or(queue_config.timeout_secs),
            retries: own.and_then(|t| t.retries).unwrap_or(queue_config.retries),
            dedup_window_secs: own
                .and_then(|t| t.dedup_window_secs)
                .unwrap_or(self.config.dedup_window_secs),
        }
    }

    /// The settings of `queue`.
    pub fn queue_config(&self, queue: Queue) -> &QueueConfig {
        queue_config(&self.config, queue)
    }

    /// When a lease taken now ends (µs).
    fn lease_until(&self, now: i64) -> i64 {
        now + i64::try_from(self.config.lease_secs).unwrap_or(30) * 1_000_000
    }
}

fn queue_config(config: &JobsConfig, queue: Queue) -> &QueueConfig {
    match queue {
        Queue::Critical => &config.queues.critical,
        Queue::Default => &config.queues.default,
        Queue::Bulk => &config.queues.bulk,
    }
}

/// A list of keys or ids bound as one parameter (a JSON array), which the statements expand.
fn json_list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> JsonText<Vec<String>> {
    JsonText(items.into_iter().map(|item| item.as_ref().to_string()).collect())
}

/// The columns of a job a worker runs, as a claim or stuck-job recovery reads them.
#[derive(Debug, sqlx::FromRow)]
struct RunnableJobRow {
    id: String,
    method: String,
    org_key: String,
    args: JsonText<Value>,
    attempts: i64,
    max_attempts: i64,
    timeout_us: i64,
    trace_id: Option<String>,
    submitted_by: Option<String>,
    enqueued_at_us: i64,
}

impl RunnableJobRow {
    fn into_claimed(self, queue: Queue) -> ClaimedJob {
        ClaimedJob {
            id: self.id,
            queue,
            method: self.method,
            organization: organization_of(self.org_key),
            args: self.args.0,
            attempt: self.attempts,
            max_attempts: self.max_attempts,
            timeout: Duration::from_micros(u64::try_from(self.timeout_us).unwrap_or(0)),
            trace_id: self.trace_id,
            submitted_by: self.submitted_by,
            enqueued_at_us: self.enqueued_at_us,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_statement_file_builds_and_is_used_on_both_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if let Err(e) = JobsSql::new(backend) {
                panic!("{}: {e}", backend.as_str());
            }
        }
    }

    #[test]
    fn lists_are_bound_as_json_arrays() {
        let list = json_list(["a", "b\"c"]);
        assert_eq!(serde_json::to_string(&list.0).unwrap(), r#"["a","b\"c"]"#);
    }
}
