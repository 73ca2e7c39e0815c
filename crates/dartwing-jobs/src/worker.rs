//! The worker role: per queue, a dispatcher claims due jobs in fair order (in batches, to save
//! commits) and runs each on a task within the queue's worker slots — each organization within
//! its share of them while others wait (see [`crate::slots`]) — and timeout. Successes are
//! recorded together every few milliseconds; leases are renewed while jobs run.

use crate::Jobs;
use crate::events::JobRef;
use crate::handler::AttemptControl;
use crate::heartbeat::WorkerHeartbeats;
use crate::model::{JobStatus, Queue};
use crate::slots::{Slots, Split};
use crate::store::{ClaimedJob, FailureKind, FailureOutcome};
use dartwing_core::jobs::{JobContext, JobError};
use dartwing_core::permission::{Membership, PrincipalKind};
use dartwing_core::tenancy::{MemberRole, MemberStatus, OrgStatus};
use dartwing_core::{Principal, Witness};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

type Running = Arc<Mutex<HashMap<String, CancellationToken>>>;

/// Starts the workers of this node.
pub(crate) fn spawn(
    jobs: Jobs,
    node_id: &str,
    heartbeats: WorkerHeartbeats,
    shutdown: CancellationToken,
    grace: Duration,
) -> JoinHandle<()> {
    let worker_id = format!("{node_id}/{}", dartwing_core::ids::random_hex(4));
    tokio::spawn(async move {
        if let Err(e) = heartbeats.clear_node().await {
            tracing::warn!(error = %e, "clearing heartbeats of this node's previous run failed");
        }
        if let Err(e) = jobs.reconcile_paused_organizations().await {
            tracing::warn!(error = %e, "cannot reconcile the paused organizations; keeping the last record");
        }
        let running: Running = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Success>();
        let stop_claiming = shutdown.child_token();
        let mut tasks = Vec::new();
        let mut all_slots = Vec::new();
        for queue in Queue::ALL {
            let config = jobs.store().queue_config(queue);
            let slots = Arc::new(Slots::new(
                config.workers as usize,
                config.running_share_slots() as usize,
            ));
            all_slots.push(slots.clone());
            let dispatcher = Dispatcher {
                jobs: jobs.clone(),
                queue,
                worker_id: worker_id.clone(),
                slots,
                running: running.clone(),
                done: done_tx.clone(),
                below_share_idle: None,
                contended: false,
            };
            tasks.push(tokio::spawn(dispatcher.run(stop_claiming.clone())));
        }
        drop(done_tx);
        let flusher = tokio::spawn(flush_completions(jobs.clone(), worker_id.clone(), done_rx));
        let upkeep = tokio::spawn(upkeep(
            jobs.clone(),
            worker_id.clone(),
            heartbeats.clone(),
            running.clone(),
            shutdown.clone(),
        ));
        tracing::info!(worker = %worker_id, "workers started");

        shutdown.cancelled().await;
        for task in tasks {
            let _ = task.await;
        }
        // Let running jobs finish within the grace period, then release the rest.
        let deadline = tokio::time::Instant::now() + grace;
        for slots in &all_slots {
            while slots.running() > 0 {
                if tokio::time::timeout_at(deadline, slots.freed()).await.is_err() {
                    break;
                }
            }
        }
        let unfinished: Vec<String> = running.lock().map(|r| r.keys().cloned().collect()).unwrap_or_default();
        if !unfinished.is_empty() {
            tracing::warn!(jobs = unfinished.len(), "shutdown grace over; releasing running jobs");
            if let Ok(map) = running.lock() {
                map.values().for_each(CancellationToken::cancel);
            }
            if let Err(e) = jobs.store().release(&worker_id).await {
                tracing::error!(error = %e, "releasing jobs at shutdown failed; they are recovered when their lease expires");
            }
        }
        let _ = flusher.await;
        let _ = upkeep.await;
        for queue in Queue::ALL {
            let _ = heartbeats.remove(&format!("{worker_id}:{queue}")).await;
        }
        tracing::info!(worker = %worker_id, "workers stopped");
    })
}

/// Claims and starts the jobs of one queue on this node, within its slots and each
/// organization's share of them (see [`crate::slots`]).
struct Dispatcher {
    jobs: Jobs,
    queue: Queue,
    worker_id: String,
    slots: Arc<Slots>,
    running: Running,
    done: mpsc::UnboundedSender<Success>,
    /// Set when a claim for the organizations below their share found nothing more: which
    /// organizations were at their share, the enqueue signal count and when. Until an enqueue,
    /// the poll interval or one of those organizations dropping below its share, the ones at
    /// their share are alone with due jobs and may borrow free slots without another look.
    below_share_idle: Option<(Vec<String>, u64, Instant)>,
    /// Two or more organizations at their share want the free slots: none may borrow them until
    /// something changes.
    contended: bool,
}

