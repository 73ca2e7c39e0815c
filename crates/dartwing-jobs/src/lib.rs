//! Background job isolation (SPEC §8): durable queues `critical`, `default` and `bulk` in the SQL
//! database, fair dispatch across organizations, per-organization caps and rate limits, leases
//! and heartbeats, retries with back-off, the dead-letter queue, stuck-job recovery and cron.
//!
//! Guarantees: a job runs at least once; a job whose worker dies is run again after its lease
//! expires; cron ticks are enqueued exactly once across nodes. See `docs/jobs.md`.

pub mod builtin;
mod events;
pub mod frappe_api;
mod handler;
pub mod heartbeat;
pub mod model;
mod organizations;
pub mod routes;
mod scheduler;
mod slots;
mod store;
mod wakeups;
pub mod webhook;
mod worker;

/// The tables of this capability, for both backends.
pub static MIGRATIONS: dartwing_db::Migrations = dartwing_db::migrations!("jobs");

pub use dartwing_core::jobs::{CronEntry, Enqueuer, JobContext, JobError, JobHandler, JobType};
pub use store::{
    CanceledDependent, ClaimedJob, EnqueueOutcome, FailureKind, FailureOutcome, Heartbeat, JobMetricsRows, JobStore,
    TypeSettings,
};

pub use crate::handler::HandlerRegistry;
use crate::heartbeat::WorkerHeartbeats;
use crate::model::{DeadLetter, DeadLetterStatus, Enqueued, JobInfo, JobStatus, JobTypeInfo, NewJob, Queue};
use crate::webhook::WebhookSettings;
use dartwing_core::access::{AccessChanges, SharedDirectory};
use dartwing_core::config::{JobsConfig, Role, SubmitRule};
use dartwing_core::publish::{SharedPublisher, Target};
use dartwing_core::{Action, EnqueuePolicy, Error, Principal, Result, Timestamp};
use dartwing_db::Db;
use dartwing_http::{BackgroundTask, Capability};
use dartwing_observe::Metrics;
use dartwing_observe::catalog;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Job metrics (SPEC §8).
#[derive(Clone)]
pub(crate) struct JobMetrics {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) enqueued: IntCounterVec,
    pub(crate) completed: IntCounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) queue_depth: IntGaugeVec,
    pub(crate) dlq_depth: IntGaugeVec,
    pub(crate) org_job_count: IntGaugeVec,
    pub(crate) retried: IntCounterVec,
    pub(crate) purged: IntCounterVec,
    pub(crate) stuck_recovered: IntCounterVec,
    pub(crate) workers_alive: IntGaugeVec,
}

impl JobMetrics {
    fn new(metrics: Arc<Metrics>) -> Result<Self> {
        let fail = |e: dartwing_observe::metrics::RegistrationError| {
            tracing::error!(error = %e, "job metrics registration failed");
            Error::internal()
        };
        let stuck_recovered = metrics.counter(&catalog::JOBS_STUCK_RECOVERED_TOTAL).map_err(fail)?;
        for outcome in ["retried", "dead_lettered"] {
            stuck_recovered.with_label_values(&[outcome]);
        }
        Ok(Self {
            enqueued: metrics.counter(&catalog::JOBS_ENQUEUED_TOTAL).map_err(fail)?,
            completed: metrics.counter(&catalog::JOBS_COMPLETED_TOTAL).map_err(fail)?,
            duration: metrics.histogram(&catalog::JOBS_DURATION_SECONDS).map_err(fail)?,
            queue_depth: metrics.gauge(&catalog::QUEUE_DEPTH).map_err(fail)?,
            dlq_depth: metrics.gauge(&catalog::DLQ_DEPTH).map_err(fail)?,
            org_job_count: metrics.gauge(&catalog::ORG_JOB_COUNT).map_err(fail)?,
            retried: metrics.counter(&catalog::JOBS_RETRIED_TOTAL).map_err(fail)?,
            purged: metrics.counter(&catalog::JOBS_PURGED_TOTAL).map_err(fail)?,
            stuck_recovered,
            workers_alive: metrics.gauge(&catalog::JOB_WORKERS_ALIVE).map_err(fail)?,
            metrics,
        })
    }

    pub(crate) fn org(&self, organization: Option<&str>) -> String {
        self.metrics.org_label(organization.unwrap_or("")).into_owned()
    }
}

