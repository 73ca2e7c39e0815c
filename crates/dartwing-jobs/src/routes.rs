//! Job API under `/api/method/dartwing_core.jobs.*` (SPEC §8 wire shapes).

use crate::Jobs;
use crate::model::{DeadLetterStatus, JobStatus, NewJob, Priority};
use crate::webhook::SigningSecret;
use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use dartwing_core::{Error, Timestamp};
use dartwing_http::openapi::{COMMON_ERRORS, operation};
use dartwing_http::{ApiResult, Auth, Message, MethodArgs, RequestContext, Routes};
use serde::Deserialize;
use serde_json::{Value, json};

const PREFIX: &str = "/api/method/dartwing_core.jobs";

/// The job routes with their state applied, each with its OpenAPI operation.
pub fn routes(jobs: Jobs) -> Routes {
    let op = |summary: &str| operation("Jobs", summary, COMMON_ERRORS);
    Routes::builder()
        .post(
            &format!("{PREFIX}.enqueue"),
            enqueue,
            op("Enqueue a job: {method, organization, args, priority, dedup_key, run_at} → {job_id, queue}; 403 when the job \
                type's enqueue policy does not admit the caller (internal types are enqueued by the runtime only), 422 for an \
                unknown type, 429 when the organization's queue is full"),
        )
        .post(
            &format!("{PREFIX}.enqueue_batch"),
            enqueue_batch,
            op("Enqueue up to 1000 jobs in one transaction: {jobs: [{method, organization, args, priority, dedup_key, \
                run_at}, …]} → [{job_id, queue} | {error: {status, exc_type, message}}, …] in order. Each job is checked \
                as by enqueue; one that fails its check (403, 422, 400) refuses the whole request naming its position \
                (jobs[i]) and nothing is stored. 400 for an empty list or more than 1000 jobs. A job refused at its \
                organization's pending cap is answered with its own 429 error"),
        )
        .read(&format!("{PREFIX}.status"), status, op("Status of a job (?job_id=)"))
        .read(
            &format!("{PREFIX}.list"),
            list,
            op("Jobs of the caller's organizations (?organization=&status=&limit=)"),
        )
        .post(
            &format!("{PREFIX}.cancel"),
            cancel,
            op("Cancel a pending or running job {job_id}"),
        )
        .read(
            &format!("{PREFIX}.dead_letters"),
            dead_letters,
            op("Dead letters (?organization=); Owners/Admins or system administrators"),
        )
        .post(
            &format!("{PREFIX}.retry_dead_letter"),
            retry_dead_letter,
            op("Re-enqueue a dead letter's job {name, notes}"),
        )
        .post(
            &format!("{PREFIX}.resolve_dead_letter"),
            resolve_dead_letter,
            op("Mark a dead letter Resolved {name, notes}"),
        )
        .post(
            &format!("{PREFIX}.ignore_dead_letter"),
            ignore_dead_letter,
            op("Mark a dead letter Ignored {name, notes}"),
        )
        .read(
            &format!("{PREFIX}.webhook_secret"),
            webhook_secret,
            op("The organization's webhook signing secret (?organization=) → {organization, secret, created_at}; generated \
                on first need; Owners/Admins"),
        )
        .post(
            &format!("{PREFIX}.rotate_webhook_secret"),
            rotate_webhook_secret,
            op("Replace the organization's webhook signing secret {organization} → {organization, secret, created_at}; the \
                previous one stops signing at once; Owners/Admins"),
        )
        .get(
            &format!("{PREFIX}.webhook_hosts"),
            webhook_hosts,
            op("Hosts the organization's webhooks may go to (?organization=) → {organization, hosts}; empty = any public \
                host"),
        )
        .post(
            &format!("{PREFIX}.webhook_hosts"),
            set_webhook_hosts,
            op("Replace the organization's webhook hosts {organization, hosts: [\"hooks.example.com\", \"*.example.com\"]}; \
                Owners/Admins"),
        )
        .read(
            &format!("{PREFIX}.job_types"),
            job_types,
            op("The job types → [{name, description, queue, timeout_secs, max_retries, retry_delays_secs, \
                dedup_window_secs, submit, available}]: every registered type and every one in jobs.job_types"),
        )
        .with_state(jobs)
}

