//! The SQL of sync: portable statements for SQLite and PostgreSQL (`$n` parameters).

use crate::model::{ConflictInfo, Document};
use dartwing_core::{Error, Timestamp};
use dartwing_db::map_db_error;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Most rows one multi-row statement carries on PostgreSQL (parameter counts stay far below its limit).
const ROWS_PER_STATEMENT: usize = 200;

/// Rows per multi-row statement: small on SQLite, where binding `$n` parameters costs time
/// quadratic in the statement's parameter count and statements are cheap in-process.
fn rows_per_statement(conn: &AnyConnection) -> usize {
    if conn.backend_name() == "SQLite" {
        16
    } else {
        ROWS_PER_STATEMENT
    }
}

pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => {
            tracing::error!(error_type = "CorruptDocument", "stored sync data is not a JSON object");
            Err(Error::internal())
        }
    }
}

fn timestamp(text: &str) -> Result<Timestamp, Error> {
    text.parse().map_err(|_| {
        tracing::error!(error_type = "CorruptTimestamp", "stored sync timestamp is malformed");
        Error::internal()
    })
}

/// Locks the organization's change counter until the transaction ends (creating it on first
/// use) and returns its seq. Every writer of the organization queues here, so change-log rows
/// commit in seq order.
pub(crate) async fn lock_cursor(conn: &mut AnyConnection, organization: &str) -> Result<i64, Error> {
    sqlx::query(
        "INSERT INTO sync_cursor (organization, seq, pruned_seq) VALUES ($1, 0, 0) \
         ON CONFLICT (organization) DO UPDATE SET seq = sync_cursor.seq RETURNING seq",
    )
    .bind(organization)
    .fetch_one(&mut *conn)
    .await
    .and_then(|row| row.try_get::<i64, _>(0))
    .map_err(map_db_error)
}

pub(crate) async fn advance_cursor(conn: &mut AnyConnection, organization: &str, seq: i64) -> Result<(), Error> {
    sqlx::query("UPDATE sync_cursor SET seq = $2 WHERE organization = $1")
        .bind(organization)
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(map_db_error)?;
    Ok(())
}

/// `(seq, pruned_seq)` of the organization's change log, `(0, 0)` before its first change.
pub(crate) async fn cursor(conn: &mut AnyConnection, organization: &str) -> Result<(i64, i64), Error> {
    let row = sqlx::query("SELECT seq, pruned_seq FROM sync_cursor WHERE organization = $1")
        .bind(organization)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_db_error)?;
    match row {
        Some(row) => Ok((
            row.try_get(0).map_err(map_db_error)?,
            row.try_get(1).map_err(map_db_error)?,
        )),
        None => Ok((0, 0)),
    }
}

fn placeholders(rows: usize, cols: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push(',');
            }
            out.push('$');
            out.push_str(&(first + r * cols + c).to_string());
        }
        out.push(')');
    }
    out
}

fn list(count: usize, first: usize) -> String {
    (0..count)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(",")
}

/// Stored answers of the given op_ids.
pub(crate) async fn stored_answers(
    conn: &mut AnyConnection,
    organization: &str,
    op_ids: &[&str],
) -> Result<HashMap<String, String>, Error> {
    let mut out = HashMap::new();
    for chunk in op_ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT op_id, answer FROM sync_op WHERE organization = $1 AND op_id IN ({})",
            list(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).bind(organization);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(map_db_error)? {
            out.insert(
                row.try_get::<String, _>(0).map_err(map_db_error)?,
                row.try_get::<String, _>(1).map_err(map_db_error)?,
            );
        }
    }
    Ok(out)
}

const DOCUMENT_COLUMNS: &str = "doctype, name, organization, data, docstatus, deleted, version, change_seq, creation, modified, owner, modified_by";

