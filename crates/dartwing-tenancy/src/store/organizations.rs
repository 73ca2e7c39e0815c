//! Organizations: creation (with the creator's Owner membership), reading, listing, changes and
//! deletion.

use super::{
    NewOrganization, ORGANIZATION_TABLE, OrganizationChanges, TenancyStore, parse, parse_ts, validate_new_name,
    validate_reference, validate_text,
};
use crate::list::{Condition, ListParams, Visibility};
use dartwing_core::access::AccessChange;
use dartwing_core::permission::OrgScope;
use dartwing_core::tenancy::{MemberRole, MemberStatus, ORGANIZATION, OrgMember, OrgStatus, Organization};
use dartwing_core::{Action, Error, Principal, Result, Timestamp};
use dartwing_db::SqlFile;
use serde_json::{Map, Value};

const ORGANIZATIONS: SqlFile = SqlFile::portable(ORGANIZATION, "organizations", include_str!("sql/organizations.sql"));

statements! {
    /// Statements of Organizations.
    OrganizationSql from ORGANIZATIONS {
        insert,
        select,
        update,
        delete,
        exists,
        status,
        summary,
        suspended,
    }
}

/// An `organization` row as stored.
#[derive(sqlx::FromRow)]
struct OrganizationRow {
    name: String,
    org_name: String,
    org_type: String,
    status: String,
    creation: String,
    modified: String,
    owner: String,
    modified_by: String,
}

impl OrganizationRow {
    fn into_organization(self) -> Result<Organization> {
        Ok(Organization {
            name: self.name,
            org_name: self.org_name,
            org_type: parse(&self.org_type)?,
            status: parse(&self.status)?,
            creation: parse_ts(&self.creation)?,
            modified: parse_ts(&self.modified)?,
            owner: self.owner,
            modified_by: self.modified_by,
        })
    }
}

impl TenancyStore {
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
        let sql = self.sql()?;
        let now = Timestamp::now();
        let actor_id = actor.id().to_string();
        let mut tx = self.db.begin_tx().await?;
        let name = match new.name {
            Some(name) => name,
            None => sql.naming.organizations().next(&self.db, &mut tx, now).await?,
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
        let insert = &sql.organizations.insert;
        self.db
            .run(
                insert,
                insert
                    .query()
                    .bind(organization.name.clone())
                    .bind(organization.org_name.clone())
                    .bind(organization.org_type.as_str())
                    .bind(organization.status.as_str())
                    .bind(now.to_string())
                    .bind(now.to_string())
                    .bind(actor_id.clone())
                    .bind(actor_id.clone())
                    .execute(&mut *tx),
            )
            .await?;
        if let Some(person) = actor.person() {
            let member = OrgMember {
                name: sql.naming.members().next(&self.db, &mut tx, now).await?,
                person: Some(person.to_string()),
                invited_email: None,
                invited_person: None,
                organization: organization.name.clone(),
                role: MemberRole::Owner,
                status: MemberStatus::Active,
                creation: now,
                modified: now,
                owner: actor_id.clone(),
                modified_by: actor_id,
            };
            self.insert_member(&mut tx, &member).await?;
        }
        self.db.commit(tx).await?;
        tracing::info!(doctype = ORGANIZATION, docname = %organization.name, "organization created");
        if let Some(email) = actor.email() {
            self.access
                .announce(AccessChange::Granted(vec![email.to_string()]))
                .await;
        }
        Ok(organization)
    }

    /// Reads an Organization (members and system administrators).
    pub async fn organization(&self, actor: &Principal, name: &str) -> Result<Organization> {
        actor.authorize(Action::Read, name)?;
        self.load_organization(name).await
    }

    pub(super) async fn load_organization(&self, name: &str) -> Result<Organization> {
        validate_reference(ORGANIZATION, name)?;
        let select = &self.sql()?.organizations.select;
        let row: Option<OrganizationRow> = self
            .db
            .run(
                select,
                select.query_as().bind(name.to_string()).fetch_optional(self.db.pool()),
            )
            .await?;
        row.ok_or_else(|| Error::not_found(format!("Organization {name} not found")))?
            .into_organization()
    }

