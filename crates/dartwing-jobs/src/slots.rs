//! The worker slots of one queue on one node and who holds them: the per-organization share.
//!
//! A queue has `workers` slots per node. While another organization has due jobs in the queue,
//! an organization may hold at most its *share* of them (`max_running_share`, default half, or
//! `max_running_per_org`). An organization alone may use every slot; the slots it holds beyond
//! its share are *lent*: when another organization's job becomes due, it starts at once in the
//! share owed to it, even though the node then briefly runs more than `workers` jobs of the
//! queue (at most `workers − share` more), and the lender starts nothing new until it is back
//! within its share or alone again. So no organization's long jobs make another wait for one of
//! them to finish, and nobody preempts a running job.

use crate::model::org_key;
use crate::store::ClaimedJob;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The slots of one queue on this node.
pub(crate) struct Slots {
    workers: usize,
    share: usize,
    held: Mutex<HashMap<String, usize>>,
    freed: Notify,
}

/// What the slots allow at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotView {
    /// Slots nobody holds.
    pub(crate) free: usize,
    /// Jobs that organizations below their share may still start: the free slots plus those
    /// lent to organizations over their share.
    pub(crate) owed: usize,
    /// Organizations (stored keys) holding their share or more, sorted.
    pub(crate) at_share: Vec<String>,
    held: HashMap<String, usize>,
    share: usize,
}

/// Jobs of a claimed batch to start, and jobs to give back to the queue.
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// Within the limits: start them.
    pub(crate) start: Vec<ClaimedJob>,
    /// Beyond them: give them back to the queue untouched.
    pub(crate) give_back: Vec<ClaimedJob>,
}

impl SlotView {
    /// Splits a batch claimed in fair order: each organization starts jobs up to its share (while
    /// slots are owed); beyond its share only when `alone` (no other organization has due jobs)
    /// and only into free slots. The rest goes back.
    pub(crate) fn split(&self, claimed: Vec<ClaimedJob>, alone: bool) -> Split {
        let mut held = self.held.clone();
        let (mut free, mut owed) = (self.free, self.owed);
        let mut split = Split::default();
        for job in claimed {
            let count = held
                .entry(org_key(job.organization.as_deref()).to_string())
                .or_default();
            if *count < self.share && owed > 0 {
                owed -= 1;
            } else if alone && free > 0 {
                // Borrowing changes nothing of what others are owed.
            } else {
                split.give_back.push(job);
                continue;
            }
            free = free.saturating_sub(1);
            *count += 1;
            split.start.push(job);
        }
        split
    }
}

/// Releases a slot when the job holding it ends (dropped with its task, even on panic).
pub(crate) struct SlotGuard {
    slots: Arc<Slots>,
    org_key: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(count) = held.get_mut(&self.org_key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.org_key);
            }
        }
        drop(held);
        self.slots.freed.notify_one();
    }
}

