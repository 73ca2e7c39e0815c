//! Storage of Organizations, People and Org Members. Every method takes the acting
//! [`Principal`] and asks the permission module before it reads or writes.

use crate::list::{DocTable, ListParams, ListQuery, Reveal, Visibility, row_to_object};
use dartwing_core::access::{AccessChange, AccessChanges, OrganizationSummary};
use dartwing_core::config::TenancyConfig;
use dartwing_core::ids::NamingSeries;
use dartwing_core::names;
use dartwing_core::permission::OrgScope;
use dartwing_core::tenancy::{
    MemberRole, MemberStatus, ORG_MEMBER, ORGANIZATION, OrgMember, OrgStatus, OrgType, Organization, PERSON, Person,
    PersonStatus, normalize_email,
};
use dartwing_core::{Action, Error, PersonView, Principal, Result, Timestamp};
use dartwing_db::{Db, map_db_error};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use std::str::FromStr;

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

/// Naming series of Organizations: `ORG-YYYY-NNNNN`.
pub const ORGANIZATION_SERIES: NamingSeries = NamingSeries {
    prefix: "ORG",
    digits: 5,
};
/// Naming series of People: `PERS-YYYY-NNNNN`.
pub const PERSON_SERIES: NamingSeries = NamingSeries {
    prefix: "PERS",
    digits: 5,
};
/// Naming series of Org Members: `MEM-YYYY-NNNNN`.
pub const MEMBER_SERIES: NamingSeries = NamingSeries {
    prefix: "MEM",
    digits: 5,
};

/// Every series the server generates names from; explicit names inside any of them are refused.
pub const RESERVED_SERIES: [NamingSeries; 3] = [ORGANIZATION_SERIES, PERSON_SERIES, MEMBER_SERIES];

/// Most names taken by other documents that one generated name skips before giving up.
const MAX_TAKEN_NAMES_SKIPPED: usize = 1000;

const ORG_COLUMNS: &str = "name, org_name, org_type, status, creation, modified, owner, modified_by";
const PERSON_COLUMNS: &str = "name, primary_email, full_name, status, creation, modified, owner, modified_by";
const MEMBER_COLUMNS: &str =
    "name, person, organization, role, status, creation, modified, owner, modified_by, invited_email, invited_person";

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

/// The next free name of `series` for a document of `table`: names already taken in `table` (rows
/// written before their series was reserved, or restored from elsewhere) are skipped, at most
/// [`MAX_TAKEN_NAMES_SKIPPED`] of them.
async fn next_name(conn: &mut AnyConnection, series: NamingSeries, table: &str, now: Timestamp) -> Result<String> {
    let taken_sql = format!("SELECT COUNT(*) FROM {table} WHERE name = $1");
    for _ in 0..=MAX_TAKEN_NAMES_SKIPPED {
        let (current,): (i64,) = sqlx::query_as(
            "INSERT INTO naming_series (prefix, current) VALUES ($1, 1) \
             ON CONFLICT (prefix) DO UPDATE SET current = naming_series.current + 1 RETURNING current",
        )
        .bind(series.key(now.year()))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_db_error)?;
        let name = series.name(now.year(), current);
        let (taken,): (i64,) = sqlx::query_as(&taken_sql)
            .bind(&name)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_db_error)?;
        if taken == 0 {
            return Ok(name);
        }
        tracing::warn!(doctype = table, docname = %name, "generated name already taken; skipping it");
    }
    tracing::error!(doctype = table, series = %series.pattern(), "no free generated name found");
    Err(Error::conflict(format!(
        "No free name in the series {} after skipping {MAX_TAKEN_NAMES_SKIPPED} taken ones",
        series.pattern()
    )))
}

type OrgRow = (String, String, String, String, String, String, String, String);

