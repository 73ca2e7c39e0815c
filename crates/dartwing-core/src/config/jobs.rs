//! `[jobs]`: background job queues and webhook delivery (SPEC §8).

use super::{ConfigErrors, Validate};
use serde::{Deserialize, Serialize};

/// What enqueue does when an organization reaches a queue's pending cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    /// Refuse with 429 "queue full".
    Reject,
    /// Accept and warn the organization's admins.
    Warn,
}

/// Who may submit jobs of a configured job type (`jobs.job_types.<name>.submit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitRule {
    /// Members and above of the job's organization (Write).
    Members,
    /// Owners and Admins of the job's organization.
    Admins,
    /// Platform administrators only.
    PlatformAdmins,
}

/// Settings of one job type (`[jobs.job_types."<name>"]`): each one given overrides what the
/// job type's queue, or its registration, says. The types are listed by
/// `dartwing_core.jobs.job_types`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobTypeConfig {
    /// What the type does, for the listing.
    pub description: Option<String>,
    /// The queue its jobs go to.
    pub queue: Option<crate::jobs::Queue>,
    /// A running job is cancelled after this long.
    pub timeout_secs: Option<u64>,
    /// Retries after the first attempt before a job is dead-lettered.
    pub retries: Option<u32>,
    /// Default window of a dedup key (and of the Frappe job API's duplicate detection).
    pub dedup_window_secs: Option<u64>,
    /// Who may submit it. A type the runtime alone enqueues stays so whatever this says.
    pub submit: Option<SubmitRule>,
}

/// Settings of one queue (SPEC §8 defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Concurrent jobs of this queue per worker process.
    pub workers: u32,
    /// A running job is cancelled after this long and follows the retry policy.
    pub timeout_secs: u64,
    /// Most pending (queued or running) jobs per organization; unset = unlimited.
    pub max_pending_per_org: Option<u32>,
    /// Most job starts per organization per minute; unset = unlimited.
    pub rate_limit_per_min: Option<u32>,
    /// Retries after the first attempt before a job is dead-lettered.
    pub retries: u32,
    /// Delay before each retry; the last value repeats if there are more retries than delays.
    pub retry_delays_secs: Vec<u64>,
    /// Job types routed to this queue; types listed nowhere go to `default`.
    pub job_types: Vec<String>,
    /// Share of this queue's worker slots on a node that one organization may hold while another
    /// organization has due jobs in the queue (a fraction in (0, 1]; at least one slot). An
    /// organization alone may use every slot. 1.0 turns the limit off.
    pub max_running_share: f64,
    /// The same limit as an absolute number of slots; overrides `max_running_share` when set.
    pub max_running_per_org: Option<u32>,
}

impl QueueConfig {
    /// Worker slots of this queue on one node that an organization may hold while another
    /// organization has due jobs in the queue: between 1 and `workers`.
    pub fn running_share_slots(&self) -> u32 {
        let slots = match self.max_running_per_org {
            Some(slots) => slots,
            // `workers` is a u32, so the product fits; the cast only drops the fraction.
            None => (f64::from(self.workers) * self.max_running_share).floor() as u32,
        };
        slots.clamp(1, self.workers.max(1))
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            timeout_secs: 300,
            max_pending_per_org: Some(500),
            rate_limit_per_min: None,
            retries: 3,
            retry_delays_secs: vec![60, 300, 900],
            job_types: Vec::new(),
            max_running_share: 0.5,
            max_running_per_org: None,
        }
    }
}