pub(crate) struct Inner {
    pub(crate) store: JobStore,
    /// Each organization's webhook signing secret and allowed hosts.
    pub(crate) webhook_settings: WebhookSettings,
    /// Job types by name: the built-ins, then each capability's, installed while the node is
    /// assembled (before any role starts).
    pub(crate) registry: RwLock<HandlerRegistry>,
    pub(crate) publisher: SharedPublisher,
    /// `job_status_changed` and `job_progress`.
    pub(crate) events: events::JobEvents,
    pub(crate) directory: SharedDirectory,
    /// Organization changes and reconciliations, applied in order by one task
    /// ([`organizations::follow`]).
    pub(crate) organization_changes: tokio::sync::mpsc::UnboundedSender<organizations::OrganizationWork>,
    pub(crate) metrics: JobMetrics,
    pub(crate) wake: [Notify; 3],
    /// Per queue, how many times new due jobs were signalled on this node.
    pub(crate) signals: [AtomicU64; 3],
    /// Queues whose new due jobs the other nodes of the cluster are yet to hear of.
    pub(crate) cluster_wakeups: wakeups::PendingWakeups,
    /// Periodic jobs: the built-ins, then each capability's.
    pub(crate) cron: RwLock<Vec<CronEntry>>,
    /// How old a worker heartbeat may be (`observability.worker_heartbeat_timeout_secs`), once
    /// the node's capability is built.
    pub(crate) heartbeat_timeout: std::sync::OnceLock<std::time::Duration>,
}

/// How the node runs its part of the job engine.
#[derive(Debug, Clone)]
pub struct WorkerNode {
    /// The node's id (workers are `<node_id>/<random>`).
    pub node_id: String,
    /// A worker whose heartbeat is older counts as dead (`observability.worker_heartbeat_timeout_secs`).
    pub heartbeat_timeout: std::time::Duration,
    /// On shutdown, how long running jobs may take to finish before they are released.
    pub grace: std::time::Duration,
    /// Whether to sample the job gauges (`observability.metrics_enabled`).
    pub sample_metrics: bool,
}

/// What the job engine needs from the node.
pub struct JobsDeps {
    /// The database.
    pub db: Db,
    /// The `jobs` configuration section.
    pub config: JobsConfig,
    /// Production mode (webhooks over https only).
    pub production: bool,
    /// Where `job_progress`, `job_limit_warning` and `dlq_alert` go.
    pub publisher: SharedPublisher,
    /// What organizations are (their administrators, which are suspended).
    pub directory: SharedDirectory,
    /// The node's access-change hub: organization suspensions pause their jobs.
    pub access: AccessChanges,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
}

/// The job system of a node: enqueue and query (every call checked by the permission module),
/// and the worker and scheduler roles.
#[derive(Clone)]
pub struct Jobs {
    pub(crate) inner: Arc<Inner>,
}

/// Longest dedup key.
const MAX_DEDUP_KEY: usize = 140;

/// Most jobs one `jobs.enqueue_batch` request may carry.
pub const MAX_ENQUEUE_BATCH: usize = 1000;

