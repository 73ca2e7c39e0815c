//! Storage of Organizations, People and Org Members. Every method takes the acting
//! [`Principal`] and asks the permission module before it reads or writes.

use crate::list::{DocTable, ListParams, ListQuery, Visibility, row_to_object};
use dartwing_core::access::AccessNotifier;
use dartwing_core::ids::NamingSeries;
use dartwing_core::names;
use dartwing_core::permission::OrgScope;
use dartwing_core::tenancy::{
    MemberRole, MemberStatus, ORG_MEMBER, ORGANIZATION, OrgMember, OrgStatus, OrgType, Organization, PERSON, Person,
    PersonStatus, normalize_email,
};
use dartwing_core::{Action, Error, Principal, Result, Timestamp};
use dartwing_db::{Db, map_db_error};
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
const MEMBER_COLUMNS: &str = "name, person, organization, role, status, creation, modified, owner, modified_by";

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

/// Fields of a new Org Member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// The Person's name.
    pub person: String,
    /// The Organization's name.
    pub organization: String,
    /// Role in the organization.
    pub role: MemberRole,
    /// Default Active.
    pub status: Option<MemberStatus>,
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
    access: AccessNotifier,
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
type MemberRow = (String, String, String, String, String, String, String, String, String);

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
    let (name, person, organization, role, status, creation, modified, owner, modified_by) = row;
    Ok(OrgMember {
        name,
        person,
        organization,
        role: parse(&role)?,
        status: parse(&status)?,
        creation: parse_ts(&creation)?,
        modified: parse_ts(&modified)?,
        owner,
        modified_by,
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
        };
    }
    let placeholders = vec!["{}"; values.len()].join(", ");
    Visibility {
        condition: Some(format!("{column} IN ({placeholders})")),
        params: values.to_vec(),
    }
}

