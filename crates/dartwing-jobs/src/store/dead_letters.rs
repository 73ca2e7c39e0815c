//! Dead letters: jobs that failed for good, kept for an administrator to retry, resolve or
//! ignore.

use super::{ClaimedJob, JobStore, json_list};
use crate::model::{DeadLetter, DeadLetterStatus, org_key, organization_of};
use dartwing_core::ids::random_hex;
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde_json::Value;
use sqlx::{Any, AnyConnection, Executor};

const DEAD_LETTERS: SqlFile = SqlFile::portable("Dead Letter", "dead_letters", include_str!("sql/dead_letters.sql"));
const DEAD_LETTERS_BY_BACKEND: SqlFile = SqlFile::per_backend(
    "Dead Letter",
    "dead_letters",
    include_str!("sql/dead_letters.sqlite.sql"),
    include_str!("sql/dead_letters.postgres.sql"),
);

pub(super) struct DeadLettersSql {
    insert: Statement,
    depth: Statement,
    all: Statement,
    of_organizations: Statement,
    get: Statement,
    of_job: Statement,
    settle: Statement,
}

impl DeadLettersSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = DEAD_LETTERS.statements(backend)?;
        let mut by_backend = DEAD_LETTERS_BY_BACKEND.statements(backend)?;
        let sql = Self {
            insert: s.take("insert")?,
            depth: s.take("depth")?,
            all: s.take("all")?,
            of_organizations: by_backend.take("of_organizations")?,
            get: s.take("get")?,
            of_job: s.take("of_job")?,
            settle: s.take("settle")?,
        };
        s.finish()?;
        by_backend.finish()?;
        Ok(sql)
    }
}

/// A dead letter as stored.
#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    id: String,
    job_id: String,
    method: String,
    org_key: String,
    queue: String,
    reason: String,
    args: JsonText<Value>,
    failed_at_us: Micros,
    retry_count: i64,
    status: String,
    resolution_notes: Option<String>,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = Error;

    fn try_from(row: DeadLetterRow) -> Result<Self> {
        Ok(DeadLetter {
            name: row.id,
            job_id: row.job_id,
            method: row.method,
            organization: organization_of(row.org_key),
            queue: row.queue.parse()?,
            failure_reason: row.reason,
            job_data: row.args.0,
            failed_at: row.failed_at_us.into(),
            retry_count: row.retry_count,
            status: row.status,
            resolution_notes: row.resolution_notes,
        })
    }
}

impl JobStore {
    /// Dead-letters `job` (in the transaction that failed it) with `reason`.
    pub(super) async fn insert_dead_letter(
        &self,
        conn: &mut AnyConnection,
        job: &ClaimedJob,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        let sql = &self.sql.dead_letters;
        self.db
            .run(
                &sql.insert,
                sql.insert
                    .query()
                    .bind(format!("DLQ-{}", random_hex(8)))
                    .bind(job.id.clone())
                    .bind(job.method.clone())
                    .bind(org_key(job.organization.as_deref()).to_string())
                    .bind(job.queue.as_str())
                    .bind(reason.to_string())
                    .bind(job.args.to_string())
                    .bind(now)
                    .bind(job.attempt - 1)
                    .execute(conn),
            )
            .await?;
        Ok(())
    }

    /// Pending dead letters.
    pub async fn dlq_depth(&self) -> Result<i64> {
        let sql = &self.sql.dead_letters;
        Ok(self
            .db
            .run(&sql.depth, sql.depth.query_scalar().fetch_one(self.db.pool()))
            .await?)
    }

    /// Dead letters of the given organizations (`None`: all), newest first.
    pub async fn dead_letters(&self, organizations: Option<&[String]>, limit: u32) -> Result<Vec<DeadLetter>> {
        let sql = &self.sql.dead_letters;
        let limit = i64::from(limit);
        let (statement, query) = match organizations {
            Some([]) => return Ok(Vec::new()),
            None => (&sql.all, sql.all.query_as::<DeadLetterRow>().bind(limit)),
            Some(orgs) => (
                &sql.of_organizations,
                sql.of_organizations.query_as().bind(json_list(orgs)).bind(limit),
            ),
        };
        let rows = self.db.run(statement, query.fetch_all(self.db.pool())).await?;
        rows.into_iter().map(DeadLetter::try_from).collect()
    }

    /// One dead letter.
    pub async fn dead_letter(&self, name: &str) -> Result<DeadLetter> {
        let sql = &self.sql.dead_letters;
        let row: Option<DeadLetterRow> = self
            .db
            .run(
                &sql.get,
                sql.get.query_as().bind(name.to_string()).fetch_optional(self.db.pool()),
            )
            .await?;
        row.ok_or_else(|| Error::not_found(format!("Dead letter {name} not found")))?
            .try_into()
    }

    /// The newest dead letter of a job, if it has one.
    pub async fn dead_letter_of_job(&self, job_id: &str) -> Result<Option<DeadLetter>> {
        let sql = &self.sql.dead_letters;
        let row: Option<DeadLetterRow> = self
            .db
            .run(
                &sql.of_job,
                sql.of_job
                    .query_as()
                    .bind(job_id.to_string())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        row.map(DeadLetter::try_from).transpose()
    }

    /// Sets a Pending dead letter's status (Retried, Resolved or Ignored) with notes, on
    /// `executor` (the pool, or the transaction that re-enqueues its job); 409 when it is no
    /// longer Pending.
    pub async fn settle_dead_letter<'c, E>(
        &self,
        executor: E,
        name: &str,
        status: DeadLetterStatus,
        notes: Option<&str>,
        by: &str,
    ) -> Result<()>
    where
        E: Executor<'c, Database = Any>,
    {
        let sql = &self.sql.dead_letters;
        let result = self
            .db
            .run(
                &sql.settle,
                sql.settle
                    .query()
                    .bind(status.as_str())
                    .bind(notes.map(str::to_string))
                    .bind(by.to_string())
                    .bind(Timestamp::now().as_micros())
                    .bind(name.to_string())
                    .execute(executor),
            )
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::conflict(format!("Dead letter {name} is not Pending")));
        }
        Ok(())
    }
}