    /// Lists Organizations the actor can read.
    pub async fn list_organizations(&self, actor: &Principal, params: &ListParams) -> Result<Vec<Map<String, Value>>> {
        let visibility = match actor.readable_organizations() {
            OrgScope::All => Visibility::default(),
            OrgScope::Only(orgs) => Visibility {
                condition: Some(Condition::In("name", orgs)),
                reveal: None,
            },
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
        let update = &self.sql()?.organizations.update;
        self.db
            .run(
                update,
                update
                    .query()
                    .bind(updated.org_name.clone())
                    .bind(updated.status.as_str())
                    .bind(now.to_string())
                    .bind(updated.modified_by.clone())
                    .bind(name.to_string())
                    .execute(self.db.pool()),
            )
            .await?;
        if updated.status != current_status {
            let members = self.member_emails(name).await.unwrap_or_else(|e| {
                tracing::warn!(organization = %name, error = %e, "cannot list members of a changed organization");
                Vec::new()
            });
            self.access
                .announce(AccessChange::OrganizationStatus {
                    organization: name.to_string(),
                    status: updated.status,
                    members,
                })
                .await;
        }
        Ok(updated)
    }

    /// Deletes an Organization (system administrators); refused with 409 while members or keys link
    /// to it. The other capabilities hear of it ([`AccessChange::OrganizationDeleted`]) and delete
    /// what they keep for it.
    pub async fn delete_organization(&self, actor: &Principal, name: &str) -> Result<()> {
        actor.authorize_system()?;
        validate_reference(ORGANIZATION, name)?;
        let delete = &self.sql()?.organizations.delete;
        let result = self
            .db
            .run(delete, delete.query().bind(name.to_string()).execute(self.db.pool()))
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::not_found(format!("Organization {name} not found")));
        }
        tracing::info!(doctype = ORGANIZATION, docname = %name, "organization deleted");
        self.access
            .announce(AccessChange::OrganizationDeleted {
                organization: name.to_string(),
            })
            .await;
        Ok(())
    }

    /// The status of `organization`, or `None` when it does not exist (no permission check: for
    /// internal callers that already authorized the principal).
    pub async fn organization_status(&self, organization: &str) -> Result<Option<OrgStatus>> {
        if validate_reference(ORGANIZATION, organization).is_err() {
            return Ok(None);
        }
        let status = self.text(&self.sql()?.organizations.status, organization).await?;
        status.map(|status| parse(&status)).transpose()
    }

    /// Whether Organization `name` exists (no permission check).
    pub(super) async fn organization_exists(&self, name: &str) -> Result<bool> {
        let found = self.text(&self.sql()?.organizations.exists, name).await?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use dartwing_core::access::AccessChanges;
    use dartwing_core::config::DatabaseConfig;
    use dartwing_core::tenancy::OrgType;
    use dartwing_db::Db;
    use std::sync::{Arc, Mutex};

    async fn store_on_sqlite(dir: &std::path::Path, access: AccessChanges) -> TenancyStore {
        let db = Db::connect(&Db::sqlite_url_in(dir), &DatabaseConfig::default(), None)
            .await
            .expect("connects");
        db.migrate(&[&crate::MIGRATIONS]).await.expect("migrates");
        TenancyStore::new(db).with_access_changes(access)
    }

    fn new_organization(org_name: &str) -> NewOrganization {
        NewOrganization {
            name: None,
            org_name: org_name.into(),
            org_type: OrgType::Company,
            status: None,
        }
    }

    #[tokio::test]
    async fn deleting_an_organization_tells_the_other_capabilities() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let access = AccessChanges::new();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        access.subscribe(move |change| sink.lock().expect("lock").push(change.clone()));
        let store = store_on_sqlite(dir.path(), access).await;
        let admin = Principal::system("test");
        let organization = store
            .create_organization(&admin, new_organization("Acme"))
            .await
            .expect("created");

        store
            .delete_organization(&admin, &organization.name)
            .await
            .expect("deleted");

        assert_eq!(
            *heard.lock().expect("lock"),
            [AccessChange::OrganizationDeleted {
                organization: organization.name.clone()
            }]
        );
        let again = store.delete_organization(&admin, &organization.name).await;
        assert!(again.is_err_and(|e| e.kind() == dartwing_core::ErrorKind::NotFound));
        assert_eq!(heard.lock().expect("lock").len(), 1, "a failed deletion tells no one");
    }
}
