//! Org Members: adding a member or inviting one, reading, listing, changes and removal, and the
//! member lists other capabilities ask for (emails, administrators).

use super::{
    Invitee, MEMBER_TABLE, MemberChanges, NewMember, NewPerson, TenancyStore, parse, parse_ts, validate_reference,
};
use crate::list::{Condition, ListParams, Visibility};
use dartwing_core::names;
use dartwing_core::permission::OrgScope;
use dartwing_core::tenancy::{MemberRole, MemberStatus, ORG_MEMBER, OrgMember, PERSON, normalize_email};
use dartwing_core::{Action, Error, ErrorKind, PersonView, Principal, Result, Timestamp};
use dartwing_db::SqlFile;
use serde_json::{Map, Value};
use sqlx::AnyConnection;

const MEMBERS: SqlFile = SqlFile::portable(ORG_MEMBER, "members", include_str!("sql/members.sql"));

statements! {
    /// Statements of Org Members.
    MemberSql from MEMBERS {
        insert,
        select,
        update,
        delete,
        organization,
        active_organizations,
        emails,
        admins,
        count,
    }
}

/// An `org_member` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    name: String,
    person: Option<String>,
    organization: String,
    role: String,
    status: String,
    creation: String,
    modified: String,
    owner: String,
    modified_by: String,
    invited_email: Option<String>,
    invited_person: Option<String>,
}

impl MemberRow {
    pub(super) fn into_member(self) -> Result<OrgMember> {
        Ok(OrgMember {
            name: self.name,
            person: self.person,
            invited_email: self.invited_email,
            invited_person: self.invited_person,
            organization: self.organization,
            role: parse(&self.role)?,
            status: parse(&self.status)?,
            creation: parse_ts(&self.creation)?,
            modified: parse_ts(&self.modified)?,
            owner: self.owner,
            modified_by: self.modified_by,
        })
    }
}

/// A Person with an email and one organization it is an Active member of.
#[derive(sqlx::FromRow)]
struct ActiveMembership {
    person: String,
    organization: String,
}

/// Whether `actor` is the one `invitation` invites.
fn is_invitee(actor: &Principal, invitation: &OrgMember) -> bool {
    let to_email = actor
        .email()
        .is_some_and(|e| invitation.invited_email.as_deref() == Some(e));
    let to_person = actor
        .person()
        .is_some_and(|p| invitation.invited_person.as_deref() == Some(p));
    to_email || to_person
}

/// The Org Members an actor who reads `readable` and manages the members of `managed` sees:
/// memberships of the organizations it reads, invitations where it manages the members, and its
/// own invitations.
fn visible_members(actor: &Principal, readable: Vec<String>, managed: Vec<String>) -> Condition {
    let invited = || Condition::Equals("status", MemberStatus::Invited.as_str().into());
    let mut visible = vec![
        Condition::All(vec![
            Condition::NotEquals("status", MemberStatus::Invited.as_str().into()),
            Condition::In("organization", readable),
        ]),
        Condition::All(vec![invited(), Condition::In("organization", managed)]),
    ];
    if let (Some(email), Some(person)) = (actor.email(), actor.person()) {
        visible.push(Condition::All(vec![
            invited(),
            Condition::AnyOf(vec![
                Condition::Equals("invited_email", email.to_string()),
                Condition::Equals("invited_person", person.to_string()),
            ]),
        ]));
    }
    Condition::AnyOf(visible)
}

impl TenancyStore {
    /// Adds a member or invites one (Owners/Admins of the organization; only Owners grant or offer
    /// Owner). See [`NewMember`] for who is added directly and who is invited.
    pub async fn add_member(&self, actor: &Principal, new: NewMember) -> Result<OrgMember> {
        actor.authorize(Action::ManageMembers, &new.organization)?;
        if new.role == MemberRole::Owner && !actor.can_manage_owners(&new.organization) {
            return Err(Error::permission_denied("Only Owners may grant the Owner role"));
        }
        self.load_organization(&new.organization).await?;
        let direct = if new.status == Some(MemberStatus::Invited) {
            None
        } else {
            self.directly_addable(actor, &new.invitee).await?
        };
        let (person, invited_email, invited_person, status) = match direct {
            Some(person) => (Some(person), None, None, new.status.unwrap_or(MemberStatus::Active)),
            None => {
                if new.status.is_some_and(|s| s != MemberStatus::Invited) {
                    return Err(Error::validation(
                        "This adds an invitation: its status is Invited until the invited person accepts it",
                    ));
                }
                match &new.invitee {
                    Invitee::Person(name) => {
                        names::validate_name(name)?;
                        (None, None, Some(name.clone()), MemberStatus::Invited)
                    }
                    Invitee::Email(email) => {
                        let email = normalize_email(email).map_err(Error::validation)?;
                        (None, Some(email), None, MemberStatus::Invited)
                    }
                }
            }
        };
        let now = Timestamp::now();
        let actor_id = actor.id().to_string();
        let duplicate = if status == MemberStatus::Invited {
            format!(
                "An invitation for {} to {} is already open",
                new.invitee, new.organization
            )
        } else {
            format!("{} is already a member of {}", new.invitee, new.organization)
        };
        let mut tx = self.db.begin_tx().await?;
        let member = OrgMember {
            name: self.sql()?.naming.members().next(&self.db, &mut tx, now).await?,
            person,
            invited_email,
            invited_person,
            organization: new.organization,
            role: new.role,
            status,
            creation: now,
            modified: now,
            owner: actor_id.clone(),
            modified_by: actor_id,
        };
        self.insert_member(&mut tx, &member).await.map_err(|e| {
            if e.kind() == ErrorKind::Conflict {
                Error::conflict(duplicate)
            } else {
                e
            }
        })?;
        self.db.commit(tx).await?;
        let what = if member.status == MemberStatus::Invited {
            "member invited"
        } else {
            "member added"
        };
        tracing::info!(doctype = ORG_MEMBER, docname = %member.name, organization = %member.organization, "{what}");
        self.notify_granted(&member).await;
        Ok(member)
    }

