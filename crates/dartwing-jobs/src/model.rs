//! Jobs as the API and the store see them.

pub use dartwing_core::jobs::{Enqueued, NewJob, Priority, Queue};
use dartwing_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

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
    /// Attempts it may have in all (the first and the retries).
    pub max_attempts: i64,
    /// Last error message, if any.
    pub error: Option<String>,
    /// Where its result is, as its handler recorded it.
    pub output_reference: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// When it is or was due: its `run_at`, or when its retry's back-off ends.
    pub run_at: Option<Timestamp>,
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

/// A job type as `dartwing_core.jobs.job_types` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobTypeInfo {
    /// Its name (`method` of an enqueue, `job_type` of the Frappe job API).
    pub name: String,
    /// What it does (`jobs.job_types.<name>.description`).
    pub description: Option<String>,
    /// The queue its jobs go to.
    pub queue: Queue,
    /// Run time limit of one attempt.
    pub timeout_secs: u64,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delays before the retries (its queue's).
    pub retry_delays_secs: Vec<u64>,
    /// Default window of a dedup key.
    pub dedup_window_secs: u64,
    /// Who may submit it, in words.
    pub submit: &'static str,
    /// Whether a handler for it runs on this node (a configured type without one is listed but
    /// cannot be submitted).
    pub available: bool,
}
