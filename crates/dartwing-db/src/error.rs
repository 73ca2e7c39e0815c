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
    /// A store's SQL file lacks a statement, defines one twice, or has one no code uses.
    #[error("SQL statements: {0}")]
    Statement(String),
    /// A statement failed; `statement` names it (`doctype.name`).
    #[error("statement {statement} failed: {}", describe(.source))]
    Query {
        /// `doctype.name` of the statement.
        statement: String,
        /// What the database (or the decoding of its answer) said.
        #[source]
        source: sqlx::Error,
    },
    /// Beginning or committing a transaction failed.
    #[error("transaction failed: {}", describe(.0))]
    Transaction(#[source] sqlx::Error),
}

impl DbError {
    /// The underlying sqlx error, when a query or transaction failed.
    pub fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            DbError::Query { source, .. } | DbError::Transaction(source) | DbError::Connect(source) => Some(source),
            _ => None,
        }
    }
}

/// The client-facing error of a database failure: constraint violations become 409/422, pool
/// exhaustion and lost connections 503, anything else a logged 500 (the log names the statement
/// and the cause; the client sees neither).
impl From<DbError> for Error {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Query { statement, source } => {
                let mapped = map_db_error_quiet(&source);
                if let Some(mapped) = mapped {
                    return mapped;
                }
                tracing::error!(error_type = "DatabaseError", statement, error = %describe(&source), "database query failed");
                Error::internal()
            }
            DbError::Transaction(source) => map_db_error(source),
            other => {
                tracing::error!(error_type = "DatabaseError", error = %other, "database failure");
                Error::internal()
            }
        }
    }
}

/// A description of a sqlx error that never includes connection credentials.
pub fn describe(error: &sqlx::Error) -> String {
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
fn map_db_error(error: sqlx::Error) -> Error {
    map_db_error_quiet(&error).unwrap_or_else(|| internal(&error))
}

/// The client-facing error of the failures that are the client's or the moment's (constraints,
/// an unavailable database); `None` for faults of the server.
fn map_db_error_quiet(error: &sqlx::Error) -> Option<Error> {
    match error {
        sqlx::Error::Database(db) => match db.kind() {
            SqlErrorKind::UniqueViolation => Some(Error::conflict("A document with these values already exists")),
            SqlErrorKind::ForeignKeyViolation => {
                Some(Error::conflict("The document is linked to other documents").with_exc_type("LinkExistsError"))
            }
            SqlErrorKind::CheckViolation | SqlErrorKind::NotNullViolation => {
                Some(Error::validation("A value is missing or not allowed"))
            }
            _ => None,
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error_type = "DatabaseUnavailable", error = %describe(error), "database unavailable");
            Some(Error::unavailable("The database is unavailable, try again shortly"))
        }
        _ => None,
    }
}

fn internal(error: &sqlx::Error) -> Error {
    tracing::error!(error_type = "DatabaseError", error = %describe(error), "database query failed");
    Error::internal()
}
