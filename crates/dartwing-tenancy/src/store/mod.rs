//! Storage of Organizations, People and Org Members, service API keys and the identity store.
//! Every method takes the acting [`Principal`] and asks the permission module before it reads or
//! writes. The SQL lives in `sql/*.sql`, one file per concern, and every statement runs through
//! [`Db::run`].

/// Declares the statements of one concern: a struct with a field per statement of `file`, built by
/// `new(backend)`, which fails when the file lacks one of them or has one that no field takes.
macro_rules! statements {
    ($(#[$meta:meta])* $name:ident from $file:ident { $($statement:ident),+ $(,)? }) => {
        $(#[$meta])*
        pub(super) struct $name {
            $(pub(super) $statement: dartwing_db::Statement,)+
        }

        impl $name {
            pub(super) fn new(backend: dartwing_db::Backend) -> std::result::Result<Self, dartwing_db::DbError> {
                let mut statements = $file.statements(backend)?;
                let sql = Self {
                    $($statement: statements.take(stringify!($statement))?,)+
                };
                statements.finish()?;
                Ok(sql)
            }
        }
    };
}

mod access_cache;
mod api_keys;
mod directory;
mod identity;
mod invitations;
mod members;
mod naming;
mod organizations;
mod people;

pub use api_keys::{ApiKeyInfo, IssuedApiKey};

use crate::list::{DocTable, ListParams, ListQuery, Visibility, row_to_object};
use access_cache::AccessCache;
use dartwing_core::access::{AccessChange, AccessChanges};
use dartwing_core::config::TenancyConfig;
use dartwing_core::names;
use dartwing_core::tenancy::{
    MemberRole, MemberStatus, ORG_MEMBER, ORGANIZATION, OrgMember, OrgStatus, OrgType, PERSON, Person, PersonStatus,
};
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Backend, Db, DbError, Statement};
use naming::RESERVED_SERIES;
use serde::Serialize;
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

pub(crate) const ORGANIZATION_TABLE: DocTable = DocTable {
    doctype: ORGANIZATION,
    table: "organization",
    fields: &[
        "name",
        "org_name",
        "org_type",
        "status",
        "creation",
        "modified",
        "owner",
        "modified_by",
    ],
};
pub(crate) const PERSON_TABLE: DocTable = DocTable {
    doctype: PERSON,
    table: "person",
    fields: &[
        "name",
        "primary_email",
        "full_name",
        "status",
        "creation",
        "modified",
        "owner",
        "modified_by",
    ],
};
pub(crate) const MEMBER_TABLE: DocTable = DocTable {
    doctype: ORG_MEMBER,
    table: "org_member",
    fields: &[
        "name",
        "person",
        "organization",
        "role",
        "status",
        "creation",
        "modified",
        "owner",
        "modified_by",
        "invited_email",
        "invited_person",
    ],
};

/// Fields of a new Organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrganization {
    /// Explicit name; default from the `ORG-YYYY-NNNNN` series.
    pub name: Option<String>,
    /// Display name.
    pub org_name: String,
    /// Kind; immutable afterwards.
    pub org_type: OrgType,
    /// Default Active.
    pub status: Option<OrgStatus>,
}

/// Changes to an Organization; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationChanges {
    /// New display name.
    pub org_name: Option<String>,
    /// Must equal the stored value (it is immutable).
    pub org_type: Option<OrgType>,
    /// Suspend or reactivate (system administrators only).
    pub status: Option<OrgStatus>,
}

/// Fields of a new Person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    /// Explicit name; default from the `PERS-YYYY-NNNNN` series.
    pub name: Option<String>,
    /// Email; stored lower-cased, unique.
    pub primary_email: String,
    /// Display name; default the email's local part.
    pub full_name: Option<String>,
    /// Default Active.
    pub status: Option<PersonStatus>,
}

/// Changes to a Person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonChanges {
    /// New email (system administrators only).
    pub primary_email: Option<String>,
    /// New display name.
    pub full_name: Option<String>,
    /// Activate or deactivate (system administrators only).
    pub status: Option<PersonStatus>,
}

/// Whom a new Org Member adds or invites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invitee {
    /// A Person, by name.
    Person(String),
    /// Whoever signs in with this email.
    Email(String),
}

impl std::fmt::Display for Invitee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invitee::Person(name) => write!(f, "Person {name}"),
            Invitee::Email(email) => f.write_str(email),
        }
    }
}