fn document(row: &AnyRow) -> Result<Document, Error> {
    let text = |i: usize| row.try_get::<String, _>(i).map_err(map_db_error);
    let int = |i: usize| row.try_get::<i64, _>(i).map_err(map_db_error);
    Ok(Document {
        doctype: text(0)?,
        name: text(1)?,
        organization: text(2)?,
        data: parse_object(&text(3)?)?,
        docstatus: int(4)?,
        deleted: int(5)? != 0,
        version: int(6)?,
        change_seq: int(7)?,
        creation: timestamp(&text(8)?)?,
        modified: timestamp(&text(9)?)?,
        owner: text(10)?,
        modified_by: text(11)?,
    })
}

/// The organization's current documents of `doctype` with these names.
pub(crate) async fn documents(
    conn: &mut AnyConnection,
    organization: &str,
    doctype: &str,
    names: &[&str],
) -> Result<Vec<Document>, Error> {
    let mut out = Vec::new();
    for chunk in names.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM sync_document WHERE organization = $1 AND doctype = $2 AND name IN ({})",
            list(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql).bind(organization).bind(doctype);
        for name in chunk {
            query = query.bind(*name);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(map_db_error)? {
            out.push(document(&row)?);
        }
    }
    Ok(out)
}

/// The fields of the version of an organization's document modified at `modified`, if the
/// history has it.
pub(crate) async fn version_at(
    conn: &mut AnyConnection,
    organization: &str,
    doctype: &str,
    name: &str,
    modified: Timestamp,
) -> Result<Option<Map<String, Value>>, Error> {
    let row = sqlx::query(
        "SELECT data FROM sync_version WHERE organization = $1 AND doctype = $2 AND name = $3 AND modified = $4",
    )
    .bind(organization)
    .bind(doctype)
    .bind(name)
    .bind(modified.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_db_error)?;
    row.map(|r| {
        r.try_get::<String, _>(0)
            .map_err(map_db_error)
            .and_then(|t| parse_object(&t))
    })
    .transpose()
}

/// Writes the final state of changed documents (each keyed by its organization, DocType and name).
pub(crate) async fn upsert_documents(conn: &mut AnyConnection, docs: &[(&Document, String)]) -> Result<(), Error> {
    let rows = rows_per_statement(conn);
    for chunk in docs.chunks(rows) {
        let sql = format!(
            "INSERT INTO sync_document ({DOCUMENT_COLUMNS}) VALUES {} \
             ON CONFLICT (organization, doctype, name) DO UPDATE SET data = excluded.data, \
             docstatus = excluded.docstatus, deleted = excluded.deleted, version = excluded.version, \
             change_seq = excluded.change_seq, modified = excluded.modified, modified_by = excluded.modified_by",
            placeholders(chunk.len(), 12, 1)
        );
        let mut query = sqlx::query(&sql);
        for (doc, data) in chunk {
            query = query
                .bind(doc.doctype.as_str())
                .bind(doc.name.as_str())
                .bind(doc.organization.as_str())
                .bind(data.as_str())
                .bind(doc.docstatus)
                .bind(i64::from(doc.deleted))
                .bind(doc.version)
                .bind(doc.change_seq)
                .bind(doc.creation.to_string())
                .bind(doc.modified.to_string())
                .bind(doc.owner.as_str())
                .bind(doc.modified_by.as_str());
        }
        query.execute(&mut *conn).await.map_err(map_db_error)?;
    }
    Ok(())
}

/// One applied change: a version-history row and a change-log row.
pub(crate) struct ChangeRow {
    pub(crate) seq: i64,
    pub(crate) doctype: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) operation: &'static str,
    pub(crate) data: String,
    pub(crate) docstatus: i64,
    pub(crate) deleted: bool,
    pub(crate) modified: Timestamp,
    pub(crate) modified_by: String,
    pub(crate) op_id: String,
    pub(crate) note: Option<String>,
}

