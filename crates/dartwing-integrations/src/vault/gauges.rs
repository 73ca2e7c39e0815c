//! The sampled integration gauges (tokens by status, expiries).

use super::{TokenVault, now_us};
use std::time::Duration;

impl TokenVault {
    /// Refreshes the sampled integration gauges now.
    pub async fn sample_metrics(&self) {
        match self.inner.store.metric_samples().await {
            Ok((counts, expiries)) => self.inner.metrics.sample(&counts, &expiries, now_us()),
            Err(e) => tracing::warn!(error = %e, "cannot sample integration metrics"),
        }
    }

    /// Samples the integration gauges every 15 s until `shutdown`.
    pub fn spawn_metrics_sampler(&self, shutdown: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        let vault = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => vault.sample_metrics().await,
                }
            }
        })
    }
}
