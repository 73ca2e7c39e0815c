//! The vault's SQL: Organization Integration rows, pending connect flows and the audit log.
//! Token columns only ever receive ciphertexts from [`crate::keyring::KeyRing`].
//!
//! Statements live in `sql/*.sql`, one file per concern, each with its module here: the
//! integration rows (`integrations`), refreshes and their lease (`refresh`), connect flows
//! (`connect_state`), the audit log (`audit`), key rotation (`rotation`), the token gauges
//! (`gauges`) and deleting a deleted organization's rows (`organizations`). They are taken once,
//! when the store is built.

mod audit;
mod connect_state;
mod gauges;
mod integrations;
mod organizations;
mod refresh;
mod rotation;
mod rows;

pub use gauges::{TokenCount, TokenExpiry};
pub use rows::{AuditEntry, ConnectState, IntegrationRow, IntegrationStatus, SealedTokens};

use dartwing_core::Error;
use dartwing_db::{Backend, Db, DbError};
use std::sync::Arc;

/// DocType label of query metrics.
pub const DOCTYPE: &str = "Organization Integration";

/// Every statement of the store, for one backend.
struct VaultSql {
    integrations: integrations::IntegrationSql,
    refresh: refresh::RefreshSql,
    connect_state: connect_state::ConnectStateSql,
    audit: audit::AuditSql,
    rotation: rotation::RotationSql,
    gauges: gauges::GaugeSql,
    organizations: organizations::OrganizationSql,
}

impl VaultSql {
    fn new(backend: Backend) -> Result<Self, DbError> {
        Ok(Self {
            integrations: integrations::IntegrationSql::new(backend)?,
            refresh: refresh::RefreshSql::new(backend)?,
            connect_state: connect_state::ConnectStateSql::new(backend)?,
            audit: audit::AuditSql::new(backend)?,
            rotation: rotation::RotationSql::new(backend)?,
            gauges: gauges::GaugeSql::new(backend)?,
            organizations: organizations::OrganizationSql::new(backend)?,
        })
    }
}

/// SQL access of the vault.
#[derive(Clone)]
pub struct VaultStore {
    db: Db,
    sql: Arc<VaultSql>,
}

impl VaultStore {
    /// A store on `db`; fails when a statement file lacks a statement or has one no code uses.
    pub fn new(db: Db) -> Result<Self, DbError> {
        let sql = Arc::new(VaultSql::new(db.backend())?);
        Ok(Self { db, sql })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// A stored value that should be a known status but is not (corrupt row).
pub fn corrupt(what: &str) -> Error {
    tracing::error!(
        error_type = "CorruptIntegration",
        what,
        "organization integration row is inconsistent"
    );
    Error::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_file_builds_on_both_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if let Err(e) = VaultSql::new(backend) {
                panic!("{}: {e}", backend.as_str());
            }
        }
    }
}