/// The three queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesConfig {
    /// Latency-sensitive jobs with their own workers.
    pub critical: QueueConfig,
    /// Everything not routed elsewhere.
    pub default: QueueConfig,
    /// Long, heavy jobs, rate limited per organization.
    pub bulk: QueueConfig,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        let types = |list: &[&str]| list.iter().map(|t| t.to_string()).collect();
        Self {
            critical: QueueConfig {
                workers: 4,
                timeout_secs: 60,
                max_pending_per_org: None,
                rate_limit_per_min: None,
                retries: 3,
                retry_delays_secs: vec![10, 30, 60],
                max_running_share: 0.5,
                max_running_per_org: None,
                job_types: types(&[
                    "fax.send",
                    "notification.send",
                    "identity.sync_session",
                    "integration.refresh_token",
                    "jobs.stuck_detection",
                ]),
            },
            default: QueueConfig {
                job_types: types(&["sync.process_delta", "webhook.dispatch", "email.send", "jobs.dlq_purge"]),
                ..QueueConfig::default()
            },
            bulk: QueueConfig {
                workers: 2,
                timeout_secs: 600,
                max_pending_per_org: Some(100),
                rate_limit_per_min: Some(50),
                retries: 2,
                retry_delays_secs: vec![300, 900],
                max_running_share: 0.5,
                max_running_per_org: None,
                job_types: types(&["import.batch", "report.generate", "export.full"]),
            },
        }
    }
}

/// Background job settings (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// The queues.
    pub queues: QueuesConfig,
    /// At an organization's pending cap: `reject` (429) or `warn` (accept and notify admins).
    pub limit_mode: LimitMode,
    /// How long a claimed job is leased to its worker; leases are renewed while it runs, and a
    /// job whose lease ran out (its worker died) is recovered.
    pub lease_secs: u64,
    /// How often idle workers look for due jobs (enqueues wake them at once: on the same node
    /// directly, on the other nodes of a PostgreSQL cluster through `wake_channel`).
    pub poll_interval_ms: u64,
    /// The PostgreSQL `NOTIFY` channel on which the nodes of a cluster wake each other's workers
    /// when jobs become due. Nodes sharing a database must use the same one.
    pub wake_channel: String,
    /// Most jobs one claim takes (claims are batched to save commits).
    pub claim_batch: u32,
    /// How long finished jobs wait to be recorded together in one commit.
    pub completion_flush_ms: u64,
    /// How often stuck-job detection runs.
    pub stuck_check_interval_secs: u64,
    /// Pending dead letters at or above this raise `dlq_alert`.
    pub dlq_alert_threshold: u32,
    /// Resolved or Ignored dead letters older than this are purged daily.
    pub dlq_retention_days: u32,
    /// Finished jobs (Completed, Failed, Canceled, Timed Out) older than this are purged daily,
    /// except those a dead letter still refers to.
    pub retention_days: u32,
    /// Default window of `dedup_key` when the enqueue gives none.
    pub dedup_window_secs: u64,
    /// Largest JSON `args` accepted, in bytes.
    pub max_args_bytes: usize,
    /// Group commit of enqueues on a node: while enqueues arrive concurrently, how long a group
    /// waits for others to join its transaction, in milliseconds (a lone, sequential enqueuer
    /// never waits); 0 commits whatever is already waiting.
    pub enqueue_linger_ms: u64,
    /// Most enqueues committed together in one group-commit transaction.
    pub enqueue_batch_max: u32,
    /// Webhook delivery (`webhook.dispatch`).
    pub webhook: WebhookConfig,
    /// Per job type settings, by job type name.
    pub job_types: std::collections::BTreeMap<String, JobTypeConfig>,
    /// Send `job_status_changed` to the job's organization room on every recorded status change.
    pub status_events: bool,
    /// Hour of the day (UTC, 0–23) at which the daily purges of dead letters and finished jobs run.
    pub purge_hour_utc: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            queues: QueuesConfig::default(),
            limit_mode: LimitMode::Reject,
            lease_secs: 30,
            poll_interval_ms: 250,
            wake_channel: "dartwing_jobs".into(),
            claim_batch: 32,
            completion_flush_ms: 5,
            stuck_check_interval_secs: 900,
            dlq_alert_threshold: 50,
            dlq_retention_days: 7,
            retention_days: 30,
            dedup_window_secs: 3600,
            max_args_bytes: 64 * 1024,
            enqueue_linger_ms: 2,
            enqueue_batch_max: 256,
            webhook: WebhookConfig::default(),
            status_events: true,
            job_types: std::collections::BTreeMap::new(),
            purge_hour_utc: 3,
        }
    }
}

