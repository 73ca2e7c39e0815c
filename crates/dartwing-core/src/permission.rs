//! The permission module: the single place that decides what a principal may do (SPEC §3).
//!
//! The REST API, Socket.IO subscriptions, sync, jobs and the token vault all ask
//! [`Principal::authorize`]; none of them re-implements a check. A [`Principal`] is loaded
//! fresh for each request or socket operation, so membership changes take effect at once.

use crate::tenancy::{MemberRole, MemberStatus, OrgStatus};
use crate::{Error, Result};
use std::fmt;

/// What a principal wants to do within one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the organization's documents and feed.
    Read,
    /// Receive the organization's live events (join its `org:`, `sync:` and `doc:` rooms): active
    /// members of an Active organization, any role.
    Subscribe,
    /// Create, change or delete the organization's documents; enqueue its jobs.
    Write,
    /// Add, change or remove the organization's members.
    ManageMembers,
    /// Change the organization's own settings (its name).
    ManageOrganization,
    /// Connect, disconnect and inspect the organization's integrations.
    ManageIntegrations,
}

impl Action {
    /// Every action, for exhaustive tests and docs.
    pub const ALL: &'static [Action] = &[
        Action::Read,
        Action::Subscribe,
        Action::Write,
        Action::ManageMembers,
        Action::ManageOrganization,
        Action::ManageIntegrations,
    ];

    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Subscribe => "receive live events of",
            Action::Write => "write",
            Action::ManageMembers => "manage members of",
            Action::ManageOrganization => "change settings of",
            Action::ManageIntegrations => "manage integrations of",
        }
    }
}

/// One organization membership of a principal, with the organization's own status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The Organization's name.
    pub organization: String,
    /// Role in that organization.
    pub role: MemberRole,
    /// Status of the membership.
    pub status: MemberStatus,
    /// Status of the organization.
    pub org_status: OrgStatus,
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An end user authenticated by JWT.
    User {
        /// Lower-cased email (the user's identity).
        email: String,
        /// The Person document's name.
        person: String,
    },
    /// A service authenticated by API key, scoped to the system or to one organization.
    Service {
        /// The public part of the key.
        api_key: String,
        /// `None` for a system-scoped key.
        organization: Option<String>,
    },
    /// The runtime itself: the scheduler, capabilities acting on their own (the vault queuing an
    /// expiry email), system jobs, and operator commands run on the server. No credential
    /// presented over the network ever becomes this principal.
    System {
        /// What is acting, for logs (`scheduler`, `integrations`, `cli`, `job:<id>`).
        name: String,
    },
}

/// Who may enqueue a job type. Each job type declares one when its handler is registered; a
/// type registered without a declaration is [`EnqueuePolicy::System`], so forgetting is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EnqueuePolicy {
    /// Only the runtime itself (scheduler, internal calls, operator commands on the server).
    #[default]
    System,
    /// Platform administrators (and the runtime).
    PlatformAdmins,
    /// Members allowed `Action` in the job's organization, e.g. [`Action::Write`] for Members
    /// and above or [`Action::ManageOrganization`] for Owners and Admins (platform
    /// administrators and the runtime too). A job without an organization needs a platform
    /// administrator.
    Members(Action),
}

impl EnqueuePolicy {
    /// Who the policy admits, in words (documentation and refusals).
    pub fn describe(self) -> &'static str {
        match self {
            EnqueuePolicy::System => "the runtime only",
            EnqueuePolicy::PlatformAdmins => "platform administrators",
            EnqueuePolicy::Members(Action::Read | Action::Subscribe) => "members of the organization",
            EnqueuePolicy::Members(Action::Write) => "Members, Admins and Owners of the organization",
            EnqueuePolicy::Members(_) => "Owners and Admins of the organization",
        }
    }
}

/// An authenticated actor and everything needed to decide its access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User or service.
    pub kind: PrincipalKind,
    /// Platform administrator (System Manager role, or a system-scoped API key): everything is allowed.
    pub system_admin: bool,
    /// Memberships (for a service key scoped to an organization: one Admin membership of it).
    pub memberships: Vec<Membership>,
}

/// Which organizations' documents a principal can list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgScope {
    /// Every organization (system administrators).
    All,
    /// Only these organizations.
    Only(Vec<String>),
}

impl Principal {
    /// The runtime itself ([`PrincipalKind::System`]): the scheduler, internal calls of the
    /// capabilities, system jobs and administrative commands run on the server itself. It may do
    /// everything a platform administrator may, and enqueue system-only job types.
    pub fn system(name: &str) -> Self {
        Principal {
            kind: PrincipalKind::System { name: name.to_string() },
            system_admin: true,
            memberships: Vec::new(),
        }
    }

