//! What other capabilities ask tenancy through the traits of `dartwing_core::access`: who owns a
//! document, and the facts of an organization.

use super::{TenancyStore, parse, validate_reference};
use dartwing_core::Result;
use dartwing_core::access::{DocumentDirectory, DocumentOwner, OrganizationDirectory, OrganizationSummary};
use dartwing_core::tenancy::{ORG_MEMBER, ORGANIZATION, OrgStatus, PERSON};

/// The summary columns of an `organization` row.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    name: String,
    org_name: String,
    status: String,
}

#[async_trait::async_trait]
impl DocumentDirectory for TenancyStore {
    async fn owner(&self, doctype: &str, name: &str) -> Result<Option<DocumentOwner>> {
        let sql = self.sql()?;
        let statement = match doctype {
            ORGANIZATION => &sql.organizations.exists,
            ORG_MEMBER => &sql.members.organization,
            PERSON => &sql.people.email,
            _ => return Ok(None),
        };
        let row = self.text(statement, name).await?;
        Ok(row.map(|value| {
            if doctype == PERSON {
                DocumentOwner::User(value)
            } else {
                DocumentOwner::Organization(value)
            }
        }))
    }
}

#[async_trait::async_trait]
impl OrganizationDirectory for TenancyStore {
    async fn organization(&self, organization: &str) -> Result<Option<OrganizationSummary>> {
        if validate_reference(ORGANIZATION, organization).is_err() {
            return Ok(None);
        }
        let summary = &self.sql()?.organizations.summary;
        let row: Option<SummaryRow> = self
            .db
            .run(
                summary,
                summary
                    .query_as()
                    .bind(organization.to_string())
                    .fetch_optional(self.db.pool()),
            )
            .await?;
        row.map(|row| {
            Ok(OrganizationSummary {
                name: row.name,
                org_name: row.org_name,
                status: parse(&row.status)?,
            })
        })
        .transpose()
    }

    async fn admin_emails(&self, organization: &str) -> Result<Vec<String>> {
        TenancyStore::admin_emails(self, organization).await
    }

    async fn exists(&self, organization: &str) -> Result<bool> {
        Ok(self.status(organization).await?.is_some())
    }

    /// From the node's cache of organization statuses when it holds `organization` (every status
    /// change and deletion drops it there, on every node, before it answers).
    async fn status(&self, organization: &str) -> Result<Option<OrgStatus>> {
        let Some(cache) = &self.org_statuses else {
            return self.organization_status(organization).await;
        };
        if let Some(status) = cache.get(organization) {
            return Ok(Some(*status));
        }
        let ticket = cache.ticket();
        let status = self.organization_status(organization).await?;
        if let Some(status) = status {
            cache.insert(ticket, organization, status, vec![organization.to_string()]);
        }
        Ok(status)
    }

    async fn suspended(&self) -> Result<Vec<String>> {
        let suspended = &self.sql()?.organizations.suspended;
        let names = self
            .db
            .run(suspended, suspended.query_scalar().fetch_all(self.db.pool()))
            .await?;
        Ok(names)
    }
}
