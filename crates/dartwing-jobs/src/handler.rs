//! The job types a node runs: registered by name with their enqueue policy, and the engine's side
//! of a running attempt ([`AttemptControl`]: cancellation and progress).

use crate::events::{JobEvents, JobRef};
use crate::store::JobStore;
use async_trait::async_trait;
use dartwing_core::EnqueuePolicy;
use dartwing_core::jobs::{JobControl, JobError, JobHandler, JobType};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The engine's side of one attempt: its cancellation token, and where progress goes (the job's
/// row, and `job_progress`, see [`crate::events`]).
pub(crate) struct AttemptControl {
    pub(crate) job_id: String,
    pub(crate) method: String,
    pub(crate) organization: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) cancel: CancellationToken,
    pub(crate) submitted_by: Option<String>,
    pub(crate) store: JobStore,
    pub(crate) events: JobEvents,
    /// The `output_reference` the handler recorded, for its completion event.
    pub(crate) output: std::sync::Mutex<Option<String>>,
}

impl AttemptControl {
    /// The `output_reference` the handler recorded, if any.
    pub(crate) fn recorded_output(&self) -> Option<String> {
        self.output.lock().ok().and_then(|output| output.clone())
    }
}

#[async_trait]
impl JobControl for AttemptControl {
    async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    async fn progress(&self, percent: f64, message: &str) -> Result<(), JobError> {
        let progress = json!({ "percent": percent.clamp(0.0, 100.0), "message": message });
        self.store
            .set_progress(&self.job_id, &progress)
            .await
            .map_err(JobError::from)?;
        self.events.progress(
            JobRef {
                id: &self.job_id,
                method: &self.method,
                organization: self.organization.as_deref(),
                submitted_by: self.submitted_by.as_deref(),
                trace_id: self.trace_id.as_deref(),
            },
            percent.clamp(0.0, 100.0),
            message,
        );
        Ok(())
    }

    async fn output_reference(&self, reference: &str) -> Result<(), JobError> {
        self.store
            .set_output_reference(&self.job_id, reference)
            .await
            .map_err(JobError::from)?;
        if let Ok(mut output) = self.output.lock() {
            *output = Some(reference.to_string());
        }
        Ok(())
    }
}

/// Job types by name, each with its handler and [`EnqueuePolicy`]: the engine's registry, and a
/// convenient way to collect extra job types for a node (tests, embedding programs).
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    types: HashMap<String, JobType>,
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a job type.
    pub fn add(&mut self, job_type: JobType) {
        self.types.insert(job_type.method.clone(), job_type);
    }

    /// Registers `handler` for `method` as a system-only job type.
    pub fn register(&mut self, method: &str, handler: impl JobHandler) -> &mut Self {
        self.add(JobType::system(method, handler));
        self
    }

    /// Registers `handler` for `method`; `policy` says who may enqueue it.
    pub fn register_with(&mut self, method: &str, policy: EnqueuePolicy, handler: impl JobHandler) -> &mut Self {
        self.add(JobType::with_policy(method, policy, handler));
        self
    }

    /// The registered job types.
    pub fn job_types(&self) -> Vec<JobType> {
        self.types.values().cloned().collect()
    }

    /// The handler of `method`.
    pub(crate) fn get(&self, method: &str) -> Option<Arc<dyn JobHandler>> {
        self.types.get(method).map(|t| t.handler.clone())
    }

    /// Who may enqueue `method`; `None` when no handler is registered for it.
    pub(crate) fn policy(&self, method: &str) -> Option<EnqueuePolicy> {
        self.types.get(method).map(|t| t.policy)
    }

    /// Registered type names, sorted.
    pub(crate) fn methods(&self) -> Vec<String> {
        let mut names: Vec<String> = self.types.keys().cloned().collect();
        names.sort_unstable();
        names
    }
}
