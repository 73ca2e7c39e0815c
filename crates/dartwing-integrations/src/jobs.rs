//! The vault's background jobs: the proactive refresh (scheduled) and the expiry email (queued by
//! the vault). Both are system-only job types.

use crate::mail::Mailer;
use crate::store::IntegrationStatus;
use crate::vault::{NOTIFY_JOB, REFRESH_JOB, TokenVault};
use async_trait::async_trait;
use dartwing_jobs::{CronEntry, HandlerRegistry, JobContext, JobError, JobHandler};
use serde_json::{Value, json};
use std::time::Duration;

/// Registers both job types as system-only (the default): tenants never enqueue them.
pub(crate) fn register(vault: &TokenVault, registry: &mut HandlerRegistry) {
    let every = Duration::from_secs(vault.inner.config.proactive_refresh_interval_secs);
    registry
        .register(REFRESH_JOB, ProactiveRefresh(vault.clone()))
        .register(
            NOTIFY_JOB,
            NotifyExpired {
                vault: vault.clone(),
                mailer: Mailer::new(&vault.inner.config.smtp),
            },
        )
        .schedule(CronEntry {
            name: REFRESH_JOB.into(),
            method: REFRESH_JOB.into(),
            every,
            args: json!({}),
        });
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
            .tenancy
            .organization(&ctx.principal, organization)
            .await?;
        let admins = self.vault.inner.tenancy.admin_emails(organization).await?;
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
