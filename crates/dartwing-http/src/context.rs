//! Per-request context: the trace id, and the user and organization once known, shared by the
//! observability middleware (labels, access log) and handlers.

use dartwing_core::ids::TraceId;
use std::sync::{Arc, OnceLock};
use tracing::Span;

/// Context of one request, found in its extensions.
#[derive(Clone, Debug)]
pub struct RequestContext(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    trace_id: TraceId,
    span: Span,
    user: OnceLock<String>,
    organization: OnceLock<String>,
}

impl RequestContext {
    /// A context for a request traced as `trace_id`, logging inside `span`.
    pub fn new(trace_id: TraceId, span: Span) -> Self {
        Self(Arc::new(Inner {
            trace_id,
            span,
            user: OnceLock::new(),
            organization: OnceLock::new(),
        }))
    }

    /// The request's trace id.
    pub fn trace_id(&self) -> &TraceId {
        &self.0.trace_id
    }

    /// Records the authenticated user (email or API key) for logs.
    pub fn set_user(&self, user: &str) {
        if self.0.user.set(user.to_string()).is_ok() {
            self.0.span.record("user", user);
        }
    }

    /// Records the organization the request acts on, for logs and the `org` metric label.
    pub fn set_organization(&self, organization: &str) {
        if self.0.organization.set(organization.to_string()).is_ok() {
            self.0.span.record("organization", organization);
        }
    }

    /// The organization, if a handler recorded one.
    pub fn organization(&self) -> Option<&str> {
        self.0.organization.get().map(String::as_str)
    }
}