impl Slots {
    /// `workers` slots of which one organization may hold `share` (1..=workers) while others wait.
    pub(crate) fn new(workers: usize, share: usize) -> Self {
        Self {
            workers,
            share: share.clamp(1, workers.max(1)),
            held: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // The map holds plain counts, each change complete: a panic elsewhere cannot leave it torn.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slots now.
    pub(crate) fn view(&self) -> SlotView {
        let held = self.lock().clone();
        let total: usize = held.values().sum();
        let within_share: usize = held.values().map(|n| (*n).min(self.share)).sum();
        let mut at_share: Vec<String> = held
            .iter()
            .filter(|(_, n)| **n >= self.share)
            .map(|(key, _)| key.clone())
            .collect();
        at_share.sort_unstable();
        SlotView {
            free: self.workers.saturating_sub(total),
            owed: self.workers.saturating_sub(within_share),
            at_share,
            held,
            share: self.share,
        }
    }

    /// Takes a slot for a job of `organization` until the guard drops.
    pub(crate) fn take(self: &Arc<Self>, organization: Option<&str>) -> SlotGuard {
        let key = org_key(organization).to_string();
        *self.lock().entry(key.clone()).or_default() += 1;
        SlotGuard {
            slots: self.clone(),
            org_key: key,
        }
    }

    /// Jobs running now.
    pub(crate) fn running(&self) -> usize {
        self.lock().values().sum()
    }

    /// Resolves when a slot is released (or was released since the last call).
    pub(crate) async fn freed(&self) {
        self.freed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Queue;
    use serde_json::Value;
    use std::time::Duration;

    fn job(id: &str, org: &str) -> ClaimedJob {
        ClaimedJob {
            id: id.into(),
            queue: Queue::Default,
            method: "core.sleep".into(),
            organization: Some(org.into()),
            args: Value::Null,
            attempt: 1,
            max_attempts: 4,
            timeout: Duration::from_secs(1),
            trace_id: None,
            submitted_by: None,
            enqueued_at_us: 0,
        }
    }

    fn ids(jobs: &[ClaimedJob]) -> Vec<&str> {
        jobs.iter().map(|j| j.id.as_str()).collect()
    }

    #[test]
    fn an_organization_alone_uses_every_slot_and_lends_those_beyond_its_share() {
        let slots = Arc::new(Slots::new(8, 4));
        let view = slots.view();
        assert_eq!((view.free, view.owed), (8, 8));
        let batch: Vec<ClaimedJob> = (0..10).map(|i| job(&format!("a{i}"), "A")).collect();
        let split = view.split(batch, true);
        assert_eq!(split.start.len(), 8, "alone: every slot");
        assert_eq!(ids(&split.give_back), ["a8", "a9"]);
        let guards: Vec<SlotGuard> = split
            .start
            .iter()
            .map(|j| slots.take(j.organization.as_deref()))
            .collect();
        let view = slots.view();
        assert_eq!(
            (view.free, view.owed, view.at_share.clone()),
            (0, 4, vec!["A".to_string()])
        );
        // B's job starts at once in the share owed to it, though every slot is taken.
        let split = view.split(vec![job("b0", "B"), job("b1", "B")], false);
        assert_eq!(ids(&split.start), ["b0", "b1"]);
        let b = slots.take(Some("B"));
        assert_eq!(slots.running(), 9);
        // A, over its share, gets nothing more while B waits, even when a slot frees.
        drop(guards);
        let view = slots.view();
        assert_eq!(view.at_share, Vec::<String>::new());
        let split = view.split(vec![job("a10", "A"); 6], false);
        assert_eq!(split.start.len(), 4, "A back to its share");
        assert_eq!(split.give_back.len(), 2);
        drop(b);
        assert_eq!(slots.running(), 0);
    }

    #[test]
    fn organizations_at_their_share_wait_for_each_other() {
        let slots = Arc::new(Slots::new(8, 4));
        let _a: Vec<SlotGuard> = (0..4).map(|_| slots.take(Some("A"))).collect();
        let _b: Vec<SlotGuard> = (0..4).map(|_| slots.take(Some("B"))).collect();
        let view = slots.view();
        assert_eq!((view.free, view.owed), (0, 0));
        assert!(view.split(vec![job("c", "C"), job("a", "A")], false).start.is_empty());
        // With a smaller share, free slots are not lent while two organizations want them.
        let slots = Arc::new(Slots::new(8, 2));
        let _a: Vec<SlotGuard> = (0..2).map(|_| slots.take(Some("A"))).collect();
        let view = slots.view();
        let split = view.split(
            vec![job("a", "A"), job("b0", "B"), job("b1", "B"), job("b2", "B")],
            false,
        );
        assert_eq!(ids(&split.start), ["b0", "b1"]);
        assert_eq!(ids(&split.give_back), ["a", "b2"]);
    }

    #[test]
    fn a_share_of_every_slot_is_the_plain_worker_count() {
        let slots = Arc::new(Slots::new(4, 4));
        let view = slots.view();
        let split = view.split((0..6).map(|i| job(&format!("a{i}"), "A")).collect(), false);
        assert_eq!(split.start.len(), 4);
        let _held: Vec<SlotGuard> = split
            .start
            .iter()
            .map(|j| slots.take(j.organization.as_deref()))
            .collect();
        let view = slots.view();
        assert_eq!((view.free, view.owed), (0, 0), "nothing is ever lent");
    }
}
