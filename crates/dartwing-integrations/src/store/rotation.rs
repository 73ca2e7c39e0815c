//! Key rotation: rows whose tokens are not under the current key, read in key order, and the
//! compare-and-swap that replaces a row's ciphertexts only while they are still the ones read.

use super::{DOCTYPE, IntegrationRow, VaultStore};
use dartwing_core::Result;
use dartwing_db::{Backend, DbError, SqlFile, Statement};

const ROTATION: SqlFile = SqlFile::portable(DOCTYPE, "rotation", include_str!("sql/rotation.sql"));

pub(super) struct RotationSql {
    batch_not_under_key: Statement,
    count_not_under_key: Statement,
    replace_ciphertexts: Statement,
}

impl RotationSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = ROTATION.statements(backend)?;
        let sql = Self {
            batch_not_under_key: s.take("batch_not_under_key")?,
            count_not_under_key: s.take("count_not_under_key")?,
            replace_ciphertexts: s.take("replace_ciphertexts")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

impl VaultStore {
    /// Up to `limit` rows whose tokens are not encrypted with `current_key_id`, after `after`
    /// (organization, integration) in key order: the key rotation's next batch.
    pub async fn rotation_batch(
        &self,
        current_key_id: &str,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<IntegrationRow>> {
        let (organization, integration) = after.cloned().unwrap_or_default();
        let sql = &self.sql.rotation.batch_not_under_key;
        let rows = self
            .db
            .run(
                sql,
                sql.query_as::<IntegrationRow>()
                    .bind(current_key_id.to_owned())
                    .bind(organization)
                    .bind(integration)
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool()),
            )
            .await?;
        Ok(rows)
    }

    /// Rows still encrypted with a key other than `current_key_id`.
    pub async fn count_not_under(&self, current_key_id: &str) -> Result<i64> {
        let sql = &self.sql.rotation.count_not_under_key;
        let count = self
            .db
            .run(
                sql,
                sql.query_scalar::<i64>()
                    .bind(current_key_id.to_owned())
                    .fetch_one(self.db.pool()),
            )
            .await?;
        Ok(count)
    }

    /// Replaces a row's ciphertexts with re-encrypted ones if they are still `old` (a refresh in
    /// between wins, and its tokens are already under the current key). Returns whether it wrote.
    pub async fn replace_ciphertexts(
        &self,
        old: &IntegrationRow,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
        key_id: &str,
    ) -> Result<bool> {
        let sql = &self.sql.rotation.replace_ciphertexts;
        let done = self
            .db
            .run(
                sql,
                sql.query()
                    .bind(access_token.map(str::to_owned))
                    .bind(refresh_token.map(str::to_owned))
                    .bind(key_id.to_owned())
                    .bind(old.organization.clone())
                    .bind(old.integration.clone())
                    .bind(old.key_id.clone().unwrap_or_default())
                    .bind(old.access_token.clone().unwrap_or_default())
                    .bind(old.refresh_token.clone().unwrap_or_default())
                    .execute(self.db.pool()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
