//! Built-in job types: diagnostics (`core.noop`, `core.sleep`, `core.fail`) and signed webhook
//! delivery ([`crate::webhook`]), which members may enqueue; dead-letter purge, finished-job purge
//! and stuck-job detection, which only the runtime enqueues.

use crate::handler::HandlerRegistry;
use crate::store::JobStore;
use crate::webhook::{DestinationPolicy, Webhook, WebhookSettings};
use async_trait::async_trait;
use dartwing_core::config::JobsConfig;
use dartwing_core::jobs::{JobContext, JobError, JobHandler};
use dartwing_core::{Action, EnqueuePolicy};
use prometheus::IntCounterVec;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Registers the built-in handlers with their enqueue policies; webhooks are signed and checked
/// with `settings`, and `production` restricts them to https.
pub(crate) fn register(
    registry: &mut HandlerRegistry,
    store: &JobStore,
    settings: WebhookSettings,
    production: bool,
    purged: IntCounterVec,
    stuck_recovered: IntCounterVec,
) -> Result<(), String> {
    let config: &JobsConfig = store.config();
    let networks = config
        .webhook
        .allowed_private_networks()
        .map_err(|e| format!("invalid configuration key `jobs.webhook.allow_private`: {e}"))?;
    let webhook = Webhook::new(DestinationPolicy::new(networks, production), settings)?;
    let members = EnqueuePolicy::Members(Action::Write);
    registry
        .register_with("core.noop", members, Noop)
        .register_with("core.sleep", members, Sleep)
        .register_with("core.fail", members, Fail)
        .register_with(crate::webhook::METHOD, members, webhook)
        .register(DLQ_PURGE_JOB, DeadLetterPurge { store: store.clone() })
        .register(
            PURGE_FINISHED_JOB,
            FinishedJobPurge {
                store: store.clone(),
                purged,
            },
        )
        .register(
            STUCK_DETECTION_JOB,
            StuckDetection {
                store: store.clone(),
                recovered: stuck_recovered,
            },
        );
    Ok(())
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

/// `jobs.dlq_purge`: deletes Resolved/Ignored dead letters past retention and old cron ticks.
pub struct DeadLetterPurge {
    store: JobStore,
}

#[async_trait]
impl JobHandler for DeadLetterPurge {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let purged = self.store.purge_dead_letters().await?;
        let ticks = self.store.prune_cron_ticks().await?;
        tracing::info!(purged, cron_ticks_pruned = ticks, "dead-letter purge done");
        Ok(())
    }
}

/// `jobs.purge_finished`: deletes finished jobs older than `jobs.retention_days` in batches,
/// keeping those a dead letter refers to; counts them in `jobs_purged_total`.
pub struct FinishedJobPurge {
    store: JobStore,
    purged: IntCounterVec,
}

#[async_trait]
impl JobHandler for FinishedJobPurge {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let purged = self.store.purge_finished().await?;
        self.purged.with_label_values(&[] as &[&str]).inc_by(purged);
        tracing::info!(purged, "finished job purge done");
        Ok(())
    }
}

/// `jobs.stuck_detection`: recovers jobs whose worker died or that overran twice their timeout.
pub struct StuckDetection {
    store: JobStore,
    /// `jobs_stuck_recovered_total`.
    recovered: IntCounterVec,
}

#[async_trait]
impl JobHandler for StuckDetection {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let (retried, dead) = self.store.recover_stuck().await?;
        self.recovered.with_label_values(&["retried"]).inc_by(retried);
        self.recovered.with_label_values(&["dead_lettered"]).inc_by(dead);
        tracing::info!(retried, dead_lettered = dead, "stuck job detection done");
        Ok(())
    }
}
