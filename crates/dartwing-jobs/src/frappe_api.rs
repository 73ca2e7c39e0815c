//! The Frappe app's job API, `/api/method/dartwing.dartwing_core.api.jobs.*`, for clients
//! written against the Dartwing job engine contract (specs/011): its parameter names, answer
//! shapes, statuses and status codes, over the same code paths (and permission checks) as
//! `dartwing_core.jobs.*`.
//!
//! How the contract maps onto this engine:
//! - `job_type` is a registered job type (what `dartwing_core.jobs.enqueue` calls `method`);
//!   `parameters` are its `args`.
//! - A submission is a duplicate when the same job type with the same parameters was submitted
//!   for the organization within `jobs.dedup_window_secs`: 409 with `existing_job_id`.
//! - Statuses: a job waiting out a retry's back-off is `Queued` with `next_retry_at`; a job that
//!   failed for good (`Failed` or `Timed Out` here) is `Dead Letter`.
//! - `retry_job` re-enqueues the job's dead letter (Owners/Admins, as for dead letters) as a new
//!   job: its answer's `job_id` is the new job's, `retry_of` the failed one's.
//! - `get_job_metrics`: counts of every job kept, and run times and failure rates of the jobs
//!   finished in the last 24 hours (at most the latest 10,000).
//! - `depends_on`: the job waits (Pending) until its parent Completed, and is canceled if the
//!   parent ends any other way.
//! - `output_reference` is what the handler recorded with `JobContext::output_reference`.
//! - Not yet: `get_job_history`.

use crate::Jobs;
use crate::model::{JobInfo, JobStatus, NewJob, Priority};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dartwing_core::{Error, ErrorKind};
use dartwing_http::openapi::{COMMON_ERRORS, operation};
use dartwing_http::{ApiResult, Auth, Message, MethodArgs, RequestContext, Routes};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const PREFIX: &str = "/api/method/dartwing.dartwing_core.api.jobs";

/// Default and largest page of `list_jobs`.
const LIST_DEFAULT: u32 = 20;
const LIST_MAX: u32 = 100;

/// The contract's routes with their state applied.
pub fn routes(jobs: Jobs) -> Routes {
    let op = |summary: &str| operation("Jobs (Frappe app contract)", summary, COMMON_ERRORS);
    Routes::builder()
        .post(
            &format!("{PREFIX}.submit_job"),
            submit_job,
            op("Submit a job {job_type, organization, parameters, priority: Low|Normal|High|Critical} → {job_id, status, \
                message}; 409 {message: {error, existing_job_id, status}} for the same job type and parameters within \
                the dedup window; 400 for an unknown job type or a depends_on that can never complete"),
        )
        .read(
            &format!("{PREFIX}.get_job_status"),
            get_job_status,
            op("A job's status (?job_id=) → {job_id, job_type, status, progress, progress_message, created_at, \
                started_at, completed_at, retry_count, max_retries, next_retry_at, output_reference, error_message, \
                error_type}"),
        )
        .read(
            &format!("{PREFIX}.list_jobs"),
            list_jobs,
            op("Jobs, newest first (?organization=&status=&job_type=&limit=20 (≤ 100)&offset=0) → {jobs: [{job_id, \
                job_type, status, progress, created_at}], total, limit, offset}"),
        )
        .post(
            &format!("{PREFIX}.cancel_job"),
            cancel_job,
            op("Cancel a pending, queued or running job {job_id} → {job_id, status, message}; 400 once it finished"),
        )
        .read(
            &format!("{PREFIX}.get_job_metrics"),
            get_job_metrics,
            op("Job metrics (?organization=; all readable organizations when omitted) → {job_count_by_status, \
                queue_depth_by_priority, processing_time: {average_seconds, p95_seconds}, failure_rate_by_type, \
                window_hours, timestamp}; run times and failure rates over the jobs finished in the last 24 hours"),
        )
        .post(
            &format!("{PREFIX}.retry_job"),
            retry_job,
            op("Re-enqueue a job in the dead-letter queue {job_id} → {job_id, status: Queued, message}; Owners/Admins"),
        )
        .with_state(jobs)
}

/// A 400 with the contract's `ValidationError`.
fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadRequest, message).with_exc_type("ValidationError")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    job_type: String,
    organization: String,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    depends_on: Option<String>,
}

/// The dedup key of a submission: its job type and parameters (JSON with sorted keys) hashed.
fn job_hash(job_type: &str, parameters: &Value) -> String {
    let mut digest = Sha256::new();
    digest.update(job_type.as_bytes());
    digest.update([0]);
    digest.update(parameters.to_string().as_bytes());
    format!("job-hash:{}", hex::encode(digest.finalize()))
}

