//! The permission module: the single place that decides what a principal may do (SPEC §3).
//!
//! The REST API, Socket.IO subscriptions, sync, jobs and the token vault all ask
//! [`Principal::authorize`]; none of them re-implements a check. A [`Principal`] is loaded
//! fresh for each request or socket operation, so membership changes take effect at once.

use crate::tenancy::{MemberRole, MemberStatus, OrgStatus};
use crate::{Error, Result};
use std::fmt;
use std::sync::Arc;

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
    /// Connect, disconnect and inspect the organization's integrations, and manage its
    /// outgoing webhooks (their signing secret and allowed hosts).
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
    /// Told of every organization [`Principal::authorize`] lets this principal act on.
    pub witness: Witness,
}

/// Hears of each organization a principal is authorized to act on, when the check succeeds. The
/// HTTP layer records the request's organization this way (log field, `org` metric label), so a
/// value the principal was not authorized for is never recorded.
pub trait AuthorizationWitness: Send + Sync + 'static {
    /// The principal may act on `organization`. `by_membership`: an active membership granted it,
    /// so the organization exists; otherwise platform-administrator rights did and the name is
    /// unchecked.
    fn authorized(&self, organization: &str, by_membership: bool);
}

/// The [`AuthorizationWitness`] of a principal, if any. Clones share it; it takes no part in
/// comparing principals.
#[derive(Clone, Default)]
pub struct Witness(Option<Arc<dyn AuthorizationWitness>>);

impl Witness {
    /// A witness reporting to `witness`.
    pub fn new(witness: Arc<dyn AuthorizationWitness>) -> Self {
        Self(Some(witness))
    }
}

impl PartialEq for Witness {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Witness {}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Witness(set)"
        } else {
            "Witness(none)"
        })
    }
}

/// How much of a Person document a principal may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PersonView {
    /// Nothing: to this principal the Person does not exist (the same answer as for an unknown
    /// name, so that names cannot be probed).
    Hidden,
    /// `name` and `full_name` only: co-members who do not manage a shared organization.
    Limited,
    /// Everything, email included: the Person themself, Owners and Admins of an Active
    /// organization the Person is an Active member of, and platform administrators.
    Full,
}

