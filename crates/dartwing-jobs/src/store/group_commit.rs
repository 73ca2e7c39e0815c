//! Group commit of enqueues: concurrent [`JobStore::enqueue`] calls on a node are handed to one
//! task that commits them together, in one transaction of [`JobStore::enqueue_set_in`]: what is
//! waiting, and while enqueues arrive concurrently whatever joins within `jobs.enqueue_linger_ms`,
//! up to `jobs.enqueue_batch_max` jobs. Every caller gets its own answer.
//!
//! Failures: a job refused on its own (at its organization's cap in `reject` mode) fails alone
//! inside the set. When the set's transaction fails, an unavailable database answers every
//! waiting caller with that error; any other failure (one job's row the database refuses) is
//! retried job by job, so only the job at fault fails. Closing ([`JobStore::close_enqueues`])
//! commits what is waiting; an enqueue after that commits alone.

use super::JobStore;
use super::enqueue::EnqueueOutcome;
use crate::model::{Enqueued, NewJob};
use dartwing_core::{Error, ErrorKind, Result};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An enqueue waiting for the next group commit.
struct Waiting {
    job: NewJob,
    answer: oneshot::Sender<EnqueueOutcome>,
}

/// The node's group-commit task, started on the first enqueue.
#[derive(Default)]
pub(super) struct GroupCommit {
    sender: OnceLock<mpsc::Sender<Waiting>>,
    task: Mutex<Option<JoinHandle<()>>>,
    closing: CancellationToken,
}

impl JobStore {
    /// Enqueues in a transaction of its own, committed together with the node's concurrent
    /// enqueues (group commit). Returns the job (or the existing duplicate) and whether its
    /// organization reached the pending cap (`warn` mode; in `reject` mode a 429 error).
    pub async fn enqueue(&self, job: &NewJob) -> Result<(Enqueued, bool)> {
        let group = &self.group_commit;
        if group.closing.is_cancelled() {
            return self.enqueue_alone(job).await;
        }
        let sender = group.sender.get_or_init(|| self.start_group_commit());
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            job: job.clone(),
            answer,
        };
        if sender.send(waiting).await.is_err() {
            // Closed meanwhile: nothing will commit it but this call.
            return self.enqueue_alone(job).await;
        }
        answered.await.unwrap_or_else(|_| {
            Err(Error::unavailable(
                "The job engine stopped before the enqueue was committed",
            ))
        })
    }

    /// Commits the enqueues waiting for the group-commit task and stops it; later enqueues commit
    /// alone. Called when the node shuts down.
    pub async fn close_enqueues(&self) {
        let group = &self.group_commit;
        group.closing.cancel();
        let task = group.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the enqueue group-commit task failed");
        }
    }

    async fn enqueue_alone(&self, job: &NewJob) -> Result<(Enqueued, bool)> {
        let mut outcomes = self.enqueue_set(&[job]).await?;
        outcomes.pop().unwrap_or_else(|| Err(Error::internal()))
    }

    fn start_group_commit(&self) -> mpsc::Sender<Waiting> {
        let most = usize::try_from(self.config.enqueue_batch_max.max(1)).unwrap_or(1);
        let linger = Duration::from_millis(self.config.enqueue_linger_ms);
        let (sender, receiver) = mpsc::channel(most * 4);
        let store = self.clone();
        let closing = self.group_commit.closing.clone();
        let task = tokio::spawn(async move { store.run_group_commit(receiver, closing, most, linger).await });
        if let Ok(mut slot) = self.group_commit.task.lock() {
            *slot = Some(task);
        }
        sender
    }

    async fn run_group_commit(
        &self,
        mut receiver: mpsc::Receiver<Waiting>,
        closing: CancellationToken,
        most: usize,
        linger: Duration,
    ) {
        // Whether enqueues arrive concurrently: only then does a group wait for more (a lone,
        // sequential enqueuer never waits).
        let mut concurrent = false;
        loop {
            let first = tokio::select! {
                biased;
                _ = closing.cancelled() => break,
                first = receiver.recv() => match first {
                    Some(first) => first,
                    None => break,
                },
            };
            let deadline = Instant::now() + linger;
            let mut group = vec![first];
            while group.len() < most {
                match receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) if linger.is_zero() || !(concurrent || group.len() > 1) => break,
                    Err(_) => tokio::select! {
                        biased;
                        _ = closing.cancelled() => break,
                        next = tokio::time::timeout_at(deadline, receiver.recv()) => match next {
                            Ok(Some(next)) => group.push(next),
                            Ok(None) | Err(_) => break,
                        },
                    },
                }
            }
            concurrent = group.len() > 1;
            self.commit_group(group).await;
        }
        // Closing: whatever was handed over before the channel closed still commits.
        receiver.close();
        let mut group = Vec::new();
        while let Some(next) = receiver.recv().await {
            group.push(next);
            if group.len() == most {
                self.commit_group(std::mem::take(&mut group)).await;
            }
        }
        if !group.is_empty() {
            self.commit_group(group).await;
        }
    }

    /// Commits one group and answers every caller in it.
    async fn commit_group(&self, group: Vec<Waiting>) {
        let jobs: Vec<&NewJob> = group.iter().map(|waiting| &waiting.job).collect();
        let outcomes = match self.enqueue_set(&jobs).await {
            Ok(outcomes) => outcomes,
            Err(e) if e.kind() == ErrorKind::Unavailable || group.len() == 1 => vec![Err(e); group.len()],
            Err(e) => {
                tracing::warn!(error = %e, jobs = group.len(), "a group commit of enqueues failed; committing them one by one");
                let mut outcomes = Vec::with_capacity(group.len());
                for job in &jobs {
                    outcomes.push(self.enqueue_alone(job).await);
                }
                outcomes
            }
        };
        for (waiting, outcome) in group.into_iter().zip(outcomes) {
            // A caller that went away (its request was dropped) needs no answer.
            let _ = waiting.answer.send(outcome);
        }
    }
}