impl Jobs {
    /// The job engine with its built-in job types. Capabilities add theirs with
    /// [`Jobs::install`]. Suspending an organization (an access change) pauses its jobs.
    pub fn new(deps: JobsDeps) -> Result<Self> {
        let JobsDeps {
            db,
            config,
            production,
            publisher,
            directory,
            access,
            metrics,
        } = deps;
        let metrics = JobMetrics::new(metrics)?;
        let cron = scheduler::builtin_entries(&config);
        let webhook_settings = WebhookSettings::new(db.clone(), directory.clone())?;
        let events = events::JobEvents::new(publisher.clone(), config.status_events);
        let store = JobStore::new(db, Arc::new(config))?;
        let mut registry = HandlerRegistry::default();
        builtin::register(
            &mut registry,
            &store,
            webhook_settings.clone(),
            production,
            metrics.purged.clone(),
            metrics.stuck_recovered.clone(),
        )
        .map_err(|e| Error::new(dartwing_core::ErrorKind::Internal, e))?;
        let organization_changes =
            organizations::follow(&access, store.clone(), webhook_settings.clone(), directory.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                webhook_settings,
                registry: RwLock::new(registry),
                publisher,
                events,
                directory,
                organization_changes,
                metrics,
                wake: [Notify::new(), Notify::new(), Notify::new()],
                signals: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
                cluster_wakeups: wakeups::PendingWakeups::default(),
                cron: RwLock::new(cron),
                heartbeat_timeout: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Adds a capability's job types and periodic jobs (while the node is assembled).
    pub fn install(&self, job_types: Vec<JobType>, schedules: Vec<CronEntry>) {
        if let Ok(mut registry) = self.inner.registry.write() {
            for job_type in job_types {
                registry.add(job_type);
            }
        }
        if let Ok(mut cron) = self.inner.cron.write() {
            cron.extend(schedules);
        }
    }

    /// The handler of `method`, if registered.
    pub(crate) fn handler(&self, method: &str) -> Option<Arc<dyn JobHandler>> {
        self.inner.registry.read().ok()?.get(method)
    }

    /// The periodic jobs.
    pub(crate) fn schedules(&self) -> Vec<CronEntry> {
        self.inner.cron.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Pauses exactly the organizations the directory lists as Suspended (run when workers start,
    /// in case a status change happened while no node listened). Runs in turn with the status
    /// changes this node hears of, so a change published meanwhile is applied after it.
    pub async fn reconcile_paused_organizations(&self) -> Result<()> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.inner
            .organization_changes
            .send(organizations::OrganizationWork::Reconcile(done))
            .map_err(|_| Error::unavailable("the job engine is shutting down"))?;
        result
            .await
            .map_err(|_| Error::unavailable("the job engine is shutting down"))?
    }

    /// The store.
    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    /// Registered job types, sorted.
    pub fn methods(&self) -> Vec<String> {
        self.inner.registry.read().map(|r| r.methods()).unwrap_or_default()
    }

    pub(crate) fn wake(&self, queue: Queue) -> &Notify {
        &self.inner.wake[queue as usize]
    }

    /// Tells the dispatchers of `queue` that jobs became due (enqueued, promoted): this node's at
    /// once, the other nodes' through [`wakeups`].
    pub(crate) fn signal(&self, queue: Queue) {
        self.signal_here(queue);
        self.inner.cluster_wakeups.mark(queue);
    }

    /// Tells this node's dispatcher of `queue` that jobs became due.
    pub(crate) fn signal_here(&self, queue: Queue) {
        self.inner.signals[queue as usize].fetch_add(1, Ordering::Relaxed);
        self.wake(queue).notify_one();
    }

    /// How many times [`Jobs::signal`] was called for `queue`.
    pub(crate) fn signals(&self, queue: Queue) -> u64 {
        self.inner.signals[queue as usize].load(Ordering::Relaxed)
    }

    /// Checks a job before it is stored. `known_orgs` holds organizations already found to exist
    /// in this call, so a batch looks each organization up once.
    async fn validate(&self, actor: &Principal, job: &NewJob, known_orgs: &mut HashSet<String>) -> Result<()> {
        self.authorize_enqueue(actor, &job.method, job.organization.as_deref())?;
        let handler = self
            .handler(&job.method)
            .ok_or_else(|| Error::validation(format!("No handler for job type '{}'", job.method)))?;
        if !job.args.is_object() {
            return Err(Error::bad_request("'args' must be a JSON object"));
        }
        let size = job.args.to_string().len();
        let max = self.inner.store.config().max_args_bytes;
        if size > max {
            return Err(Error::new(
                dartwing_core::ErrorKind::PayloadTooLarge,
                format!("'args' is {size} bytes; at most {max} are accepted"),
            ));
        }
        if job
            .dedup_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.chars().count() > MAX_DEDUP_KEY)
        {
            return Err(Error::validation(format!(
                "'dedup_key' must be 1-{MAX_DEDUP_KEY} characters"
            )));
        }
        if let Some(org) = &job.organization
            && !known_orgs.contains(org)
        {
            if !self.inner.directory.exists(org).await? {
                return Err(Error::validation(format!("Organization {org} does not exist"))
                    .with_exc_type("LinkValidationError"));
            }
            known_orgs.insert(org.clone());
        }
        handler.admit(job.organization.as_deref(), &job.args).await
    }

    /// Whether `actor` may enqueue a job of type `method` for `organization`: the type must have
    /// a handler (422 otherwise) and its [`dartwing_core::EnqueuePolicy`] must admit the actor
    /// (403 otherwise), as the permission module decides.
    fn authorize_enqueue(&self, actor: &Principal, method: &str, organization: Option<&str>) -> Result<()> {
        let policy = self
            .policy(method)
            .ok_or_else(|| Error::validation(format!("No handler for job type '{method}'")))?;
        actor.authorize_enqueue(method, policy, organization)
    }

    /// Who may enqueue `method`: its `jobs.job_types.<method>.submit` setting, else its
    /// registration; a type the runtime alone enqueues stays so. `None` without a handler.
    fn policy(&self, method: &str) -> Option<EnqueuePolicy> {
        let registered = self.inner.registry.read().ok()?.policy(method)?;
        let configured = self.inner.store.config().job_types.get(method).and_then(|t| t.submit);
        Some(match (registered, configured) {
            (EnqueuePolicy::System, _) | (_, None) => registered,
            (_, Some(SubmitRule::Members)) => EnqueuePolicy::Members(Action::Write),
            (_, Some(SubmitRule::Admins)) => EnqueuePolicy::Members(Action::ManageOrganization),
            (_, Some(SubmitRule::PlatformAdmins)) => EnqueuePolicy::PlatformAdmins,
        })
    }

    /// The job types: every registered one and every configured one, with their settings and
    /// who may submit them (`dartwing_core.jobs.job_types`).
    pub fn job_types(&self) -> Vec<JobTypeInfo> {
        let registered = self
            .inner
            .registry
            .read()
            .map(|registry| registry.methods())
            .unwrap_or_default();
        let configured = &self.inner.store.config().job_types;
        let mut names: Vec<&String> = registered.iter().chain(configured.keys()).collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let settings = self.inner.store.type_settings(name);
                let policy = self.policy(name);
                JobTypeInfo {
                    name: name.clone(),
                    description: configured.get(name).and_then(|t| t.description.clone()),
                    queue: settings.queue,
                    timeout_secs: settings.timeout_secs,
                    max_retries: settings.retries,
                    retry_delays_secs: self.inner.store.queue_config(settings.queue).retry_delays_secs.clone(),
                    dedup_window_secs: settings.dedup_window_secs,
                    submit: policy.map_or("nobody: no handler runs it on this node", EnqueuePolicy::describe),
                    available: policy.is_some(),
                }
            })
            .collect()
    }

