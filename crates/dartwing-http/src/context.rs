//! Per-request context: the trace id, and the user and organization once known, shared by the
//! observability middleware (labels, access log) and handlers.
//!
//! The organization is never taken from the request: it is the first organization the request's
//! principal was *authorized* to act on ([`Principal::authorize`] reports it through the
//! context's [`Witness`]), so a value a client made up cannot reach logs or metric labels.

use dartwing_core::ids::TraceId;
use dartwing_core::permission::AuthorizationWitness;
use dartwing_core::{Principal, Witness};
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
    organization: OnceLock<AuthorizedOrganization>,
}

/// The organization a request was authorized to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedOrganization {
    /// Its name.
    pub name: String,
    /// Whether an active membership granted the access (the organization exists). When false, a
    /// platform administrator was authorized and the name has not been checked.
    pub by_membership: bool,
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

    /// `principal` reporting its successful authorizations to this request.
    pub fn witnessed(&self, principal: Principal) -> Principal {
        principal.with_witness(Witness::new(self.0.clone()))
    }

    /// The first organization the request's principal was authorized to act on, if any.
    pub fn organization(&self) -> Option<&AuthorizedOrganization> {
        self.0.organization.get()
    }
}

impl AuthorizationWitness for Inner {
    fn authorized(&self, organization: &str, by_membership: bool) {
        let authorized = AuthorizedOrganization {
            name: organization.to_string(),
            by_membership,
        };
        if self.organization.set(authorized).is_ok() && by_membership {
            // An administrator's unchecked name stays out of the log fields too.
            self.span.record("organization", organization);
        }
    }
}