/// Webhook delivery settings. Deliveries reach only public addresses; each organization signs
/// with its own secret (kept in the database, not in configuration).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Networks in CIDR notation (`10.1.2.0/24`, `127.0.0.1/32`, `fd00::/64`) that deliveries may
    /// reach although they are loopback, private, link-local or otherwise not public. Empty (the
    /// default): public addresses only.
    pub allow_private: Vec<String>,
}

impl WebhookConfig {
    /// The networks of `allow_private`; the error names the entry that is not a network.
    pub fn allowed_private_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.allow_private.iter().map(|entry| network(entry)).collect()
    }
}

/// One `allow_private` entry as a network; the error says what is wrong with it.
fn network(entry: &str) -> Result<ipnet::IpNet, String> {
    let net: ipnet::IpNet = entry
        .parse()
        .map_err(|_| format!("'{entry}' is not a network in CIDR notation such as 10.1.2.0/24"))?;
    if net.trunc() != net {
        return Err(format!("'{entry}' has host bits set; the network is {}", net.trunc()));
    }
    Ok(net)
}

impl QueueConfig {
    /// Adds the errors of this queue, found at `key` (e.g. `jobs.queues.bulk`), to `errors`.
    pub(super) fn validate_at(&self, key: &str, errors: &mut ConfigErrors) {
        errors.require(self.workers >= 1, format!("{key}.workers"), "must be at least 1");
        errors.require(
            self.timeout_secs >= 1,
            format!("{key}.timeout_secs"),
            "must be at least 1",
        );
        errors.require(
            self.retries == 0 || !self.retry_delays_secs.is_empty(),
            format!("{key}.retry_delays_secs"),
            "must list at least one delay",
        );
        errors.require(
            self.max_running_share > 0.0 && self.max_running_share <= 1.0,
            format!("{key}.max_running_share"),
            "must be a fraction greater than 0 and at most 1",
        );
        errors.require(
            self.max_running_per_org != Some(0),
            format!("{key}.max_running_per_org"),
            "must be at least 1",
        );
    }
}

impl Validate for QueuesConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        self.critical.validate_at("jobs.queues.critical", errors);
        self.default.validate_at("jobs.queues.default", errors);
        self.bulk.validate_at("jobs.queues.bulk", errors);
    }
}

impl Validate for WebhookConfig {
    /// Names every entry of `allow_private` that is not a network.
    fn validate(&self, errors: &mut ConfigErrors) {
        for entry in &self.allow_private {
            if let Err(reason) = network(entry) {
                errors.push("jobs.webhook.allow_private", reason);
            }
        }
    }
}

