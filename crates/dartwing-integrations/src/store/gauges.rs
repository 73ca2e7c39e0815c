//! Samples of the integration token gauges.

use super::{DOCTYPE, IntegrationStatus, VaultStore};
use dartwing_core::Result;
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const GAUGES: SqlFile = SqlFile::portable(DOCTYPE, "gauges", include_str!("sql/gauges.sql"));

pub(super) struct GaugeSql {
    count_by_status: Statement,
    connected_expiries: Statement,
}

impl GaugeSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = GAUGES.statements(backend)?;
        let sql = Self {
            count_by_status: s.take("count_by_status")?,
            connected_expiries: s.take("connected_expiries")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// How many rows of an integration have a status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenCount {
    /// Integration (provider) name.
    pub integration: String,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: IntegrationStatus,
    /// Rows.
    pub tokens: i64,
}

/// When a Connected token of an organization expires.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenExpiry {
    /// Integration (provider) name.
    pub integration: String,
    /// Organization.
    pub organization: String,
    /// Access token expiry (µs since the epoch).
    pub expires_at_us: i64,
}

impl VaultStore {
    /// Counts by (integration, status), and the expiry of every Connected token.
    pub async fn metric_samples(&self) -> Result<(Vec<TokenCount>, Vec<TokenExpiry>)> {
        let sql = &self.sql.gauges;
        let counts = self
            .db
            .run(
                &sql.count_by_status,
                sql.count_by_status.query_as::<TokenCount>().fetch_all(self.db.pool()),
            )
            .await?;
        let expiries = self
            .db
            .run(
                &sql.connected_expiries,
                sql.connected_expiries
                    .query_as::<TokenExpiry>()
                    .fetch_all(self.db.pool()),
            )
            .await?;
        Ok((counts, expiries))
    }
}
