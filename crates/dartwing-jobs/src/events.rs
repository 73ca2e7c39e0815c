//! A job's realtime events, in the shapes the Dartwing clients listen for: `job_status_changed`
//! on every recorded status change and `job_progress` on every progress report. They go to the
//! job's organization room (`org:{organization}`, which every socket of a member may join), or,
//! for a job of no organization, to its submitting user's room: one room per event, so a socket
//! never gets an event twice.
//!
//! Sent after the change is recorded: on enqueue (not for [`crate::Jobs::enqueue_in`], whose
//! transaction is the caller's), when a worker starts an attempt, when a batch of successes
//! commits, when an attempt fails (retry or dead letter) and on cancellation. A job that becomes
//! due (Pending → Queued, after `run_at` or a retry's back-off) sends nothing: its next event is
//! Running. `jobs.status_events = false` turns `job_status_changed` off.

use crate::model::JobStatus;
use dartwing_core::Timestamp;
use dartwing_core::publish::{SharedPublisher, Target};
use serde_json::{Value, json};

/// The job an event is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) method: &'a str,
    pub(crate) organization: Option<&'a str>,
    pub(crate) submitted_by: Option<&'a str>,
    pub(crate) trace_id: Option<&'a str>,
}

impl JobRef<'_> {
    /// Where the job's events go (none for a job of no organization submitted by a service).
    fn room(&self) -> Option<Target> {
        match self.organization {
            Some(org) => Some(Target::Room(format!("org:{org}"))),
            None => self
                .submitted_by
                .filter(|who| who.contains('@'))
                .map(|user| Target::User(user.to_string())),
        }
    }
}

/// Sends a job's events.
#[derive(Clone)]
pub(crate) struct JobEvents {
    publisher: SharedPublisher,
    status_changes: bool,
}

impl JobEvents {
    pub(crate) fn new(publisher: SharedPublisher, status_changes: bool) -> Self {
        Self {
            publisher,
            status_changes,
        }
    }

    /// `job_status_changed`: `{job_id, job_type, from_status, to_status, output_reference, updated_at}`;
    /// `output` is the `output_reference` a completed job recorded.
    pub(crate) fn status_changed(&self, job: JobRef<'_>, from: Option<JobStatus>, to: JobStatus, output: Option<&str>) {
        if !self.status_changes {
            return;
        }
        let message = json!({
            "job_id": job.id,
            "job_type": job.method,
            "organization": job.organization,
            "from_status": from.map(JobStatus::as_str),
            "to_status": to.as_str(),
            "output_reference": output,
            "updated_at": Timestamp::now(),
        });
        self.send(job, "job_status_changed", message);
    }

    /// `job_progress`: `{job_id, job_type, status, progress, progress_message, updated_at}`.
    pub(crate) fn progress(&self, job: JobRef<'_>, percent: f64, message: &str) {
        let message = json!({
            "job_id": job.id,
            "job_type": job.method,
            "organization": job.organization,
            "status": JobStatus::Running.as_str(),
            "progress": percent,
            "progress_message": message,
            "updated_at": Timestamp::now(),
        });
        self.send(job, "job_progress", message);
    }

    fn send(&self, job: JobRef<'_>, event: &str, message: Value) {
        if let Some(target) = job.room() {
            self.publisher.publish(event, message, target, job.trace_id);
        }
    }
}
