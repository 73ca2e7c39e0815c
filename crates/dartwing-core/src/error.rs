//! The error every capability converts into at its boundary.
//!
//! An [`Error`] carries a [`ErrorKind`] (which decides the HTTP status and the Frappe-style
//! `exc_type`) and a message that is safe to show to the client: it never contains a secret or
//! a stack trace. Internal causes are logged where they happen, not sent.

use std::fmt;

/// Category of failure; decides the HTTP status and `exc_type` in one place (`dartwing-http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Malformed request: unparsable JSON, wrong types, bad query parameters (400).
    BadRequest,
    /// Missing or invalid credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    PermissionDenied,
    /// The document or route does not exist, or the caller may not know it exists (404).
    NotFound,
    /// The write conflicts with existing data: duplicates, links (409).
    Conflict,
    /// The client stopped sending its request body before it was complete (408).
    RequestTimeout,
    /// What the request refers to existed but is no longer kept, e.g. a pruned sync watermark (410).
    Gone,
    /// The request body exceeds the configured limit (413).
    PayloadTooLarge,
    /// Well-formed input that breaks a business rule (422).
    Validation,
    /// A limit was reached; try again later (429).
    RateLimited,
    /// A dependency is down or the node is shutting down (503).
    Unavailable,
    /// A fault of the server itself (500). The message is generic; details go to the log.
    Internal,
}

impl ErrorKind {
    /// Frappe-compatible exception type name sent as `exc_type`.
    pub fn exc_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "BadRequestError",
            ErrorKind::Unauthenticated => "AuthenticationError",
            ErrorKind::PermissionDenied => "PermissionError",
            ErrorKind::NotFound => "DoesNotExistError",
            ErrorKind::Conflict => "DuplicateEntryError",
            ErrorKind::RequestTimeout => "RequestTimeoutError",
            ErrorKind::Gone => "GoneError",
            ErrorKind::PayloadTooLarge => "RequestEntityTooLarge",
            ErrorKind::Validation => "ValidationError",
            ErrorKind::RateLimited => "RateLimitExceededError",
            ErrorKind::Unavailable => "ServiceUnavailableError",
            ErrorKind::Internal => "InternalServerError",
        }
    }

    /// HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::Gone => 410,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Validation => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// A failure with a client-safe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    exc_type: Option<&'static str>,
    message: String,
}

/// Result alias used across the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a client-safe `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            exc_type: None,
            message: message.into(),
        }
    }

    /// Overrides the `exc_type` sent to clients (e.g. `LinkExistsError` for a 409).
    pub fn with_exc_type(mut self, exc_type: &'static str) -> Self {
        self.exc_type = Some(exc_type);
        self
    }

    /// 400: the request could not be parsed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    /// 401: missing or invalid credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }
    /// 403: the principal may not do this.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// 409: conflicts with existing data.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    /// 422: breaks a business rule.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    /// 503: a dependency is unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// 500: a server fault. Log the cause before returning this; the message stays generic.
    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "Internal server error")
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The `exc_type` sent to clients.
    pub fn exc_type(&self) -> &'static str {
        self.exc_type.unwrap_or_else(|| self.kind.exc_type())
    }
    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.exc_type(), self.message)
    }
}

impl std::error::Error for Error {}
