//! Job handlers: registered by type name, run with a context bound to the job's organization.

use crate::store::JobStore;
use async_trait::async_trait;
use dartwing_core::publish::{SharedPublisher, Target};
use dartwing_core::{EnqueuePolicy, Error, ErrorKind, Principal};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How a failed attempt continues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying: timeouts, connection failures, 5xx answers.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: validation, permission, not found. Fails at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<Error> for JobError {
    fn from(error: Error) -> Self {
        match error.kind() {
            ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::RateLimited => {
                JobError::Transient(error.to_string())
            }
            _ => JobError::Permanent(error.to_string()),
        }
    }
}

/// Everything a handler may use: the job's identity, a principal scoped to the job's
/// organization (so data access goes through the permission module), cancellation and progress.
pub struct JobContext {
    /// Job id.
    pub job_id: String,
    /// Job type.
    pub method: String,
    /// The job's organization (`None` for system jobs).
    pub organization: Option<String>,
    /// Principal the handler acts as: a Member of the job's organization only, or a system
    /// principal for system jobs.
    pub principal: Principal,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Trace id carried from the request that enqueued the job.
    pub trace_id: Option<String>,
    pub(crate) cancel: CancellationToken,
    pub(crate) submitted_by: Option<String>,
    pub(crate) store: JobStore,
    pub(crate) publisher: SharedPublisher,
}

impl JobContext {
    /// Resolves when the job is cancelled (or the worker shuts down); long handlers select on it.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Records progress and sends `job_progress` to the submitting user.
    pub async fn progress(&self, percent: f64, message: &str) -> Result<(), JobError> {
        let progress = json!({ "percent": percent.clamp(0.0, 100.0), "message": message });
        self.store
            .set_progress(&self.job_id, &progress)
            .await
            .map_err(JobError::from)?;
        if let Some(user) = self.submitted_by.as_deref().filter(|u| u.contains('@')) {
            self.publisher.publish(
                "job_progress",
                json!({ "job_id": self.job_id, "method": self.method, "progress": progress }),
                Target::User(user.to_string()),
                self.trace_id.as_deref(),
            );
        }
        Ok(())
    }

    /// The store, for handlers that maintain jobs themselves (purge, stuck detection).
    pub fn store(&self) -> &JobStore {
        &self.store
    }
}

/// Code that runs a job type.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt.
    async fn run(&self, ctx: &JobContext, args: Value) -> Result<(), JobError>;

    /// Checks a job of this type when it is enqueued, after the caller was authorized and
    /// before anything is stored: a refusal is the caller's error (typically 422) and no job
    /// is written. The default accepts every job.
    async fn admit(&self, _store: &JobStore, _organization: Option<&str>, _args: &Value) -> dartwing_core::Result<()> {
        Ok(())
    }
}

/// A registered job type: its handler and who may enqueue it.
#[derive(Clone)]
struct Registration {
    handler: Arc<dyn JobHandler>,
    policy: EnqueuePolicy,
}

/// Handlers by job type name, each with the [`EnqueuePolicy`] of its type.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<String, Registration>,
    schedules: Vec<crate::CronEntry>,
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `method` (replacing an earlier one) as a system-only job type:
    /// only the runtime itself may enqueue it ([`EnqueuePolicy::System`]).
    pub fn register(&mut self, method: &str, handler: impl JobHandler) -> &mut Self {
        self.register_with(method, EnqueuePolicy::System, handler)
    }

    /// Registers `handler` for `method` (replacing an earlier one); `policy` says who may
    /// enqueue it.
    pub fn register_with(&mut self, method: &str, policy: EnqueuePolicy, handler: impl JobHandler) -> &mut Self {
        self.handlers.insert(
            method.to_string(),
            Registration {
                handler: Arc::new(handler),
                policy,
            },
        );
        self
    }

    /// Adds a periodic job (run by the scheduler role, once per tick across nodes); capabilities
    /// register their maintenance jobs here next to their handlers.
    pub fn schedule(&mut self, entry: crate::CronEntry) -> &mut Self {
        self.schedules.push(entry);
        self
    }

    /// The periodic jobs registered with [`HandlerRegistry::schedule`].
    pub fn schedules(&self) -> &[crate::CronEntry] {
        &self.schedules
    }

    /// The handler of `method`.
    pub fn get(&self, method: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(method).map(|r| r.handler.clone())
    }

    /// Who may enqueue `method`; `None` when no handler is registered for it.
    pub fn policy(&self, method: &str) -> Option<EnqueuePolicy> {
        self.handlers.get(method).map(|r| r.policy)
    }

    /// Whether `method` has a handler.
    pub fn contains(&self, method: &str) -> bool {
        self.handlers.contains_key(method)
    }

    /// Registered type names, sorted.
    pub fn methods(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