/// Fields of a new Org Member.
///
/// A Person the actor can already see in full (the actor manages an organization the Person is an
/// Active member of, or is a platform administrator) is added directly. Anyone else is invited: the
/// membership is created with status Invited, links no Person and grants nothing until the
/// invitee accepts it. Whether a Person with that name or email exists changes nothing in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// Whom to add or invite.
    pub invitee: Invitee,
    /// The Organization's name.
    pub organization: String,
    /// Role in the organization.
    pub role: MemberRole,
    /// Default Active for direct additions; `Invited` asks for an invitation even where the
    /// Person could be added directly.
    pub status: Option<MemberStatus>,
}

/// Which invitation `accept_invitation` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationRef {
    /// The caller's open invitation to this organization.
    Organization(String),
    /// The invitation (Org Member) with this name.
    Member(String),
}

/// A Person document as the actor may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PersonRecord {
    /// Every field.
    Full(Person),
    /// The name and display name only (co-members who do not manage a shared organization).
    Limited {
        /// The Person's name.
        name: String,
        /// Display name.
        full_name: String,
    },
}

/// Changes to an Org Member (person and organization are fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChanges {
    /// New role.
    pub role: Option<MemberRole>,
    /// New status.
    pub status: Option<MemberStatus>,
}

/// Organizations, People and Org Members in the SQL database.
#[derive(Clone)]
pub struct TenancyStore {
    db: Db,
    access: AccessChanges,
    config: TenancyConfig,
    /// What sign-in loaded for each user, while no access change concerned them.
    principals: Option<Arc<AccessCache<identity::CachedIdentity>>>,
    /// Organizations' statuses, while no access change concerned them (existing organizations
    /// only: one created later is looked up, not answered "absent" from here).
    org_statuses: Option<Arc<AccessCache<OrgStatus>>>,
}

fn parse<T: FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(|e: String| {
        tracing::error!(error_type = "CorruptRow", error = %e, "stored value does not parse");
        Error::internal()
    })
}

/// Checks a client-chosen name for a new document: the name grammar
/// ([`names::validate_name`]), and outside every series the server generates names from (any year,
/// any number of digits), so that an explicit name can never take a generated one.
pub(crate) fn validate_new_name(name: &str) -> Result<()> {
    names::validate_name(name)?;
    if let Some(series) = RESERVED_SERIES.iter().find(|series| series.contains(name)) {
        return Err(Error::validation(format!(
            "'{name}' lies in the naming series {} that the server reserves for generated names; \
             choose another name or leave 'name' out",
            series.pattern()
        )));
    }
    Ok(())
}

/// Checks the name of a document the client refers to (not one it creates) before it reaches SQL:
/// at most [`names::MAX_NAME_CHARS`] characters without control characters, so every name that can
/// exist passes and nothing else is looked up.
pub(crate) fn validate_reference(doctype: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > names::MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::validation(format!("That is not a valid {doctype} name")));
    }
    Ok(())
}

/// Checks a display text (`org_name`, `full_name`): 1–140 printable characters once trimmed.
pub(crate) fn validate_text(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 140 || value.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "'{field}' must be 1-140 printable characters"
        )));
    }
    Ok(value.to_string())
}

/// Parses a stored timestamp (ISO 8601 text).
fn parse_ts(text: &str) -> Result<Timestamp> {
    text.parse().map_err(|_| {
        tracing::error!(error_type = "CorruptRow", "stored timestamp does not parse");
        Error::internal()
    })
}

/// The statements of every concern of the store, for one backend.
struct TenancySql {
    organizations: organizations::OrganizationSql,
    people: people::PersonSql,
    members: members::MemberSql,
    invitations: invitations::InvitationSql,
    naming: naming::NamingSql,
    api_keys: api_keys::ApiKeySql,
    identity: identity::IdentitySql,
}

impl TenancySql {
    fn new(backend: Backend) -> std::result::Result<Self, DbError> {
        Ok(Self {
            organizations: organizations::OrganizationSql::new(backend)?,
            people: people::PersonSql::new(backend)?,
            members: members::MemberSql::new(backend)?,
            invitations: invitations::InvitationSql::new(backend)?,
            naming: naming::NamingSql::new(backend)?,
            api_keys: api_keys::ApiKeySql::new(backend)?,
            identity: identity::IdentitySql::new(backend)?,
        })
    }
}

/// The statements of each backend, built once on first use (a statement file that lacks a
/// statement or has one no code takes fails every call, and the unit tests).
static SQLITE_SQL: LazyLock<std::result::Result<TenancySql, String>> =
    LazyLock::new(|| TenancySql::new(Backend::Sqlite).map_err(|e| e.to_string()));
static POSTGRES_SQL: LazyLock<std::result::Result<TenancySql, String>> =
    LazyLock::new(|| TenancySql::new(Backend::Postgres).map_err(|e| e.to_string()));

