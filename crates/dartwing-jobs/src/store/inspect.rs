//! What the API, the CLI and the gauges read about jobs: one job, listings, queue depths and
//! unfinished jobs per organization.

use super::{JobStore, json_list};
use crate::model::{JobInfo, JobStatus, organization_of};
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Backend, DbError, JsonText, Micros, SqlFile, Statement};
use serde_json::Value;

const INSPECT: SqlFile = SqlFile::portable("Job", "inspect", include_str!("sql/inspect.sql"));
const INSPECT_BY_BACKEND: SqlFile = SqlFile::per_backend(
    "Job",
    "inspect",
    include_str!("sql/inspect.sqlite.sql"),
    include_str!("sql/inspect.postgres.sql"),
);

pub(super) struct InspectSql {
    info: Statement,
    list: Statement,
    list_with_status: Statement,
    list_of_organizations: Statement,
    list_of_organizations_with_status: Statement,
    page: Statement,
    page_total: Statement,
    status_counts: Statement,
    waiting_by_priority: Statement,
    finished_since: Statement,
    queue_depths: Statement,
    org_job_counts: Statement,
}

impl InspectSql {
    pub(super) fn new(backend: Backend) -> Result<Self, DbError> {
        let mut s = INSPECT.statements(backend)?;
        let mut by_backend = INSPECT_BY_BACKEND.statements(backend)?;
        let sql = Self {
            info: s.take("info")?,
            list: s.take("list")?,
            list_with_status: s.take("list_with_status")?,
            list_of_organizations: by_backend.take("list_of_organizations")?,
            list_of_organizations_with_status: by_backend.take("list_of_organizations_with_status")?,
            page: by_backend.take("page")?,
            page_total: by_backend.take("page_total")?,
            status_counts: by_backend.take("status_counts")?,
            waiting_by_priority: by_backend.take("waiting_by_priority")?,
            finished_since: by_backend.take("finished_since")?,
            queue_depths: s.take("queue_depths")?,
            org_job_counts: s.take("org_job_counts")?,
        };
        s.finish()?;
        by_backend.finish()?;
        Ok(sql)
    }
}

/// A job as `jobs.status` shows it.
#[derive(sqlx::FromRow)]
struct JobInfoRow {
    id: String,
    method: String,
    status: String,
    queue: String,
    org_key: String,
    attempts: i64,
    max_attempts: i64,
    enqueued_at_us: Micros,
    run_at_us: Option<Micros>,
    started_at_us: Option<Micros>,
    finished_at_us: Option<Micros>,
    progress: Option<JsonText<Value>>,
    error: Option<String>,
    output_reference: Option<String>,
}

impl TryFrom<JobInfoRow> for JobInfo {
    type Error = Error;

    fn try_from(row: JobInfoRow) -> Result<Self> {
        Ok(JobInfo {
            job_id: row.id,
            method: row.method,
            status: row.status.parse()?,
            queue: row.queue.parse()?,
            organization: organization_of(row.org_key),
            progress: row.progress.map(|p| p.0),
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            error: row.error,
            output_reference: row.output_reference,
            enqueued_at: row.enqueued_at_us.into(),
            run_at: row.run_at_us.map(Into::into),
            started_at: row.started_at_us.map(Into::into),
            finished_at: row.finished_at_us.map(Into::into),
        })
    }
}

/// The rows behind `get_job_metrics`.
#[derive(Debug, Default)]
pub struct JobMetricsRows {
    /// (status, jobs).
    pub by_status: Vec<(String, i64)>,
    /// (priority rank, Pending or Queued jobs).
    pub waiting_by_rank: Vec<(i64, i64)>,
    /// (job type, final status, run time of the last attempt in µs) of recently finished jobs.
    pub finished: Vec<(String, String, i64)>,
}

/// Jobs waiting in one queue.
#[derive(sqlx::FromRow)]
struct QueueDepthRow {
    queue: String,
    depth: i64,
}

/// Unfinished jobs of one organization in one queue.
#[derive(sqlx::FromRow)]
struct OrgJobCountRow {
    org_key: String,
    queue: String,
    jobs: i64,
}

