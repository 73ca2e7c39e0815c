//! What capabilities share about background jobs, without depending on the job engine: the job
//! to enqueue and the answer, the [`Enqueuer`] that stores it, and the [`JobHandler`]s (with
//! their [`JobType`] registration and [`CronEntry`] schedules) that a capability hands the node.
//! The engine itself (queues, workers, dead letters) is the `dartwing-jobs` crate.

use crate::permission::EnqueuePolicy;
use crate::{Error, ErrorKind, Principal, Result, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// One of the three queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Queue {
    /// Latency-sensitive jobs with their own workers.
    Critical,
    /// Everything not routed elsewhere.
    Default,
    /// Long, heavy jobs, rate limited per organization.
    Bulk,
}

impl Queue {
    /// Every queue.
    pub const ALL: [Queue; 3] = [Queue::Critical, Queue::Default, Queue::Bulk];

    /// The queue's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Critical => "critical",
            Queue::Default => "default",
            Queue::Bulk => "bulk",
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Queue {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Queue::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| Error::bad_request(format!("'{s}' is not a queue (critical, default, bulk)")))
    }
}

/// Priority of a job within its organization's share of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub enum Priority {
    /// After Normal jobs.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Before Normal jobs.
    High,
    /// Before everything else of the organization.
    Critical,
}

impl Priority {
    /// Stored number (higher runs earlier).
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Critical => 3,
        }
    }

    /// How many fair-queuing slots the job moves forward (negative: backward). Bounded, so a
    /// tenant cannot starve others by raising priorities: a High job overtakes at most this many
    /// slots of other organizations' work.
    pub fn vtime_shift(self) -> i64 {
        match self {
            Priority::Low => -64,
            Priority::Normal => 0,
            Priority::High => 64,
            Priority::Critical => 256,
        }
    }

    /// The priority of a stored rank.
    pub fn from_rank(rank: i64) -> Self {
        match rank {
            0 => Priority::Low,
            2 => Priority::High,
            3 => Priority::Critical,
            _ => Priority::Normal,
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Job type (handler name), e.g. `webhook.dispatch`.
    pub method: String,
    /// Owning organization; `None` for a system job.
    pub organization: Option<String>,
    /// Handler arguments (a JSON object).
    pub args: Value,
    /// Order within the organization's share.
    pub priority: Priority,
    /// Suppresses another job with the same key in the same organization within the window.
    pub dedup_key: Option<String>,
    /// How long `dedup_key` suppresses duplicates, in seconds (default from configuration).
    pub dedup_window_secs: Option<u64>,
    /// Earliest start.
    pub run_at: Option<Timestamp>,
    /// Trace id of the request that enqueued it.
    pub trace_id: Option<String>,
    /// Email (or key) of the submitter; a job of no organization sends its events to this user.
    pub submitted_by: Option<String>,
    /// Another job of the same organization this one waits for: it starts once that one
    /// Completed, and is canceled if that one ends any other way.
    pub depends_on: Option<String>,
}

impl NewJob {
    /// A Normal-priority job of `method` with `args`.
    pub fn new(method: impl Into<String>, organization: Option<&str>, args: Value) -> Self {
        Self {
            method: method.into(),
            organization: organization.map(str::to_string),
            args,
            priority: Priority::Normal,
            dedup_key: None,
            dedup_window_secs: None,
            run_at: None,
            trace_id: None,
            submitted_by: None,
            depends_on: None,
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id (an existing job's id when `dedup_key` suppressed a duplicate).
    pub job_id: String,
    /// The queue it was routed to.
    pub queue: Queue,
    /// Whether an existing job was returned instead of a new one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deduplicated: bool,
}

/// Stores jobs; implemented by the job engine, used by capabilities that queue work (e.g. the vault's
/// expiry emails).
#[async_trait]
pub trait Enqueuer: Send + Sync + 'static {
    /// Enqueues `job` for `actor`, as the job type's [`EnqueuePolicy`] allows.
    async fn enqueue(&self, actor: &Principal, job: NewJob) -> Result<Enqueued>;
}

/// A shared enqueuer handle.
pub type SharedEnqueuer = Arc<dyn Enqueuer>;

/// How a failed attempt continues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying: timeouts, connection failures, 5xx answers.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: validation, permission, not found. Fails at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<Error> for JobError {
    fn from(error: Error) -> Self {
        match error.kind() {
            ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::RateLimited => {
                JobError::Transient(error.to_string())
            }
            _ => JobError::Permanent(error.to_string()),
        }
    }
}

/// Longest `output_reference` a handler may record.
pub const MAX_OUTPUT_REFERENCE_CHARS: usize = 1000;

/// What a running job can ask of the engine: cancellation, progress and where its result is.
#[async_trait]
pub trait JobControl: Send + Sync {
    /// Resolves when the job is cancelled (or its worker shuts down).
    async fn cancelled(&self);
    /// Whether cancellation was requested.
    fn is_cancelled(&self) -> bool;
    /// Records progress (`percent` 0–100) and announces it (`job_progress`).
    async fn progress(&self, percent: f64, message: &str) -> std::result::Result<(), JobError>;
    /// Records where the job's result is (`output_reference`).
    async fn output_reference(&self, reference: &str) -> std::result::Result<(), JobError>;
}

/// Everything a handler may use: the job's identity, a principal scoped to the job's organization
/// (so data access goes through the permission module), cancellation and progress.
pub struct JobContext {
    /// Job id.
    pub job_id: String,
    /// Job type.
    pub method: String,
    /// The job's organization (`None` for system jobs). Handlers take the organization from here,
    /// never from their arguments.
    pub organization: Option<String>,
    /// Principal the handler acts as: a Member of the job's organization only, or the runtime for
    /// system jobs.
    pub principal: Principal,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Trace id carried from the request that enqueued the job.
    pub trace_id: Option<String>,
    /// The engine's side of this attempt.
    pub control: Arc<dyn JobControl>,
}

impl JobContext {
    /// Resolves when the job is cancelled (or the worker shuts down); long handlers select on it.
    pub async fn cancelled(&self) {
        self.control.cancelled().await;
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.control.is_cancelled()
    }

    /// Records progress and sends `job_progress` to the job's organization room.
    pub async fn progress(&self, percent: f64, message: &str) -> std::result::Result<(), JobError> {
        self.control.progress(percent, message).await
    }

    /// Records where the job's result is — a file path, URL or document name, at most
    /// [`MAX_OUTPUT_REFERENCE_CHARS`] characters — shown as `output_reference` by the job API and
    /// in the `job_status_changed` of its completion.
    pub async fn output_reference(&self, reference: &str) -> std::result::Result<(), JobError> {
        if reference.chars().count() > MAX_OUTPUT_REFERENCE_CHARS {
            return Err(JobError::Permanent(format!(
                "output_reference is longer than {MAX_OUTPUT_REFERENCE_CHARS} characters"
            )));
        }
        self.control.output_reference(reference).await
    }
}

/// Code that runs a job type.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt.
    async fn run(&self, ctx: &JobContext, args: Value) -> std::result::Result<(), JobError>;

    /// Checks a job of this type when it is enqueued, after the caller was authorized and before
    /// anything is stored: a refusal is the caller's error (typically 422) and no job is written.
    /// The default accepts every job.
    async fn admit(&self, _organization: Option<&str>, _args: &Value) -> Result<()> {
        Ok(())
    }
}

/// A job type a capability contributes: its name, who may enqueue it, and its handler.
#[derive(Clone)]
pub struct JobType {
    /// Job type name, e.g. `integration.refresh_token`.
    pub method: String,
    /// Who may enqueue it.
    pub policy: EnqueuePolicy,
    /// The code that runs it.
    pub handler: Arc<dyn JobHandler>,
}

impl JobType {
    /// A job type only the runtime itself may enqueue ([`EnqueuePolicy::System`]).
    pub fn system(method: &str, handler: impl JobHandler) -> Self {
        Self::with_policy(method, EnqueuePolicy::System, handler)
    }

    /// A job type enqueued as `policy` allows.
    pub fn with_policy(method: &str, policy: EnqueuePolicy, handler: impl JobHandler) -> Self {
        Self {
            method: method.to_string(),
            policy,
            handler: Arc::new(handler),
        }
    }
}

impl fmt::Debug for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobType")
            .field("method", &self.method)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A periodic system job. Ticks fall on multiples of `every` since the Unix epoch; a tick missed
/// while no scheduler ran is not replayed, except the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct CronEntry {
    /// Unique name of the schedule.
    pub name: String,
    /// Job type to enqueue.
    pub method: String,
    /// Period.
    pub every: Duration,
    /// Where ticks fall within the period, from the Unix epoch: ticks are at `offset + k × every`.
    pub offset: Duration,
    /// Job arguments.
    pub args: Value,
}

