//! `[tenancy]`: Organizations, People and Org Members.

use serde::{Deserialize, Serialize};

/// Tenancy settings: Organizations, People and Org Members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Accept a user's open invitations on their next authenticated request instead of waiting
    /// for `accept_invitation` (for platforms whose organizations all trust each other).
    pub auto_accept_invitations: bool,
}
