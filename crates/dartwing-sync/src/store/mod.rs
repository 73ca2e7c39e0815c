//! The sync store: its SQL lives in `store/sql/`, one file per concern (documents and versions,
//! change log, feed, stored op answers, conflicts, cursors, retention, deleted organizations),
//! with a SQLite and a PostgreSQL text where they differ. Rows decode into named structs; JSON
//! columns that do not decode fail the query instead of becoming `null`.
//!
//! A batch binds its rows (and the names it looks up) as one JSON array, so one statement carries
//! any number of them without SQL assembled at run time.

mod changes;
mod conflicts;
mod cursors;
mod documents;
mod op_answers;
mod organizations;
mod retention;

pub(crate) use changes::ChangeRow;
pub(crate) use conflicts::NewConflict;
pub(crate) use documents::Versions;

use dartwing_core::Timestamp;
use dartwing_db::{Backend, Db, DbError};
use serde::{Serialize, Serializer};
use std::sync::LazyLock;

/// The statements of every concern of sync for one backend.
struct SyncSql {
    documents: documents::DocumentSql,
    changes: changes::ChangeSql,
    op_answers: op_answers::OpAnswerSql,
    conflicts: conflicts::ConflictSql,
    cursors: cursors::CursorSql,
    retention: retention::RetentionSql,
    organizations: organizations::OrganizationSql,
}

impl SyncSql {
    fn new(backend: Backend) -> Result<Self, DbError> {
        Ok(Self {
            documents: documents::DocumentSql::new(backend)?,
            changes: changes::ChangeSql::new(backend)?,
            op_answers: op_answers::OpAnswerSql::new(backend)?,
            conflicts: conflicts::ConflictSql::new(backend)?,
            cursors: cursors::CursorSql::new(backend)?,
            retention: retention::RetentionSql::new(backend)?,
            organizations: organizations::OrganizationSql::new(backend)?,
        })
    }
}

/// The statements of each backend, parsed once per process; a statement missing from a file or
/// unused by the code is an error of [`Store::new`].
static SQL: LazyLock<[Result<SyncSql, String>; 2]> = LazyLock::new(|| {
    [Backend::Sqlite, Backend::Postgres].map(|backend| SyncSql::new(backend).map_err(|e| e.to_string()))
});

/// The sync tables of one database.
#[derive(Clone)]
pub(crate) struct Store {
    db: Db,
    sql: &'static SyncSql,
}

impl Store {
    /// The store on `db`, with the statements of its backend.
    pub(crate) fn new(db: Db) -> Result<Self, DbError> {
        let built = match db.backend() {
            Backend::Sqlite => &SQL[0],
            Backend::Postgres => &SQL[1],
        };
        let sql = built.as_ref().map_err(|e| DbError::Statement(e.clone()))?;
        Ok(Self { db, sql })
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

/// Rows (or values) bound as one JSON array parameter.
fn json_array<T: Serialize + ?Sized>(rows: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Serializes a timestamp as the microseconds its `BIGINT` column holds (rows bound as JSON arrays).
fn micros<S: Serializer>(timestamp: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_i64(timestamp.as_micros())
}

/// Serializes a flag as the `0`/`1` its `BIGINT` column holds (rows bound as JSON arrays).
fn flag<S: Serializer>(value: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_i64(i64::from(*value))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod statement_tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn batch_rows_bind_flags_as_integers_and_timestamps_as_microseconds() {
        let modified = Timestamp::from_micros(1_795_000_000_000_001);
        let change = ChangeRow {
            seq: 7,
            doctype: "Task".into(),
            name: "T-1".into(),
            version: 2,
            operation: "delete",
            data: r#"{"title":"x"}"#.into(),
            docstatus: 0,
            deleted: true,
            modified,
            modified_by: "user@example.com".into(),
            op_id: "op-1".into(),
            note: None,
            feed_row: Some(r#"{"name":"T-1"}"#.into()),
        };
        let rows: Value = serde_json::from_str(&json_array(&[change]).expect("encodes")).expect("JSON");
        assert_eq!(rows[0]["deleted"], json!(1));
        assert_eq!(rows[0]["modified"], json!(modified.as_micros()));
        assert_eq!(rows[0]["data"], json!(r#"{"title":"x"}"#));
        assert_eq!(rows[0]["note"], Value::Null);
    }

    #[test]
    fn every_statement_file_builds_on_both_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if let Err(error) = SyncSql::new(backend) {
                panic!("{backend:?}: {error}");
            }
        }
    }
}