/// What one dispatch round did.
enum Round {
    /// Started jobs: look again at once.
    Started,
    /// Nothing to start now: wait for a slot, an enqueue or the poll interval.
    Idle,
}

impl Dispatcher {
    async fn run(mut self, stop: CancellationToken) {
        let poll = Duration::from_millis(self.jobs.store().config().poll_interval_ms);
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.round().await {
                Ok(Round::Started) => continue,
                Ok(Round::Idle) => {}
                Err(e) => tracing::warn!(queue = self.queue.as_str(), error = %e, "claiming jobs failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.slots.freed() => {}
                _ = self.jobs.wake(self.queue).notified() => self.below_share_idle = None,
                _ = tokio::time::sleep(poll) => self.below_share_idle = None,
            }
            self.contended = false;
        }
    }

    /// Whether the last look for organizations below their share still holds.
    fn below_share_known_idle(&self, at_share: &[String]) -> bool {
        let poll = Duration::from_millis(self.jobs.store().config().poll_interval_ms);
        self.below_share_idle
            .as_ref()
            .is_some_and(|(then_at_share, signals, at)| {
                *signals == self.jobs.signals(self.queue)
                    && at.elapsed() < poll
                    && then_at_share.iter().all(|key| at_share.contains(key))
            })
    }

    async fn round(&mut self) -> dartwing_core::Result<Round> {
        let batch = self.jobs.store().config().claim_batch as usize;
        let mut started = false;
        // Organizations below their share first, in fair order: the free slots and the slots lent
        // to organizations over their share are theirs. Those at their share are skipped; a batch
        // holding a single organization while nobody is at a share means it is alone.
        let view = self.slots.view();
        if view.owed > 0 && !self.below_share_known_idle(&view.at_share) {
            let limit = view.owed.min(batch);
            let signals = self.jobs.signals(self.queue);
            let claimed = self
                .jobs
                .store()
                .claim_except(self.queue, &self.worker_id, limit as u32, &view.at_share)
                .await?;
            let short = claimed.len() < limit;
            let alone = view.at_share.is_empty() && organizations(&claimed) <= 1;
            let split = view.split(claimed, alone);
            if short && split.give_back.is_empty() {
                self.below_share_idle = Some((view.at_share.clone(), signals, Instant::now()));
            }
            started |= self.start(split).await?;
        }
        // Free slots nobody below their share wants: lent to the organization at its share that
        // has due jobs, when it is the only one.
        let view = self.slots.view();
        if view.free > 0 && !view.at_share.is_empty() && !self.contended && self.below_share_known_idle(&view.at_share)
        {
            let claimed = self
                .jobs
                .store()
                .claim(self.queue, &self.worker_id, view.free.min(batch) as u32)
                .await?;
            let alone = organizations(&claimed) <= 1;
            self.contended = !alone;
            started |= self.start(view.split(claimed, alone)).await?;
        }
        Ok(if started { Round::Started } else { Round::Idle })
    }

    /// Gives back what the split refused and runs the rest, each job holding a slot.
    async fn start(&self, split: Split) -> dartwing_core::Result<bool> {
        if !split.give_back.is_empty() {
            self.jobs.store().unclaim(&self.worker_id, &split.give_back).await?;
        }
        let started = !split.start.is_empty();
        for job in split.start {
            let slot = self.slots.take(job.organization.as_deref());
            let jobs = self.jobs.clone();
            let worker_id = self.worker_id.clone();
            let running = self.running.clone();
            let done = self.done.clone();
            tokio::spawn(async move {
                run(jobs, job, &worker_id, running, done).await;
                drop(slot);
            });
        }
        Ok(started)
    }
}

