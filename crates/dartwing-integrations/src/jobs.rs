//! The vault's background jobs: the proactive refresh (scheduled) and the expiry email (queued).

use crate::mail::Mailer;
use crate::vault::{NOTIFY_JOB, REFRESH_JOB, TokenVault};
use async_trait::async_trait;
use dartwing_jobs::{CronEntry, HandlerRegistry, JobContext, JobError, JobHandler};
use serde_json::{Value, json};
use std::time::Duration;

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

/// Emails every Active Owner/Admin that an integration needs reconnecting.
struct NotifyExpired {
    vault: TokenVault,
    mailer: Mailer,
}

#[async_trait]
impl JobHandler for NotifyExpired {
    async fn run(&self, _ctx: &JobContext, args: Value) -> Result<(), JobError> {
        let field = |name: &str| {
            args[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| JobError::Permanent(format!("'{name}' is required")))
        };
        let (organization, integration) = (field("organization")?, field("integration")?);
        let admins = self
            .vault
            .inner
            .tenancy
            .admin_emails(&organization)
            .await
            .map_err(JobError::from)?;
        let subject = format!("Reconnect {integration} for {organization}");
        let body = format!(
            "The {integration} integration of organization {organization} can no longer refresh its access: \
             the provider refused the refresh token.\n\nAn Owner or Admin needs to connect {integration} again.\n"
        );
        let sent = self
            .mailer
            .send_all(&admins, &subject, &body)
            .await
            .map_err(JobError::Transient)?;
        tracing::info!(
            organization,
            integration,
            recipients = sent,
            "integration expiry email sent"
        );
        Ok(())
    }
}