    /// Enqueues a job for `actor`, as its type's [`dartwing_core::EnqueuePolicy`] allows (a refusal
    /// stores nothing). Concurrent enqueues on the node commit together (group commit); each gets
    /// its own answer. At an organization's pending cap the admins get `job_limit_warning`; in
    /// `reject` mode the call fails with 429.
    pub async fn enqueue(&self, actor: &Principal, job: NewJob) -> Result<Enqueued> {
        let job = self.hold_for_parent(job).await?;
        self.validate(actor, &job, &mut HashSet::new()).await?;
        let result = self.inner.store.enqueue(&job).await;
        let enqueued = self.after_enqueue(&job, result, &mut HashSet::new()).await?;
        self.announce_enqueued(actor, &job, &enqueued);
        Ok(enqueued)
    }

    /// A job with `depends_on`: its parent must be a job of the same organization that has not
    /// ended unsuccessfully. While the parent is unfinished the job is held (Pending, due at
    /// [`store::WAITING_FOR_PARENT_US`]) until the workers' upkeep releases or cancels it. A 400
    /// `ValidationError` otherwise, naming what is wrong (a parent in another organization reads
    /// as not found).
    async fn hold_for_parent(&self, mut job: NewJob) -> Result<NewJob> {
        let Some(parent_id) = job.depends_on.clone() else {
            return Ok(job);
        };
        let refuse = |message: String| {
            Error::new(dartwing_core::ErrorKind::BadRequest, message).with_exc_type("ValidationError")
        };
        if job.run_at.is_some() {
            return Err(refuse(
                "'depends_on' and 'run_at' cannot be combined: the job starts when its parent completed".into(),
            ));
        }
        let not_found = || refuse(format!("depends_on: job {parent_id} not found in this organization"));
        let parent = match self.inner.store.info(&parent_id).await {
            Ok(parent) if parent.organization == job.organization => parent,
            Ok(_) => return Err(not_found()),
            Err(e) if e.kind() == dartwing_core::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(e),
        };
        match parent.status {
            JobStatus::Completed => {}
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Canceled => {
                return Err(refuse(format!(
                    "depends_on: job {parent_id} ended {}; this job would never start",
                    parent.status.as_str()
                )));
            }
            JobStatus::Pending | JobStatus::Queued | JobStatus::Running => {
                job.run_at = Some(Timestamp::from_micros(store::WAITING_FOR_PARENT_US));
            }
        }
        Ok(job)
    }

    /// Jobs waiting for a parent: released (due now) once it Completed, canceled (with their
    /// `job_status_changed`) once it ended any other way. Run by the workers' upkeep.
    pub(crate) async fn settle_dependents(&self) -> Result<()> {
        for job in self.inner.store.settle_dependents().await? {
            let organization = crate::model::organization_of(job.org_key.clone());
            tracing::info!(job_id = %job.id, "job canceled: its parent did not complete");
            self.inner.events.status_changed(
                events::JobRef {
                    id: &job.id,
                    method: &job.method,
                    organization: organization.as_deref(),
                    submitted_by: job.submitted_by.as_deref(),
                    trace_id: None,
                },
                Some(JobStatus::Pending),
                JobStatus::Canceled,
                None,
            );
        }
        Ok(())
    }