/// How many organizations have jobs in `jobs`.
fn organizations(jobs: &[ClaimedJob]) -> usize {
    jobs.iter()
        .map(|j| j.organization.as_deref())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

fn principal_for(job: &ClaimedJob) -> Principal {
    match &job.organization {
        Some(org) => Principal {
            kind: PrincipalKind::Service {
                api_key: format!("job:{}", job.id),
                organization: Some(org.clone()),
            },
            system_admin: false,
            memberships: vec![Membership {
                organization: org.clone(),
                role: MemberRole::Member,
                status: MemberStatus::Active,
                org_status: OrgStatus::Active,
            }],
            witness: Witness::default(),
        },
        None => Principal::system(&format!("job:{}", job.id)),
    }
}

/// A successful attempt waiting to be recorded, with what its event needs.
struct Success {
    id: String,
    method: String,
    organization: Option<String>,
    submitted_by: Option<String>,
    trace_id: Option<String>,
    output_reference: Option<String>,
}

impl Success {
    fn of(job: &ClaimedJob, output_reference: Option<String>) -> Self {
        Self {
            id: job.id.clone(),
            method: job.method.clone(),
            organization: job.organization.clone(),
            submitted_by: job.submitted_by.clone(),
            trace_id: job.trace_id.clone(),
            output_reference,
        }
    }

    fn job(&self) -> JobRef<'_> {
        JobRef {
            id: &self.id,
            method: &self.method,
            organization: self.organization.as_deref(),
            submitted_by: self.submitted_by.as_deref(),
            trace_id: self.trace_id.as_deref(),
        }
    }
}

fn job_ref(job: &ClaimedJob) -> JobRef<'_> {
    JobRef {
        id: &job.id,
        method: &job.method,
        organization: job.organization.as_deref(),
        submitted_by: job.submitted_by.as_deref(),
        trace_id: job.trace_id.as_deref(),
    }
}

enum Outcome {
    Completed,
    Failed(JobError),
    TimedOut,
    Canceled,
}

async fn run(jobs: Jobs, job: ClaimedJob, worker_id: &str, running: Running, done: mpsc::UnboundedSender<Success>) {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        method = %job.method,
        queue = job.queue.as_str(),
        organization = job.organization.as_deref().unwrap_or(""),
        trace_id = job.trace_id.as_deref().unwrap_or(""),
        attempt = job.attempt,
    );
    async move {
        let cancel = CancellationToken::new();
        if let Ok(mut map) = running.lock() {
            map.insert(job.id.clone(), cancel.clone());
        }
        let events = &jobs.inner.events;
        events.status_changed(job_ref(&job), Some(JobStatus::Queued), JobStatus::Running, None);
        let control = Arc::new(AttemptControl {
            job_id: job.id.clone(),
            method: job.method.clone(),
            organization: job.organization.clone(),
            trace_id: job.trace_id.clone(),
            cancel: cancel.clone(),
            submitted_by: job.submitted_by.clone(),
            store: jobs.store().clone(),
            events: events.clone(),
            output: std::sync::Mutex::new(None),
        });
        let ctx = JobContext {
            job_id: job.id.clone(),
            method: job.method.clone(),
            organization: job.organization.clone(),
            principal: principal_for(&job),
            attempt: job.attempt,
            trace_id: job.trace_id.clone(),
            control: control.clone(),
        };
        let started = Instant::now();
        let outcome = match jobs.handler(&job.method) {
            None => Outcome::Failed(JobError::Permanent(format!(
                "No handler for job type '{}' on this node",
                job.method
            ))),
            Some(handler) => tokio::select! {
                biased;
                _ = cancel.cancelled() => Outcome::Canceled,
                result = tokio::time::timeout(job.timeout, handler.run(&ctx, job.args.clone())) => match result {
                    // A cooperative handler may return as soon as it sees the cancellation.
                    Ok(_) if cancel.is_cancelled() => Outcome::Canceled,
                    Ok(Ok(())) => Outcome::Completed,
                    Ok(Err(error)) => Outcome::Failed(error),
                    Err(_) => Outcome::TimedOut,
                },
            },
        };
        if let Ok(mut map) = running.lock() {
            map.remove(&job.id);
        }
        let m = &jobs.inner.metrics;
        m.duration
            .with_label_values(&[job.queue.as_str(), &job.method])
            .observe(started.elapsed().as_secs_f64());
        let org = m.org(job.organization.as_deref());
        let final_status = |status: JobStatus| {
            m.completed
                .with_label_values(&[job.queue.as_str(), &job.method, &org, status.as_str()])
                .inc();
        };
        let (kind, reason) = match outcome {
            Outcome::Completed => {
                if done.send(Success::of(&job, control.recorded_output())).is_ok() {
                    final_status(JobStatus::Completed);
                }
                tracing::debug!(duration_ms = started.elapsed().as_millis() as u64, "job completed");
                return;
            }
            Outcome::Canceled => {
                match jobs.store().mark_canceled(&job.id, worker_id).await {
                    Ok(()) => {
                        final_status(JobStatus::Canceled);
                        events.status_changed(job_ref(&job), Some(JobStatus::Running), JobStatus::Canceled, None);
                    }
                    Err(e) => tracing::error!(error = %e, "recording a cancellation failed"),
                }
                tracing::info!("job cancelled");
                return;
            }
            Outcome::TimedOut => (
                FailureKind::TimedOut,
                format!("timed out after {} s", job.timeout.as_secs()),
            ),
            Outcome::Failed(JobError::Transient(reason)) => (FailureKind::Transient, reason),
            Outcome::Failed(JobError::Permanent(reason)) => (FailureKind::Permanent, reason),
        };
        match jobs.store().fail(&job, worker_id, kind, &reason).await {
            Ok(FailureOutcome::Retried) => {
                m.retried.with_label_values(&[job.queue.as_str(), &job.method]).inc();
                events.status_changed(job_ref(&job), Some(JobStatus::Running), JobStatus::Pending, None);
                tracing::warn!(error_type = ?kind, error = %reason, "job attempt failed; retry scheduled");
            }
            Ok(FailureOutcome::DeadLettered(status)) => {
                final_status(status);
                events.status_changed(job_ref(&job), Some(JobStatus::Running), status, None);
                tracing::error!(error_type = ?kind, error = %reason, "job failed; moved to the dead-letter queue");
                jobs.check_dlq_alert(job.trace_id.as_deref()).await;
            }
            Ok(FailureOutcome::Lost) => tracing::warn!("job was recovered elsewhere before its failure was recorded"),
            Err(e) => {
                tracing::error!(error = %e, "recording a job failure failed; the lease will expire and recover it")
            }
        }
    }
    .instrument(span)
    .await
}

