//! The vault's background jobs: the proactive refresh (scheduled) and the expiry email (queued by
//! the vault). Both are system-only job types.

use crate::mail::Mailer;
use crate::store::IntegrationStatus;
use crate::vault::{NOTIFY_JOB, REFRESH_JOB, TokenVault};
use async_trait::async_trait;
use dartwing_core::jobs::{CronEntry, JobContext, JobError, JobHandler, JobType};
use dartwing_http::Capability;
use serde_json::Value;
use std::time::Duration;

/// Adds both job types as system-only (tenants never enqueue them) and the proactive refresh's
/// schedule.
pub(crate) fn add_job_types(vault: &TokenVault, capability: Capability) -> Capability {
    let every = Duration::from_secs(vault.inner.config.proactive_refresh_interval_secs);
    capability
        .job_type(JobType::system(REFRESH_JOB, ProactiveRefresh(vault.clone())))
        .job_type(JobType::system(
            NOTIFY_JOB,
            NotifyExpired {
                vault: vault.clone(),
                mailer: Mailer::new(&vault.inner.config.smtp),
            },
        ))
        .schedule(CronEntry::every(REFRESH_JOB, every))
}

/// Refreshes every token expiring within the proactive window.
struct ProactiveRefresh(TokenVault);

#[async_trait]
impl JobHandler for ProactiveRefresh {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        self.0.refresh_expiring().await.map_err(JobError::from)?;
        Ok(())
    }
}

/// Emails every Active Owner/Admin of the job's organization that one of its integrations needs
/// reconnecting. A system-only job type queued by the vault itself: the organization is the job's
/// own (never its arguments), the integration named in the arguments must really be Expired in that
/// organization, and every word of the email comes from the server's own records.
struct NotifyExpired {
    vault: TokenVault,
    mailer: Mailer,
}

/// Drops control characters (CR/LF above all), so a value can never add mail headers or lines.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[async_trait]
impl JobHandler for NotifyExpired {
    async fn run(&self, ctx: &JobContext, args: Value) -> Result<(), JobError> {
        let Some(organization) = ctx.organization.as_deref() else {
            return Err(JobError::Permanent(format!(
                "{NOTIFY_JOB} runs only in an organization's context"
            )));
        };
        let requested = args
            .get("integration")
            .and_then(Value::as_str)
            .ok_or_else(|| JobError::Permanent("'integration' is required".into()))?;
        let row = self.vault.inner.store.get(organization, requested).await?;
        let Some(row) = row.filter(|r| r.status == IntegrationStatus::Expired) else {
            tracing::info!(
                organization,
                "the integration is not Expired in this organization; no expiry email sent"
            );
            return Ok(());
        };
        let org = self
            .vault
            .inner
            .directory
            .organization(organization)
            .await?
            .ok_or_else(|| JobError::Permanent(format!("organization {organization} no longer exists")))?;
        let admins = self.vault.inner.directory.admin_emails(organization).await?;
        let (integration, org_name, org_id) = (
            printable(&row.integration),
            printable(&org.org_name),
            printable(&org.name),
        );
        let subject = format!("Reconnect {integration} for {org_name}");
        let body = format!(
            "The {integration} integration of organization {org_name} ({org_id}) can no longer refresh its access: \
             the provider refused the refresh token.\n\nAn Owner or Admin needs to connect {integration} again.\n"
        );
        let sent = self
            .mailer
            .send_all(&admins, &subject, &body)
            .await
            .map_err(JobError::Transient)?;
        tracing::info!(
            organization,
            integration = %integration,
            recipients = sent,
            "integration expiry email sent"
        );
        Ok(())
    }
}
