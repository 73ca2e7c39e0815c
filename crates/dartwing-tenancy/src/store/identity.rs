//! The identity store: verified users and service API keys become principals with their
//! current memberships, loaded fresh on every call so membership changes apply at once.

use super::{NewPerson, TenancyStore, parse, validate_text};
use async_trait::async_trait;
use dartwing_core::identity::{ExternalIdentity, IdentityStore, VerifiedToken, VerifiedUser};
use dartwing_core::tenancy::{MemberRole, MemberStatus, OrgStatus, PERSON, PersonStatus};
use dartwing_core::{Error, ErrorKind, Membership, Principal, PrincipalKind, Result, Witness};
use dartwing_db::SqlFile;

const IDENTITY: SqlFile = SqlFile::portable(PERSON, "identity", include_str!("sql/identity.sql"));

statements! {
    /// Statements of the identity store.
    IdentitySql from IDENTITY {
        principal,
        bind,
        binding,
    }
}

/// Actor recorded on People provisioned at first login.
const PROVISIONER: &str = "system:jit";

/// Most invitations one request auto-accepts (the rest wait for the next requests), so that a
/// flood of invitations cannot make one request slow.
const MAX_AUTO_ACCEPTED_PER_REQUEST: u32 = 20;

/// A Person with one of its memberships (none: `organization` is `None`) and that
/// organization's status.
#[derive(Debug, Clone, sqlx::FromRow)]
struct MembershipRow {
    person: String,
    person_status: String,
    identity_issuer: Option<String>,
    identity_subject: Option<String>,
    organization: Option<String>,
    role: Option<String>,
    status: Option<String>,
    org_status: Option<String>,
}

/// The identity-provider account a Person is bound to, if any.
#[derive(Debug, sqlx::FromRow)]
struct IdentityBinding {
    identity_issuer: Option<String>,
    identity_subject: Option<String>,
}

impl TenancyStore {
    async fn membership_rows(&self, email: &str) -> Result<Vec<MembershipRow>> {
        let principal = &self.sql()?.identity.principal;
        let rows = self
            .db
            .run(
                principal,
                principal.query_as().bind(email.to_string()).fetch_all(self.db.pool()),
            )
            .await?;
        Ok(rows)
    }