fn statements(backend: Backend) -> std::result::Result<&'static TenancySql, DbError> {
    let built = match backend {
        Backend::Sqlite => &*SQLITE_SQL,
        Backend::Postgres => &*POSTGRES_SQL,
    };
    built.as_ref().map_err(|e| DbError::Statement(e.clone()))
}

impl TenancyStore {
    /// A store on `db` with the default tenancy settings.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            access: AccessChanges::default(),
            config: TenancyConfig::default(),
            principals: None,
            org_statuses: None,
        }
        .with_caches()
    }

    /// This store publishing access changes to `access` (the node's hub), and dropping the cached
    /// principals and organization statuses its changes concern.
    pub fn with_access_changes(mut self, access: AccessChanges) -> Self {
        self.access = access;
        self.with_caches()
    }

    /// This store with `config` (the `tenancy` configuration section).
    pub fn with_config(mut self, config: TenancyConfig) -> Self {
        self.config = config;
        self.with_caches()
    }

    /// Fresh principal and organization-status caches as the configuration asks, following the
    /// store's hub.
    fn with_caches(mut self) -> Self {
        let (capacity, ttl) = (
            self.config.principal_cache_capacity,
            Duration::from_secs(self.config.principal_cache_ttl_secs),
        );
        self.principals = AccessCache::new(capacity, ttl);
        if let Some(cache) = &self.principals {
            cache.follow(&self.access);
        }
        self.org_statuses = AccessCache::new(capacity, ttl);
        if let Some(cache) = &self.org_statuses {
            cache.follow(&self.access);
        }
        self
    }

    /// The `tenancy` configuration section in force.
    pub(crate) fn config(&self) -> &TenancyConfig {
        &self.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The statements for this store's backend.
    fn sql(&self) -> std::result::Result<&'static TenancySql, DbError> {
        statements(self.db.backend())
    }

    /// Tells the access-change listeners, on every node, that the access of `member`'s Person may
    /// have shrunk (invitations link no Person and grant nothing, so there is no one to tell).
    async fn notify_member(&self, member: &OrgMember) {
        let Some(person) = &member.person else { return };
        if let Some(email) = self.email_of(person).await {
            self.access.announce(AccessChange::Users(vec![email])).await;
        }
    }

    /// Tells the access-change listeners, on every node, that `member` may grant its Person (or,
    /// for an invitation, the invitee, whose next sign-in may accept it) more than before.
    async fn notify_granted(&self, member: &OrgMember) {
        let email = match (&member.person, &member.invited_person, &member.invited_email) {
            (Some(person), _, _) | (None, Some(person), _) => self.email_of(person).await,
            (None, None, Some(email)) => Some(email.clone()),
            (None, None, None) => None,
        };
        if let Some(email) = email {
            self.access.announce(AccessChange::Granted(vec![email])).await;
        }
    }

    /// The email of Person `person`, if it exists (a failure is logged).
    async fn email_of(&self, person: &str) -> Option<String> {
        self.person_email(person).await.unwrap_or_else(|e| {
            tracing::warn!(person = %person, error = %e, "cannot look up the email of a changed member");
            None
        })
    }

    /// The one text column `statement` returns for `key`, if it returns a row.
    async fn text(&self, statement: &Statement, key: &str) -> Result<Option<String>> {
        let text = self
            .db
            .run(
                statement,
                statement
                    .query_scalar()
                    .bind(key.to_string())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        Ok(text)
    }

    /// The one text column `statement` returns for `key`, row by row.
    async fn texts(&self, statement: &Statement, key: &str) -> Result<Vec<String>> {
        let texts = self
            .db
            .run(
                statement,
                statement.query_scalar().bind(key.to_string()).fetch_all(self.db.pool()),
            )
            .await?;
        Ok(texts)
    }

    /// The rows of `table` that `params` asks for and `visibility` lets the actor see.
    async fn list(
        &self,
        table: &DocTable,
        params: &ListParams,
        visibility: Visibility,
    ) -> Result<Vec<Map<String, Value>>> {
        let query = ListQuery::parse(table, params)?;
        let built = query.build(table, &visibility);
        let fields = query.fields();
        let pool = self.db.pool();
        let rows = self
            .db
            .run_built(table.doctype, "list", async move {
                let rows = built.into_builder()?.build().fetch_all(pool).await?;
                rows.iter().map(|row| row_to_object(row, fields)).collect()
            })
            .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_files_build_on_both_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if let Err(e) = TenancySql::new(backend) {
                panic!("{}: {e}", backend.as_str());
            }
            assert!(statements(backend).is_ok());
        }
    }
}