async fn submit_job(
    State(jobs): State<Jobs>,
    Extension(context): Extension<RequestContext>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<SubmitBody>,
) -> ApiResult<Response> {
    if !jobs.has_job_type(&body.job_type) {
        return Err(invalid(format!("Invalid job type: {}", body.job_type)).into());
    }
    let parameters = body.parameters.unwrap_or_else(|| json!({}));
    let job = NewJob {
        dedup_key: Some(job_hash(&body.job_type, &parameters)),
        dedup_window_secs: None,
        method: body.job_type,
        organization: Some(body.organization),
        args: parameters,
        priority: body.priority.unwrap_or_default(),
        run_at: None,
        trace_id: Some(context.trace_id().to_string()),
        submitted_by: Some(actor.id().to_string()),
        depends_on: body.depends_on.filter(|parent| !parent.is_empty()),
    };
    let enqueued = jobs.enqueue(&actor, job).await?;
    let status = jobs.status(&actor, &enqueued.job_id).await?;
    if enqueued.deduplicated {
        let body = json!({ "message": {
            "error": "Duplicate job detected",
            "existing_job_id": enqueued.job_id,
            "status": contract_status(&status),
        }});
        return Ok((StatusCode::CONFLICT, axum::Json(body)).into_response());
    }
    // The status it was stored with: Pending while it waits (for its parent), else Queued — a
    // worker may already have started it by now.
    let submitted = if status.status == JobStatus::Pending {
        "Pending"
    } else {
        "Queued"
    };
    Ok(Message(json!({
        "job_id": enqueued.job_id,
        "status": submitted,
        "message": "Job submitted successfully",
    }))
    .into_response())
}

/// A job's status as the contract names it.
fn contract_status(job: &JobInfo) -> &'static str {
    match job.status {
        JobStatus::Pending if job.attempts > 0 => "Queued",
        JobStatus::Failed | JobStatus::TimedOut => "Dead Letter",
        other => other.as_str(),
    }
}

/// The contract's statuses a `status` filter names, as this engine's.
fn engine_statuses(status: &str) -> Result<Vec<JobStatus>, Error> {
    Ok(match status {
        "Dead Letter" => vec![JobStatus::Failed, JobStatus::TimedOut],
        "Queued" => vec![JobStatus::Queued, JobStatus::Pending],
        other => vec![other.parse().map_err(|_| {
            invalid(format!(
                "Invalid status: {other} (one of Pending, Queued, Running, Completed, Dead Letter, Canceled)"
            ))
        })?],
    })
}

fn progress_percent(job: &JobInfo) -> Value {
    match job.progress.as_ref().and_then(|p| p.get("percent")) {
        Some(percent) => percent.clone(),
        None if job.status == JobStatus::Completed => json!(100),
        None => json!(0),
    }
}

/// `get_job_status`'s answer.
fn status_view(job: &JobInfo) -> Value {
    let dead = matches!(job.status, JobStatus::Failed | JobStatus::TimedOut);
    let waiting_retry = job.status == JobStatus::Pending && job.attempts > 0;
    let error_type = match job.status {
        JobStatus::TimedOut => Some("Timeout"),
        JobStatus::Failed if job.attempts < job.max_attempts => Some("Permanent"),
        JobStatus::Failed => Some("Transient"),
        _ if waiting_retry => Some("Transient"),
        _ => None,
    };
    let mut view = summary(job);
    view.extend([
        (
            "progress_message".to_string(),
            job.progress
                .as_ref()
                .and_then(|p| p.get("message"))
                .cloned()
                .unwrap_or_default(),
        ),
        ("started_at".into(), json!(job.started_at)),
        (
            "completed_at".into(),
            json!(if job.status.is_final() { job.finished_at } else { None }),
        ),
        ("retry_count".into(), json!((job.attempts - 1).max(0))),
        ("max_retries".into(), json!((job.max_attempts - 1).max(0))),
        (
            "next_retry_at".into(),
            json!(if waiting_retry { job.run_at } else { None }),
        ),
        ("output_reference".into(), json!(job.output_reference)),
        (
            "error_message".into(),
            json!(if dead || waiting_retry { job.error.clone() } else { None }),
        ),
        ("error_type".into(), json!(error_type)),
    ]);
    Value::Object(view)
}

/// A job as `list_jobs` lists it (and the start of `get_job_status`'s answer).
fn summary(job: &JobInfo) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("job_id".into(), json!(job.job_id));
    fields.insert("job_type".into(), json!(job.method));
    fields.insert("organization".into(), json!(job.organization));
    fields.insert("status".into(), json!(contract_status(job)));
    fields.insert("progress".into(), progress_percent(job));
    fields.insert("created_at".into(), json!(job.enqueued_at));
    fields
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobIdArgs {
    job_id: String,
}