    /// `job_status_changed` for a job just stored (not for a duplicate, which was not).
    fn announce_enqueued(&self, actor: &Principal, job: &NewJob, enqueued: &Enqueued) {
        if enqueued.deduplicated {
            return;
        }
        let waits = job.run_at.is_some_and(|at| at > Timestamp::now());
        self.inner.events.status_changed(
            events::JobRef {
                id: &enqueued.job_id,
                method: &job.method,
                organization: job.organization.as_deref(),
                submitted_by: actor.email(),
                trace_id: job.trace_id.as_deref(),
            },
            None,
            if waits { JobStatus::Pending } else { JobStatus::Queued },
            None,
        );
    }

    /// Enqueues inside the caller's transaction (the job commits or rolls back with it).
    pub async fn enqueue_in(&self, conn: &mut sqlx::AnyConnection, actor: &Principal, job: NewJob) -> Result<Enqueued> {
        let job = self.hold_for_parent(job).await?;
        self.validate(actor, &job, &mut HashSet::new()).await?;
        let result = self.inner.store.enqueue_in(conn, &job).await;
        self.after_enqueue(&job, result, &mut HashSet::new()).await
    }

    /// Enqueues many jobs of one actor in one transaction, all or none (used by imports and
    /// benchmarks).
    pub async fn enqueue_many(&self, actor: &Principal, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let mut known_orgs = HashSet::new();
        let mut held = Vec::with_capacity(jobs.len());
        for job in jobs {
            held.push(self.hold_for_parent(job).await?);
        }
        let jobs = held;
        for job in &jobs {
            self.validate(actor, job, &mut known_orgs).await?;
        }
        let results = self.inner.store.enqueue_many(&jobs).await?;
        let mut warned = HashSet::new();
        let mut out = Vec::with_capacity(results.len());
        for (job, result) in jobs.iter().zip(results) {
            let enqueued = self.after_enqueue(job, Ok(result), &mut warned).await?;
            self.announce_enqueued(actor, job, &enqueued);
            out.push(enqueued);
        }
        Ok(out)
    }

