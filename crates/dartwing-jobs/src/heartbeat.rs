//! Worker heartbeats: each worker upserts its row while alive; health reports a node unhealthy
//! when one of its workers stopped beating.

use dartwing_core::Timestamp;
use dartwing_db::Db;
use dartwing_observe::HealthCheck;
use std::sync::Arc;
use std::time::Duration;

/// Reads and writes the `job_worker_heartbeat` table for one node.
#[derive(Clone)]
pub struct WorkerHeartbeats {
    db: Db,
    node_id: String,
    timeout: Duration,
}

impl WorkerHeartbeats {
    /// Heartbeats of `node_id`; a worker silent for longer than `timeout` counts as dead.
    pub fn new(db: Db, node_id: impl Into<String>, timeout: Duration) -> Self {
        Self {
            db,
            node_id: node_id.into(),
            timeout,
        }
    }

    /// Records that `worker_id`, serving `queue`, is alive now.
    pub async fn beat(&self, worker_id: &str, queue: &str) -> Result<(), sqlx::Error> {
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO job_worker_heartbeat (worker_id, node_id, queue, started_at_us, last_beat_us) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (worker_id) DO UPDATE SET last_beat_us = excluded.last_beat_us",
        )
        .bind(worker_id)
        .bind(&self.node_id)
        .bind(queue)
        .bind(now.as_micros())
        .execute(self.db.pool())
        .await
        .map(|_| ())
    }

    /// Removes every heartbeat of this node: a restarted node forgets the workers of its
    /// previous run (their jobs are recovered through their leases).
    pub async fn clear_node(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM job_worker_heartbeat WHERE node_id = $1")
            .bind(&self.node_id)
            .execute(self.db.pool())
            .await
            .map(|_| ())
    }

    /// Removes a worker that stopped cleanly.
    pub async fn remove(&self, worker_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM job_worker_heartbeat WHERE worker_id = $1")
            .bind(worker_id)
            .execute(self.db.pool())
            .await
            .map(|_| ())
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
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT worker_id, node_id, last_beat_us FROM job_worker_heartbeat")
                .fetch_all(self.db.pool())
                .await
                .map_err(|e| format!("cannot read heartbeats: {}", dartwing_db::describe(&e)))?;
        let live_in_cluster = rows.iter().filter(|(_, _, beat)| *beat >= deadline_us).count();
        let mine: Vec<_> = rows.iter().filter(|(_, node, _)| *node == self.node_id).collect();
        if let Some((worker, _, beat)) = mine.iter().find(|(_, _, beat)| *beat < deadline_us) {
            return Err(format!(
                "worker {worker} last beat {} s ago",
                (now_us - beat) / 1_000_000
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
