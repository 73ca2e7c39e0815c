//! Worker heartbeats: each worker upserts its row while alive; health reports a node unhealthy
//! when one of its workers stopped beating. The rows live in the job store.

use crate::store::JobStore;
use dartwing_core::Timestamp;
use dartwing_db::DbError;
use dartwing_observe::HealthCheck;
use std::sync::Arc;
use std::time::Duration;

/// The heartbeats of one node's workers.
#[derive(Clone)]
pub struct WorkerHeartbeats {
    store: JobStore,
    node_id: String,
    timeout: Duration,
}

impl WorkerHeartbeats {
    /// Heartbeats of `node_id`; a worker silent for longer than `timeout` counts as dead.
    pub fn new(store: JobStore, node_id: impl Into<String>, timeout: Duration) -> Self {
        Self {
            store,
            node_id: node_id.into(),
            timeout,
        }
    }

    /// Records that `worker_id`, serving `queue`, is alive now.
    pub async fn beat(&self, worker_id: &str, queue: &str) -> Result<(), DbError> {
        self.store
            .beat(worker_id, &self.node_id, queue, Timestamp::now().into())
            .await
    }

    /// Removes every heartbeat of this node: a restarted node forgets the workers of its
    /// previous run (their jobs are recovered through their leases).
    pub async fn clear_node(&self) -> Result<(), DbError> {
        self.store.clear_heartbeats(&self.node_id).await
    }

    /// Removes a worker that stopped cleanly.
    pub async fn remove(&self, worker_id: &str) -> Result<(), DbError> {
        self.store.remove_heartbeat(worker_id).await
    }

    /// The `workers` health check of this node.
    pub fn health_check(&self) -> Arc<dyn HealthCheck> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl HealthCheck for WorkerHeartbeats {
    fn name(&self) -> &'static str {
        "workers"
    }

    fn optional_for_readiness(&self) -> bool {
        true
    }

    async fn check(&self) -> Result<String, String> {
        let now_us = Timestamp::now().as_micros();
        let deadline_us = now_us - i64::try_from(self.timeout.as_micros()).unwrap_or(i64::MAX);
        let rows = self.store.heartbeats().await.map_err(|e| {
            let cause = e.sqlx().map(dartwing_db::describe).unwrap_or_else(|| e.to_string());
            format!("cannot read heartbeats: {cause}")
        })?;
        let live_in_cluster = rows
            .iter()
            .filter(|row| row.last_beat.0.as_micros() >= deadline_us)
            .count();
        let mine: Vec<_> = rows.iter().filter(|row| row.node_id == self.node_id).collect();
        if let Some(stale) = mine.iter().find(|row| row.last_beat.0.as_micros() < deadline_us) {
            return Err(format!(
                "worker {} last beat {} s ago",
                stale.worker_id,
                (now_us - stale.last_beat.0.as_micros()) / 1_000_000
            ));
        }
        Ok(if mine.is_empty() {
            format!("no workers on this node; {live_in_cluster} live in the cluster")
        } else {
            format!(
                "{} workers on this node beating; {live_in_cluster} live in the cluster",
                mine.len()
            )
        })
    }
}
