//! The write queue's stored answers (op_id idempotency).

use super::{Store, json_array};
use dartwing_core::Timestamp;
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;
use std::collections::HashMap;

const OP_ANSWERS: SqlFile = SqlFile::per_backend(
    "Sync Op",
    "op_answers",
    include_str!("sql/op_answers.sqlite.sql"),
    include_str!("sql/op_answers.postgres.sql"),
);

pub(super) struct OpAnswerSql {
    stored: Statement,
    insert: Statement,
}

impl OpAnswerSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = OP_ANSWERS.statements(backend)?;
        let sql = Self {
            stored: s.take("stored")?,
            insert: s.take("insert")?,
        };
        s.finish()?;
        Ok(sql)
    }
}

#[derive(sqlx::FromRow)]
struct StoredAnswer {
    op_id: String,
    answer: JsonText<Value>,
}

/// An answer to store, bound in a JSON array.
#[derive(Serialize)]
struct NewAnswer<'a> {
    op_id: &'a str,
    answer: &'a str,
}

impl Store {
    /// The answers stored for these op_ids.
    pub(crate) async fn stored_answers(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        op_ids: &[&str],
    ) -> Result<HashMap<String, Value>, DbError> {
        if op_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let stored = &self.sql.op_answers.stored;
        let rows = self
            .db
            .run(stored, async {
                let op_ids = json_array(op_ids);
                stored
                    .query_as::<StoredAnswer>()
                    .bind(organization.to_owned())
                    .bind(op_ids?)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        Ok(rows.into_iter().map(|row| (row.op_id, row.answer.0)).collect())
    }

    /// Stores the answers (`(op_id, answer JSON)`) given at `now`.
    pub(crate) async fn insert_answers(
        &self,
        conn: &mut AnyConnection,
        organization: &str,
        answers: &[(String, String)],
        now: Timestamp,
    ) -> Result<(), DbError> {
        if answers.is_empty() {
            return Ok(());
        }
        let rows: Vec<NewAnswer<'_>> = answers
            .iter()
            .map(|(op_id, answer)| NewAnswer { op_id, answer })
            .collect();
        let insert = &self.sql.op_answers.insert;
        self.db
            .run(insert, async {
                let rows = json_array(&rows);
                insert
                    .query()
                    .bind(organization.to_owned())
                    .bind(rows?)
                    .bind(Micros(now))
                    .execute(conn)
                    .await
            })
            .await?;
        Ok(())
    }
}