    /// Writes a new `org_member` row in `tx`.
    pub(super) async fn insert_member(&self, tx: &mut AnyConnection, member: &OrgMember) -> Result<()> {
        let insert = &self.sql()?.members.insert;
        self.db
            .run(
                insert,
                insert
                    .query()
                    .bind(member.name.clone())
                    .bind(member.person.clone())
                    .bind(member.organization.clone())
                    .bind(member.role.as_str())
                    .bind(member.status.as_str())
                    .bind(member.creation.to_string())
                    .bind(member.modified.to_string())
                    .bind(member.owner.clone())
                    .bind(member.modified_by.clone())
                    .bind(member.invited_email.clone())
                    .bind(member.invited_person.clone())
                    .execute(tx),
            )
            .await?;
        Ok(())
    }

    /// The Person `invitee` names when the actor may add them directly: one the actor sees in full.
    /// Platform administrators add anyone directly, and by email create the Person when none has
    /// it yet. `None` means the invitee is invited instead — whether or not such a Person exists.
    async fn directly_addable(&self, actor: &Principal, invitee: &Invitee) -> Result<Option<String>> {
        match invitee {
            Invitee::Person(name) => {
                validate_reference(PERSON, name)?;
                if actor.system_admin {
                    self.load_person(name).await.map_err(|_| {
                        Error::validation(format!("Person {name} does not exist")).with_exc_type("LinkValidationError")
                    })?;
                    return Ok(Some(name.clone()));
                }
                let full = self.person_view(actor, name).await? == PersonView::Full;
                Ok(full.then(|| name.clone()))
            }
            Invitee::Email(email) => {
                let email = normalize_email(email).map_err(Error::validation)?;
                if actor.system_admin {
                    return self.person_for_email(actor, email).await.map(Some);
                }
                if actor.email() == Some(email.as_str()) {
                    return Ok(actor.person().map(str::to_string));
                }
                let memberships = self.active_memberships_by_email(email).await?;
                let Some(person) = memberships.first().map(|m| m.person.clone()) else {
                    return Ok(None);
                };
                let organizations: Vec<String> = memberships.into_iter().map(|m| m.organization).collect();
                Ok((actor.person_view(&person, &organizations) == PersonView::Full).then_some(person))
            }
        }
    }

    /// The Active memberships of the Person with `email` (one query whether or not a Person has
    /// the email, so that its timing tells nothing).
    async fn active_memberships_by_email(&self, email: String) -> Result<Vec<ActiveMembership>> {
        let select = &self.sql()?.people.active_memberships_by_email;
        let rows = self
            .db
            .run(select, select.query_as().bind(email).fetch_all(self.db.pool()))
            .await?;
        Ok(rows)
    }

    /// The Person with `email`, created when none has it yet (platform administrators).
    async fn person_for_email(&self, actor: &Principal, email: String) -> Result<String> {
        if let Some(person) = self.person_by_email(&email).await? {
            return Ok(person.name);
        }
        let new = NewPerson {
            name: None,
            primary_email: email,
            full_name: None,
            status: None,
        };
        let person = self.insert_person(actor.id(), new).await?;
        tracing::info!(doctype = PERSON, docname = %person.name, "person created for a new member");
        Ok(person.name)
    }

    async fn load_member(&self, name: &str) -> Result<OrgMember> {
        validate_reference(ORG_MEMBER, name)?;
        let select = &self.sql()?.members.select;
        let row: Option<MemberRow> = self
            .db
            .run(
                select,
                select.query_as().bind(name.to_string()).fetch_optional(self.db.pool()),
            )
            .await?;
        row.ok_or_else(|| Error::not_found(format!("Org Member {name} not found")))?
            .into_member()
    }