/// Records successes in batches: whatever finished within `completion_flush_ms` commits together.
async fn flush_completions(jobs: Jobs, worker_id: String, mut done: mpsc::UnboundedReceiver<Success>) {
    let window = Duration::from_millis(jobs.store().config().completion_flush_ms);
    let mut batch = Vec::new();
    while let Some(first) = done.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < 512 {
            match tokio::time::timeout_at(deadline, done.recv()).await {
                Ok(Some(success)) => batch.push(success),
                _ => break,
            }
        }
        let ids: Vec<String> = batch.iter().map(|success| success.id.clone()).collect();
        let mut attempt = 0;
        loop {
            match jobs.store().complete_many(&worker_id, &ids).await {
                Ok(_) => {
                    for success in &batch {
                        jobs.inner.events.status_changed(
                            success.job(),
                            Some(JobStatus::Running),
                            JobStatus::Completed,
                            success.output_reference.as_deref(),
                        );
                    }
                    break;
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, jobs = batch.len(), "recording completions failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "recording completions failed; the jobs will run again after their lease expires");
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// Lease renewal, cancellation requests, promotion of due jobs and heartbeats.
async fn upkeep(
    jobs: Jobs,
    worker_id: String,
    heartbeats: WorkerHeartbeats,
    running: Running,
    shutdown: CancellationToken,
) {
    let config = jobs.store().config().clone();
    let lease_every = Duration::from_secs((config.lease_secs / 3).max(1));
    let mut last_lease = Instant::now();
    let mut last_beat: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(config.poll_interval_ms.clamp(50, 1000)));
    let mut last_cancel_check = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = jobs.settle_dependents().await {
            tracing::warn!(error = %e, "settling jobs that wait for a parent failed");
        }
        match jobs.store().promote_due().await {
            Ok(0) => {}
            Ok(_) => Queue::ALL.iter().for_each(|q| jobs.signal(*q)),
            Err(e) => tracing::warn!(error = %e, "promoting due jobs failed"),
        }
        if last_lease.elapsed() >= lease_every {
            last_lease = Instant::now();
            if let Err(e) = jobs.store().renew_leases(&worker_id).await {
                tracing::warn!(error = %e, "renewing job leases failed");
            }
        }
        let busy = running.lock().map(|r| !r.is_empty()).unwrap_or(false);
        if busy && last_cancel_check.elapsed() >= Duration::from_secs(1) {
            last_cancel_check = Instant::now();
            if let Ok(ids) = jobs.store().cancel_requests(&worker_id).await
                && let Ok(map) = running.lock()
            {
                for id in ids {
                    if let Some(token) = map.get(&id) {
                        token.cancel();
                    }
                }
            }
        }
        if last_beat.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            last_beat = Some(Instant::now());
            for queue in Queue::ALL {
                if let Err(e) = heartbeats.beat(&format!("{worker_id}:{queue}"), queue.as_str()).await {
                    tracing::warn!(error = %e, "worker heartbeat failed");
                }
            }
        }
    }
}