impl CronEntry {
    /// A schedule named after its job type, with no arguments, ticking at every multiple of
    /// `every` since the Unix epoch.
    pub fn every(method: &str, every: Duration) -> Self {
        Self {
            name: method.to_string(),
            method: method.to_string(),
            every,
            offset: Duration::ZERO,
            args: Value::Object(Default::default()),
        }
    }

    /// A schedule named after its job type ticking once a day at `hour`:00 UTC.
    pub fn daily_at(method: &str, hour: u32) -> Self {
        Self {
            offset: Duration::from_secs(u64::from(hour % 24) * 3600),
            ..Self::every(method, Duration::from_secs(86_400))
        }
    }

    /// The latest tick at or before `now_us` (microseconds since the Unix epoch).
    pub fn tick_at(&self, now_us: i64) -> i64 {
        let every = i64::try_from(self.every.as_micros()).unwrap_or(i64::MAX).max(1);
        let offset = i64::try_from(self.offset.as_micros()).unwrap_or(0);
        now_us - (now_us - offset).rem_euclid(every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_ticks_fall_at_their_hour() {
        let at = |text: &str| {
            text.parse::<crate::Timestamp>()
                .map(crate::Timestamp::as_micros)
                .unwrap_or_default()
        };
        let purge = CronEntry::daily_at("jobs.dlq_purge", 3);
        assert_eq!(purge.tick_at(at("2026-12-02T12:30:00Z")), at("2026-12-02T03:00:00Z"));
        assert_eq!(purge.tick_at(at("2026-12-02T02:59:59Z")), at("2026-12-01T03:00:00Z"));
        assert_eq!(purge.tick_at(at("2026-12-02T03:00:00Z")), at("2026-12-02T03:00:00Z"));
        let every = CronEntry::every("jobs.detect_stuck", Duration::from_secs(900));
        assert_eq!(every.tick_at(at("2026-12-02T12:31:00Z")), at("2026-12-02T12:30:00Z"));
    }
}