/// An `org_member` row as stored.
#[derive(sqlx::FromRow)]
struct MemberRow {
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

fn organization_from(row: OrgRow) -> Result<Organization> {
    let (name, org_name, org_type, status, creation, modified, owner, modified_by) = row;
    Ok(Organization {
        name,
        org_name,
        org_type: parse(&org_type)?,
        status: parse(&status)?,
        creation: parse_ts(&creation)?,
        modified: parse_ts(&modified)?,
        owner,
        modified_by,
    })
}

fn person_from(row: OrgRow) -> Result<Person> {
    let (name, primary_email, full_name, status, creation, modified, owner, modified_by) = row;
    Ok(Person {
        name,
        primary_email,
        full_name,
        status: parse(&status)?,
        creation: parse_ts(&creation)?,
        modified: parse_ts(&modified)?,
        owner,
        modified_by,
    })
}

fn member_from(row: MemberRow) -> Result<OrgMember> {
    Ok(OrgMember {
        name: row.name,
        person: row.person,
        invited_email: row.invited_email,
        invited_person: row.invited_person,
        organization: row.organization,
        role: parse(&row.role)?,
        status: parse(&row.status)?,
        creation: parse_ts(&row.creation)?,
        modified: parse_ts(&row.modified)?,
        owner: row.owner,
        modified_by: row.modified_by,
    })
}

fn parse_ts(text: &str) -> Result<Timestamp> {
    text.parse().map_err(|_| {
        tracing::error!(error_type = "CorruptRow", "stored timestamp does not parse");
        Error::internal()
    })
}

fn in_list(column: &str, values: &[String]) -> Visibility {
    if values.is_empty() {
        return Visibility {
            condition: Some("1 = 0".into()),
            params: vec![],
            reveal: None,
        };
    }
    let placeholders = vec!["{}"; values.len()].join(", ");
    Visibility {
        condition: Some(format!("{column} IN ({placeholders})")),
        params: values.to_vec(),
        reveal: None,
    }
}

impl TenancyStore {
    /// A store on `db` with the default tenancy settings.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            access: AccessChanges::default(),
            config: TenancyConfig::default(),
        }
    }

    /// This store publishing changes that may shrink someone's access to `access` (the node's hub).
    pub fn with_access_changes(mut self, access: AccessChanges) -> Self {
        self.access = access;
        self
    }

    /// This store with `config` (the `tenancy` configuration section).
    pub fn with_config(mut self, config: TenancyConfig) -> Self {
        self.config = config;
        self
    }

    /// The `tenancy` configuration section in force.
    pub(crate) fn config(&self) -> &TenancyConfig {
        &self.config
    }

    /// Emails of every member (any status) of `organization` whose Person exists.
    pub async fn member_emails(&self, organization: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .db
            .observe(
                ORG_MEMBER,
                "emails",
                sqlx::query_as(
                    "SELECT p.primary_email FROM org_member m JOIN person p ON p.name = m.person \
                     WHERE m.organization = $1 ORDER BY p.primary_email",
                )
                .bind(organization)
                .fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(email,)| email).collect())
    }

    async fn person_email(&self, person: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT primary_email FROM person WHERE name = $1")
            .bind(person)
            .fetch_optional(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(row.map(|(email,)| email))
    }

    /// Tells the access-change listeners that the access of `member`'s Person may have changed
    /// (invitations link no Person and grant nothing, so there is no one to tell).
    async fn notify_member(&self, member: &OrgMember) {
        let Some(person) = &member.person else { return };
        match self.person_email(person).await {
            Ok(Some(email)) => self.access.publish(AccessChange::Users(vec![email])),
            Ok(None) => {}
            Err(e) => tracing::warn!(person = %person, error = %e, "cannot look up the email of a changed member"),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn list(
        &self,
        table: &DocTable,
        params: &ListParams,
        visibility: Visibility,
    ) -> Result<Vec<Map<String, Value>>> {
        let query = ListQuery::parse(table, params)?;
        let (sql, binds) = query.to_sql(table, &visibility);
        let mut statement = sqlx::query(&sql);
        for value in binds {
            statement = statement.bind(value);
        }
        let rows = self
            .db
            .observe(table.doctype, "list", statement.fetch_all(self.db.pool()))
            .await
            .map_err(map_db_error)?;
        rows.iter().map(|row| row_to_object(row, query.fields())).collect()
    }

    // ---------------------------------------------------------------- Organization

    /// Creates an Organization. A user creating one becomes its Owner; an organization-scoped
    /// service key cannot create organizations.
    pub async fn create_organization(&self, actor: &Principal, new: NewOrganization) -> Result<Organization> {
        let is_org_scoped_service = !actor.system_admin && actor.person().is_none();
        if is_org_scoped_service {
            return Err(Error::permission_denied(
                "Organization-scoped API keys cannot create organizations",
            ));
        }
        if let Some(name) = &new.name {
            validate_new_name(name)?;
        }
        if new.status == Some(OrgStatus::Suspended) {
            actor.authorize_system()?;
        }
        let org_name = validate_text("org_name", &new.org_name)?;
        let now = Timestamp::now();
        let actor_id = actor.id().to_string();
        let person = actor.person().map(str::to_string);
        let organization = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let name = match new.name {
                        Some(name) => name,
                        None => next_name(tx, ORGANIZATION_SERIES, ORGANIZATION_TABLE.table, now).await?,
                    };
                    let organization = Organization {
                        name,
                        org_name,
                        org_type: new.org_type,
                        status: new.status.unwrap_or(OrgStatus::Active),
                        creation: now,
                        modified: now,
                        owner: actor_id.clone(),
                        modified_by: actor_id.clone(),
                    };
                    sqlx::query(&format!(
                        "INSERT INTO organization ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ))
                    .bind(&organization.name)
                    .bind(&organization.org_name)
                    .bind(organization.org_type.as_str())
                    .bind(organization.status.as_str())
                    .bind(now.to_string())
                    .bind(now.to_string())
                    .bind(&actor_id)
                    .bind(&actor_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_db_error)?;
                    if let Some(person) = person {
                        let member = OrgMember {
                            name: next_name(tx, MEMBER_SERIES, MEMBER_TABLE.table, now).await?,
                            person: Some(person),
                            invited_email: None,
                            invited_person: None,
                            organization: organization.name.clone(),
                            role: MemberRole::Owner,
                            status: MemberStatus::Active,
                            creation: now,
                            modified: now,
                            owner: actor_id.clone(),
                            modified_by: actor_id.clone(),
                        };
                        insert_member(tx, &member).await?;
                    }
                    Ok(organization)
                })
            })
            .await?;
        tracing::info!(doctype = ORGANIZATION, docname = %organization.name, "organization created");
        Ok(organization)
    }

    /// Reads an Organization (members and system administrators).
    pub async fn organization(&self, actor: &Principal, name: &str) -> Result<Organization> {
        actor.authorize(Action::Read, name)?;
        self.load_organization(name).await
    }

    async fn load_organization(&self, name: &str) -> Result<Organization> {
        validate_reference(ORGANIZATION, name)?;
        let row: Option<OrgRow> = self
            .db
            .observe(
                ORGANIZATION,
                "select",
                sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organization WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        organization_from(row.ok_or_else(|| Error::not_found(format!("Organization {name} not found")))?)
    }

    /// Lists Organizations the actor can read.
    pub async fn list_organizations(&self, actor: &Principal, params: &ListParams) -> Result<Vec<Map<String, Value>>> {
        let visibility = match actor.readable_organizations() {
            OrgScope::All => Visibility::default(),
            OrgScope::Only(orgs) => in_list("name", &orgs),
        };
        self.list(&ORGANIZATION_TABLE, params, visibility).await
    }

    /// Changes an Organization: name by Owners/Admins, status by system administrators;
    /// `org_type` cannot change (422).
    pub async fn update_organization(
        &self,
        actor: &Principal,
        name: &str,
        changes: OrganizationChanges,
    ) -> Result<Organization> {
        actor.authorize(Action::ManageOrganization, name)?;
        let current = self.load_organization(name).await?;
        if changes.org_type.is_some_and(|t| t != current.org_type) {
            return Err(Error::validation(
                "org_type cannot be changed after the organization is created",
            ));
        }
        if changes.status.is_some_and(|s| s != current.status) {
            actor.authorize_system()?;
        }
        let org_name = changes
            .org_name
            .as_deref()
            .map(|n| validate_text("org_name", n))
            .transpose()?;
        let current_status = current.status;
        let now = Timestamp::now();
        let updated = Organization {
            org_name: org_name.unwrap_or(current.org_name),
            status: changes.status.unwrap_or(current.status),
            modified: now,
            modified_by: actor.id().to_string(),
            ..current
        };
        self.db
            .observe(
                ORGANIZATION,
                "update",
                sqlx::query("UPDATE organization SET org_name = $1, status = $2, modified = $3, modified_by = $4 WHERE name = $5")
                    .bind(&updated.org_name)
                    .bind(updated.status.as_str())
                    .bind(now.to_string())
                    .bind(&updated.modified_by)
                    .bind(name)
                    .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        if updated.status != current_status {
            let members = self.member_emails(name).await.unwrap_or_else(|e| {
                tracing::warn!(organization = %name, error = %e, "cannot list members of a changed organization");
                Vec::new()
            });
            self.access.publish(AccessChange::OrganizationStatus {
                organization: name.to_string(),
                status: updated.status,
                members,
            });
        }
        Ok(updated)
    }

    /// Deletes an Organization (system administrators); refused with 409 while members or keys link to it.
    pub async fn delete_organization(&self, actor: &Principal, name: &str) -> Result<()> {
        actor.authorize_system()?;
        validate_reference(ORGANIZATION, name)?;
        let result = self
            .db
            .observe(
                ORGANIZATION,
                "delete",
                sqlx::query("DELETE FROM organization WHERE name = $1")
                    .bind(name)
                    .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("Organization {name} not found")));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- Person

    /// Creates a Person (system administrators; users are otherwise provisioned at first login).
    pub async fn create_person(&self, actor: &Principal, new: NewPerson) -> Result<Person> {
        actor.authorize_system()?;
        let person = self.insert_person(actor.id(), new).await?;
        tracing::info!(doctype = PERSON, docname = %person.name, "person created");
        Ok(person)
    }

    pub(crate) async fn insert_person(&self, actor_id: &str, new: NewPerson) -> Result<Person> {
        if let Some(name) = &new.name {
            validate_new_name(name)?;
        }
        let email = normalize_email(&new.primary_email).map_err(Error::validation)?;
        let full_name = match &new.full_name {
            Some(full_name) => validate_text("full_name", full_name)?,
            None => email.split('@').next().unwrap_or_default().to_string(),
        };
        let now = Timestamp::now();
        let actor_id = actor_id.to_string();
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let name = match new.name {
                        Some(name) => name,
                        None => next_name(tx, PERSON_SERIES, PERSON_TABLE.table, now).await?,
                    };
                    let person = Person {
                        name,
                        primary_email: email,
                        full_name,
                        status: new.status.unwrap_or(PersonStatus::Active),
                        creation: now,
                        modified: now,
                        owner: actor_id.clone(),
                        modified_by: actor_id,
                    };
                    sqlx::query(&format!(
                        "INSERT INTO person ({PERSON_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ))
                    .bind(&person.name)
                    .bind(&person.primary_email)
                    .bind(&person.full_name)
                    .bind(person.status.as_str())
                    .bind(now.to_string())
                    .bind(now.to_string())
                    .bind(&person.owner)
                    .bind(&person.modified_by)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match map_db_error(e) {
                        conflict if conflict.kind() == dartwing_core::ErrorKind::Conflict => {
                            Error::conflict("A Person with this name or primary_email already exists")
                        }
                        other => other,
                    })?;
                    Ok(person)
                })
            })
            .await
    }

    async fn load_person(&self, name: &str) -> Result<Person> {
        validate_reference(PERSON, name)?;
        let row: Option<OrgRow> = self
            .db
            .observe(
                PERSON,
                "select",
                sqlx::query_as(&format!("SELECT {PERSON_COLUMNS} FROM person WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        person_from(row.ok_or_else(|| Error::not_found(format!("Person {name} not found")))?)
    }

    /// Organizations in which Person `name` has an Active membership.
    async fn active_organizations_of(&self, name: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .db
            .observe(
                ORG_MEMBER,
                "select",
                sqlx::query_as("SELECT organization FROM org_member WHERE person = $1 AND status = 'Active'")
                    .bind(name)
                    .fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(org,)| org).collect())
    }

    /// How much of Person `name` the actor may see (the permission module decides from the
    /// organizations the Person is an Active member of). An unknown name is [`PersonView::Hidden`]
    /// to everyone but administrators, like a Person the actor may not see.
    async fn person_view(&self, actor: &Principal, name: &str) -> Result<PersonView> {
        if actor.system_admin || actor.person() == Some(name) {
            return Ok(PersonView::Full);
        }
        validate_reference(PERSON, name)?;
        let organizations = self.active_organizations_of(name).await?;
        Ok(actor.person_view(name, &organizations))
    }

    /// The answer for a Person the actor may not see: the same as for one that does not exist.
    fn person_not_found(name: &str) -> Error {
        Error::not_found(format!("Person {name} not found"))
    }

    /// Reads a Person: every field for the Person themself, administrators and those who manage
    /// an organization the Person is an Active member of; `name` and `full_name` for other
    /// co-members; 404 for everyone else, exactly as for a name that does not exist.
    pub async fn person(&self, actor: &Principal, name: &str) -> Result<PersonRecord> {
        let view = self.person_view(actor, name).await?;
        if view == PersonView::Hidden {
            return Err(Self::person_not_found(name));
        }
        let person = self.load_person(name).await?;
        Ok(match view {
            PersonView::Full => PersonRecord::Full(person),
            _ => PersonRecord::Limited {
                name: person.name,
                full_name: person.full_name,
            },
        })
    }

    /// Lists People the actor can see, with the fields of [`TenancyStore::person`]: rows the actor
    /// sees only in part show `null` in the other fields, and filtering or ordering on those fields
    /// searches only the rows the actor sees in full.
    pub async fn list_people(&self, actor: &Principal, params: &ListParams) -> Result<Vec<Map<String, Value>>> {
        // People with an Active membership in one of `orgs`, and the actor themself.
        let people_in = |orgs: Vec<String>| {
            let members = in_list("organization", &orgs);
            let mut condition = format!(
                "name IN (SELECT person FROM org_member WHERE status = 'Active' AND {})",
                members.condition.unwrap_or_else(|| "1 = 0".into())
            );
            let mut params = members.params;
            if let Some(person) = actor.person() {
                condition = format!("name = {{}} OR {condition}");
                params.insert(0, person.to_string());
            }
            (condition, params)
        };
        let visibility = match (
            actor.organizations_where(Action::Read),
            actor.organizations_where(Action::ManageMembers),
        ) {
            (OrgScope::Only(readable), OrgScope::Only(managed)) => {
                let (condition, params) = people_in(readable);
                let (revealed, revealed_params) = people_in(managed);
                Visibility {
                    condition: Some(condition),
                    params,
                    reveal: Some(Reveal {
                        public: &PersonView::LIMITED_FIELDS,
                        condition: revealed,
                        params: revealed_params,
                    }),
                }
            }
            _ => Visibility::default(),
        };
        self.list(&PERSON_TABLE, params, visibility).await
    }

    /// Changes a Person: a user may change its own `full_name`; email and status need a system administrator.
    pub async fn update_person(&self, actor: &Principal, name: &str, changes: PersonChanges) -> Result<Person> {
        if !(actor.system_admin || actor.person() == Some(name)) {
            if self.person_view(actor, name).await? == PersonView::Hidden {
                return Err(Self::person_not_found(name));
            }
            return Err(Error::permission_denied(format!(
                "Not permitted to change Person {name}"
            )));
        }
        let current = self.load_person(name).await?;
        let email = changes
            .primary_email
            .as_deref()
            .map(normalize_email)
            .transpose()
            .map_err(Error::validation)?;
        if email.as_ref().is_some_and(|e| *e != current.primary_email)
            || changes.status.is_some_and(|s| s != current.status)
        {
            actor.authorize_system()?;
        }
        let full_name = changes
            .full_name
            .as_deref()
            .map(|n| validate_text("full_name", n))
            .transpose()?;
        let previous_email = current.primary_email.clone();
        let previous_status = current.status;
        let now = Timestamp::now();
        let updated = Person {
            primary_email: email.unwrap_or(current.primary_email),
            full_name: full_name.unwrap_or(current.full_name),
            status: changes.status.unwrap_or(current.status),
            modified: now,
            modified_by: actor.id().to_string(),
            ..current
        };
        self.db
            .observe(
                PERSON,
                "update",
                sqlx::query("UPDATE person SET primary_email = $1, full_name = $2, status = $3, modified = $4, modified_by = $5 WHERE name = $6")
                    .bind(&updated.primary_email)
                    .bind(&updated.full_name)
                    .bind(updated.status.as_str())
                    .bind(now.to_string())
                    .bind(&updated.modified_by)
                    .bind(name)
                    .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        if updated.status != previous_status || updated.primary_email != previous_email {
            self.access.publish(AccessChange::Users(vec![previous_email]));
        }
        Ok(updated)
    }

    /// Deletes a Person (system administrators); refused with 409 while memberships link to it.
    pub async fn delete_person(&self, actor: &Principal, name: &str) -> Result<()> {
        actor.authorize_system()?;
        validate_reference(PERSON, name)?;
        let result = self
            .db
            .observe(
                PERSON,
                "delete",
                sqlx::query("DELETE FROM person WHERE name = $1")
                    .bind(name)
                    .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("Person {name} not found")));
        }
        Ok(())
    }

    /// The Person with this email (any case), if any. For administrative tools.
    pub async fn person_by_email(&self, email: &str) -> Result<Option<Person>> {
        let email = normalize_email(email).map_err(Error::validation)?;
        let row: Option<OrgRow> = self
            .db
            .observe(
                PERSON,
                "select",
                sqlx::query_as(&format!("SELECT {PERSON_COLUMNS} FROM person WHERE primary_email = $1"))
                    .bind(email)
                    .fetch_optional(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        row.map(person_from).transpose()
    }

    // ---------------------------------------------------------------- Org Member

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
        let member = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let member = OrgMember {
                        name: next_name(tx, MEMBER_SERIES, MEMBER_TABLE.table, now).await?,
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
                    insert_member(tx, &member).await.map_err(|e| {
                        if e.kind() == dartwing_core::ErrorKind::Conflict {
                            Error::conflict(duplicate)
                        } else {
                            e
                        }
                    })?;
                    Ok(member)
                })
            })
            .await?;
        let what = if member.status == MemberStatus::Invited {
            "member invited"
        } else {
            "member added"
        };
        tracing::info!(doctype = ORG_MEMBER, docname = %member.name, organization = %member.organization, "{what}");
        Ok(member)
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
                // One query whether or not a Person has the email, so that its timing tells nothing.
                let rows: Vec<(String, String)> = self
                    .db
                    .observe(
                        PERSON,
                        "select",
                        sqlx::query_as(
                            "SELECT p.name, m.organization FROM person p JOIN org_member m ON m.person = p.name \
                             WHERE p.primary_email = $1 AND m.status = 'Active'",
                        )
                        .bind(&email)
                        .fetch_all(self.db.pool()),
                    )
                    .await
                    .map_err(map_db_error)?;
                let Some(person) = rows.first().map(|(person, _)| person.clone()) else {
                    return Ok(None);
                };
                let organizations: Vec<String> = rows.into_iter().map(|(_, org)| org).collect();
                Ok((actor.person_view(&person, &organizations) == PersonView::Full).then_some(person))
            }
        }
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
        let row: Option<MemberRow> = self
            .db
            .observe(
                ORG_MEMBER,
                "select",
                sqlx::query_as(&format!("SELECT {MEMBER_COLUMNS} FROM org_member WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        member_from(row.ok_or_else(|| Error::not_found(format!("Org Member {name} not found")))?)
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
            (OrgScope::Only(readable), OrgScope::Only(managed)) => {
                let readable = in_list("organization", &readable);
                let managed = in_list("organization", &managed);
                let mut condition = format!(
                    "(status <> 'Invited' AND {}) OR (status = 'Invited' AND {})",
                    readable.condition.unwrap_or_else(|| "1 = 0".into()),
                    managed.condition.unwrap_or_else(|| "1 = 0".into())
                );
                let mut params = readable.params;
                params.extend(managed.params);
                if let (Some(email), Some(person)) = (actor.email(), actor.person()) {
                    condition.push_str(" OR (status = 'Invited' AND (invited_email = {} OR invited_person = {}))");
                    params.extend([email.to_string(), person.to_string()]);
                }
                Visibility {
                    condition: Some(condition),
                    params,
                    reveal: None,
                }
            }
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
        self.db
            .observe(
                ORG_MEMBER,
                "update",
                sqlx::query(
                    "UPDATE org_member SET role = $1, status = $2, modified = $3, modified_by = $4 WHERE name = $5",
                )
                .bind(updated.role.as_str())
                .bind(updated.status.as_str())
                .bind(now.to_string())
                .bind(&updated.modified_by)
                .bind(name)
                .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
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
        self.db
            .observe(
                ORG_MEMBER,
                "delete",
                sqlx::query("DELETE FROM org_member WHERE name = $1")
                    .bind(name)
                    .execute(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        tracing::info!(doctype = ORG_MEMBER, docname = %name, organization = %current.organization, "member removed");
        self.notify_member(&current).await;
        Ok(())
    }

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
        let (email, member) = (email.to_string(), accepted.clone());
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let existing: Option<(String,)> =
                        sqlx::query_as("SELECT name FROM org_member WHERE person = $1 AND organization = $2")
                            .bind(&member.person)
                            .bind(&member.organization)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(map_db_error)?;
                    if existing.is_some() {
                        return Err(Error::conflict(format!(
                            "You already have a membership in {}",
                            member.organization
                        )));
                    }
                    let updated = sqlx::query(
                        "UPDATE org_member SET person = $1, status = 'Active', invited_email = NULL, \
                         invited_person = NULL, modified = $2, modified_by = $3 WHERE name = $4 AND status = 'Invited'",
                    )
                    .bind(&member.person)
                    .bind(now.to_string())
                    .bind(&member.modified_by)
                    .bind(&member.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_db_error)?;
                    if updated.rows_affected() == 0 {
                        return Err(Error::not_found(format!(
                            "The invitation {} is no longer open",
                            member.name
                        )));
                    }
                    sqlx::query(
                        "DELETE FROM org_member WHERE organization = $1 AND status = 'Invited' \
                         AND (invited_email = $2 OR invited_person = $3)",
                    )
                    .bind(&member.organization)
                    .bind(&email)
                    .bind(&member.person)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_db_error)?;
                    Ok(())
                })
            })
            .await?;
        tracing::info!(doctype = ORG_MEMBER, docname = %accepted.name, organization = %accepted.organization, "invitation accepted");
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
        let (only, value) = match which {
            Some(InvitationRef::Organization(org)) => ("AND organization = $3", Some(org)),
            Some(InvitationRef::Member(name)) => ("AND name = $3", Some(name)),
            None => ("", None),
        };
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM org_member WHERE status = 'Invited' \
             AND (invited_email = $1 OR invited_person = $2) {only} ORDER BY creation, name LIMIT {limit}"
        );
        let mut query = sqlx::query_as(&sql).bind(email).bind(person);
        if let Some(value) = value {
            query = query.bind(value);
        }
        let rows: Vec<MemberRow> = self
            .db
            .observe(ORG_MEMBER, "invitations", query.fetch_all(self.db.pool()))
            .await
            .map_err(map_db_error)?;
        rows.into_iter().map(member_from).collect()
    }

    /// Emails of the Active Owners and Admins of `organization` (recipients of organization alerts).
    pub async fn admin_emails(&self, organization: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .db
            .observe(
                ORG_MEMBER,
                "admins",
                sqlx::query_as(
                    "SELECT p.primary_email FROM org_member m JOIN person p ON p.name = m.person \
                     WHERE m.organization = $1 AND m.role IN ('Owner', 'Admin') AND m.status = 'Active' \
                     AND p.status = 'Active' ORDER BY p.primary_email",
                )
                .bind(organization)
                .fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(email,)| email).collect())
    }

    /// The status of `organization`, or `None` when it does not exist (no permission check: for
    /// internal callers that already authorized the principal).
    pub async fn organization_status(&self, organization: &str) -> Result<Option<OrgStatus>> {
        if validate_reference(ORGANIZATION, organization).is_err() {
            return Ok(None);
        }
        let row: Option<(String,)> = sqlx::query_as("SELECT status FROM organization WHERE name = $1")
            .bind(organization)
            .fetch_optional(self.db.pool())
            .await
            .map_err(map_db_error)?;
        row.map(|(status,)| parse(&status)).transpose()
    }

    async fn ensure_another_owner(&self, member: &OrgMember) -> Result<()> {
        let (others,): (i64,) = self
            .db
            .observe(
                ORG_MEMBER,
                "count",
                sqlx::query_as(
                    "SELECT COUNT(*) FROM org_member WHERE organization = $1 AND role = 'Owner' AND status = 'Active' AND name <> $2",
                )
                .bind(&member.organization)
                .bind(&member.name)
                .fetch_one(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        if others == 0 {
            return Err(Error::validation("An organization must keep at least one active Owner"));
        }
        Ok(())
    }
}

async fn insert_member(tx: &mut AnyConnection, member: &OrgMember) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO org_member ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&member.name)
    .bind(&member.person)
    .bind(&member.organization)
    .bind(member.role.as_str())
    .bind(member.status.as_str())
    .bind(member.creation.to_string())
    .bind(member.modified.to_string())
    .bind(&member.owner)
    .bind(&member.modified_by)
    .bind(&member.invited_email)
    .bind(&member.invited_person)
    .execute(tx)
    .await
    .map_err(map_db_error)?;
    Ok(())
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

