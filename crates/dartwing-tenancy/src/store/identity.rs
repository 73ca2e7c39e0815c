//! The identity store: verified users and service API keys become principals with their
//! current memberships. What a user's sign-in loads is cached on the node until an access change
//! concerns the user (on any node of the cluster) or its time to live ends, so membership changes
//! apply at the next request everywhere.

use super::access_cache::Ticket;
use super::{NewPerson, TenancyStore, parse, validate_text};
use async_trait::async_trait;
use dartwing_core::access::AccessChange;
use dartwing_core::identity::{ExternalIdentity, IdentityStore, VerifiedToken, VerifiedUser};
use dartwing_core::tenancy::{MemberRole, MemberStatus, OrgStatus, PERSON, PersonStatus};
use dartwing_core::{Error, ErrorKind, Membership, Principal, PrincipalKind, Result, Witness};
use dartwing_db::SqlFile;
use std::sync::Arc;

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
pub(super) struct MembershipRow {
    person: String,
    person_status: String,
    identity_issuer: Option<String>,
    identity_subject: Option<String>,
    organization: Option<String>,
    role: Option<String>,
    status: Option<String>,
    org_status: Option<String>,
}

/// What the principal cache keeps for a user: the rows of its Person, one per membership.
pub(super) type CachedIdentity = Vec<MembershipRow>;

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
    async fn bind_external_identity(
        &self,
        row: &MembershipRow,
        email: &str,
        external: &ExternalIdentity,
    ) -> Result<()> {
        if let Some(matches) = binding_matches(row, external) {
            return if matches { Ok(()) } else { Err(identity_mismatch(row)) };
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
            // Copies of the Person without the binding would bind again.
            self.access
                .announce(AccessChange::Granted(vec![email.to_string()]))
                .await;
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
        if is_bound(
            external,
            binding.identity_issuer.as_deref(),
            binding.identity_subject.as_deref(),
        ) {
            Ok(())
        } else {
            Err(identity_mismatch(row))
        }
    }

    /// Accepts the open invitations of the Person in `rows`, oldest first, up to
    /// [`MAX_AUTO_ACCEPTED_PER_REQUEST`] (auto-accept). Answers whether any was accepted, and
    /// whether every open invitation was seen (none waits for a later request).
    async fn auto_accept_invitations(&self, rows: &[MembershipRow], email: &str) -> Result<(bool, bool)> {
        let Some(first) = rows.first() else {
            return Ok((false, true));
        };
        let mut accepted = false;
        let open = self
            .open_invitations(email, &first.person, None, MAX_AUTO_ACCEPTED_PER_REQUEST)
            .await?;
        let complete = open.len() < MAX_AUTO_ACCEPTED_PER_REQUEST as usize;
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
        Ok((accepted, complete))
    }

    /// The cached rows of `email`, when the cache holds them.
    fn cached_rows(&self, email: &str) -> Option<Arc<CachedIdentity>> {
        self.principals.as_ref()?.get(email)
    }

    /// Keeps `rows`, loaded for `email` after `ticket` was taken, in the principal cache.
    fn cache_rows(&self, ticket: Option<Ticket>, email: &str, rows: &[MembershipRow]) {
        let (Some(cache), Some(ticket)) = (&self.principals, ticket) else {
            return;
        };
        if rows.is_empty() {
            return;
        }
        let organizations = rows.iter().filter_map(|row| row.organization.clone()).collect();
        cache.insert(ticket, email, rows.to_vec(), organizations);
    }

    /// A ticket of the principal cache, taken before rows are read.
    fn cache_ticket(&self) -> Option<Ticket> {
        self.principals.as_ref().map(|cache| cache.ticket())
    }

    /// The sign-in of `token` from the cached rows of its user, when they answer it: `None` when
    /// nothing is cached or the token names an identity-provider account the cached Person is not
    /// bound to yet.
    fn cached_sign_in(&self, token: &VerifiedToken) -> Option<Result<Principal>> {
        let rows = self.cached_rows(&token.user.email)?;
        if let (Some(external), Some(first)) = (&token.external, rows.first())
            && !binding_matches(first, external)?
        {
            return Some(Err(identity_mismatch(first)));
        }
        Some(principal_from(&token.user, &rows))
    }
}

/// Whether `external` is the account `row`'s Person is bound to; `None` when it is bound to none.
fn binding_matches(row: &MembershipRow, external: &ExternalIdentity) -> Option<bool> {
    row.identity_subject.as_ref()?;
    Some(is_bound(
        external,
        row.identity_issuer.as_deref(),
        row.identity_subject.as_deref(),
    ))
}

/// Whether `external` is the account with this issuer and subject.
fn is_bound(external: &ExternalIdentity, issuer: Option<&str>, subject: Option<&str>) -> bool {
    subject == Some(external.subject.as_str()) && issuer.unwrap_or_default() == external.issuer
}

/// The refusal of a token whose account is not the one bound to `row`'s Person (logged).
fn identity_mismatch(row: &MembershipRow) -> Error {
    tracing::warn!(
        error_type = "IdentityMismatch",
        doctype = "Person",
        docname = %row.person,
        "token subject differs from the one bound to the person"
    );
    Error::unauthenticated("This email is bound to another account of the identity provider")
}

/// The principal of `user` from its Person's rows; 403 when the Person is not Active.
fn principal_from(user: &VerifiedUser, rows: &[MembershipRow]) -> Result<Principal> {
    let Some(first) = rows.first() else {
        return Err(Error::permission_denied("No account has this email"));
    };
    if parse::<PersonStatus>(&first.person_status)? != PersonStatus::Active {
        return Err(Error::permission_denied("This account is inactive"));
    }
    let mut memberships = Vec::with_capacity(rows.len());
    for row in rows {
        if let (Some(organization), Some(role), Some(status), Some(org_status)) =
            (&row.organization, &row.role, &row.status, &row.org_status)
        {
            memberships.push(Membership {
                organization: organization.clone(),
                role: parse(role)?,
                status: parse(status)?,
                org_status: parse(org_status)?,
            });
        }
    }
    Ok(Principal {
        kind: PrincipalKind::User {
            email: user.email.clone(),
            person: first.person.clone(),
        },
        system_admin: user.system_admin,
        memberships,
        witness: Witness::default(),
    })
}

#[async_trait]
impl IdentityStore for TenancyStore {
    async fn sign_in(&self, token: &VerifiedToken) -> Result<Principal> {
        if let Some(signed_in) = self.cached_sign_in(token) {
            return signed_in;
        }
        let user = &token.user;
        let ticket = self.cache_ticket();
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
            self.bind_external_identity(first, &user.email, external).await?;
        }
        let mut cacheable = true;
        if self.config().auto_accept_invitations {
            let (accepted, complete) = self.auto_accept_invitations(&rows, &user.email).await?;
            if accepted {
                rows = self.membership_rows(&user.email).await?;
            }
            // Invitations left for later requests must be seen by them.
            cacheable = complete;
        }
        if cacheable {
            self.cache_rows(ticket, &user.email, &rows);
        }
        principal_from(user, &rows)
    }

    async fn user_principal(&self, user: &VerifiedUser) -> Result<Principal> {
        if let Some(rows) = self.cached_rows(&user.email) {
            return principal_from(user, &rows);
        }
        let ticket = self.cache_ticket();
        let rows = self.membership_rows(&user.email).await?;
        self.cache_rows(ticket, &user.email, &rows);
        principal_from(user, &rows)
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
