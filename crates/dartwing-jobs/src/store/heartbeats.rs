//! Worker heartbeats: one row per live worker, upserted while it runs.

use super::JobStore;
use dartwing_db::{Backend, DbError, Micros, SqlFile, Statement};

const HEARTBEATS: SqlFile = SqlFile::portable("Worker Heartbeat", "heartbeats", include_str!("sql/heartbeats.sql"));

pub(super) struct HeartbeatsSql {
    beat: Statement,
    clear_node: Statement,
    remove: Statement,
    all: Statement,
}

impl HeartbeatsSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = HEARTBEATS.statements(backend)?;
        let sql = Self {
            beat: s.take("beat")?,
            clear_node: s.take("clear_node")?,
            remove: s.take("remove")?,
            all: s.take("all")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// A worker's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Heartbeat {
    /// The worker (`<node_id>/<random>:<queue>`).
    pub worker_id: String,
    /// Its node.
    pub node_id: String,
    /// When it last beat.
    #[sqlx(rename = "last_beat_us")]
    pub last_beat: Micros,
}

impl JobStore {
    /// Records that `worker_id` of `node_id`, serving `queue`, is alive at `now`.
    pub async fn beat(&self, worker_id: &str, node_id: &str, queue: &str, now: Micros) -> Result<(), DbError> {
        let sql = &self.sql.heartbeats;
        self.db
            .run(
                &sql.beat,
                sql.beat
                    .query()
                    .bind(worker_id.to_string())
                    .bind(node_id.to_string())
                    .bind(queue.to_string())
                    .bind(now)
                    .execute(self.db.pool()),
            )
            .await
            .map(|_| ())
    }

    /// Removes every heartbeat of `node_id`.
    pub async fn clear_heartbeats(&self, node_id: &str) -> Result<(), DbError> {
        let sql = &self.sql.heartbeats;
        self.db
            .run(
                &sql.clear_node,
                sql.clear_node.query().bind(node_id.to_string()).execute(self.db.pool()),
            )
            .await
            .map(|_| ())
    }

    /// Removes the heartbeat of `worker_id`.
    pub async fn remove_heartbeat(&self, worker_id: &str) -> Result<(), DbError> {
        let sql = &self.sql.heartbeats;
        self.db
            .run(
                &sql.remove,
                sql.remove.query().bind(worker_id.to_string()).execute(self.db.pool()),
            )
            .await
            .map(|_| ())
    }

    /// Every worker's last heartbeat, in the whole cluster.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, DbError> {
        let sql = &self.sql.heartbeats;
        self.db
            .run(&sql.all, sql.all.query_as().fetch_all(self.db.pool()))
            .await
    }
}