pub(crate) async fn insert_changes(
    conn: &mut AnyConnection,
    organization: &str,
    rows: &[ChangeRow],
) -> Result<(), Error> {
    let per_statement = rows_per_statement(conn);
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO sync_version (doctype, name, version, organization, operation, data, docstatus, deleted, \
             modified, modified_by, op_id, note) VALUES {}",
            placeholders(chunk.len(), 12, 1)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.doctype.as_str())
                .bind(row.name.as_str())
                .bind(row.version)
                .bind(organization)
                .bind(row.operation)
                .bind(row.data.as_str())
                .bind(row.docstatus)
                .bind(i64::from(row.deleted))
                .bind(row.modified.to_string())
                .bind(row.modified_by.as_str())
                .bind(row.op_id.as_str())
                .bind(row.note.clone());
        }
        query.execute(&mut *conn).await.map_err(map_db_error)?;
        let sql = format!(
            "INSERT INTO sync_change (organization, seq, doctype, name, operation, data, docstatus, deleted, modified) \
             VALUES {}",
            placeholders(chunk.len(), 9, 1)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(organization)
                .bind(row.seq)
                .bind(row.doctype.as_str())
                .bind(row.name.as_str())
                .bind(row.operation)
                .bind(row.data.as_str())
                .bind(row.docstatus)
                .bind(i64::from(row.deleted))
                .bind(row.modified.to_string());
        }
        query.execute(&mut *conn).await.map_err(map_db_error)?;
    }
    Ok(())
}

pub(crate) async fn insert_answers(
    conn: &mut AnyConnection,
    organization: &str,
    answers: &[(String, String)],
    now: Timestamp,
) -> Result<(), Error> {
    let now = now.to_string();
    let rows = rows_per_statement(conn);
    for chunk in answers.chunks(rows) {
        let sql = format!(
            "INSERT INTO sync_op (organization, op_id, answer, applied_at) VALUES {}",
            placeholders(chunk.len(), 4, 1)
        );
        let mut query = sqlx::query(&sql);
        for (op_id, answer) in chunk {
            query = query
                .bind(organization)
                .bind(op_id.as_str())
                .bind(answer.as_str())
                .bind(now.as_str());
        }
        query.execute(&mut *conn).await.map_err(map_db_error)?;
    }
    Ok(())
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

pub(crate) async fn insert_conflict(
    conn: &mut AnyConnection,
    organization: &str,
    conflict: &NewConflict,
    actor: &str,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sync_conflict (name, organization, doctype, docname, op_id, status, server_doc, client_doc, \
         created_at, created_by) VALUES ($1, $2, $3, $4, $5, 'Open', $6, $7, $8, $9)",
    )
    .bind(conflict.id.as_str())
    .bind(organization)
    .bind(conflict.doctype.as_str())
    .bind(conflict.docname.as_str())
    .bind(conflict.op_id.as_str())
    .bind(conflict.server_doc.to_string())
    .bind(conflict.client_doc.to_string())
    .bind(now.to_string())
    .bind(actor)
    .execute(&mut *conn)
    .await
    .map_err(map_db_error)?;
    Ok(())
}

/// Marks the open conflicts of the organization's document resolved by `op_id`; returns how many.
pub(crate) async fn resolve_conflicts(
    conn: &mut AnyConnection,
    organization: &str,
    doctype: &str,
    docname: &str,
    op_id: &str,
    actor: &str,
    now: Timestamp,
) -> Result<u64, Error> {
    sqlx::query(
        "UPDATE sync_conflict SET status = 'Resolved', resolved_at = $4, resolved_by = $5, resolved_op_id = $3 \
         WHERE organization = $6 AND doctype = $1 AND docname = $2 AND status = 'Open'",
    )
    .bind(doctype)
    .bind(docname)
    .bind(op_id)
    .bind(now.to_string())
    .bind(actor)
    .bind(organization)
    .execute(&mut *conn)
    .await
    .map(|r| r.rows_affected())
    .map_err(map_db_error)
}

