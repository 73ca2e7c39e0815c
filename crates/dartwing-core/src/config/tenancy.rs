//! `[tenancy]`: Organizations, People and Org Members.

use super::{ConfigErrors, Validate};
use serde::{Deserialize, Serialize};

/// Tenancy settings: Organizations, People and Org Members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Accept a user's open invitations on their next authenticated request instead of waiting
    /// for `accept_invitation` (for platforms whose organizations all trust each other).
    pub auto_accept_invitations: bool,
    /// Users whose principal (Person and memberships) each node keeps in memory between requests;
    /// 0 loads it from the database on every request. Every access change drops the users it
    /// concerns, on every node of the cluster.
    pub principal_cache_capacity: usize,
    /// Seconds a cached principal is used at most before it is loaded again (a safety net behind
    /// the invalidation by access changes).
    pub principal_cache_ttl_secs: u64,
    /// The channel on which the nodes of a cluster tell each other about access changes
    /// (membership, person and organization changes, integration tokens): a Redis pub/sub channel
    /// when `redis_url` is set, else a PostgreSQL `NOTIFY` channel. Nodes sharing a database must
    /// use the same one.
    pub access_channel: String,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            auto_accept_invitations: false,
            principal_cache_capacity: 10_000,
            principal_cache_ttl_secs: 30,
            access_channel: "dartwing_access".into(),
        }
    }
}

impl Validate for TenancyConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            super::is_channel_name(&self.access_channel),
            "tenancy.access_channel",
            super::CHANNEL_NAME_RULE,
        );
    }
}
