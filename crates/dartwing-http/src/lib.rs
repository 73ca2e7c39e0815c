//! HTTP plumbing shared by every capability's routes (SPEC §4): authentication extractors (JWT,
//! API key), the one mapping from errors to responses, trace ids and per-request observability,
//! strict JSON, the Frappe-style `{"message": …}` envelope and the OpenAPI document.

pub mod auth;
pub mod capability;
pub mod context;
pub mod error;
pub mod extract;
pub mod listener;
pub mod method_args;
pub mod openapi;
pub mod stack;

pub use auth::{Auth, Authenticator, JwtVerifier};
pub use capability::{BackgroundTask, Capability, RouteDoc, Routes};
pub use context::RequestContext;
pub use error::ApiError;
pub use extract::{Data, Message, StrictJson, StrictQuery};
pub use method_args::MethodArgs;

/// Result of a handler: a value or an error rendered as `{"exc_type", "message"}`.
pub type ApiResult<T> = Result<T, ApiError>;