pub(crate) async fn list_conflicts(
    conn: &mut AnyConnection,
    organization: &str,
    doctype: Option<&str>,
    status: &str,
    limit: i64,
) -> Result<Vec<ConflictInfo>, Error> {
    let sql = format!(
        "SELECT name, doctype, docname, op_id, status, server_doc, client_doc, created_at, created_by, \
         resolved_at, resolved_by FROM sync_conflict WHERE organization = $1 AND status = $2 {} \
         ORDER BY created_at, name LIMIT $3",
        if doctype.is_some() { "AND doctype = $4" } else { "" }
    );
    let mut query = sqlx::query(&sql).bind(organization).bind(status).bind(limit);
    if let Some(doctype) = doctype {
        query = query.bind(doctype);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(map_db_error)?;
    rows.iter()
        .map(|row| {
            let text = |i: usize| row.try_get::<String, _>(i).map_err(map_db_error);
            let opt = |i: usize| row.try_get::<Option<String>, _>(i).map_err(map_db_error);
            Ok(ConflictInfo {
                conflict_id: text(0)?,
                doctype: text(1)?,
                name: text(2)?,
                op_id: text(3)?,
                status: text(4)?,
                server_doc: serde_json::from_str(&text(5)?).unwrap_or(Value::Null),
                client_doc: serde_json::from_str(&text(6)?).unwrap_or(Value::Null),
                created_at: text(7)?,
                created_by: text(8)?,
                resolved_at: opt(9)?,
                resolved_by: opt(10)?,
            })
        })
        .collect()
}

/// A change-log row as the feed reads it.
pub(crate) struct FeedRow {
    pub(crate) seq: i64,
    pub(crate) row: Value,
}

pub(crate) async fn feed(
    conn: &mut AnyConnection,
    organization: &str,
    doctype: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<FeedRow>, Error> {
    let sql = if doctype.is_some() {
        "SELECT seq, doctype, name, modified, docstatus, data, deleted FROM sync_change \
         WHERE organization = $1 AND seq > $2 AND doctype = $4 ORDER BY seq LIMIT $3"
    } else {
        "SELECT seq, doctype, name, modified, docstatus, data, deleted FROM sync_change \
         WHERE organization = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    };
    let mut query = sqlx::query(sql).bind(organization).bind(after).bind(limit);
    if let Some(doctype) = doctype {
        query = query.bind(doctype);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(map_db_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |i: usize| row.try_get::<String, _>(i).map_err(map_db_error);
        let data: Value = serde_json::from_str(&text(5)?).map_err(|_| {
            tracing::error!(error_type = "CorruptDocument", "stored change data is not JSON");
            Error::internal()
        })?;
        out.push(FeedRow {
            seq: row.try_get(0).map_err(map_db_error)?,
            row: crate::model::feed_row(
                &text(2)?,
                &text(1)?,
                timestamp(&text(3)?)?,
                row.try_get(4).map_err(map_db_error)?,
                data,
                row.try_get::<i64, _>(6).map_err(map_db_error)? != 0,
            ),
        });
    }
    Ok(out)
}

/// Compacts change-log rows older than `cutoff` that a later change of the same document
/// supersedes (each document's latest change stays, so reading from the beginning still yields
/// every live document), and raises each organization's `pruned_seq`. Returns the rows removed.
pub(crate) async fn compact_change_log(conn: &mut AnyConnection, cutoff: Timestamp) -> Result<u64, Error> {
    let cutoff = cutoff.to_string();
    let superseded = "sync_change.modified < $1 AND sync_change.seq < \
        (SELECT d.change_seq FROM sync_document d WHERE d.organization = sync_change.organization \
         AND d.doctype = sync_change.doctype AND d.name = sync_change.name)";
    let rows = sqlx::query(&format!(
        "SELECT organization, MAX(seq) FROM sync_change WHERE {superseded} GROUP BY organization"
    ))
    .bind(cutoff.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_db_error)?;
    for row in rows {
        let organization: String = row.try_get(0).map_err(map_db_error)?;
        let max: i64 = row.try_get(1).map_err(map_db_error)?;
        sqlx::query("UPDATE sync_cursor SET pruned_seq = $2 WHERE organization = $1 AND pruned_seq < $2")
            .bind(organization)
            .bind(max)
            .execute(&mut *conn)
            .await
            .map_err(map_db_error)?;
    }
    sqlx::query(&format!("DELETE FROM sync_change WHERE {superseded}"))
        .bind(cutoff.as_str())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_consecutively() {
        assert_eq!(placeholders(2, 3, 1), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(list(3, 2), "$2,$3,$4");
    }
}
