//! Cross-node wake-up of dispatchers on PostgreSQL. A node's own enqueues wake its dispatchers at
//! once ([`Jobs::signal`]); the other nodes hear of them through PostgreSQL `NOTIFY` on
//! `jobs.wake_channel`, so their idle workers start the jobs without waiting for their next poll
//! (`jobs.poll_interval_ms` stays as the safety net for a lost notification).
//!
//! Signals are coalesced: each queue has a flag, and one task sends one notification per flagged
//! queue whenever it is free, so a burst of enqueues costs a few notifications, never one each.
//! A worker node listens on a dedicated connection beside the pool; after the connection was lost
//! it wakes every queue (a notification may have been missed) and listens again.

use crate::Jobs;
use crate::model::Queue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest wait before listening again after the connection was lost.
const MAX_RELISTEN_DELAY: Duration = Duration::from_secs(5);

/// The queues with new due jobs that the other nodes have not been told about yet.
#[derive(Default)]
pub(crate) struct PendingWakeups {
    queues: [AtomicBool; 3],
    ready: Notify,
}

impl PendingWakeups {
    /// Marks `queue` to be announced to the other nodes.
    pub(crate) fn mark(&self, queue: Queue) {
        if !self.queues[queue as usize].swap(true, Ordering::AcqRel) {
            self.ready.notify_one();
        }
    }

    /// The marked queues, unmarked.
    fn take(&self) -> Vec<Queue> {
        Queue::ALL
            .into_iter()
            .filter(|queue| self.queues[*queue as usize].swap(false, Ordering::AcqRel))
            .collect()
    }
}

/// A notification's payload: the queue, then the node that sent it.
fn payload(queue: Queue, origin: &str) -> String {
    format!("{} {origin}", queue.as_str())
}

/// The queue of a notification another node sent; `None` for this node's own or an unreadable one.
fn queue_of(payload: &str, node_id: &str) -> Option<Queue> {
    let (queue, origin) = payload.split_once(' ')?;
    (origin != node_id).then(|| queue.parse().ok()).flatten()
}

/// Sends this node's marked queues to the other nodes until `shutdown`.
pub(crate) fn spawn_sender(jobs: Jobs, node_id: String, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let db = jobs.store().db().clone();
        let channel = jobs.store().config().wake_channel.clone();
        let pending = &jobs.inner.cluster_wakeups;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = pending.ready.notified() => {}
            }
            for queue in pending.take() {
                if let Err(error) = db.notify(&channel, &payload(queue, &node_id)).await {
                    // The other nodes find the jobs at their next poll.
                    tracing::debug!(error = %error, queue = queue.as_str(), "cannot wake the other nodes' workers");
                }
            }
        }
    })
}

/// Wakes this node's dispatchers when another node signals due jobs, until `shutdown`.
pub(crate) fn spawn_listener(jobs: Jobs, node_id: String, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let db = jobs.store().db().clone();
        let channel = jobs.store().config().wake_channel.clone();
        let mut delay = Duration::from_millis(100);
        loop {
            let listening = tokio::select! {
                _ = shutdown.cancelled() => return,
                listening = db.listen(&channel) => listening,
            };
            match listening {
                Ok(mut notifications) => {
                    delay = Duration::from_millis(100);
                    // Whatever was signalled while nobody listened.
                    Queue::ALL.into_iter().for_each(|queue| jobs.signal_here(queue));
                    loop {
                        let next = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            next = notifications.next() => next,
                        };
                        let Some(payload) = next else { break };
                        if let Some(queue) = queue_of(&payload, &node_id) {
                            jobs.signal_here(queue);
                        }
                    }
                    tracing::warn!("lost the job wake-up connection; listening again");
                }
                Err(error) => tracing::warn!(error = %error, "cannot listen for other nodes' job wake-ups; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RELISTEN_DELAY);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_coalesce_until_taken() {
        let pending = PendingWakeups::default();
        pending.mark(Queue::Bulk);
        pending.mark(Queue::Bulk);
        pending.mark(Queue::Critical);
        assert_eq!(pending.take(), vec![Queue::Critical, Queue::Bulk]);
        assert!(pending.take().is_empty());
    }

    #[test]
    fn a_node_ignores_its_own_and_unreadable_notifications() {
        let sent = payload(Queue::Default, "node-a");
        assert_eq!(queue_of(&sent, "node-b"), Some(Queue::Default));
        assert_eq!(queue_of(&sent, "node-a"), None);
        assert_eq!(queue_of("nonsense", "node-b"), None);
        assert_eq!(queue_of("nosuchqueue node-a", "node-b"), None);
    }
}
