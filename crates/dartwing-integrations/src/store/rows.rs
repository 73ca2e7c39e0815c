//! What the vault's tables hold, as typed rows.

use dartwing_core::Timestamp;
use dartwing_db::Micros;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Status of an Organization Integration (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IntegrationStatus {
    /// Tokens are usable.
    Connected,
    /// The refresh token was refused (`invalid_grant`); an administrator must reconnect.
    Expired,
    /// The last refresh failed for another reason; retried by the next cycle.
    Error,
    /// Disconnected by an administrator; no tokens are stored.
    Disconnected,
}

impl IntegrationStatus {
    /// Every status.
    pub const ALL: [IntegrationStatus; 4] = [
        IntegrationStatus::Connected,
        IntegrationStatus::Expired,
        IntegrationStatus::Error,
        IntegrationStatus::Disconnected,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Connected => "Connected",
            IntegrationStatus::Expired => "Expired",
            IntegrationStatus::Error => "Error",
            IntegrationStatus::Disconnected => "Disconnected",
        }
    }
}

impl fmt::Display for IntegrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        IntegrationStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown integration status '{s}'"))
    }
}

/// The stored text of a status column; an unknown text fails the query.
impl TryFrom<String> for IntegrationStatus {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// One stored Organization Integration (tokens still encrypted).
#[derive(Clone, sqlx::FromRow)]
pub struct IntegrationRow {
    /// Organization name.
    pub organization: String,
    /// Integration (provider) name.
    pub integration: String,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: IntegrationStatus,
    /// Encrypted access token.
    pub access_token: Option<String>,
    /// Encrypted refresh token.
    pub refresh_token: Option<String>,
    /// Id of the key that encrypted the tokens.
    pub key_id: Option<String>,
    /// Access token expiry (µs since the epoch).
    pub expires_at_us: Option<i64>,
    /// Last successful refresh.
    pub last_refreshed_us: Option<i64>,
    /// Last refresh attempt, successful or not.
    pub last_attempt_us: Option<i64>,
    /// Message of the last failure.
    pub error_message: Option<String>,
    /// Who connected it.
    pub connected_by: Option<String>,
    /// When it was connected.
    pub connected_at_us: Option<i64>,
    /// Granted scopes, space-separated.
    pub scopes: Option<String>,
}

impl fmt::Debug for IntegrationRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntegrationRow")
            .field("organization", &self.organization)
            .field("integration", &self.integration)
            .field("status", &self.status)
            .field("key_id", &self.key_id)
            .field("expires_at_us", &self.expires_at_us)
            .finish_non_exhaustive()
    }
}

/// Freshly encrypted tokens to store.
#[derive(Clone)]
pub struct SealedTokens {
    /// Encrypted access token.
    pub access_token: String,
    /// Encrypted refresh token, if any.
    pub refresh_token: Option<String>,
    /// Key that encrypted both.
    pub key_id: String,
    /// Access token expiry.
    pub expires_at_us: i64,
}

/// A pending connect flow.
#[derive(sqlx::FromRow)]
pub struct ConnectState {
    /// Organization being connected.
    pub organization: String,
    /// Integration being connected.
    pub integration: String,
    /// Who started the flow.
    pub requested_by: String,
    /// Encrypted PKCE verifier.
    pub pkce_verifier: String,
}

/// One audit log entry (never token material).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Organization.
    pub organization: String,
    /// Integration.
    pub integration: String,
    /// `connected`, `disconnected`, `refreshed`, `refresh_failed`, `expired`, `rotated`.
    pub action: String,
    /// Who did it (email, API key, `system`).
    pub actor: String,
    /// Extra non-secret detail.
    pub detail: Option<String>,
    /// When.
    #[sqlx(rename = "at_us", try_from = "Micros")]
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_status_round_trips_and_an_unknown_one_is_an_error() {
        for status in IntegrationStatus::ALL {
            assert_eq!(IntegrationStatus::try_from(status.as_str().to_string()), Ok(status));
        }
        assert_eq!(
            IntegrationStatus::try_from("Connecting".to_string()),
            Err("unknown integration status 'Connecting'".to_string())
        );
    }
}
