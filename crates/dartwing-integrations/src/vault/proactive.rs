//! The proactive refresh: tokens expiring within the window are refreshed before callers need
//! them, single flight with callers.

use super::{TokenVault, micros, now_us};
use dartwing_core::Result;
use serde::Serialize;
use std::time::Duration;

/// Counts of one proactive refresh run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefreshRun {
    /// Tokens refreshed.
    pub refreshed: u32,
    /// Refreshes that failed (Error or Expired).
    pub failed: u32,
    /// Candidates someone else refreshed first.
    pub skipped: u32,
}

impl TokenVault {
    /// The proactive refresh: every Connected token expiring within the window (and every Error
    /// row) is refreshed, single flight with callers. Logs the counts.
    pub async fn refresh_expiring(&self) -> Result<RefreshRun> {
        let window = Duration::from_secs(self.inner.config.proactive_refresh_window_secs);
        let before = now_us() + micros(window);
        let due = self.inner.store.due_for_refresh(before).await?;
        let mut run = RefreshRun::default();
        for (organization, integration) in due {
            let previous = self.inner.store.get(&organization, &integration).await?;
            let last = previous.as_ref().and_then(|r| r.last_attempt_us);
            match self.refresh(&integration, &organization, window, "scheduler").await {
                Ok(_) => {
                    let now = self.inner.store.get(&organization, &integration).await?;
                    if now.and_then(|r| r.last_attempt_us) != last {
                        run.refreshed += 1;
                    } else {
                        run.skipped += 1;
                    }
                }
                Err(_) => run.failed += 1,
            }
        }
        tracing::info!(
            refreshed = run.refreshed,
            failed = run.failed,
            skipped = run.skipped,
            "proactive integration refresh finished"
        );
        self.sample_metrics().await;
        Ok(run)
    }
}
