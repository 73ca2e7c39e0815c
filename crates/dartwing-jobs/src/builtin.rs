//! Built-in job types: diagnostics (`core.noop`, `core.sleep`, `core.fail`) and signed webhook
//! delivery, which members may enqueue; dead-letter purge, finished-job purge and stuck-job
//! detection, which only the runtime enqueues.

use crate::handler::{HandlerRegistry, JobContext, JobError, JobHandler};
use async_trait::async_trait;
use dartwing_core::config::JobsConfig;
use dartwing_core::{Action, EnqueuePolicy};
use hmac::{Hmac, Mac};
use prometheus::IntCounterVec;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

/// Registers the built-in handlers with their enqueue policies.
pub(crate) fn register(registry: &mut HandlerRegistry, config: &JobsConfig, purged: IntCounterVec) {
    let members = EnqueuePolicy::Members(Action::Write);
    registry
        .register_with("core.noop", members, Noop)
        .register_with("core.sleep", members, Sleep)
        .register_with("core.fail", members, Fail)
        .register_with("webhook.dispatch", members, Webhook::new(config.webhook_secret.clone()))
        .register(DLQ_PURGE_JOB, DeadLetterPurge)
        .register(PURGE_FINISHED_JOB, FinishedJobPurge { purged })
        .register(STUCK_DETECTION_JOB, StuckDetection);
}

/// Job type of the daily dead-letter purge.
pub const DLQ_PURGE_JOB: &str = "jobs.dlq_purge";
/// Job type of the daily purge of finished jobs.
pub const PURGE_FINISHED_JOB: &str = "jobs.purge_finished";
/// Job type of stuck-job detection.
pub const STUCK_DETECTION_JOB: &str = "jobs.stuck_detection";

fn parse<T: for<'de> Deserialize<'de>>(method: &str, args: Value) -> Result<T, JobError> {
    serde_json::from_value(args).map_err(|e| JobError::Permanent(format!("invalid arguments for {method}: {e}")))
}

/// `core.noop` (args `{}`): does nothing; measures the engine itself.
pub struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        Ok(())
    }
}

/// `core.sleep` (args `{"ms": <milliseconds>, "progress"?: bool}`, at most one hour): waits,
/// cancellably; with `progress` it reports 50 % halfway (a `job_progress` event to the submitter).
pub struct Sleep;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepArgs {
    ms: u64,
    #[serde(default)]
    progress: bool,
}

#[async_trait]
impl JobHandler for Sleep {
    async fn run(&self, ctx: &JobContext, args: Value) -> Result<(), JobError> {
        let args: SleepArgs = parse("core.sleep", args)?;
        if args.ms > 3_600_000 {
            return Err(JobError::Permanent("core.sleep accepts at most 3600000 ms".into()));
        }
        let total = Duration::from_millis(args.ms);
        let halves = if args.progress {
            [total / 2, total - total / 2]
        } else {
            [total, Duration::ZERO]
        };
        for (index, part) in halves.into_iter().enumerate() {
            tokio::select! {
                _ = tokio::time::sleep(part) => {}
                _ = ctx.cancelled() => return Ok(()),
            }
            if args.progress && index == 0 {
                ctx.progress(50.0, "halfway").await?;
            }
        }
        Ok(())
    }
}

/// `core.fail` (args `{"message"?, "permanent"?: bool, "fail_attempts"?: n}`): fails its first
/// `fail_attempts` attempts (default: all) with a transient or permanent error, then succeeds.
/// For exercising retries, dead letters and alerts.
pub struct Fail;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailArgs {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    fail_attempts: Option<i64>,
}

#[async_trait]
impl JobHandler for Fail {
    async fn run(&self, ctx: &JobContext, args: Value) -> Result<(), JobError> {
        let args: FailArgs = parse("core.fail", args)?;
        if args.fail_attempts.is_some_and(|n| ctx.attempt > n) {
            return Ok(());
        }
        let message = args
            .message
            .unwrap_or_else(|| format!("core.fail attempt {}", ctx.attempt));
        Err(if args.permanent {
            JobError::Permanent(message)
        } else {
            JobError::Transient(message)
        })
    }
}

/// `webhook.dispatch` (args `{"url", "event", "payload"}`): POSTs `payload` as JSON with
/// `X-Dartwing-Event`, `X-Dartwing-Delivery` (the job id) and `X-Dartwing-Signature:
/// sha256=<hex HMAC-SHA256 of the body with jobs.webhook_secret>`. Timeouts, connection
/// failures, 429 and 5xx are transient; other 4xx answers are permanent.
pub struct Webhook {
    secret: Option<String>,
    client: reqwest::Client,
}

impl Webhook {
    fn new(secret: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self { secret, client }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookArgs {
    url: String,
    #[serde(default)]
    event: Option<String>,
    payload: Value,
}

/// `sha256=<hex>` signature of `body` under `secret`, as sent in `X-Dartwing-Signature`.
pub fn webhook_signature(secret: &str, body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(body);
    Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

#[async_trait]
impl JobHandler for Webhook {
    async fn run(&self, ctx: &JobContext, args: Value) -> Result<(), JobError> {
        let args: WebhookArgs = parse("webhook.dispatch", args)?;
        let secret = self
            .secret
            .as_deref()
            .ok_or_else(|| JobError::Permanent("jobs.webhook_secret is not configured".into()))?;
        let url = reqwest::Url::parse(&args.url).map_err(|_| JobError::Permanent("invalid webhook url".into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(JobError::Permanent("webhook url must be http or https".into()));
        }
        let body = serde_json::to_vec(&args.payload).map_err(|e| JobError::Permanent(e.to_string()))?;
        let signature =
            webhook_signature(secret, &body).ok_or_else(|| JobError::Permanent("unusable webhook secret".into()))?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-dartwing-event", args.event.as_deref().unwrap_or("webhook"))
            .header("x-dartwing-delivery", &ctx.job_id)
            .header("x-dartwing-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| JobError::Transient(format!("webhook delivery failed: {}", without_url(&e))))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(JobError::Transient(format!("webhook answered {status}")))
        } else {
            Err(JobError::Permanent(format!("webhook answered {status}")))
        }
    }
}

fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        "request error".into()
    }
}

/// `jobs.dlq_purge`: deletes Resolved/Ignored dead letters past retention and old cron ticks.
pub struct DeadLetterPurge;

#[async_trait]
impl JobHandler for DeadLetterPurge {
    async fn run(&self, ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let purged = ctx.store().purge_dead_letters().await?;
        let ticks = ctx.store().prune_cron_ticks().await?;
        tracing::info!(purged, cron_ticks_pruned = ticks, "dead-letter purge done");
        Ok(())
    }
}

/// `jobs.purge_finished`: deletes finished jobs older than `jobs.retention_days` in batches,
/// keeping those a dead letter refers to; counts them in `jobs_purged_total`.
pub struct FinishedJobPurge {
    purged: IntCounterVec,
}

#[async_trait]
impl JobHandler for FinishedJobPurge {
    async fn run(&self, ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let purged = ctx.store().purge_finished().await?;
        self.purged.with_label_values(&[] as &[&str]).inc_by(purged);
        tracing::info!(purged, "finished job purge done");
        Ok(())
    }
}

/// `jobs.stuck_detection`: recovers jobs whose worker died or that overran twice their timeout.
pub struct StuckDetection;

#[async_trait]
impl JobHandler for StuckDetection {
    async fn run(&self, ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let (retried, dead) = ctx.store().recover_stuck().await?;
        tracing::info!(retried, dead_lettered = dead, "stuck job detection done");
        Ok(())
    }
}
