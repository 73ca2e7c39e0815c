//! Sync documents: their current versions and their version history.

use super::{Store, flag, json_array, micros};
use crate::model::Document;
use dartwing_core::Timestamp;
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use std::collections::HashMap;

const DOCUMENTS: SqlFile = SqlFile::per_backend(
    "Sync Document",
    "documents",
    include_str!("sql/documents.sqlite.sql"),
    include_str!("sql/documents.postgres.sql"),
);

pub(super) struct DocumentSql {
    current: Statement,
    versions_at: Statement,
    upsert: Statement,
    /// Appends version-history rows; run with the change log ([`Store::append_changes`]).
    pub(super) insert_versions: Statement,
    holders: Statement,
    holders_among: Statement,
}

impl DocumentSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = DOCUMENTS.statements(backend)?;
        let sql = Self {
            current: s.take("current")?,
            versions_at: s.take("versions_at")?,
            upsert: s.take("upsert")?,
            insert_versions: s.take("insert_versions")?,
            holders: s.take("holders")?,
            holders_among: s.take("holders_among")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

/// A `sync_document` row.
#[derive(sqlx::FromRow)]
struct DocumentRow {
    doctype: String,
    name: String,
    organization: String,
    data: JsonText<Map<String, Value>>,
    docstatus: i64,
    deleted: i64,
    version: i64,
    change_seq: i64,
    creation: Micros,
    modified: Micros,
    owner: String,
    modified_by: String,
}

impl From<DocumentRow> for Document {
    fn from(row: DocumentRow) -> Self {
        Self {
            doctype: row.doctype,
            name: row.name,
            organization: row.organization,
            data: row.data.0,
            docstatus: row.docstatus,
            deleted: row.deleted != 0,
            version: row.version,
            change_seq: row.change_seq,
            creation: row.creation.0,
            modified: row.modified.0,
            owner: row.owner,
            modified_by: row.modified_by,
        }
    }
}

/// A version-history row found by its document and `modified`.
#[derive(sqlx::FromRow)]
struct VersionRow {
    doctype: String,
    name: String,
    modified: Micros,
    data: JsonText<Map<String, Value>>,
}

/// A document of a batch, bound in a JSON array.
#[derive(Serialize)]
struct DocumentKey<'a> {
    doctype: &'a str,
    name: &'a str,
}

/// A version of a document of a batch, bound in a JSON array.
#[derive(Serialize)]
struct VersionKey<'a> {
    doctype: &'a str,
    name: &'a str,
    #[serde(serialize_with = "micros")]
    modified: Timestamp,
}

/// The fields of versions by `(doctype, name, modified)`.
pub(crate) type Versions = HashMap<(String, String, Timestamp), Map<String, Value>>;

/// A document's final state in a batch, bound in a JSON array.
#[derive(Serialize)]
struct DocumentRecord<'a> {
    doctype: &'a str,
    name: &'a str,
    organization: &'a str,
    data: &'a str,
    docstatus: i64,
    #[serde(serialize_with = "flag")]
    deleted: bool,
    version: i64,
    change_seq: i64,
    #[serde(serialize_with = "micros")]
    creation: Timestamp,
    #[serde(serialize_with = "micros")]
    modified: Timestamp,
    owner: &'a str,
    modified_by: &'a str,
}

impl Store {
    /// The organization's current documents with these `(doctype, name)` keys (one statement
    /// whatever the number of keys and DocTypes).
    pub(crate) async fn documents(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        keys: &[(&str, &str)],
    ) -> Result<Vec<Document>, DbError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<DocumentKey<'_>> = keys
            .iter()
            .map(|&(doctype, name)| DocumentKey { doctype, name })
            .collect();
        let current = &self.sql.documents.current;
        let rows = self
            .db
            .run(current, async {
                let keys = json_array(&keys);
                current
                    .query_as::<DocumentRow>()
                    .bind(organization.to_owned())
                    .bind(keys?)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        Ok(rows.into_iter().map(Document::from).collect())
    }

    /// The fields of the versions of the organization's documents with these `(doctype, name,
    /// modified)` keys that the history has (one statement whatever the number of keys).
    pub(crate) async fn versions_at(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        keys: &[(&str, &str, Timestamp)],
    ) -> Result<Versions, DbError> {
        if keys.is_empty() {
            return Ok(Versions::new());
        }
        let keys: Vec<VersionKey<'_>> = keys
            .iter()
            .map(|&(doctype, name, modified)| VersionKey {
                doctype,
                name,
                modified,
            })
            .collect();
        let versions_at = &self.sql.documents.versions_at;
        let rows = self
            .db
            .run(versions_at, async {
                let keys = json_array(&keys);
                versions_at
                    .query_as::<VersionRow>()
                    .bind(organization.to_owned())
                    .bind(keys?)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| ((row.doctype, row.name, row.modified.0), row.data.0))
            .collect())
    }

    /// Writes the final state of changed documents (each keyed by its organization, DocType and
    /// name), each with its fields as JSON text.
    pub(crate) async fn upsert_documents(
        &self,
        conn: &mut AnyConnection,
        docs: &[(&Document, String)],
    ) -> Result<(), DbError> {
        if docs.is_empty() {
            return Ok(());
        }
        let records: Vec<DocumentRecord<'_>> = docs
            .iter()
            .map(|(doc, data)| DocumentRecord {
                doctype: &doc.doctype,
                name: &doc.name,
                organization: &doc.organization,
                data,
                docstatus: doc.docstatus,
                deleted: doc.deleted,
                version: doc.version,
                change_seq: doc.change_seq,
                creation: doc.creation,
                modified: doc.modified,
                owner: &doc.owner,
                modified_by: &doc.modified_by,
            })
            .collect();
        let upsert = &self.sql.documents.upsert;
        self.db
            .run(upsert, async {
                let records = json_array(&records);
                upsert.query().bind(records?).execute(conn).await
            })
            .await?;
        Ok(())
    }

    /// Organizations holding `doctype`/`name`, among `among` (all when `None`), in name order.
    pub(crate) async fn holders(
        &self,
        doctype: &str,
        name: &str,
        among: Option<&[String]>,
    ) -> Result<Vec<String>, DbError> {
        let pool = self.db.pool();
        match among {
            None => {
                let holders = &self.sql.documents.holders;
                self.db
                    .run(
                        holders,
                        holders
                            .query_scalar()
                            .bind(doctype.to_owned())
                            .bind(name.to_owned())
                            .fetch_all(pool),
                    )
                    .await
            }
            Some(organizations) => {
                let holders = &self.sql.documents.holders_among;
                self.db
                    .run(holders, async {
                        let organizations = json_array(organizations);
                        holders
                            .query_scalar()
                            .bind(doctype.to_owned())
                            .bind(name.to_owned())
                            .bind(organizations?)
                            .fetch_all(pool)
                            .await
                    })
                    .await
            }
        }
    }
}
