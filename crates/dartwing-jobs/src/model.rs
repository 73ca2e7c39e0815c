//! Jobs as the API and the store see them.

use dartwing_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

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

/// Where a job stands (SPEC §8 wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Waiting for its `run_at` (first run or retry back-off).
    Pending,
    /// Due and waiting for a worker.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed for good (dead-lettered).
    Failed,
    /// Cancelled by a user.
    Canceled,
    /// Timed out on its last attempt (dead-lettered).
    #[serde(rename = "Timed Out")]
    TimedOut,
}

impl JobStatus {
    /// The stored and transmitted text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "Pending",
            JobStatus::Queued => "Queued",
            JobStatus::Running => "Running",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Canceled => "Canceled",
            JobStatus::TimedOut => "Timed Out",
        }
    }

    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Canceled | JobStatus::TimedOut
        )
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        [
            JobStatus::Pending,
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Canceled,
            JobStatus::TimedOut,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| Error::bad_request(format!("'{s}' is not a job status")))
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
    /// Email (or key) of the submitter; receives `job_progress` events.
    pub submitted_by: Option<String>,
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

/// A job's state as `jobs.status` returns it (SPEC §8 wire shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobInfo {
    /// Id.
    pub job_id: String,
    /// Job type.
    pub method: String,
    /// Status.
    pub status: JobStatus,
    /// Queue.
    pub queue: Queue,
    /// Organization, `null` for system jobs.
    pub organization: Option<String>,
    /// Last reported progress (`{"percent", "message"}`), if any.
    pub progress: Option<Value>,
    /// Attempts started so far.
    pub attempts: i64,
    /// Last error message, if any.
    pub error: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// When its last attempt started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
}

/// A dead letter's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterStatus {
    /// Waiting for an administrator.
    Pending,
    /// Re-enqueued.
    Retried,
    /// Handled.
    Resolved,
    /// Dismissed.
    Ignored,
}

impl DeadLetterStatus {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Pending => "Pending",
            DeadLetterStatus::Retried => "Retried",
            DeadLetterStatus::Resolved => "Resolved",
            DeadLetterStatus::Ignored => "Ignored",
        }
    }
}

/// A job that failed for good (SPEC §8 fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Dead letter id.
    pub name: String,
    /// The failed job.
    pub job_id: String,
    /// Job type.
    pub method: String,
    /// Organization, `null` for system jobs.
    pub organization: Option<String>,
    /// Queue.
    pub queue: Queue,
    /// Why it failed (≤ 2000 characters).
    pub failure_reason: String,
    /// The job's arguments.
    pub job_data: Value,
    /// When it failed for the last time.
    pub failed_at: Timestamp,
    /// Retries made before giving up.
    pub retry_count: i64,
    /// Pending, Retried, Resolved or Ignored.
    pub status: String,
    /// Notes of whoever resolved or ignored it.
    pub resolution_notes: Option<String>,
}

/// Organization key stored for system jobs (no organization).
pub const SYSTEM_ORG_KEY: &str = "";

/// The stored organization key of an optional organization.
pub fn org_key(organization: Option<&str>) -> &str {
    organization.unwrap_or(SYSTEM_ORG_KEY)
}

/// The organization of a stored key.
pub fn organization_of(org_key: String) -> Option<String> {
    (!org_key.is_empty()).then_some(org_key)
}

/// Cuts `text` to at most `max` characters (on a character boundary).
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