impl PersonView {
    /// Fields of a Person that a [`PersonView::Limited`] view shows.
    pub const LIMITED_FIELDS: [&'static str; 2] = ["name", "full_name"];
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
            witness: Witness::default(),
        }
    }

    /// The same principal reporting its successful authorizations to `witness`.
    pub fn with_witness(mut self, witness: Witness) -> Self {
        self.witness = witness;
        self
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

    /// [`Principal::can`] as a result: a 403 naming the action when denied. On success the
    /// principal's [`Witness`] hears of `organization`.
    pub fn authorize(&self, action: Action, organization: &str) -> Result<()> {
        if self.can(action, organization) {
            if let Some(witness) = &self.witness.0 {
                witness.authorized(organization, self.membership(organization).is_some());
            }
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
        self.organizations_where(Action::Read)
    }

    /// Organizations in which this principal may do `action`.
    pub fn organizations_where(&self, action: Action) -> OrgScope {
        if self.system_admin {
            OrgScope::All
        } else {
            OrgScope::Only(
                self.memberships
                    .iter()
                    .filter(|m| self.can(action, &m.organization))
                    .map(|m| m.organization.clone())
                    .collect(),
            )
        }
    }

    /// How much of Person `person` this principal may see, given the organizations in which that
    /// Person has an Active membership (invitations and inactive memberships reveal nothing).
    /// Managing the members of such an organization shows everything; reading it shows the name.
    pub fn person_view(&self, person: &str, active_in: &[String]) -> PersonView {
        if self.system_admin || self.person() == Some(person) {
            return PersonView::Full;
        }
        if active_in.iter().any(|org| self.can(Action::ManageMembers, org)) {
            PersonView::Full
        } else if active_in.iter().any(|org| self.can(Action::Read, org)) {
            PersonView::Limited
        } else {
            PersonView::Hidden
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
            witness: Witness::default(),
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

    #[test]
    fn the_witness_hears_only_of_successful_authorizations() {
        #[derive(Default)]
        struct Heard(std::sync::Mutex<Vec<(String, bool)>>);
        impl AuthorizationWitness for Heard {
            fn authorized(&self, organization: &str, by_membership: bool) {
                if let Ok(mut heard) = self.0.lock() {
                    heard.push((organization.to_string(), by_membership));
                }
            }
        }
        let heard = Arc::new(Heard::default());
        let member = Principal {
            kind: PrincipalKind::User {
                email: "u@example.com".into(),
                person: "PERS-1".into(),
            },
            system_admin: false,
            memberships: vec![Membership {
                organization: "ORG-A".into(),
                role: MemberRole::Guest,
                status: MemberStatus::Active,
                org_status: OrgStatus::Active,
            }],
            witness: Witness::new(heard.clone()),
        };
        assert!(member.authorize(Action::Write, "ORG-A").is_err());
        assert!(member.authorize(Action::Read, "ORG-B").is_err());
        assert!(!member.can(Action::Read, "ORG-C"));
        assert!(member.authorize(Action::Read, "ORG-A").is_ok());
        let admin = Principal::system("ops").with_witness(Witness::new(heard.clone()));
        assert!(admin.authorize(Action::Read, "ORG-Z").is_ok());
        let heard = heard.0.lock().map(|h| h.clone()).unwrap_or_default();
        assert_eq!(heard, [("ORG-A".to_string(), true), ("ORG-Z".to_string(), false)]);
    }

    /// A user with one membership of `ORG-A`.
    fn member_of_a(role: MemberRole, status: MemberStatus, org_status: OrgStatus) -> Principal {
        Principal {
            kind: PrincipalKind::User {
                email: "u@example.com".into(),
                person: "PERS-1".into(),
            },
            system_admin: false,
            witness: Witness::default(),
            memberships: vec![Membership {
                organization: "ORG-A".into(),
                role,
                status,
                org_status,
            }],
        }
    }

    /// Inactive, Pending and Invited memberships grant nothing, not even a view of co-members.
    #[test]
    fn inactive_membership_grants_nothing() {
        for status in [MemberStatus::Inactive, MemberStatus::Pending, MemberStatus::Invited] {
            let p = member_of_a(MemberRole::Owner, status, OrgStatus::Active);
            assert!(Action::ALL.iter().all(|a| !p.can(*a, "ORG-A")), "{status:?}");
            assert_eq!(p.readable_organizations(), OrgScope::Only(vec![]), "{status:?}");
            assert_eq!(
                p.person_view("PERS-2", &["ORG-A".into()]),
                PersonView::Hidden,
                "{status:?}"
            );
        }
    }

    /// Person views: who sees a Person's email, who only the name, and who nothing.
    #[test]
    fn person_view_matrix() {
        let user = |role: MemberRole, org_status: OrgStatus| member_of_a(role, MemberStatus::Active, org_status);
        let in_a = ["ORG-A".to_string()];
        let in_b = ["ORG-B".to_string()];
        for (role, expected) in [
            (MemberRole::Owner, PersonView::Full),
            (MemberRole::Admin, PersonView::Full),
            (MemberRole::Member, PersonView::Limited),
            (MemberRole::Guest, PersonView::Limited),
        ] {
            let p = user(role, OrgStatus::Active);
            assert_eq!(p.person_view("PERS-2", &in_a), expected, "{role:?}");
            assert_eq!(p.person_view("PERS-2", &in_b), PersonView::Hidden, "{role:?} other org");
            assert_eq!(
                p.person_view("PERS-2", &[]),
                PersonView::Hidden,
                "{role:?} no membership"
            );
            assert_eq!(p.person_view("PERS-1", &[]), PersonView::Full, "{role:?} self");
            // In a suspended organization nobody manages members: the name only.
            let suspended = user(role, OrgStatus::Suspended);
            assert_eq!(
                suspended.person_view("PERS-2", &in_a),
                PersonView::Limited,
                "{role:?} suspended"
            );
        }
        let admin = Principal {
            system_admin: true,
            ..user(MemberRole::Guest, OrgStatus::Active)
        };
        assert_eq!(admin.person_view("PERS-9", &[]), PersonView::Full);
    }

    /// Enqueue policies: every kind of principal × every policy, in its own organization, in
    /// another one, and for a system job.
    #[test]
    fn enqueue_policy_matrix() {
        let member = |role: MemberRole| member_of_a(role, MemberStatus::Active, OrgStatus::Active);
        let platform_admin = Principal {
            kind: PrincipalKind::Service {
                api_key: "key".into(),
                organization: None,
            },
            system_admin: true,
            memberships: Vec::new(),
            witness: Witness::default(),
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
}
