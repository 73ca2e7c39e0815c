//! People: creation, reading (in full or limited, as the permission module decides), listing,
//! changes and deletion.

use super::{
    NewPerson, PERSON_TABLE, PersonChanges, PersonRecord, TenancyStore, parse, parse_ts, validate_new_name,
    validate_reference, validate_text,
};
use crate::list::{Condition, ListParams, Reveal, Visibility};
use dartwing_core::access::AccessChange;
use dartwing_core::permission::OrgScope;
use dartwing_core::tenancy::{PERSON, Person, PersonStatus, normalize_email};
use dartwing_core::{Action, Error, ErrorKind, PersonView, Principal, Result, Timestamp};
use dartwing_db::SqlFile;
use serde_json::{Map, Value};

const PEOPLE: SqlFile = SqlFile::portable(PERSON, "people", include_str!("sql/people.sql"));

statements! {
    /// Statements of People.
    PersonSql from PEOPLE {
        insert,
        select,
        select_by_email,
        email,
        update,
        delete,
        active_memberships_by_email,
    }
}

/// A `person` row as stored.
#[derive(sqlx::FromRow)]
struct PersonRow {
    name: String,
    primary_email: String,
    full_name: String,
    status: String,
    creation: String,
    modified: String,
    owner: String,
    modified_by: String,
}

impl PersonRow {
    fn into_person(self) -> Result<Person> {
        Ok(Person {
            name: self.name,
            primary_email: self.primary_email,
            full_name: self.full_name,
            status: parse(&self.status)?,
            creation: parse_ts(&self.creation)?,
            modified: parse_ts(&self.modified)?,
            owner: self.owner,
            modified_by: self.modified_by,
        })
    }
}

/// People with an Active membership in one of `organizations`, and the actor's own Person.
fn people_in(actor: &Principal, organizations: Vec<String>) -> Condition {
    let members = Condition::InSelect {
        column: "name",
        selected: "person",
        table: "org_member",
        condition: Box::new(Condition::All(vec![
            Condition::Equals("status", "Active".into()),
            Condition::In("organization", organizations),
        ])),
    };
    match actor.person() {
        Some(person) => Condition::AnyOf(vec![Condition::Equals("name", person.to_string()), members]),
        None => members,
    }
}

impl TenancyStore {
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
        let sql = self.sql()?;
        let now = Timestamp::now();
        let mut tx = self.db.begin_tx().await?;
        let name = match new.name {
            Some(name) => name,
            None => sql.naming.people().next(&self.db, &mut tx, now).await?,
        };
        let person = Person {
            name,
            primary_email: email,
            full_name,
            status: new.status.unwrap_or(PersonStatus::Active),
            creation: now,
            modified: now,
            owner: actor_id.to_string(),
            modified_by: actor_id.to_string(),
        };
        let insert = &sql.people.insert;
        self.db
            .run(
                insert,
                insert
                    .query()
                    .bind(person.name.clone())
                    .bind(person.primary_email.clone())
                    .bind(person.full_name.clone())
                    .bind(person.status.as_str())
                    .bind(now.to_string())
                    .bind(now.to_string())
                    .bind(person.owner.clone())
                    .bind(person.modified_by.clone())
                    .execute(&mut *tx),
            )
            .await
            .map_err(|e| match Error::from(e) {
                conflict if conflict.kind() == ErrorKind::Conflict => {
                    Error::conflict("A Person with this name or primary_email already exists")
                }
                other => other,
            })?;
        self.db.commit(tx).await?;
        Ok(person)
    }

    pub(super) async fn load_person(&self, name: &str) -> Result<Person> {
        validate_reference(PERSON, name)?;
        let select = &self.sql()?.people.select;
        let row: Option<PersonRow> = self
            .db
            .run(
                select,
                select.query_as().bind(name.to_string()).fetch_optional(self.db.pool()),
            )
            .await?;
        row.ok_or_else(|| Error::not_found(format!("Person {name} not found")))?
            .into_person()
    }

    /// The primary email of Person `person`, if it exists.
    pub(super) async fn person_email(&self, person: &str) -> Result<Option<String>> {
        self.text(&self.sql()?.people.email, person).await
    }

    /// How much of Person `name` the actor may see (the permission module decides from the
    /// organizations the Person is an Active member of). An unknown name is [`PersonView::Hidden`]
    /// to everyone but administrators, like a Person the actor may not see.
    pub(super) async fn person_view(&self, actor: &Principal, name: &str) -> Result<PersonView> {
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
        let visibility = match (
            actor.organizations_where(Action::Read),
            actor.organizations_where(Action::ManageMembers),
        ) {
            (OrgScope::Only(readable), OrgScope::Only(managed)) => Visibility {
                condition: Some(people_in(actor, readable)),
                reveal: Some(Reveal {
                    public: &PersonView::LIMITED_FIELDS,
                    condition: people_in(actor, managed),
                }),
            },
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
        let update = &self.sql()?.people.update;
        self.db
            .run(
                update,
                update
                    .query()
                    .bind(updated.primary_email.clone())
                    .bind(updated.full_name.clone())
                    .bind(updated.status.as_str())
                    .bind(now.to_string())
                    .bind(updated.modified_by.clone())
                    .bind(name.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        if updated.status != previous_status || updated.primary_email != previous_email {
            let mut emails = vec![previous_email];
            if updated.primary_email != emails[0] {
                emails.push(updated.primary_email.clone());
            }
            self.access.announce(AccessChange::Users(emails)).await;
        }
        Ok(updated)
    }

    /// Deletes a Person (system administrators); refused with 409 while memberships link to it.
    pub async fn delete_person(&self, actor: &Principal, name: &str) -> Result<()> {
        actor.authorize_system()?;
        validate_reference(PERSON, name)?;
        let email = self.person_email(name).await?;
        let delete = &self.sql()?.people.delete;
        let result = self
            .db
            .run(delete, delete.query().bind(name.to_string()).execute(self.db.pool()))
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("Person {name} not found")));
        }
        if let Some(email) = email {
            self.access.announce(AccessChange::Users(vec![email])).await;
        }
        Ok(())
    }

    /// The Person with this email (any case), if any. For administrative tools.
    pub async fn person_by_email(&self, email: &str) -> Result<Option<Person>> {
        let email = normalize_email(email).map_err(Error::validation)?;
        let select = &self.sql()?.people.select_by_email;
        let row: Option<PersonRow> = self
            .db
            .run(select, select.query_as().bind(email).fetch_optional(self.db.pool()))
            .await?;
        row.map(PersonRow::into_person).transpose()
    }
}
