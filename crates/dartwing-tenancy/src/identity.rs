//! The identity store: verified users and service API keys become principals with their
//! current memberships, loaded fresh on every call so membership changes apply at once.

use crate::NewPerson;
use crate::store::{TenancyStore, validate_text};
use async_trait::async_trait;
use dartwing_core::identity::{ExternalIdentity, IdentityStore, VerifiedToken, VerifiedUser};
use dartwing_core::ids::random_hex;
use dartwing_core::names::validate_name;
use dartwing_core::tenancy::{MemberRole, MemberStatus, OrgStatus, PersonStatus};
use dartwing_core::{Error, ErrorKind, Membership, Principal, PrincipalKind, Result, Timestamp, Witness};
use dartwing_db::map_db_error;
use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// A newly created API key. The secret is shown once and stored only as a hash.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedApiKey {
    /// Public part, sent as `token <api_key>:<api_secret>`.
    pub api_key: String,
    /// Secret part.
    pub api_secret: String,
    /// Organization the key is scoped to; `None` for a system key.
    pub organization: Option<String>,
}

/// A stored API key, without its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyInfo {
    /// Public part.
    pub api_key: String,
    /// Scope; `None` for system.
    pub organization: Option<String>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(|e: String| {
        tracing::error!(error_type = "CorruptRow", error = %e, "stored value does not parse");
        Error::internal()
    })
}

impl TenancyStore {
    async fn membership_rows(&self, email: &str) -> Result<Vec<MembershipRow>> {
        self.db()
            .observe(
                "Person",
                "principal",
                sqlx::query_as(
                    "SELECT p.name AS person, p.status AS person_status, p.identity_issuer, p.identity_subject, \
                     m.organization, m.role, m.status, o.status AS org_status \
                     FROM person p \
                     LEFT JOIN org_member m ON m.person = p.name \
                     LEFT JOIN organization o ON o.name = m.organization \
                     WHERE p.primary_email = $1",
                )
                .bind(email)
                .fetch_all(self.db().pool()),
            )
            .await
            .map_err(map_db_error)
    }

    /// Creates an API key, system-wide or scoped to `organization` (system administrators).
    pub async fn create_api_key(
        &self,
        actor: &Principal,
        organization: Option<&str>,
        description: &str,
    ) -> Result<IssuedApiKey> {
        actor.authorize_system()?;
        if let Some(org) = organization {
            validate_name(org)?;
            let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM organization WHERE name = $1")
                .bind(org)
                .fetch_optional(self.db().pool())
                .await
                .map_err(map_db_error)?;
            if exists.is_none() {
                return Err(Error::not_found(format!("Organization {org} not found")));
            }
        }
        let issued = IssuedApiKey {
            api_key: random_hex(8),
            api_secret: random_hex(24),
            organization: organization.map(str::to_string),
        };
        sqlx::query(
            "INSERT INTO api_key (api_key, secret_sha256, organization, description, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&issued.api_key)
        .bind(secret_digest(&issued.api_secret))
        .bind(organization)
        .bind(description)
        .bind(Timestamp::now().to_string())
        .bind(actor.id())
        .execute(self.db().pool())
        .await
        .map_err(map_db_error)?;
        tracing::info!(api_key = %issued.api_key, organization = organization.unwrap_or("system"), "API key created");
        Ok(issued)
    }

    /// Revokes an API key (system administrators).
    pub async fn revoke_api_key(&self, actor: &Principal, api_key: &str) -> Result<()> {
        actor.authorize_system()?;
        if api_key.len() > 64 || api_key.chars().any(char::is_control) {
            return Err(Error::not_found("No such API key"));
        }
        let result = sqlx::query("UPDATE api_key SET revoked_at = $1 WHERE api_key = $2 AND revoked_at IS NULL")
            .bind(Timestamp::now().to_string())
            .bind(api_key)
            .execute(self.db().pool())
            .await
            .map_err(map_db_error)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("No active API key {api_key}")));
        }
        Ok(())
    }

    /// Lists API keys without secrets (system administrators).
    pub async fn list_api_keys(&self, actor: &Principal) -> Result<Vec<ApiKeyInfo>> {
        actor.authorize_system()?;
        sqlx::query_as::<_, ApiKeyInfo>(
            "SELECT api_key, organization, description, created_at, created_by, revoked_at FROM api_key ORDER BY created_at",
        )
        .fetch_all(self.db().pool())
        .await
        .map_err(map_db_error)
    }
}

impl TenancyStore {
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
        let bound = self
            .db()
            .observe(
                "Person",
                "bind",
                sqlx::query(
                    "UPDATE person SET identity_issuer = $1, identity_subject = $2 \
                     WHERE name = $3 AND identity_subject IS NULL",
                )
                .bind(&external.issuer)
                .bind(&external.subject)
                .bind(&row.person)
                .execute(self.db().pool()),
            )
            .await
            .map_err(map_db_error)?;
        if bound.rows_affected() == 1 {
            tracing::info!(doctype = "Person", docname = %row.person, "identity provider account bound to the person");
            return Ok(());
        }
        // A concurrent first request bound one: it must be this one.
        let (issuer, subject): (Option<String>, Option<String>) =
            sqlx::query_as("SELECT identity_issuer, identity_subject FROM person WHERE name = $1")
                .bind(&row.person)
                .fetch_one(self.db().pool())
                .await
                .map_err(map_db_error)?;
        if is_bound(issuer.as_deref(), subject.as_deref()) {
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
        let row: Option<(String, Option<String>, Option<String>, Option<String>)> = self
            .db()
            .observe(
                "API Key",
                "select",
                sqlx::query_as(
                    "SELECT k.secret_sha256, k.organization, k.revoked_at, o.status \
                     FROM api_key k LEFT JOIN organization o ON o.name = k.organization WHERE k.api_key = $1",
                )
                .bind(api_key)
                .fetch_optional(self.db().pool()),
            )
            .await
            .map_err(map_db_error)?;
        let Some((digest, organization, revoked_at, org_status)) = row else {
            return Err(invalid());
        };
        if revoked_at.is_some() || !same_digest(&digest, &secret_digest(api_secret)) {
            return Err(invalid());
        }
        let memberships = match (&organization, org_status) {
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