impl TenancyStore {
    /// A store on `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            access: AccessNotifier::default(),
        }
    }

    /// Where this store reports changes that may shrink someone's access (shared by clones).
    pub fn access_notifier(&self) -> &AccessNotifier {
        &self.access
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

    async fn notify_person(&self, person: &str) {
        match self.person_email(person).await {
            Ok(Some(email)) => self.access.notify(vec![email]),
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
                        let member_name = next_name(tx, MEMBER_SERIES, MEMBER_TABLE.table, now).await?;
                        insert_member(
                            tx,
                            &member_name,
                            &person,
                            &organization.name,
                            MemberRole::Owner,
                            MemberStatus::Active,
                            now,
                            &actor_id,
                        )
                        .await?;
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
            match self.member_emails(name).await {
                Ok(emails) => self.access.notify(emails),
                Err(e) => {
                    tracing::warn!(organization = %name, error = %e, "cannot list members of a changed organization")
                }
            }
        }
        Ok(updated)
    }

    /// Deletes an Organization (system administrators); refused with 409 while members or keys link to it.
    pub async fn delete_organization(&self, actor: &Principal, name: &str) -> Result<()> {
        actor.authorize_system()?;
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

    /// Whether `actor` may read Person `name`: itself, system administrators, and members of an
    /// organization the person belongs to.
    async fn authorize_person_read(&self, actor: &Principal, name: &str) -> Result<()> {
        if actor.system_admin || actor.person() == Some(name) {
            return Ok(());
        }
        let orgs: Vec<(String,)> = self
            .db
            .observe(
                ORG_MEMBER,
                "select",
                sqlx::query_as("SELECT organization FROM org_member WHERE person = $1")
                    .bind(name)
                    .fetch_all(self.db.pool()),
            )
            .await
            .map_err(map_db_error)?;
        if orgs.iter().any(|(org,)| actor.can(Action::Read, org)) {
            Ok(())
        } else {
            Err(Error::permission_denied(format!("Not permitted to read Person {name}")))
        }
    }

    /// Reads a Person.
    pub async fn person(&self, actor: &Principal, name: &str) -> Result<Person> {
        self.authorize_person_read(actor, name).await?;
        self.load_person(name).await
    }

    /// Lists People the actor can read.
    pub async fn list_people(&self, actor: &Principal, params: &ListParams) -> Result<Vec<Map<String, Value>>> {
        let visibility = match actor.readable_organizations() {
            OrgScope::All => Visibility::default(),
            OrgScope::Only(orgs) => {
                let members = in_list("organization", &orgs);
                let condition = format!(
                    "name IN (SELECT person FROM org_member WHERE {})",
                    members.condition.unwrap_or_else(|| "1 = 0".into())
                );
                let mut params = members.params;
                match actor.person() {
                    Some(person) => {
                        params.insert(0, person.to_string());
                        Visibility {
                            condition: Some(format!("name = {{}} OR {condition}")),
                            params,
                        }
                    }
                    None => Visibility {
                        condition: Some(condition),
                        params,
                    },
                }
            }
        };
        self.list(&PERSON_TABLE, params, visibility).await
    }

    /// Changes a Person: a user may change its own `full_name`; email and status need a system administrator.
    pub async fn update_person(&self, actor: &Principal, name: &str, changes: PersonChanges) -> Result<Person> {
        if !(actor.system_admin || actor.person() == Some(name)) {
            self.authorize_person_read(actor, name).await?;
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
            self.access.notify(vec![previous_email]);
        }
        Ok(updated)
    }

    /// Deletes a Person (system administrators); refused with 409 while memberships link to it.
    pub async fn delete_person(&self, actor: &Principal, name: &str) -> Result<()> {
        actor.authorize_system()?;
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

    /// Adds a member (Owners/Admins of the organization; only Owners grant Owner).
    pub async fn add_member(&self, actor: &Principal, new: NewMember) -> Result<OrgMember> {
        actor.authorize(Action::ManageMembers, &new.organization)?;
        if new.role == MemberRole::Owner && !actor.can_manage_owners(&new.organization) {
            return Err(Error::permission_denied("Only Owners may grant the Owner role"));
        }
        self.load_organization(&new.organization).await?;
        self.load_person(&new.person).await.map_err(|_| {
            Error::validation(format!("Person {} does not exist", new.person)).with_exc_type("LinkValidationError")
        })?;
        let now = Timestamp::now();
        let actor_id = actor.id().to_string();
        let member = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let name = next_name(tx, MEMBER_SERIES, MEMBER_TABLE.table, now).await?;
                    let status = new.status.unwrap_or(MemberStatus::Active);
                    insert_member(
                        tx,
                        &name,
                        &new.person,
                        &new.organization,
                        new.role,
                        status,
                        now,
                        &actor_id,
                    )
                    .await
                    .map_err(|e| {
                        if e.kind() == dartwing_core::ErrorKind::Conflict {
                            Error::conflict(format!(
                                "Person {} is already a member of {}",
                                new.person, new.organization
                            ))
                        } else {
                            e
                        }
                    })?;
                    Ok(OrgMember {
                        name,
                        person: new.person,
                        organization: new.organization,
                        role: new.role,
                        status,
                        creation: now,
                        modified: now,
                        owner: actor_id.clone(),
                        modified_by: actor_id,
                    })
                })
            })
            .await?;
        tracing::info!(doctype = ORG_MEMBER, docname = %member.name, organization = %member.organization, "member added");
        Ok(member)
    }

    async fn load_member(&self, name: &str) -> Result<OrgMember> {
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

    /// Reads an Org Member (members of its organization).
    pub async fn member(&self, actor: &Principal, name: &str) -> Result<OrgMember> {
        let member = self.load_member(name).await?;
        actor.authorize(Action::Read, &member.organization)?;
        Ok(member)
    }

    /// Lists Org Members of the organizations the actor can read.
    pub async fn list_members(&self, actor: &Principal, params: &ListParams) -> Result<Vec<Map<String, Value>>> {
        let visibility = match actor.readable_organizations() {
            OrgScope::All => Visibility::default(),
            OrgScope::Only(orgs) => in_list("organization", &orgs),
        };
        self.list(&MEMBER_TABLE, params, visibility).await
    }

    /// Changes a member's role or status. Owner role changes need an Owner; the last active
    /// Owner cannot be demoted or deactivated.
    pub async fn update_member(&self, actor: &Principal, name: &str, changes: MemberChanges) -> Result<OrgMember> {
        let current = self.load_member(name).await?;
        actor.authorize(Action::ManageMembers, &current.organization)?;
        let role = changes.role.unwrap_or(current.role);
        let status = changes.status.unwrap_or(current.status);
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
        self.notify_person(&updated.person).await;
        Ok(updated)
    }

    /// Removes a member (same rules as [`TenancyStore::update_member`]).
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
        self.notify_person(&current.person).await;
        Ok(())
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

#[allow(clippy::too_many_arguments)]
async fn insert_member(
    tx: &mut AnyConnection,
    name: &str,
    person: &str,
    organization: &str,
    role: MemberRole,
    status: MemberStatus,
    now: Timestamp,
    actor_id: &str,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO org_member ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(name)
    .bind(person)
    .bind(organization)
    .bind(role.as_str())
    .bind(status.as_str())
    .bind(now.to_string())
    .bind(now.to_string())
    .bind(actor_id)
    .bind(actor_id)
    .execute(tx)
    .await
    .map_err(map_db_error)?;
    Ok(())
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
