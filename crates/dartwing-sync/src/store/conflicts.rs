//! Manual conflicts.

use super::{Store, json_array};
use crate::model::ConflictInfo;
use dartwing_core::Timestamp;
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;

const CONFLICTS: SqlFile = SqlFile::portable("Sync Conflict", "conflicts", include_str!("sql/conflicts.sql"));
const CONFLICT_WRITES: SqlFile = SqlFile::per_backend(
    "Sync Conflict",
    "conflict_writes",
    include_str!("sql/conflict_writes.sqlite.sql"),
    include_str!("sql/conflict_writes.postgres.sql"),
);

pub(super) struct ConflictSql {
    insert: Statement,
    resolve: Statement,
    list: Statement,
    list_of_doctype: Statement,
}

impl ConflictSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut writes = CONFLICT_WRITES.statements(backend)?;
        let mut s = CONFLICTS.statements(backend)?;
        let sql = Self {
            insert: writes.take("insert")?,
            resolve: writes.take("resolve")?,
            list: s.take("list")?,
            list_of_doctype: s.take("list_of_doctype")?,
        };
        writes.finish()?;
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

/// A conflict to store, bound in a JSON array.
#[derive(Serialize)]
struct ConflictRecord<'a> {
    id: &'a str,
    doctype: &'a str,
    docname: &'a str,
    op_id: &'a str,
    server_doc: String,
    client_doc: String,
}

/// A forced write that resolves its document's open conflicts, bound in a JSON array.
#[derive(Serialize)]
struct Resolution<'a> {
    doctype: &'a str,
    docname: &'a str,
    op_id: &'a str,
}

/// `(doctype, docname)` of a conflict marked resolved.
#[derive(sqlx::FromRow)]
struct ResolvedRow {
    doctype: String,
    docname: String,
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
    /// Stores open conflicts raised by `actor` at `now` (one statement).
    pub(crate) async fn insert_conflicts(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        conflicts: &[NewConflict],
        actor: &str,
        now: Timestamp,
    ) -> Result<(), DbError> {
        if conflicts.is_empty() {
            return Ok(());
        }
        let records: Vec<ConflictRecord<'_>> = conflicts
            .iter()
            .map(|c| ConflictRecord {
                id: &c.id,
                doctype: &c.doctype,
                docname: &c.docname,
                op_id: &c.op_id,
                server_doc: c.server_doc.to_string(),
                client_doc: c.client_doc.to_string(),
            })
            .collect();
        let insert = &self.sql.conflicts.insert;
        self.db
            .run(insert, async {
                let records = json_array(&records);
                insert
                    .query()
                    .bind(organization.to_owned())
                    .bind(records?)
                    .bind(Micros(now))
                    .bind(actor.to_owned())
                    .execute(conn)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Marks the open conflicts of the organization's documents resolved, each by the op_id of
    /// its `(doctype, docname, op_id)` (one statement; a document named twice is resolved by the
    /// first). Returns how many each document had.
    pub(crate) async fn resolve_conflicts(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        resolutions: &[(String, String, String)],
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<((String, String), u64)>, DbError> {
        let mut rows: Vec<Resolution<'_>> = Vec::new();
        for (doctype, docname, op_id) in resolutions {
            if !rows.iter().any(|r| r.doctype == doctype && r.docname == docname) {
                rows.push(Resolution {
                    doctype,
                    docname,
                    op_id,
                });
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let resolve = &self.sql.conflicts.resolve;
        let resolved = self
            .db
            .run(resolve, async {
                let rows = json_array(&rows);
                resolve
                    .query_as::<ResolvedRow>()
                    .bind(organization.to_owned())
                    .bind(rows?)
                    .bind(Micros(now))
                    .bind(actor.to_owned())
                    .fetch_all(conn)
                    .await
            })
            .await?;
        let mut counts: Vec<((String, String), u64)> = Vec::new();
        for row in resolved {
            let key = (row.doctype, row.docname);
            match counts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => counts.push((key, 1)),
            }
        }
        Ok(counts)
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