#[async_trait::async_trait]
impl dartwing_core::access::DocumentDirectory for TenancyStore {
    async fn owner(&self, doctype: &str, name: &str) -> Result<Option<dartwing_core::access::DocumentOwner>> {
        use dartwing_core::access::DocumentOwner;
        let sql = match doctype {
            ORGANIZATION => "SELECT name FROM organization WHERE name = $1",
            ORG_MEMBER => "SELECT organization FROM org_member WHERE name = $1",
            PERSON => "SELECT primary_email FROM person WHERE name = $1",
            _ => return Ok(None),
        };
        let row: Option<(String,)> = sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(self.db.pool())
            .await
            .map_err(map_db_error)?;
        Ok(row.map(|(value,)| {
            if doctype == PERSON {
                DocumentOwner::User(value)
            } else {
                DocumentOwner::Organization(value)
            }
        }))
    }
}

#[async_trait::async_trait]
impl dartwing_core::access::OrganizationDirectory for TenancyStore {
    async fn organization(&self, organization: &str) -> Result<Option<OrganizationSummary>> {
        if validate_reference(ORGANIZATION, organization).is_err() {
            return Ok(None);
        }
        let row: Option<(String, String, String)> = self
            .db
            .observe(
                ORGANIZATION,
                "summary",
                sqlx::query_as("SELECT name, org_name, status FROM organization WHERE name = $1")
                    .bind(organization)
                    .fetch_optional(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        row.map(|(name, org_name, status)| {
            Ok(OrganizationSummary {
                name,
                org_name,
                status: parse(&status)?,
            })
        })
        .transpose()
    }

    async fn admin_emails(&self, organization: &str) -> Result<Vec<String>> {
        TenancyStore::admin_emails(self, organization).await
    }

    async fn suspended(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .db
            .observe(
                ORGANIZATION,
                "suspended",
                sqlx::query_as("SELECT name FROM organization WHERE status = 'Suspended' ORDER BY name")
                    .fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }
}
