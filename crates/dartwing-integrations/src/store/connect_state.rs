//! Pending connect flows, stored under the hash of their single-use `state`.

use super::{ConnectState, VaultStore};
use dartwing_core::{Result, Timestamp};
use dartwing_db::{Backend, DbError, Micros, SqlFile, Statement};

const CONNECT_STATE: SqlFile = SqlFile::portable(
    "Integration Connect State",
    "connect_state",
    include_str!("sql/connect_state.sql"),
);

pub(super) struct ConnectStateSql {
    delete_expired: Statement,
    insert: Statement,
    take: Statement,
}

impl ConnectStateSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = CONNECT_STATE.statements(backend)?;
        let sql = Self {
            delete_expired: s.take("delete_expired")?,
            insert: s.take("insert")?,
            take: s.take("take")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// A removed connect flow and when it would have expired.
#[derive(sqlx::FromRow)]
struct TakenState {
    #[sqlx(flatten)]
    state: ConnectState,
    #[sqlx(rename = "expires_at_us")]
    expires_at: Micros,
}

impl VaultStore {
    /// Stores a pending connect flow under the hash of its `state`.
    pub async fn save_state(&self, state_hash: &str, state: &ConnectState, expires_at_us: i64) -> Result<()> {
        let now = Timestamp::now().as_micros();
        let sql = &self.sql.connect_state;
        self.db
            .run(
                &sql.delete_expired,
                sql.delete_expired.query().bind(now).execute(self.db.pool()),
            )
            .await?;
        self.db
            .run(
                &sql.insert,
                sql.insert
                    .query()
                    .bind(state_hash.to_owned())
                    .bind(state.organization.clone())
                    .bind(state.integration.clone())
                    .bind(state.requested_by.clone())
                    .bind(state.pkce_verifier.clone())
                    .bind(expires_at_us)
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(())
    }

    /// Removes and returns the unexpired connect flow of `state_hash` (single use).
    pub async fn take_state(&self, state_hash: &str) -> Result<Option<ConnectState>> {
        let now = Timestamp::now().as_micros();
        let sql = &self.sql.connect_state.take;
        let taken = self
            .db
            .run(
                sql,
                sql.query_as::<TakenState>()
                    .bind(state_hash.to_owned())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        Ok(taken.filter(|t| t.expires_at.0.as_micros() >= now).map(|t| t.state))
    }
}