    /// Provisions a Person for `user` (first sign-in); a concurrent first request may have done it.
    async fn provision(&self, user: &VerifiedUser) -> Result<()> {
        // A display name the Person could not hold (too long, control characters) is not worth
        // refusing the sign-in for: the Person gets the default instead.
        let full_name = user
            .full_name
            .as_deref()
            .and_then(|name| validate_text("full_name", name).ok());
        let new = NewPerson {
            name: None,
            primary_email: user.email.clone(),
            full_name,
            status: None,
        };
        match self.insert_person(PROVISIONER, new).await {
            Ok(person) => {
                tracing::info!(doctype = "Person", docname = %person.name, "person provisioned at first login");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Binds `external` to `person` on first sight; refuses it when another one is bound.
    async fn bind_external_identity(&self, row: &MembershipRow, external: &ExternalIdentity) -> Result<()> {
        let refused = || {
            tracing::warn!(
                error_type = "IdentityMismatch",
                doctype = "Person",
                docname = %row.person,
                "token subject differs from the one bound to the person"
            );
            Error::unauthenticated("This email is bound to another account of the identity provider")
        };
        let is_bound = |issuer: Option<&str>, subject: Option<&str>| {
            subject == Some(external.subject.as_str()) && issuer.unwrap_or_default() == external.issuer
        };
        if row.identity_subject.is_some() {
            return if is_bound(row.identity_issuer.as_deref(), row.identity_subject.as_deref()) {
                Ok(())
            } else {
                Err(refused())
            };
        }
        let sql = &self.sql()?.identity;
        let bound = self
            .db
            .run(
                &sql.bind,
                sql.bind
                    .query()
                    .bind(external.issuer.clone())
                    .bind(external.subject.clone())
                    .bind(row.person.clone())
                    .execute(self.db.pool()),
            )
            .await?;
        if bound.rows_affected() == 1 {
            tracing::info!(doctype = "Person", docname = %row.person, "identity provider account bound to the person");
            return Ok(());
        }
        // A concurrent first request bound one: it must be this one.
        let binding: IdentityBinding = self
            .db
            .run(
                &sql.binding,
                sql.binding
                    .query_as()
                    .bind(row.person.clone())
                    .fetch_one(self.db.pool()),
            )
            .await?;
        if is_bound(binding.identity_issuer.as_deref(), binding.identity_subject.as_deref()) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    /// Accepts the open invitations of the Person in `rows`, oldest first, up to
    /// [`MAX_AUTO_ACCEPTED_PER_REQUEST`] (auto-accept); `true` when any was.
    async fn auto_accept_invitations(&self, rows: &[MembershipRow], email: &str) -> Result<bool> {
        let Some(first) = rows.first() else {
            return Ok(false);
        };
        let mut accepted = false;
        let open = self
            .open_invitations(email, &first.person, None, MAX_AUTO_ACCEPTED_PER_REQUEST)
            .await?;
        for invitation in open {
            let name = invitation.name.clone();
            match self.accept(invitation, email, &first.person, email).await {
                Ok(_) => accepted = true,
                // Already a member there, or accepted concurrently: leave it.
                Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {
                    tracing::info!(doctype = "Org Member", docname = %name, reason = %e.message(), "invitation not auto-accepted");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(accepted)
    }
}

/// The principal of `user` from its Person's rows; 403 when the Person is not Active.
fn principal_from(user: &VerifiedUser, rows: Vec<MembershipRow>) -> Result<Principal> {
    let Some(first) = rows.first() else {
        return Err(Error::permission_denied("No account has this email"));
    };
    if parse::<PersonStatus>(&first.person_status)? != PersonStatus::Active {
        return Err(Error::permission_denied("This account is inactive"));
    }
    let person = first.person.clone();
    let mut memberships = Vec::new();
    for row in rows {
        if let (Some(organization), Some(role), Some(status), Some(org_status)) =
            (row.organization, row.role, row.status, row.org_status)
        {
            memberships.push(Membership {
                organization,
                role: parse(&role)?,
                status: parse(&status)?,
                org_status: parse(&org_status)?,
            });
        }
    }
    Ok(Principal {
        kind: PrincipalKind::User {
            email: user.email.clone(),
            person,
        },
        system_admin: user.system_admin,
        memberships,
        witness: Witness::default(),
    })
}

#[async_trait]
impl IdentityStore for TenancyStore {
    async fn sign_in(&self, token: &VerifiedToken) -> Result<Principal> {
        let user = &token.user;
        let mut rows = self.membership_rows(&user.email).await?;
        if rows.is_empty() {
            self.provision(user).await?;
            rows = self.membership_rows(&user.email).await?;
        }
        let Some(first) = rows.first() else {
            return Err(Error::unavailable("The user could not be provisioned, try again"));
        };
        if parse::<PersonStatus>(&first.person_status)? != PersonStatus::Active {
            return Err(Error::permission_denied("This account is inactive"));
        }
        if let Some(external) = &token.external {
            self.bind_external_identity(first, external).await?;
        }
        if self.config().auto_accept_invitations && self.auto_accept_invitations(&rows, &user.email).await? {
            rows = self.membership_rows(&user.email).await?;
        }
        principal_from(user, rows)
    }

    async fn user_principal(&self, user: &VerifiedUser) -> Result<Principal> {
        principal_from(user, self.membership_rows(&user.email).await?)
    }

    async fn service_principal(&self, api_key: &str, api_secret: &str) -> Result<Principal> {
        let invalid = || Error::unauthenticated("Invalid API key or secret");
        if api_key.len() > 64 || api_secret.len() > 256 {
            return Err(invalid());
        }
        let Some(key) = self.service_key(api_key).await? else {
            return Err(invalid());
        };
        if !key.admits(api_secret) {
            return Err(invalid());
        }
        let organization = key.organization;
        let memberships = match (&organization, key.org_status) {
            (Some(org), Some(status)) => vec![Membership {
                organization: org.clone(),
                role: MemberRole::Admin,
                status: MemberStatus::Active,
                org_status: parse::<OrgStatus>(&status)?,
            }],
            _ => Vec::new(),
        };
        Ok(Principal {
            kind: PrincipalKind::Service {
                api_key: api_key.to_string(),
                organization: organization.clone(),
            },
            system_admin: organization.is_none(),
            memberships,
            witness: Witness::default(),
        })
    }
}