    /// `jobs.enqueue_batch`: up to [`MAX_ENQUEUE_BATCH`] jobs of `actor` in one transaction. Every
    /// job is checked first exactly as [`Jobs::enqueue`] checks it (its type's enqueue policy for
    /// its organization, the organization's existence, the arguments); one that fails refuses the
    /// whole request with that job's error, prefixed with its position (`jobs[3]: …`), and nothing
    /// is stored. Then each job is answered in order: its job, the existing duplicate, or its own
    /// error (429 at its organization's pending cap in `reject` mode).
    pub async fn enqueue_batch(&self, actor: &Principal, jobs: Vec<NewJob>) -> Result<Vec<Result<Enqueued>>> {
        if jobs.is_empty() {
            return Err(Error::bad_request("'jobs' must list at least one job"));
        }
        if jobs.len() > MAX_ENQUEUE_BATCH {
            return Err(Error::bad_request(format!(
                "'jobs' lists {} jobs; at most {MAX_ENQUEUE_BATCH} are accepted per request",
                jobs.len()
            )));
        }
        let mut known_orgs = HashSet::new();
        let at = |position: usize| {
            move |e: Error| {
                let exc_type = e.exc_type();
                Error::new(e.kind(), format!("jobs[{position}]: {}", e.message())).with_exc_type(exc_type)
            }
        };
        let mut held = Vec::with_capacity(jobs.len());
        for (position, job) in jobs.into_iter().enumerate() {
            held.push(self.hold_for_parent(job).await.map_err(at(position))?);
        }
        let jobs = held;
        for (position, job) in jobs.iter().enumerate() {
            self.validate(actor, job, &mut known_orgs).await.map_err(at(position))?;
        }
        let refs: Vec<&NewJob> = jobs.iter().collect();
        let outcomes = self.inner.store.enqueue_set(&refs).await?;
        let mut warned = HashSet::new();
        let mut out = Vec::with_capacity(outcomes.len());
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let answer = self.after_enqueue(job, outcome, &mut warned).await;
            if let Ok(enqueued) = &answer {
                self.announce_enqueued(actor, job, enqueued);
            }
            out.push(answer);
        }
        Ok(out)
    }

    /// Counts and signals a stored job; at the pending cap warns the organization's admins (once
    /// per organization and queue in `warned`).
    async fn after_enqueue(
        &self,
        job: &NewJob,
        result: Result<(Enqueued, bool)>,
        warned: &mut HashSet<(String, Queue)>,
    ) -> Result<Enqueued> {
        let queue = self.inner.store.queue_for(&job.method);
        let at_limit = match &result {
            Ok((_, at_limit)) => *at_limit,
            Err(e) => e.kind() == dartwing_core::ErrorKind::RateLimited,
        };
        if at_limit
            && let Some(org) = &job.organization
            && warned.insert((org.clone(), queue))
        {
            self.warn_limit(org, queue, job.trace_id.as_deref()).await;
        }
        let (enqueued, _) = result?;
        if !enqueued.deduplicated {
            let m = &self.inner.metrics;
            m.enqueued
                .with_label_values(&[queue.as_str(), &job.method, &m.org(job.organization.as_deref())])
                .inc();
            self.signal(enqueued.queue);
        }
        Ok(enqueued)
    }

    async fn warn_limit(&self, organization: &str, queue: Queue, trace_id: Option<&str>) {
        let limit = self.inner.store.queue_config(queue).max_pending_per_org;
        tracing::warn!(
            organization,
            queue = queue.as_str(),
            "organization reached its pending job limit"
        );
        match self.inner.directory.admin_emails(organization).await {
            Ok(admins) => {
                for email in admins {
                    self.inner.publisher.publish(
                        "job_limit_warning",
                        json!({ "organization": organization, "queue": queue, "limit": limit }),
                        Target::User(email),
                        trace_id,
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list organization admins for job_limit_warning"),
        }
    }

    async fn readable(&self, actor: &Principal, job_org: Option<&str>) -> Result<()> {
        match job_org {
            Some(org) => actor.authorize(Action::Read, org),
            None => actor.authorize_system(),
        }
    }

    /// A job's status (Read permission on its organization).
    pub async fn status(&self, actor: &Principal, job_id: &str) -> Result<JobInfo> {
        let info = self.inner.store.info(job_id).await?;
        self.readable(actor, info.organization.as_deref())
            .await
            .map_err(|_| not_found(job_id))?;
        Ok(info)
    }

    /// Jobs of one organization, or of every organization the actor can read.
    pub async fn list(
        &self,
        actor: &Principal,
        organization: Option<&str>,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<JobInfo>> {
        let scope = self.scope(actor, organization)?;
        self.inner.store.list(scope.as_deref(), status, limit).await
    }

    /// A page of jobs of one organization, or of every organization the actor can read, newest
    /// first, with how many there are in all; optionally only of `statuses` and job type `method`.
    pub async fn page(
        &self,
        actor: &Principal,
        organization: Option<&str>,
        statuses: Option<&[JobStatus]>,
        method: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<JobInfo>, i64)> {
        let scope = self.scope(actor, organization)?;
        self.inner
            .store
            .page(scope.as_deref(), statuses, method, limit, offset)
            .await
    }

    /// The rows behind `get_job_metrics` for one organization or every organization the actor
    /// can read: jobs per status, waiting jobs per priority, and up to `sample` jobs finished
    /// since `since`.
    pub async fn job_metrics(
        &self,
        actor: &Principal,
        organization: Option<&str>,
        since: Timestamp,
        sample: u32,
    ) -> Result<JobMetricsRows> {
        let scope = self.scope(actor, organization)?;
        self.inner.store.job_metrics(scope.as_deref(), since, sample).await
    }

    /// Whether a job type of this name is registered on this node.
    pub fn has_job_type(&self, method: &str) -> bool {
        self.policy(method).is_some()
    }

    fn scope(&self, actor: &Principal, organization: Option<&str>) -> Result<Option<Vec<String>>> {
        Ok(match (organization, actor.readable_organizations()) {
            (Some(org), _) => {
                actor.authorize(Action::Read, org)?;
                Some(vec![org.to_string()])
            }
            (None, dartwing_core::permission::OrgScope::All) => None,
            (None, dartwing_core::permission::OrgScope::Only(orgs)) => Some(orgs),
        })
    }

    /// Cancels a job (Write permission on its organization).
    pub async fn cancel(&self, actor: &Principal, job_id: &str) -> Result<JobStatus> {
        let info = self.status(actor, job_id).await?;
        match info.organization.as_deref() {
            Some(org) => actor.authorize(Action::Write, org)?,
            None => actor.authorize_system()?,
        }
        if info.status.is_final() {
            return Err(Error::conflict(format!(
                "Job {job_id} already finished ({})",
                info.status.as_str()
            )));
        }
        let status = self.inner.store.cancel(job_id).await?;
        if status == JobStatus::Canceled {
            self.inner.events.status_changed(
                events::JobRef {
                    id: job_id,
                    method: &info.method,
                    organization: info.organization.as_deref(),
                    submitted_by: None,
                    trace_id: None,
                },
                Some(info.status),
                JobStatus::Canceled,
                None,
            );
            let m = &self.inner.metrics;
            m.completed
                .with_label_values(&[
                    info.queue.as_str(),
                    &info.method,
                    &m.org(info.organization.as_deref()),
                    "Canceled",
                ])
                .inc();
        }
        Ok(status)
    }

    fn authorize_dead_letters(&self, actor: &Principal, organization: Option<&str>) -> Result<()> {
        match organization {
            Some(org) => actor.authorize(Action::ManageOrganization, org),
            None => actor.authorize_system(),
        }
    }

    /// Dead letters of one organization (its Owners/Admins) or of all (system administrators).
    pub async fn dead_letters(
        &self,
        actor: &Principal,
        organization: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        match organization {
            Some(org) => {
                actor.authorize(Action::ManageOrganization, org)?;
                self.inner.store.dead_letters(Some(&[org.to_string()]), limit).await
            }
            None => {
                actor.authorize_system()?;
                self.inner.store.dead_letters(None, limit).await
            }
        }
    }

    /// Re-enqueues a Pending dead letter's job and marks the letter Retried: Owners/Admins of its
    /// organization (system administrators for system jobs), when the job type's policy admits them.
    pub async fn retry_dead_letter(&self, actor: &Principal, name: &str, notes: Option<&str>) -> Result<Enqueued> {
        let letter = self.inner.store.dead_letter(name).await?;
        self.authorize_dead_letters(actor, letter.organization.as_deref())?;
        // Re-enqueueing is enqueueing: the job type's policy applies as well.
        self.authorize_enqueue(actor, &letter.method, letter.organization.as_deref())?;
        let mut job = NewJob::new(
            letter.method.clone(),
            letter.organization.as_deref(),
            letter.job_data.clone(),
        );
        job.submitted_by = Some(actor.id().to_string());
        let db = self.inner.store.db();
        let mut tx = db.begin_tx().await?;
        self.inner
            .store
            .settle_dead_letter(&mut *tx, name, DeadLetterStatus::Retried, notes, actor.id())
            .await?;
        let (enqueued, _) = self.inner.store.enqueue_in(&mut tx, &job).await?;
        db.commit(tx).await?;
        self.signal(enqueued.queue);
        Ok(enqueued)
    }

    /// Marks a Pending dead letter Resolved or Ignored with notes.
    pub async fn settle_dead_letter(
        &self,
        actor: &Principal,
        name: &str,
        status: DeadLetterStatus,
        notes: Option<&str>,
    ) -> Result<DeadLetter> {
        if !matches!(status, DeadLetterStatus::Resolved | DeadLetterStatus::Ignored) {
            return Err(Error::validation("A dead letter can only be resolved or ignored here"));
        }
        let letter = self.inner.store.dead_letter(name).await?;
        self.authorize_dead_letters(actor, letter.organization.as_deref())?;
        let store = &self.inner.store;
        store
            .settle_dead_letter(store.db().pool(), name, status, notes, actor.id())
            .await?;
        self.inner.store.dead_letter(name).await
    }

    /// The job engine as a capability of the node: its routes; its workers (role `worker`, with
    /// their heartbeats and the `workers` health check), the cron scheduler (role `scheduler`)
    /// and, when metrics are on, the sampler of its gauges.
    pub fn capability(&self, node: WorkerNode) -> Capability {
        let _ = self.inner.heartbeat_timeout.set(node.heartbeat_timeout);
        let heartbeats = WorkerHeartbeats::new(self.store().clone(), node.node_id.clone(), node.heartbeat_timeout);
        let mut capability = Capability::new("jobs")
            .routes(routes::routes(self.clone()))
            .routes(frappe_api::routes(self.clone()))
            .health_check(heartbeats.health_check());
        if self.store().db().backend() == dartwing_db::Backend::Postgres {
            let (jobs, node_id) = (self.clone(), node.node_id.clone());
            capability = capability.task(BackgroundTask::new("job wake-ups to other nodes", move |shutdown| {
                wakeups::spawn_sender(jobs, node_id, shutdown)
            }));
            let (jobs, node_id) = (self.clone(), node.node_id.clone());
            capability = capability.task(BackgroundTask::for_role(
                "job wake-ups from other nodes",
                Role::Worker,
                move |shutdown| wakeups::spawn_listener(jobs, node_id, shutdown),
            ));
        }
        let jobs = self.clone();
        capability = capability.task(BackgroundTask::for_role("job workers", Role::Worker, move |shutdown| {
            jobs.spawn_workers(&node.node_id, heartbeats, shutdown, node.grace)
        }));
        let jobs = self.clone();
        capability = capability.task(BackgroundTask::for_role(
            "cron scheduler",
            Role::Scheduler,
            move |shutdown| jobs.spawn_scheduler(shutdown),
        ));
        let store = self.store().clone();
        capability = capability.task(BackgroundTask::new("enqueue group commit", move |shutdown| {
            tokio::spawn(async move {
                shutdown.cancelled().await;
                store.close_enqueues().await;
            })
        }));
        if node.sample_metrics {
            let jobs = self.clone();
            capability = capability.task(BackgroundTask::new("job gauges", move |shutdown| {
                jobs.spawn_metrics_sampler(shutdown)
            }));
        }
        capability
    }

    /// Starts this node's workers (role `worker`); they stop when `shutdown` is cancelled,
    /// letting running jobs finish within the grace period and releasing the rest.
    pub fn spawn_workers(
        &self,
        node_id: &str,
        heartbeats: WorkerHeartbeats,
        shutdown: CancellationToken,
        grace: std::time::Duration,
    ) -> JoinHandle<()> {
        worker::spawn(self.clone(), node_id, heartbeats, shutdown, grace)
    }

    /// Starts the cron scheduler (role `scheduler`).
    pub fn spawn_scheduler(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        scheduler::spawn(self.clone(), shutdown)
    }

    /// Samples queue depths, dead-letter depth and per-organization counts into metrics.
    pub fn spawn_metrics_sampler(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => jobs.sample_metrics().await,
                }
            }
        })
    }

    /// Refreshes the sampled job gauges now.
    pub async fn sample_metrics(&self) {
        let m = &self.inner.metrics;
        let store = &self.inner.store;
        if let Ok(depths) = store.queue_depths().await {
            for queue in Queue::ALL {
                let depth = depths.iter().find(|(q, _)| q == queue.as_str()).map_or(0, |(_, d)| *d);
                m.queue_depth.with_label_values(&[queue.as_str()]).set(depth);
            }
        }
        if let Ok(depth) = store.dlq_depth().await {
            m.dlq_depth.with_label_values(&[] as &[&str]).set(depth);
        }
        if let Ok(heartbeats) = store.heartbeats().await {
            let timeout = self.heartbeat_timeout();
            let deadline = Timestamp::now().as_micros() - i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
            for queue in Queue::ALL {
                let alive = heartbeats
                    .iter()
                    .filter(|beat| beat.worker_id.ends_with(&format!(":{queue}")))
                    .filter(|beat| beat.last_beat.0.as_micros() >= deadline)
                    .count();
                m.workers_alive
                    .with_label_values(&[queue.as_str()])
                    .set(i64::try_from(alive).unwrap_or(i64::MAX));
            }
        }
        if let Ok(counts) = store.org_job_counts().await {
            m.org_job_count.reset();
            for (key, queue, count) in counts {
                let org = m.org(Some(&key).filter(|k| !k.is_empty()).map(|k| k.as_str()));
                m.org_job_count.with_label_values(&[&org, &queue]).add(count);
            }
        }
    }

    /// How old a worker heartbeat may be before the worker counts as dead.
    fn heartbeat_timeout(&self) -> std::time::Duration {
        self.inner.heartbeat_timeout.get().copied().unwrap_or_else(|| {
            std::time::Duration::from_secs(
                dartwing_core::config::ObservabilityConfig::default().worker_heartbeat_timeout_secs,
            )
        })
    }

    /// After a job was dead-lettered: raise `dlq_alert` to administrators at the threshold.
    pub(crate) async fn check_dlq_alert(&self, trace_id: Option<&str>) {
        let threshold = i64::from(self.inner.store.config().dlq_alert_threshold);
        if let Ok(depth) = self.inner.store.dlq_depth().await {
            self.inner
                .metrics
                .dlq_depth
                .with_label_values(&[] as &[&str])
                .set(depth);
            if depth >= threshold {
                tracing::error!(
                    dlq_depth = depth,
                    threshold,
                    "dead-letter queue over its alert threshold"
                );
                self.inner.publisher.publish(
                    "dlq_alert",
                    // `count` as the job isolation spec names it; `dlq_depth` as before.
                    json!({ "count": depth, "dlq_depth": depth, "threshold": threshold }),
                    Target::Room(DLQ_ALERT_ROOM.to_string()),
                    trace_id,
                );
            }
        }
    }
}

#[async_trait::async_trait]
impl Enqueuer for Jobs {
    async fn enqueue(&self, actor: &Principal, job: NewJob) -> Result<dartwing_core::jobs::Enqueued> {
        Jobs::enqueue(self, actor, job).await
    }
}

/// Room where `dlq_alert` events go; platform administrators subscribe to it.
pub const DLQ_ALERT_ROOM: &str = "room:system-alerts";

fn not_found(job_id: &str) -> Error {
    Error::not_found(format!("Job {job_id} not found"))
}
