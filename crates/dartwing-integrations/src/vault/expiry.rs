//! Telling an organization's administrators that an integration expired.

use super::{EXPIRED_EVENT, EXPIRED_MESSAGE, NOTIFY_JOB, TokenVault};
use crate::store::IntegrationStatus;
use dartwing_core::Principal;
use dartwing_core::jobs::NewJob;
use dartwing_core::publish::Target;
use serde_json::json;

impl TokenVault {
    /// Tells every Active Owner/Admin: a realtime `integration_expired` event now, an email
    /// through a queued job.
    pub(super) async fn notify_expired(&self, organization: &str, integration: &str) {
        let message = json!({
            "organization": organization,
            "integration": integration,
            "status": IntegrationStatus::Expired,
            "message": EXPIRED_MESSAGE,
        });
        match self.inner.directory.admin_emails(organization).await {
            Ok(admins) => {
                for email in admins {
                    self.inner
                        .publisher
                        .publish(EXPIRED_EVENT, message.clone(), Target::User(email), None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list organization admins for integration_expired"),
        }
        // The job runs in the organization's context; the arguments only say which integration.
        let mut job = NewJob::new(NOTIFY_JOB, Some(organization), json!({ "integration": integration }));
        job.dedup_key = Some(format!("integration-expired:{integration}"));
        job.submitted_by = Some("integrations".into());
        if let Err(e) = self
            .inner
            .enqueuer
            .enqueue(&Principal::system("integrations"), job)
            .await
        {
            tracing::warn!(organization, integration, error = %e, "cannot queue the expiry email");
        }
    }
}
