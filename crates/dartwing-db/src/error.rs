//! Database errors and their single mapping to client-facing errors.

use dartwing_core::Error;
use sqlx::error::ErrorKind as SqlErrorKind;

/// Failures of connecting, migrating or configuring the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error("database URL must start with sqlite:, postgres:// or postgresql://")]
    UnsupportedUrl,
    /// The data directory could not be created.
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, #[source] std::io::Error),
    /// The database could not be reached.
    #[error("cannot connect to the database: {}", describe(.0))]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A description of a sqlx error that never includes connection credentials.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Configuration(_) => "invalid database URL".into(),
        sqlx::Error::Io(io) => format!("I/O error: {io}"),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// Maps a query error to a client-facing [`Error`]: constraint violations become 409/422,
/// pool exhaustion and lost connections 503, anything else a logged 500.
pub fn map_db_error(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) => match db.kind() {
            SqlErrorKind::UniqueViolation => Error::conflict("A document with these values already exists"),
            SqlErrorKind::ForeignKeyViolation => {
                Error::conflict("The document is linked to other documents").with_exc_type("LinkExistsError")
            }
            SqlErrorKind::CheckViolation | SqlErrorKind::NotNullViolation => {
                Error::validation("A value is missing or not allowed")
            }
            _ => internal(&error),
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error_type = "DatabaseUnavailable", error = %describe(&error), "database unavailable");
            Error::unavailable("The database is unavailable, try again shortly")
        }
        _ => internal(&error),
    }
}

fn internal(error: &sqlx::Error) -> Error {
    tracing::error!(error_type = "DatabaseError", error = %describe(error), "database query failed");
    Error::internal()
}
