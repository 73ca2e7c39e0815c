//! Manual conflicts.

use super::Store;
use crate::model::ConflictInfo;
use dartwing_core::Timestamp;
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde_json::Value;
use sqlx::AnyConnection;

const CONFLICTS: SqlFile = SqlFile::portable("Sync Conflict", "conflicts", include_str!("sql/conflicts.sql"));

pub(super) struct ConflictSql {
    insert: Statement,
    resolve: Statement,
    list: Statement,
    list_of_doctype: Statement,
}

impl ConflictSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = CONFLICTS.statements(backend)?;
        let sql = Self {
            insert: s.take("insert")?,
            resolve: s.take("resolve")?,
            list: s.take("list")?,
            list_of_doctype: s.take("list_of_doctype")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// A manual conflict to store.
pub(crate) struct NewConflict {
    pub(crate) id: String,
    pub(crate) doctype: String,
    pub(crate) docname: String,
    pub(crate) op_id: String,
    pub(crate) server_doc: Value,
    pub(crate) client_doc: Value,
}

/// A `sync_conflict` row as listed.
#[derive(sqlx::FromRow)]
struct ConflictRow {
    name: String,
    doctype: String,
    docname: String,
    op_id: String,
    status: String,
    server_doc: JsonText<Value>,
    client_doc: JsonText<Value>,
    created_at: Micros,
    created_by: String,
    resolved_at: Option<Micros>,
    resolved_by: Option<String>,
}

impl From<ConflictRow> for ConflictInfo {
    fn from(row: ConflictRow) -> Self {
        Self {
            conflict_id: row.name,
            doctype: row.doctype,
            name: row.docname,
            op_id: row.op_id,
            status: row.status,
            server_doc: row.server_doc.0,
            client_doc: row.client_doc.0,
            created_at: row.created_at.0.to_string(),
            created_by: row.created_by,
            resolved_at: row.resolved_at.map(|at| at.0.to_string()),
            resolved_by: row.resolved_by,
        }
    }
}

impl Store {
    /// Stores an open conflict raised by `actor` at `now`.
    pub(crate) async fn insert_conflict(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        conflict: &NewConflict,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), DbError> {
        let insert = &self.sql.conflicts.insert;
        self.db
            .run(
                insert,
                insert
                    .query()
                    .bind(conflict.id.clone())
                    .bind(organization.to_owned())
                    .bind(conflict.doctype.clone())
                    .bind(conflict.docname.clone())
                    .bind(conflict.op_id.clone())
                    .bind(conflict.server_doc.to_string())
                    .bind(conflict.client_doc.to_string())
                    .bind(Micros(now))
                    .bind(actor.to_owned())
                    .execute(conn),
            )
            .await?;
        Ok(())
    }

    /// Marks the open conflicts of the organization's document resolved by `op_id`; returns how
    /// many.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn resolve_conflicts(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        doctype: &str,
        docname: &str,
        op_id: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<u64, DbError> {
        let resolve = &self.sql.conflicts.resolve;
        let done = self
            .db
            .run(
                resolve,
                resolve
                    .query()
                    .bind(organization.to_owned())
                    .bind(doctype.to_owned())
                    .bind(docname.to_owned())
                    .bind(op_id.to_owned())
                    .bind(Micros(now))
                    .bind(actor.to_owned())
                    .execute(conn),
            )
            .await?;
        Ok(done.rows_affected())
    }

    /// Up to `limit` conflicts of the organization with `status` (of `doctype` only, when
    /// given), oldest first.
    pub(crate) async fn list_conflicts(
        &self,
        organization: &str,
        doctype: Option<&str>,
        status: &str,
        limit: i64,
    ) -> Result<Vec<ConflictInfo>, DbError> {
        let pool = self.db.pool();
        let rows: Vec<ConflictRow> = match doctype {
            None => {
                let list = &self.sql.conflicts.list;
                self.db
                    .run(
                        list,
                        list.query_as()
                            .bind(organization.to_owned())
                            .bind(status.to_owned())
                            .bind(limit)
                            .fetch_all(pool),
                    )
                    .await?
            }
            Some(doctype) => {
                let list = &self.sql.conflicts.list_of_doctype;
                self.db
                    .run(
                        list,
                        list.query_as()
                            .bind(organization.to_owned())
                            .bind(status.to_owned())
                            .bind(limit)
                            .bind(doctype.to_owned())
                            .fetch_all(pool),
                    )
                    .await?
            }
        };
        Ok(rows.into_iter().map(ConflictInfo::from).collect())
    }
}