    /// Reads an Org Member (members of its organization). An invitation is shown only to those who
    /// manage the organization's members and to the invited user; to other members it does not exist.
    pub async fn member(&self, actor: &Principal, name: &str) -> Result<OrgMember> {
        let member = self.load_member(name).await?;
        if member.status == MemberStatus::Invited
            && !actor.can(Action::ManageMembers, &member.organization)
            && !is_invitee(actor, &member)
        {
            actor.authorize(Action::Read, &member.organization)?;
            return Err(Error::not_found(format!("Org Member {name} not found")));
        }
        actor.authorize(Action::Read, &member.organization)?;
        Ok(member)
    }

    /// Lists Org Members of the organizations the actor can read; invitations only where the actor
    /// manages the members, and the actor's own invitations.
    pub async fn list_members(&self, actor: &Principal, params: &ListParams) -> Result<Vec<Map<String, Value>>> {
        let visibility = match (
            actor.organizations_where(Action::Read),
            actor.organizations_where(Action::ManageMembers),
        ) {
            (OrgScope::Only(readable), OrgScope::Only(managed)) => Visibility {
                condition: Some(visible_members(actor, readable, managed)),
                reveal: None,
            },
            _ => Visibility::default(),
        };
        self.list(&MEMBER_TABLE, params, visibility).await
    }

    /// Changes a member's role or status. Owner role changes need an Owner; the last active
    /// Owner cannot be demoted or deactivated; only the invited person turns an invitation into a
    /// membership ([`TenancyStore::accept_invitation`]).
    pub async fn update_member(&self, actor: &Principal, name: &str, changes: MemberChanges) -> Result<OrgMember> {
        let current = self.load_member(name).await?;
        actor.authorize(Action::ManageMembers, &current.organization)?;
        let role = changes.role.unwrap_or(current.role);
        let status = changes.status.unwrap_or(current.status);
        if (current.status == MemberStatus::Invited) != (status == MemberStatus::Invited) {
            return Err(Error::validation(
                "Only the invited person turns an invitation into a membership (accept_invitation), \
                 and a membership cannot become an invitation",
            ));
        }
        let touches_owner = current.role == MemberRole::Owner || role == MemberRole::Owner;
        if touches_owner
            && (role != current.role || status != current.status)
            && !actor.can_manage_owners(&current.organization)
        {
            return Err(Error::permission_denied("Only Owners may change an Owner membership"));
        }
        let loses_owner = current.role == MemberRole::Owner
            && current.status == MemberStatus::Active
            && (role != MemberRole::Owner || status != MemberStatus::Active);
        if loses_owner {
            self.ensure_another_owner(&current).await?;
        }
        let now = Timestamp::now();
        let updated = OrgMember {
            role,
            status,
            modified: now,
            modified_by: actor.id().to_string(),
            ..current
        };
        let update = &self.sql()?.members.update;
        self.db
            .run(
                update,
                update
                    .query()
                    .bind(updated.role.as_str())
                    .bind(updated.status.as_str())
                    .bind(now.to_string())
                    .bind(updated.modified_by.clone())
                    .bind(name.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        tracing::info!(doctype = ORG_MEMBER, docname = %name, organization = %updated.organization, "member changed");
        self.notify_member(&updated).await;
        Ok(updated)
    }

    /// Removes a member or withdraws an invitation (same rules as [`TenancyStore::update_member`]).
    pub async fn remove_member(&self, actor: &Principal, name: &str) -> Result<()> {
        let current = self.load_member(name).await?;
        actor.authorize(Action::ManageMembers, &current.organization)?;
        if current.role == MemberRole::Owner {
            if !actor.can_manage_owners(&current.organization) {
                return Err(Error::permission_denied("Only Owners may remove an Owner"));
            }
            if current.status == MemberStatus::Active {
                self.ensure_another_owner(&current).await?;
            }
        }
        let delete = &self.sql()?.members.delete;
        self.db
            .run(delete, delete.query().bind(name.to_string()).execute(self.db.pool()))
            .await?;
        tracing::info!(doctype = ORG_MEMBER, docname = %name, organization = %current.organization, "member removed");
        self.notify_member(&current).await;
        Ok(())
    }

    async fn ensure_another_owner(&self, member: &OrgMember) -> Result<()> {
        let count = &self.sql()?.members.count;
        let others: i64 = self
            .db
            .run(
                count,
                count
                    .query_scalar()
                    .bind(member.organization.clone())
                    .bind(member.name.clone())
                    .fetch_one(self.db.pool()),
            )
            .await?;
        if others == 0 {
            return Err(Error::validation("An organization must keep at least one active Owner"));
        }
        Ok(())
    }

    /// Organizations in which Person `name` has an Active membership.
    pub(super) async fn active_organizations_of(&self, name: &str) -> Result<Vec<String>> {
        self.texts(&self.sql()?.members.active_organizations, name).await
    }

    /// Emails of every member (any status) of `organization` whose Person exists.
    pub async fn member_emails(&self, organization: &str) -> Result<Vec<String>> {
        self.texts(&self.sql()?.members.emails, organization).await
    }

    /// Emails of the Active Owners and Admins of `organization` (recipients of organization alerts).
    pub async fn admin_emails(&self, organization: &str) -> Result<Vec<String>> {
        self.texts(&self.sql()?.members.admins, organization).await
    }
}