async fn job_types(State(jobs): State<Jobs>, Auth(_actor): Auth) -> ApiResult<Message<Vec<crate::model::JobTypeInfo>>> {
    Ok(Message(jobs.job_types()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    method: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default = "empty_object")]
    args: Value,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    dedup_window_secs: Option<u64>,
    #[serde(default)]
    run_at: Option<String>,
    #[serde(default)]
    depends_on: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

impl EnqueueBody {
    /// The job this body describes, submitted by `actor` in the request `context`.
    fn into_job(self, actor: &dartwing_core::Principal, context: &RequestContext) -> Result<NewJob, Error> {
        let run_at = self
            .run_at
            .as_deref()
            .map(|t| {
                t.parse::<Timestamp>()
                    .map_err(|e| Error::bad_request(format!("'run_at': {e}")))
            })
            .transpose()?;
        Ok(NewJob {
            method: self.method,
            organization: self.organization,
            args: self.args,
            priority: self.priority.unwrap_or_default(),
            dedup_key: self.dedup_key,
            dedup_window_secs: self.dedup_window_secs,
            run_at,
            trace_id: Some(context.trace_id().to_string()),
            submitted_by: Some(actor.id().to_string()),
            depends_on: self.depends_on,
        })
    }
}

async fn enqueue(
    State(jobs): State<Jobs>,
    Extension(context): Extension<RequestContext>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<EnqueueBody>,
) -> ApiResult<Message<Value>> {
    let job = body.into_job(&actor, &context)?;
    let enqueued = jobs.enqueue(&actor, job).await?;
    Ok(Message(serde_json::to_value(enqueued).unwrap_or(Value::Null)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBatchBody {
    jobs: Vec<EnqueueBody>,
}

async fn enqueue_batch(
    State(jobs): State<Jobs>,
    Extension(context): Extension<RequestContext>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<EnqueueBatchBody>,
) -> ApiResult<Message<Vec<Value>>> {
    let batch = body
        .jobs
        .into_iter()
        .enumerate()
        .map(|(position, job)| {
            job.into_job(&actor, &context)
                .map_err(|e| Error::bad_request(format!("jobs[{position}]: {}", e.message())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let answers = jobs.enqueue_batch(&actor, batch).await?;
    Ok(Message(
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(enqueued) => serde_json::to_value(enqueued).unwrap_or(Value::Null),
                Err(e) => json!({ "error": {
                    "status": e.kind().http_status(),
                    "exc_type": e.exc_type(),
                    "message": e.message(),
                }}),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct JobIdQuery {
    job_id: String,
}

async fn status(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(query): MethodArgs<JobIdQuery>,
) -> ApiResult<Message<crate::model::JobInfo>> {
    Ok(Message(jobs.status(&actor, &query.job_id).await?))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    organization: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(query): MethodArgs<ListQuery>,
) -> ApiResult<Message<Vec<crate::model::JobInfo>>> {
    let status = query.status.as_deref().map(str::parse::<JobStatus>).transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Message(
        jobs.list(&actor, query.organization.as_deref(), status, limit).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobIdBody {
    job_id: String,
}

async fn cancel(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<JobIdBody>,
) -> ApiResult<Message<Value>> {
    let status = jobs.cancel(&actor, &body.job_id).await?;
    Ok(Message(json!({ "job_id": body.job_id, "status": status })))
}

#[derive(Debug, Deserialize)]
struct DeadLetterQuery {
    organization: Option<String>,
    limit: Option<u32>,
}

async fn dead_letters(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(query): MethodArgs<DeadLetterQuery>,
) -> ApiResult<Message<Vec<crate::model::DeadLetter>>> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Message(
        jobs.dead_letters(&actor, query.organization.as_deref(), limit).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterBody {
    name: String,
    #[serde(default)]
    notes: Option<String>,
}

async fn retry_dead_letter(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<DeadLetterBody>,
) -> ApiResult<Message<Value>> {
    let enqueued = jobs
        .retry_dead_letter(&actor, &body.name, body.notes.as_deref())
        .await?;
    Ok(Message(serde_json::to_value(enqueued).unwrap_or(Value::Null)))
}

async fn resolve_dead_letter(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<DeadLetterBody>,
) -> ApiResult<Message<crate::model::DeadLetter>> {
    Ok(Message(
        jobs.settle_dead_letter(&actor, &body.name, DeadLetterStatus::Resolved, body.notes.as_deref())
            .await?,
    ))
}

async fn ignore_dead_letter(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<DeadLetterBody>,
) -> ApiResult<Message<crate::model::DeadLetter>> {
    Ok(Message(
        jobs.settle_dead_letter(&actor, &body.name, DeadLetterStatus::Ignored, body.notes.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct OrganizationQuery {
    organization: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationBody {
    organization: String,
}

/// A secret in an answer that no cache may keep.
fn secret_answer(secret: SigningSecret) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Message(json!({
            "organization": secret.organization,
            "secret": secret.secret,
            "created_at": secret.created_at,
        })),
    )
}

async fn webhook_secret(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(query): MethodArgs<OrganizationQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(secret_answer(jobs.webhook_secret(&actor, &query.organization).await?))
}

async fn rotate_webhook_secret(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<OrganizationBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(secret_answer(
        jobs.rotate_webhook_secret(&actor, &body.organization).await?,
    ))
}

async fn webhook_hosts(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(query): MethodArgs<OrganizationQuery>,
) -> ApiResult<Message<Value>> {
    let hosts = jobs.webhook_hosts(&actor, &query.organization).await?;
    Ok(Message(json!({ "organization": query.organization, "hosts": hosts })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookHostsBody {
    organization: String,
    hosts: Vec<String>,
}

async fn set_webhook_hosts(
    State(jobs): State<Jobs>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<WebhookHostsBody>,
) -> ApiResult<Message<Value>> {
    let hosts = jobs.set_webhook_hosts(&actor, &body.organization, &body.hosts).await?;
    Ok(Message(json!({ "organization": body.organization, "hosts": hosts })))
}
