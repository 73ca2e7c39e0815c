//! The change log and the feed that reads it.

use super::{Store, flag, json_array, micros};
use dartwing_core::Timestamp;
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::AnyConnection;

const CHANGES: SqlFile = SqlFile::per_backend(
    "Sync Change",
    "changes",
    include_str!("sql/changes.sqlite.sql"),
    include_str!("sql/changes.postgres.sql"),
);
const FEED: SqlFile = SqlFile::portable("Sync Change", "feed", include_str!("sql/feed.sql"));

pub(super) struct ChangeSql {
    insert: Statement,
    feed: Statement,
    feed_of_doctype: Statement,
    start_after_time: Statement,
}

impl ChangeSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut log = CHANGES.statements(backend)?;
        let mut feed = FEED.statements(backend)?;
        let sql = Self {
            insert: log.take("insert")?,
            feed: feed.take("feed")?,
            feed_of_doctype: feed.take("feed_of_doctype")?,
            start_after_time: feed.take("start_after_time")?,
        };
        log.finish()?;
        feed.finish()?;
        Ok(sql)
    }
}

/// One applied change: a version-history row and a change-log row (bound in JSON arrays).
#[derive(Serialize)]
pub(crate) struct ChangeRow {
    pub(crate) seq: i64,
    pub(crate) doctype: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) operation: &'static str,
    /// The document's fields as JSON text.
    pub(crate) data: String,
    pub(crate) docstatus: i64,
    #[serde(serialize_with = "flag")]
    pub(crate) deleted: bool,
    #[serde(serialize_with = "micros")]
    pub(crate) modified: Timestamp,
    pub(crate) modified_by: String,
    pub(crate) op_id: String,
    pub(crate) note: Option<String>,
    /// The change's feed row as JSON text (see [`crate::model::feed_row`]); `None` only for rows
    /// written before the change log kept it.
    pub(crate) feed_row: Option<String>,
}

/// A change-log row as the feed reads it: its feed row as stored, or (for a row written before
/// the log kept feed rows) the columns to build it from.
#[derive(sqlx::FromRow)]
pub(crate) struct FeedEntry {
    pub(crate) seq: i64,
    feed_row: Option<String>,
    doctype: Option<String>,
    name: Option<String>,
    modified: Option<Micros>,
    docstatus: Option<i64>,
    data: Option<JsonText<Value>>,
    deleted: Option<i64>,
}

impl FeedEntry {
    /// The feed row `{data, deleted, docstatus, doctype, modified, name}` as JSON: the stored
    /// text (checked to be JSON, not parsed into values), or built from the columns.
    pub(crate) fn into_row(self) -> Result<Box<RawValue>, DbError> {
        let invalid = |e: serde_json::Error| DbError::Query {
            statement: "Sync Change.feed".into(),
            source: sqlx::Error::Decode(Box::new(e)),
        };
        if let Some(text) = self.feed_row {
            return RawValue::from_string(text).map_err(invalid);
        }
        let row = crate::model::feed_row(
            self.name.as_deref().unwrap_or_default(),
            self.doctype.as_deref().unwrap_or_default(),
            self.modified.map(|m| m.0).unwrap_or_else(|| Timestamp::from_micros(0)),
            self.docstatus.unwrap_or_default(),
            self.data.map_or(Value::Null, |d| d.0),
            self.deleted.unwrap_or_default() != 0,
        );
        serde_json::value::to_raw_value(&row).map_err(invalid)
    }
}

impl Store {
    /// Appends a batch's changes to the documents' version history and the organization's
    /// change log (the rows are encoded once for both).
    pub(crate) async fn append_changes(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        changes: &[ChangeRow],
    ) -> Result<(), DbError> {
        if changes.is_empty() {
            return Ok(());
        }
        let versions = &self.sql.documents.insert_versions;
        let rows = self
            .db
            .run(versions, async {
                let rows = json_array(changes)?;
                versions
                    .query()
                    .bind(organization.to_owned())
                    .bind(rows.clone())
                    .execute(&mut *conn)
                    .await?;
                Ok(rows)
            })
            .await?;
        let insert = &self.sql.changes.insert;
        self.db
            .run(
                insert,
                insert.query().bind(organization.to_owned()).bind(rows).execute(conn),
            )
            .await?;
        Ok(())
    }

    /// Up to `limit` changes of the organization (of `doctype` only, when given) after `after`,
    /// in seq order.
    pub(crate) async fn feed(
        &self,
        organization: &str,
        doctype: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FeedEntry>, DbError> {
        let pool = self.db.pool();
        match doctype {
            None => {
                let feed = &self.sql.changes.feed;
                self.db
                    .run(
                        feed,
                        feed.query_as()
                            .bind(organization.to_owned())
                            .bind(after)
                            .bind(limit)
                            .fetch_all(pool),
                    )
                    .await
            }
            Some(doctype) => {
                let feed = &self.sql.changes.feed_of_doctype;
                self.db
                    .run(
                        feed,
                        feed.query_as()
                            .bind(organization.to_owned())
                            .bind(after)
                            .bind(doctype.to_owned())
                            .bind(limit)
                            .fetch_all(pool),
                    )
                    .await
            }
        }
    }

    /// Where a feed starting from `time` begins in the organization's change log: the seq of the
    /// first change written after it, and the time of the oldest change kept.
    pub(crate) async fn start_after_time(
        &self,
        organization: &str,
        time: Timestamp,
    ) -> Result<(Option<i64>, Option<Timestamp>), DbError> {
        let start = &self.sql.changes.start_after_time;
        let (first_after, oldest): (Option<i64>, Option<i64>) = self
            .db
            .run(
                start,
                start
                    .query_as()
                    .bind(organization.to_owned())
                    .bind(time.as_micros())
                    .fetch_one(self.db.pool()),
            )
            .await?;
        Ok((first_after, oldest.map(Timestamp::from_micros)))
    }
}
