//! The change-log retention job: compacts change-log rows older than
//! `sync.change_log_retention_days` (daily, scheduled through the jobs scheduler).

use crate::OfflineSync;
use async_trait::async_trait;
use dartwing_core::Timestamp;
use dartwing_core::jobs::{JobContext, JobError, JobHandler};
use serde_json::Value;

/// Job type (and schedule name) of the retention job.
pub const RETENTION_JOB: &str = "sync.change_log_retention";

/// Removes change-log rows older than the retention window that a later change of the same
/// document supersedes; a watermark from before them then answers 410 `ResyncRequired`.
pub struct ChangeLogRetention {
    sync: OfflineSync,
}

impl ChangeLogRetention {
    /// The job handler for `sync`.
    pub fn new(sync: OfflineSync) -> Self {
        Self { sync }
    }
}

#[async_trait]
impl JobHandler for ChangeLogRetention {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let days = i64::from(self.sync.config().change_log_retention_days);
        let cutoff = Timestamp::from_micros(Timestamp::now().as_micros() - days * 86_400 * 1_000_000);
        self.sync.compact_change_log(cutoff).await?;
        Ok(())
    }
}
