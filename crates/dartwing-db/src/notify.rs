//! PostgreSQL notifications between the nodes of a cluster: [`Db::notify`] sends a payload on a
//! channel (`pg_notify`, delivered when the sending transaction commits — at once outside one),
//! and [`Db::listen`] opens a dedicated connection beside the pool that receives them.

use crate::{Backend, Db, DbError, SqlFile, Statement};
use sqlx::postgres::PgListener;
use std::sync::LazyLock;

/// The longest payload PostgreSQL accepts on a channel (it refuses 8,000 bytes and more).
pub const MAX_PAYLOAD_BYTES: usize = 7_999;

const NOTIFY: SqlFile = SqlFile::portable("Cluster", "notify", include_str!("sql/notify.sql"));

/// The `notify` statement, built once.
static NOTIFY_STATEMENT: LazyLock<Result<Statement, String>> = LazyLock::new(|| {
    let mut statements = NOTIFY.statements(Backend::Postgres).map_err(|e| e.to_string())?;
    let notify = statements.take("notify").map_err(|e| e.to_string())?;
    statements.finish().map_err(|e| e.to_string())?;
    Ok(notify)
});

fn postgres_only(backend: Backend) -> Result<(), DbError> {
    match backend {
        Backend::Postgres => Ok(()),
        Backend::Sqlite => Err(DbError::Statement(
            "notifications need PostgreSQL; SQLite serves one node".into(),
        )),
    }
}

impl Db {
    /// Sends `payload` (at most [`MAX_PAYLOAD_BYTES`]) to every session listening on `channel`.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), DbError> {
        postgres_only(self.backend)?;
        let notify = NOTIFY_STATEMENT.as_ref().map_err(|e| DbError::Statement(e.clone()))?;
        self.run(
            notify,
            notify
                .query()
                .bind(channel.to_string())
                .bind(payload.to_string())
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// A connection of its own, beside the pool, listening on `channel`.
    pub async fn listen(&self, channel: &str) -> Result<Notifications, DbError> {
        postgres_only(self.backend)?;
        let mut listener = PgListener::connect(&self.url).await.map_err(DbError::Connect)?;
        listener.listen(channel).await.map_err(DbError::Connect)?;
        Ok(Notifications(listener))
    }
}

/// The notifications of one channel, on a dedicated connection.
pub struct Notifications(PgListener);

impl Notifications {
    /// The next payload; `None` once the connection is lost (notifications sent meanwhile are
    /// gone: listen again, and treat the gap as lost messages).
    pub async fn next(&mut self) -> Option<String> {
        match self.0.try_recv().await {
            Ok(Some(notification)) => Some(notification.payload().to_string()),
            Ok(None) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notify_statement_builds() {
        assert!(NOTIFY_STATEMENT.is_ok());
    }
}