impl JobStore {
    /// A job's state.
    pub async fn info(&self, job_id: &str) -> Result<JobInfo> {
        let sql = &self.sql.inspect;
        let row: Option<JobInfoRow> = self
            .db
            .run(
                &sql.info,
                sql.info
                    .query_as()
                    .bind(job_id.to_string())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        row.ok_or_else(|| Error::not_found(format!("Job {job_id} not found")))?
            .try_into()
    }

    /// Jobs of the given organizations (`None`: all), newest first.
    pub async fn list(
        &self,
        organizations: Option<&[String]>,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<JobInfo>> {
        let sql = &self.sql.inspect;
        let limit = i64::from(limit);
        let (statement, query) = match (organizations, status) {
            (Some([]), _) => return Ok(Vec::new()),
            (None, None) => (&sql.list, sql.list.query_as::<JobInfoRow>().bind(limit)),
            (None, Some(status)) => (
                &sql.list_with_status,
                sql.list_with_status.query_as().bind(status.as_str()).bind(limit),
            ),
            (Some(orgs), None) => (
                &sql.list_of_organizations,
                sql.list_of_organizations.query_as().bind(json_list(orgs)).bind(limit),
            ),
            (Some(orgs), Some(status)) => (
                &sql.list_of_organizations_with_status,
                sql.list_of_organizations_with_status
                    .query_as()
                    .bind(json_list(orgs))
                    .bind(status.as_str())
                    .bind(limit),
            ),
        };
        let rows = self.db.run(statement, query.fetch_all(self.db.pool())).await?;
        rows.into_iter().map(JobInfo::try_from).collect()
    }

    /// A page of jobs, newest first, and how many there are in all: of the given organizations
    /// (`None`: all), with one of `statuses` (`None`: any), of job type `method` (`None`: any).
    pub async fn page(
        &self,
        organizations: Option<&[String]>,
        statuses: Option<&[JobStatus]>,
        method: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<JobInfo>, i64)> {
        if organizations.is_some_and(<[String]>::is_empty) {
            return Ok((Vec::new(), 0));
        }
        let sql = &self.sql.inspect;
        let organizations = organizations.map(json_list);
        let statuses = statuses.map(|s| json_list(s.iter().map(|status| status.as_str())));
        let method = method.map(str::to_string);
        let offset = i64::try_from(offset).map_err(|_| Error::bad_request("'offset' is too large"))?;
        let rows: Vec<JobInfoRow> = self
            .db
            .run(
                &sql.page,
                sql.page
                    .query_as()
                    .bind(organizations.clone())
                    .bind(statuses.clone())
                    .bind(method.clone())
                    .bind(i64::from(limit))
                    .bind(offset)
                    .fetch_all(self.db.pool()),
            )
            .await?;
        let total: i64 = self
            .db
            .run(
                &sql.page_total,
                sql.page_total
                    .query_scalar()
                    .bind(organizations)
                    .bind(statuses)
                    .bind(method)
                    .fetch_one(self.db.pool()),
            )
            .await?;
        let jobs = rows.into_iter().map(JobInfo::try_from).collect::<Result<_>>()?;
        Ok((jobs, total))
    }

    /// What `get_job_metrics` reports, of the given organizations (`None`: all): jobs per status,
    /// waiting jobs per priority rank, and up to `sample` jobs finished since `since`.
    pub async fn job_metrics(
        &self,
        organizations: Option<&[String]>,
        since: Timestamp,
        sample: u32,
    ) -> Result<JobMetricsRows> {
        if organizations.is_some_and(<[String]>::is_empty) {
            return Ok(JobMetricsRows::default());
        }
        let sql = &self.sql.inspect;
        let organizations = organizations.map(json_list);
        let pool = self.db.pool();
        let by_status: Vec<(String, i64)> = self
            .db
            .run(
                &sql.status_counts,
                sql.status_counts.query_as().bind(organizations.clone()).fetch_all(pool),
            )
            .await?;
        let waiting_by_rank: Vec<(i64, i64)> = self
            .db
            .run(
                &sql.waiting_by_priority,
                sql.waiting_by_priority
                    .query_as()
                    .bind(organizations.clone())
                    .fetch_all(pool),
            )
            .await?;
        let finished: Vec<(String, String, i64)> = self
            .db
            .run(
                &sql.finished_since,
                sql.finished_since
                    .query_as()
                    .bind(organizations)
                    .bind(since.as_micros())
                    .bind(i64::from(sample))
                    .fetch_all(pool),
            )
            .await?;
        Ok(JobMetricsRows {
            by_status,
            waiting_by_rank,
            finished,
        })
    }

    /// Jobs waiting (Pending or Queued) per queue.
    pub async fn queue_depths(&self) -> Result<Vec<(String, i64)>> {
        let sql = &self.sql.inspect;
        let rows: Vec<QueueDepthRow> = self
            .db
            .run(&sql.queue_depths, sql.queue_depths.query_as().fetch_all(self.db.pool()))
            .await?;
        Ok(rows.into_iter().map(|row| (row.queue, row.depth)).collect())
    }

    /// Unfinished jobs per organization and queue.
    pub async fn org_job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let sql = &self.sql.inspect;
        let rows: Vec<OrgJobCountRow> = self
            .db
            .run(
                &sql.org_job_counts,
                sql.org_job_counts.query_as().fetch_all(self.db.pool()),
            )
            .await?;
        Ok(rows.into_iter().map(|row| (row.org_key, row.queue, row.jobs)).collect())
    }
}
