//! Integration token vault (SPEC §6): Organization Integration storage with AES-256-GCM
//! encrypted tokens under a versioned key ring, `TokenVault::access_token` with single-flight
//! refresh (in one process and across processes), OAuth2 providers as configuration with a
//! PKCE connect flow, expiry notifications (realtime event + queued email), the proactive
//! refresh job, key rotation, metrics and an audit log. See `docs/integrations.md`.

pub mod breaker;
pub mod error;
mod jobs;
pub mod keyring;
pub mod mail;
pub mod metrics;
pub mod provider;
pub mod rotate;
pub mod routes;
pub mod store;
pub mod vault;

/// The tables of this capability, for both backends.
pub static MIGRATIONS: dartwing_db::Migrations = dartwing_db::migrations!("integrations");

pub use error::VaultError;
pub use keyring::KeyRing;
pub use provider::TokenGrant;
pub use store::IntegrationStatus;
pub use vault::{AccessToken, TokenVault, VaultDeps};
