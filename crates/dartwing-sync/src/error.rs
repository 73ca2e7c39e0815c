//! Sync failures and their mapping to client-facing errors (status + `exc_type`).

use dartwing_core::{Error, ErrorKind};

/// What can go wrong in a sync request or item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncError {
    /// A queued item is malformed (400 `BadRequestError`).
    #[error("{0}")]
    BadItem(String),
    /// The item sets a server-managed field (422 `ValidationError`).
    #[error("'{0}' is managed by the server and cannot be set")]
    ReservedField(String),
    /// The watermark was not issued by this server for this organization (400 `InvalidWatermarkError`).
    #[error(
        "'since' is neither a watermark this server issued for this organization nor a timestamp \
         (2026-01-31T10:00:00Z, or 2026-01-31 10:00:00 in UTC)"
    )]
    InvalidWatermark,
    /// The watermark is older than the retained change log (410 `ResyncRequired`).
    #[error(
        "the change log no longer reaches back to this watermark: discard local data and resync from the beginning"
    )]
    ResyncRequired,
    /// The document would exceed the size limit (413 `RequestEntityTooLarge`).
    #[error("the document is {size} bytes; at most {max} are accepted")]
    TooLarge {
        /// Size of the document's data.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The batch has too many items (413).
    #[error("a batch holds at most {0} items")]
    TooManyItems(usize),
    /// No such document in the organization (404).
    #[error("{doctype} {name} not found")]
    NotFound {
        /// DocType.
        doctype: String,
        /// Name.
        name: String,
    },
    /// The name is taken in this organization (409).
    #[error("{doctype} {name} already exists; send an update or undelete")]
    Exists {
        /// DocType.
        doctype: String,
        /// Name.
        name: String,
    },
    /// The DocType accepts inserts and deletes only (422).
    #[error("{0} is append-only: documents cannot be changed once created")]
    AppendOnly(String),
}

impl From<SyncError> for Error {
    fn from(error: SyncError) -> Self {
        let message = error.to_string();
        match error {
            SyncError::BadItem(_) => Error::bad_request(message),
            SyncError::ReservedField(_) | SyncError::AppendOnly(_) => Error::validation(message),
            SyncError::InvalidWatermark => Error::bad_request(message).with_exc_type("InvalidWatermarkError"),
            SyncError::ResyncRequired => Error::new(ErrorKind::Gone, message).with_exc_type("ResyncRequired"),
            SyncError::TooLarge { .. } | SyncError::TooManyItems(_) => Error::new(ErrorKind::PayloadTooLarge, message),
            SyncError::NotFound { .. } => Error::not_found(message),
            SyncError::Exists { .. } => Error::conflict(message),
        }
    }
}