impl Validate for JobsConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        self.queues.validate(errors);
        for (name, job_type) in &self.job_types {
            errors.require(
                !name.trim().is_empty() && name.len() <= 140,
                "jobs.job_types",
                "job type names are 1 to 140 characters",
            );
            errors.require(
                job_type.timeout_secs != Some(0),
                format!("jobs.job_types.{name}.timeout_secs"),
                "must be at least 1",
            );
        }
        errors.require(self.lease_secs >= 2, "jobs.lease_secs", "must be at least 2");
        errors.require(
            super::is_channel_name(&self.wake_channel),
            "jobs.wake_channel",
            super::CHANNEL_NAME_RULE,
        );
        errors.require(self.claim_batch >= 1, "jobs.claim_batch", "must be at least 1");
        errors.require(
            self.purge_hour_utc < 24,
            "jobs.purge_hour_utc",
            "must be an hour of the day, 0 to 23",
        );
        errors.require(self.retention_days >= 1, "jobs.retention_days", "must be at least 1");
        errors.require(
            self.enqueue_batch_max >= 1,
            "jobs.enqueue_batch_max",
            "must be at least 1",
        );
        self.webhook.validate(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    #[test]
    fn each_unusable_jobs_value_is_reported_under_its_key() {
        assert_each_reported(
            &JobsConfig::default(),
            reported_keys,
            &[
                (|c| c.lease_secs = 1, "jobs.lease_secs"),
                (|c| c.claim_batch = 0, "jobs.claim_batch"),
                (|c| c.purge_hour_utc = 24, "jobs.purge_hour_utc"),
                (|c| c.retention_days = 0, "jobs.retention_days"),
                (|c| c.enqueue_batch_max = 0, "jobs.enqueue_batch_max"),
                (
                    |c| c.webhook.allow_private = vec!["10.1.2.0".into()],
                    "jobs.webhook.allow_private",
                ),
                (|c| c.queues.critical.workers = 0, "jobs.queues.critical.workers"),
                (
                    |c| c.queues.default.timeout_secs = 0,
                    "jobs.queues.default.timeout_secs",
                ),
                (
                    |c| c.queues.bulk.retry_delays_secs.clear(),
                    "jobs.queues.bulk.retry_delays_secs",
                ),
                (
                    |c| c.queues.bulk.max_running_share = 0.0,
                    "jobs.queues.bulk.max_running_share",
                ),
                (
                    |c| c.queues.bulk.max_running_per_org = Some(0),
                    "jobs.queues.bulk.max_running_per_org",
                ),
                (|c| c.queues.default.workers = 0, "jobs.queues.default.workers"),
            ],
        );
        let mut section = JobsConfig::default();
        section.queues.bulk.retries = 0;
        section.queues.bulk.retry_delays_secs.clear();
        assert_eq!(
            reported_keys(&section),
            Vec::<String>::new(),
            "no retries need no delays"
        );
    }

    #[test]
    fn an_organization_may_hold_half_of_a_queues_slots_by_default() {
        let queues = QueuesConfig::default();
        assert_eq!(queues.default.running_share_slots(), 4);
        assert_eq!(queues.critical.running_share_slots(), 2);
        assert_eq!(queues.bulk.running_share_slots(), 1);
        let queue = |workers, share, absolute| QueueConfig {
            workers,
            max_running_share: share,
            max_running_per_org: absolute,
            ..QueueConfig::default()
        };
        assert_eq!(queue(3, 0.5, None).running_share_slots(), 1, "rounded down");
        assert_eq!(queue(1, 0.1, None).running_share_slots(), 1, "at least one slot");
        assert_eq!(queue(8, 1.0, None).running_share_slots(), 8, "no limit");
        assert_eq!(queue(8, 0.5, Some(6)).running_share_slots(), 6, "absolute wins");
        assert_eq!(queue(8, 0.5, Some(20)).running_share_slots(), 8, "at most every slot");
        for (share, absolute, key) in [
            (0.0, None, "jobs.queues.bulk.max_running_share"),
            (1.5, None, "jobs.queues.bulk.max_running_share"),
            (f64::NAN, None, "jobs.queues.bulk.max_running_share"),
            (0.5, Some(0), "jobs.queues.bulk.max_running_per_org"),
        ] {
            let mut section = JobsConfig::default();
            section.queues.bulk = queue(2, share, absolute);
            assert_eq!(reported_keys(&section), [key], "{share} {absolute:?}");
        }
    }

    #[test]
    fn webhook_private_allowlist_takes_networks_only() {
        let mut section = JobsConfig::default();
        section.webhook.allow_private = vec!["10.1.2.0/24".into(), "127.0.0.1/32".into(), "fd00::/64".into()];
        assert_eq!(reported_keys(&section), Vec::<String>::new());
        assert_eq!(section.webhook.allowed_private_networks().map(|n| n.len()), Ok(3));
        let bad = ["10.1.2.0", "10.1.2.5/24", "localhost/8", "10.0.0.0/33", ""];
        for entry in bad {
            section.webhook.allow_private = vec![entry.into()];
            assert_eq!(reported_keys(&section), ["jobs.webhook.allow_private"], "{entry}");
            assert!(section.webhook.allowed_private_networks().is_err(), "{entry}");
        }
        // Every bad entry is named, not only the first.
        section.webhook.allow_private = ["10.1.2.0/24"].into_iter().chain(bad).map(String::from).collect();
        let mut errors = ConfigErrors::new();
        section.validate(&mut errors);
        assert_eq!(errors.len(), bad.len());
        for (error, entry) in errors.errors().iter().zip(bad) {
            assert!(error.reason.starts_with(&format!("'{entry}'")), "{error}");
        }
    }
}