    /// Whether this is the runtime itself rather than a user or an API key.
    pub fn is_runtime(&self) -> bool {
        matches!(self.kind, PrincipalKind::System { .. })
    }

    /// The identity written to `owner`/`modified_by` and to logs: email for users, key for services.
    pub fn id(&self) -> &str {
        match &self.kind {
            PrincipalKind::User { email, .. } => email,
            PrincipalKind::Service { api_key, .. } => api_key,
            PrincipalKind::System { name } => name,
        }
    }

    /// The user's email, if this is a user.
    pub fn email(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::User { email, .. } => Some(email),
            PrincipalKind::Service { .. } | PrincipalKind::System { .. } => None,
        }
    }

    /// The user's Person name, if this is a user.
    pub fn person(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::User { person, .. } => Some(person),
            PrincipalKind::Service { .. } | PrincipalKind::System { .. } => None,
        }
    }

    /// The membership that is in force for `organization`, if any.
    pub fn membership(&self, organization: &str) -> Option<&Membership> {
        self.memberships
            .iter()
            .find(|m| m.organization == organization && m.status == MemberStatus::Active)
    }

    /// Whether the principal may do `action` in `organization`.
    pub fn can(&self, action: Action, organization: &str) -> bool {
        if self.system_admin {
            return true;
        }
        let Some(membership) = self.membership(organization) else {
            return false;
        };
        let org_active = membership.org_status == OrgStatus::Active;
        let role = membership.role;
        match action {
            Action::Read => true,
            Action::Subscribe => org_active,
            Action::Write => org_active && role != MemberRole::Guest,
            Action::ManageMembers | Action::ManageOrganization | Action::ManageIntegrations => {
                org_active && matches!(role, MemberRole::Owner | MemberRole::Admin)
            }
        }
    }

    /// [`Principal::can`] as a result: a 403 naming the action when denied.
    pub fn authorize(&self, action: Action, organization: &str) -> Result<()> {
        if self.can(action, organization) {
            Ok(())
        } else {
            Err(Error::permission_denied(format!(
                "Not permitted to {} organization {organization}",
                action.verb()
            )))
        }
    }

    /// Allows only platform administrators (system-wide operations such as API keys).
    pub fn authorize_system(&self) -> Result<()> {
        if self.system_admin {
            Ok(())
        } else {
            Err(Error::permission_denied("Only system administrators may do this"))
        }
    }

    /// Whether the principal may enqueue a job of type `method`, governed by `policy`, for
    /// `organization` (`None`: a system job). A 403 naming the job type when not.
    pub fn authorize_enqueue(&self, method: &str, policy: EnqueuePolicy, organization: Option<&str>) -> Result<()> {
        if self.is_runtime() {
            return Ok(());
        }
        let refused = || {
            Err(Error::permission_denied(format!(
                "Job type '{method}' may be enqueued by {} only",
                policy.describe()
            )))
        };
        match (policy, organization) {
            (EnqueuePolicy::System, _) => refused(),
            (EnqueuePolicy::PlatformAdmins, _) if self.system_admin => Ok(()),
            (EnqueuePolicy::PlatformAdmins, _) => refused(),
            (EnqueuePolicy::Members(action), Some(organization)) => self.authorize(action, organization),
            (EnqueuePolicy::Members(_), None) => self.authorize_system(),
        }
    }

    /// Whether the principal may grant or revoke the Owner role in `organization`.
    pub fn can_manage_owners(&self, organization: &str) -> bool {
        self.system_admin
            || self
                .membership(organization)
                .is_some_and(|m| m.role == MemberRole::Owner && m.org_status == OrgStatus::Active)
    }

    /// Organizations whose documents this principal can read.
    pub fn readable_organizations(&self) -> OrgScope {
        if self.system_admin {
            OrgScope::All
        } else {
            OrgScope::Only(
                self.memberships
                    .iter()
                    .filter(|m| m.status == MemberStatus::Active)
                    .map(|m| m.organization.clone())
                    .collect(),
            )
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Permission matrix: every role (plus non-member and system admin) × every action ×
    /// same organization / other organization, for an Active and a Suspended organization.
    #[test]
    fn permission_matrix() {
        let user = |role: Option<MemberRole>, org_status: OrgStatus, admin: bool| Principal {
            kind: PrincipalKind::User {
                email: "u@example.com".into(),
                person: "PERS-1".into(),
            },
            system_admin: admin,
            memberships: role
                .map(|role| Membership {
                    organization: "ORG-A".into(),
                    role,
                    status: MemberStatus::Active,
                    org_status,
                })
                .into_iter()
                .collect(),
        };
        use Action::*;
        use MemberRole::*;
        // (role, read, subscribe, write, manage members, manage organization, manage integrations)
        // in the own, Active org.
        let expected = [
            (Some(Owner), [true, true, true, true, true, true]),
            (Some(Admin), [true, true, true, true, true, true]),
            (Some(Member), [true, true, true, false, false, false]),
            (Some(Guest), [true, true, false, false, false, false]),
            (None, [false, false, false, false, false, false]),
        ];
        for (role, allowed) in expected {
            let p = user(role, OrgStatus::Active, false);
            for (action, allow) in [
                Read,
                Subscribe,
                Write,
                ManageMembers,
                ManageOrganization,
                ManageIntegrations,
            ]
            .into_iter()
            .zip(allowed)
            {
                assert_eq!(p.can(action, "ORG-A"), allow, "{role:?} {action:?} same org");
                assert!(!p.can(action, "ORG-B"), "{role:?} {action:?} other org");
            }
            // Suspended organization: reading stays, nothing else (not even live events).
            let suspended = user(role, OrgStatus::Suspended, false);
            for action in Action::ALL {
                let allow = role.is_some() && *action == Read;
                assert_eq!(suspended.can(*action, "ORG-A"), allow, "{role:?} {action:?} suspended");
            }
        }
        let admin = user(None, OrgStatus::Active, true);
        for action in Action::ALL {
            assert!(admin.can(*action, "ORG-A") && admin.can(*action, "ORG-B"));
        }
        assert!(admin.authorize_system().is_ok());
        assert!(user(Some(Owner), OrgStatus::Active, false).authorize_system().is_err());
    }

    /// A user with one membership of ORG-A.
    fn member_of_a(role: MemberRole, status: MemberStatus) -> Principal {
        Principal {
            kind: PrincipalKind::User {
                email: "u@example.com".into(),
                person: "PERS-1".into(),
            },
            system_admin: false,
            memberships: vec![Membership {
                organization: "ORG-A".into(),
                role,
                status,
                org_status: OrgStatus::Active,
            }],
        }
    }

    /// Enqueue policies: every kind of principal × every policy, in its own organization, in
    /// another one, and for a system job.
    #[test]
    fn enqueue_policy_matrix() {
        let member = |role: MemberRole| member_of_a(role, MemberStatus::Active);
        let platform_admin = Principal {
            kind: PrincipalKind::Service {
                api_key: "key".into(),
                organization: None,
            },
            system_admin: true,
            memberships: Vec::new(),
        };
        let runtime = Principal::system("scheduler");
        use EnqueuePolicy::*;
        let policies = [
            System,
            PlatformAdmins,
            Members(Action::Write),
            Members(Action::ManageOrganization),
        ];
        // (principal, [allowed in ORG-A, in ORG-B, as a system job] per policy above)
        let cases = [
            (
                member(MemberRole::Guest),
                [[false; 3], [false; 3], [false; 3], [false; 3]],
            ),
            (
                member(MemberRole::Member),
                [[false; 3], [false; 3], [true, false, false], [false; 3]],
            ),
            (
                member(MemberRole::Admin),
                [[false; 3], [false; 3], [true, false, false], [true, false, false]],
            ),
            (platform_admin, [[false; 3], [true; 3], [true; 3], [true; 3]]),
            (runtime, [[true; 3], [true; 3], [true; 3], [true; 3]]),
        ];
        for (principal, expected) in cases {
            for (policy, allowed) in policies.into_iter().zip(expected) {
                for (organization, allow) in [Some("ORG-A"), Some("ORG-B"), None].into_iter().zip(allowed) {
                    let result = principal.authorize_enqueue("t.x", policy, organization);
                    assert_eq!(result.is_ok(), allow, "{principal:?} {policy:?} {organization:?}");
                    if let Err(error) = result {
                        assert_eq!(error.kind(), crate::ErrorKind::PermissionDenied);
                    }
                }
            }
        }
        assert_eq!(EnqueuePolicy::default(), System, "undeclared job types are system-only");
        assert!(Principal::system("cli").is_runtime());
    }

    #[test]
    fn inactive_membership_grants_nothing() {
        let p = member_of_a(MemberRole::Owner, MemberStatus::Inactive);
        assert!(Action::ALL.iter().all(|a| !p.can(*a, "ORG-A")));
        assert_eq!(p.readable_organizations(), OrgScope::Only(vec![]));
    }
}