async fn get_job_status(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(args): MethodArgs<JobIdArgs>,
) -> ApiResult<Message<Value>> {
    Ok(Message(status_view(&jobs.status(&actor, &args.job_id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    job_type: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u64>,
}

async fn list_jobs(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(args): MethodArgs<ListArgs>,
) -> ApiResult<Message<Value>> {
    let limit = match args.limit {
        Some(0) => return Err(invalid("'limit' must be at least 1").into()),
        Some(limit) => limit.min(LIST_MAX),
        None => LIST_DEFAULT,
    };
    let offset = args.offset.unwrap_or_default();
    let statuses = args.status.as_deref().map(engine_statuses).transpose()?;
    let (page, total) = jobs
        .page(
            &actor,
            args.organization.as_deref(),
            statuses.as_deref(),
            args.job_type.as_deref(),
            limit,
            offset,
        )
        .await?;
    let listed: Vec<Value> = page.iter().map(|job| Value::Object(summary(job))).collect();
    Ok(Message(
        json!({ "jobs": listed, "total": total, "limit": limit, "offset": offset }),
    ))
}

async fn cancel_job(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(args): MethodArgs<JobIdArgs>,
) -> ApiResult<Message<Value>> {
    let job = jobs.status(&actor, &args.job_id).await?;
    if job.status.is_final() {
        return Err(invalid(format!("Cannot cancel job in status: {}", contract_status(&job))).into());
    }
    let status = jobs.cancel(&actor, &args.job_id).await?;
    let message = if status == JobStatus::Canceled {
        "Job canceled successfully"
    } else {
        "Cancellation requested: the job stops at its next checkpoint"
    };
    Ok(Message(
        json!({ "job_id": args.job_id, "status": status.as_str(), "message": message }),
    ))
}

async fn retry_job(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(args): MethodArgs<JobIdArgs>,
) -> ApiResult<Message<Value>> {
    let job = jobs.status(&actor, &args.job_id).await?;
    let letter = match jobs.store().dead_letter_of_job(&job.job_id).await? {
        Some(letter) if matches!(job.status, JobStatus::Failed | JobStatus::TimedOut) => letter,
        _ => {
            return Err(invalid(format!(
                "Only a job in the dead-letter queue can be retried; this one is {}",
                contract_status(&job)
            ))
            .into());
        }
    };
    let enqueued = jobs
        .retry_dead_letter(&actor, &letter.name, Some("retried through retry_job"))
        .await?;
    // The retry is a new job (the failed one stays as it ended, with its dead letter Retried).
    Ok(Message(json!({
        "job_id": enqueued.job_id,
        "retry_of": job.job_id,
        "status": "Queued",
        "message": "Job re-queued for execution",
    })))
}

/// How far back `get_job_metrics` looks for run times and failure rates, and how many finished
/// jobs at most.
const METRICS_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const METRICS_SAMPLE: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsArgs {
    #[serde(default)]
    organization: Option<String>,
}

async fn get_job_metrics(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(args): MethodArgs<MetricsArgs>,
) -> ApiResult<Message<Value>> {
    let now = dartwing_core::Timestamp::now();
    let since = dartwing_core::Timestamp::from_micros(
        now.as_micros() - i64::try_from(METRICS_WINDOW.as_micros()).unwrap_or(i64::MAX),
    );
    let rows = jobs
        .job_metrics(&actor, args.organization.as_deref(), since, METRICS_SAMPLE)
        .await?;
    Ok(Message(metrics_view(&rows, now)))
}

/// The contract's metrics from the store's rows.
fn metrics_view(rows: &crate::JobMetricsRows, now: dartwing_core::Timestamp) -> Value {
    let mut by_status: Map<String, Value> = [
        "Pending",
        "Queued",
        "Running",
        "Completed",
        "Failed",
        "Dead Letter",
        "Canceled",
    ]
    .iter()
    .map(|status| (status.to_string(), json!(0)))
    .collect();
    for (status, jobs) in &rows.by_status {
        let name = match status.as_str() {
            "Failed" | "Timed Out" => "Dead Letter",
            other => other,
        };
        let count = by_status.entry(name.to_string()).or_insert(json!(0));
        *count = json!(count.as_i64().unwrap_or(0) + jobs);
    }
    let mut by_priority = Map::new();
    for priority in [Priority::Critical, Priority::High, Priority::Normal, Priority::Low] {
        let waiting: i64 = rows
            .waiting_by_rank
            .iter()
            .filter(|(rank, _)| *rank == priority.rank())
            .map(|(_, jobs)| jobs)
            .sum();
        by_priority.insert(format!("{priority:?}"), json!(waiting));
    }
    let mut run_secs: Vec<f64> = rows
        .finished
        .iter()
        .map(|(_, _, us)| (*us).max(0) as f64 / 1e6)
        .collect();
    run_secs.sort_by(f64::total_cmp);
    let average = (!run_secs.is_empty()).then(|| run_secs.iter().sum::<f64>() / run_secs.len() as f64);
    let p95 =
        (!run_secs.is_empty()).then(|| run_secs[((run_secs.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)]);
    let mut per_type: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
    for (method, status, _) in &rows.finished {
        let entry = per_type.entry(method.as_str()).or_default();
        entry.0 += 1;
        if status == "Failed" || status == "Timed Out" {
            entry.1 += 1;
        }
    }
    let failure_rate: Map<String, Value> = per_type
        .into_iter()
        .map(|(method, (finished, failed))| (method.to_string(), json!(failed as f64 / finished as f64)))
        .collect();
    json!({
        "job_count_by_status": by_status,
        "queue_depth_by_priority": by_priority,
        "processing_time": { "average_seconds": average, "p95_seconds": p95 },
        "failure_rate_by_type": failure_rate,
        "window_hours": METRICS_WINDOW.as_secs() / 3600,
        "timestamp": now,
    })
}
