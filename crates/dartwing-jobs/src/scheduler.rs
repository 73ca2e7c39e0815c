//! The scheduler role: periodic jobs enqueued exactly once per tick across all nodes. A tick is
//! recorded in `cron_tick` in the same transaction that enqueues its job; the first node to
//! insert the (name, tick) row enqueues, every other node's insert conflicts and does nothing.

use crate::Jobs;
use crate::builtin::{DLQ_PURGE_JOB, PURGE_FINISHED_JOB, STUCK_DETECTION_JOB};
use crate::model::NewJob;
use dartwing_core::config::JobsConfig;
use dartwing_core::jobs::CronEntry;
use dartwing_core::{Principal, Timestamp};
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The built-in schedules: stuck-job detection, and the daily purges of dead letters and of
/// finished jobs at `jobs.purge_hour_utc`.
pub(crate) fn builtin_entries(config: &JobsConfig) -> Vec<CronEntry> {
    vec![
        CronEntry::every(
            STUCK_DETECTION_JOB,
            Duration::from_secs(config.stuck_check_interval_secs.max(1)),
        ),
        CronEntry::daily_at(DLQ_PURGE_JOB, config.purge_hour_utc),
        CronEntry::daily_at(PURGE_FINISHED_JOB, config.purge_hour_utc),
    ]
}

pub(crate) fn spawn(jobs: Jobs, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let scheduler = Principal::system("scheduler");
        let mut last: HashMap<String, i64> = HashMap::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        let schedules = jobs.schedules();
        tracing::info!(schedules = schedules.len(), "scheduler started");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let now = Timestamp::now().as_micros();
            for entry in &schedules {
                let tick = entry.tick_at(now);
                if last.get(&entry.name).is_some_and(|seen| *seen >= tick) {
                    continue;
                }
                match run_tick(&jobs, &scheduler, entry, tick).await {
                    Ok(enqueued) => {
                        last.insert(entry.name.clone(), tick);
                        if enqueued {
                            tracing::info!(schedule = %entry.name, tick = %Timestamp::from_micros(tick), "cron tick enqueued");
                        }
                    }
                    Err(e) => tracing::warn!(schedule = %entry.name, error = %e, "cron tick failed; retrying"),
                }
            }
        }
        tracing::info!("scheduler stopped");
    })
}

async fn run_tick(jobs: &Jobs, scheduler: &Principal, entry: &CronEntry, tick: i64) -> dartwing_core::Result<bool> {
    let store = jobs.store();
    let mut tx = store.db().begin_tx().await?;
    if !store.claim_cron_tick(&mut tx, &entry.name, tick).await? {
        return Ok(false);
    }
    let mut job = NewJob::new(entry.method.clone(), None, entry.args.clone());
    job.submitted_by = Some(format!("cron:{}", entry.name));
    let enqueued = jobs.enqueue_in(&mut tx, scheduler, job).await?;
    store.db().commit(tx).await?;
    jobs.signal(enqueued.queue);
    Ok(true)
}
