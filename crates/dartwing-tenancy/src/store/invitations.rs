//! Invitations: Org Members of status Invited, and their acceptance by the invited person.

use super::members::MemberRow;
use super::{InvitationRef, TenancyStore, validate_reference};
use dartwing_core::access::AccessChange;
use dartwing_core::tenancy::{MemberStatus, ORG_MEMBER, ORGANIZATION, OrgMember};
use dartwing_core::{Error, Principal, Result, Timestamp};
use dartwing_db::SqlFile;

const INVITATIONS: SqlFile = SqlFile::portable(ORG_MEMBER, "invitations", include_str!("sql/invitations.sql"));

statements! {
    /// Statements of invitations.
    InvitationSql from INVITATIONS {
        invitations,
        invitations_to_organization,
        invitation_named,
        membership,
        accept,
        consume_others,
    }
}

impl TenancyStore {
    /// Accepts one of the actor's open invitations: the membership links the actor's Person and
    /// becomes Active with the offered role; any other invitation of the actor to the same
    /// organization is consumed with it. 404 when the actor has no such open invitation (whether
    /// or not it exists for someone else); 409 when the actor already has a membership there.
    pub async fn accept_invitation(&self, actor: &Principal, invitation: InvitationRef) -> Result<OrgMember> {
        let (Some(email), Some(person)) = (actor.email(), actor.person()) else {
            return Err(Error::permission_denied("Only users accept invitations"));
        };
        let missing = match &invitation {
            InvitationRef::Organization(org) => {
                validate_reference(ORGANIZATION, org)?;
                format!("You have no open invitation to {org}")
            }
            InvitationRef::Member(name) => {
                validate_reference(ORG_MEMBER, name)?;
                format!("You have no open invitation {name}")
            }
        };
        let invitation = self
            .open_invitations(email, person, Some(&invitation), 1)
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(missing))?;
        self.accept(invitation, email, person, actor.id()).await
    }

    /// Turns `invitation` into the Active membership of `person` (who signs in as `email`).
    pub(crate) async fn accept(
        &self,
        invitation: OrgMember,
        email: &str,
        person: &str,
        actor_id: &str,
    ) -> Result<OrgMember> {
        let sql = &self.sql()?.invitations;
        let now = Timestamp::now();
        let accepted = OrgMember {
            person: Some(person.to_string()),
            invited_email: None,
            invited_person: None,
            status: MemberStatus::Active,
            modified: now,
            modified_by: actor_id.to_string(),
            ..invitation
        };
        let mut tx = self.db.begin_tx().await?;
        let existing: Option<String> = self
            .db
            .run(
                &sql.membership,
                sql.membership
                    .query_scalar()
                    .bind(person.to_string())
                    .bind(accepted.organization.clone())
                    .fetch_optional(&mut *tx),
            )
            .await?;
        if existing.is_some() {
            return Err(Error::conflict(format!(
                "You already have a membership in {}",
                accepted.organization
            )));
        }
        let updated = self
            .db
            .run(
                &sql.accept,
                sql.accept
                    .query()
                    .bind(person.to_string())
                    .bind(now.to_string())
                    .bind(accepted.modified_by.clone())
                    .bind(accepted.name.clone())
                    .execute(&mut *tx),
            )
            .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "The invitation {} is no longer open",
                accepted.name
            )));
        }
        self.db
            .run(
                &sql.consume_others,
                sql.consume_others
                    .query()
                    .bind(accepted.organization.clone())
                    .bind(email.to_string())
                    .bind(person.to_string())
                    .execute(&mut *tx),
            )
            .await?;
        self.db.commit(tx).await?;
        tracing::info!(doctype = ORG_MEMBER, docname = %accepted.name, organization = %accepted.organization, "invitation accepted");
        self.access
            .announce(AccessChange::Granted(vec![email.to_string()]))
            .await;
        Ok(accepted)
    }

    /// Open invitations addressed to `email` or to Person `person` — only `which` when given — oldest
    /// first, at most `limit`.
    pub(crate) async fn open_invitations(
        &self,
        email: &str,
        person: &str,
        which: Option<&InvitationRef>,
        limit: u32,
    ) -> Result<Vec<OrgMember>> {
        let sql = &self.sql()?.invitations;
        let (statement, only) = match which {
            Some(InvitationRef::Organization(org)) => (&sql.invitations_to_organization, Some(org)),
            Some(InvitationRef::Member(name)) => (&sql.invitation_named, Some(name)),
            None => (&sql.invitations, None),
        };
        let mut query = statement
            .query_as::<MemberRow>()
            .bind(email.to_string())
            .bind(person.to_string())
            .bind(i64::from(limit));
        if let Some(only) = only {
            query = query.bind(only.clone());
        }
        let rows = self.db.run(statement, query.fetch_all(self.db.pool())).await?;
        rows.into_iter().map(MemberRow::into_member).collect()
    }
}
