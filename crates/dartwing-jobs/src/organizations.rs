//! What the job engine does when an organization changes: a suspension pauses its jobs, a
//! deletion removes what the engine keeps for it (jobs hold no foreign key into tenancy's tables).

use crate::store::JobStore;
use crate::webhook::WebhookSettings;
use dartwing_core::access::{AccessChange, AccessChanges, SharedDirectory};
use dartwing_core::tenancy::OrgStatus;
use dartwing_core::{Result, Timestamp};
use tokio::sync::{mpsc, oneshot};

/// What the job engine does about organizations, one at a time and in order.
pub(crate) enum OrganizationWork {
    /// Suspended (`true`) or active again (`false`): its jobs are paused or resumed.
    Paused(String, bool),
    /// Deleted: its paused record and webhook settings go (its jobs stay as they are).
    Deleted(String),
    /// Make the paused record match the directory (when workers start, in case a status change
    /// happened while no node listened); answer when done.
    Reconcile(oneshot::Sender<Result<()>>),
}

/// Keeps the paused organizations in step with organization suspensions, and deletes what the job
/// engine keeps for an organization once it is deleted (jobs hold no foreign key into tenancy's
/// tables). One task applies the changes in the order they are published, and the reconciliations
/// sent to the returned channel in turn with them, so a reconciliation that read the directory
/// before a change never undoes it.
pub(crate) fn follow(
    access: &AccessChanges,
    store: JobStore,
    webhook_settings: WebhookSettings,
    directory: SharedDirectory,
) -> mpsc::UnboundedSender<OrganizationWork> {
    let (work, mut receive) = mpsc::unbounded_channel::<OrganizationWork>();
    let changes = work.clone();
    access.subscribe_here(move |change| match change {
        AccessChange::OrganizationStatus {
            organization, status, ..
        } => {
            let paused = *status == OrgStatus::Suspended;
            let _ = changes.send(OrganizationWork::Paused(organization.clone(), paused));
        }
        AccessChange::OrganizationDeleted { organization } => {
            let _ = changes.send(OrganizationWork::Deleted(organization.clone()));
        }
        _ => {}
    });
    tokio::spawn(async move {
        while let Some(next) = receive.recv().await {
            match next {
                OrganizationWork::Paused(organization, paused) => {
                    if let Err(e) = store.set_paused(&organization, paused).await {
                        tracing::error!(organization, paused, error = %e, "cannot record an organization's paused jobs");
                    }
                }
                OrganizationWork::Deleted(organization) => {
                    delete_organization(&store, &webhook_settings, &organization).await
                }
                OrganizationWork::Reconcile(done) => {
                    let as_of = Timestamp::now();
                    let result = match directory.suspended().await {
                        Ok(suspended) => store.reconcile_paused(&suspended, as_of).await,
                        Err(e) => Err(e),
                    };
                    let _ = done.send(result);
                }
            }
        }
    });
    work
}

/// Deletes a deleted organization's paused record and webhook settings.
async fn delete_organization(store: &JobStore, webhook_settings: &WebhookSettings, organization: &str) {
    if let Err(e) = store.set_paused(organization, false).await {
        tracing::error!(organization, error = %e, "cannot remove the paused record of a deleted organization");
    }
    match webhook_settings.delete_organization(organization).await {
        Ok(removed) => tracing::info!(
            organization,
            removed,
            "webhook settings of a deleted organization removed"
        ),
        Err(e) => {
            tracing::error!(organization, error = %e, "cannot remove the webhook settings of a deleted organization")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::Queue;
    use crate::webhook::HostPattern;
    use dartwing_core::access::{OrganizationDirectory, OrganizationSummary};
    use dartwing_core::config::{DatabaseConfig, JobsConfig};
    use dartwing_core::jobs::NewJob;
    use dartwing_db::Db;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    /// Every organization exists and is Active (`true`), or none exists (`false`).
    struct Organizations(bool);

    #[async_trait::async_trait]
    impl OrganizationDirectory for Organizations {
        async fn organization(&self, organization: &str) -> dartwing_core::Result<Option<OrganizationSummary>> {
            Ok(self.0.then(|| OrganizationSummary {
                name: organization.to_string(),
                org_name: organization.to_string(),
                status: OrgStatus::Active,
            }))
        }

        async fn admin_emails(&self, _organization: &str) -> dartwing_core::Result<Vec<String>> {
            Ok(Vec::new())
        }

        async fn suspended(&self) -> dartwing_core::Result<Vec<String>> {
            Ok(Vec::new())
        }
    }

    async fn db() -> Db {
        let config = DatabaseConfig {
            max_connections: 1,
            ..DatabaseConfig::default()
        };
        let db = Db::connect("sqlite::memory:", &config, None).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        db
    }

    async fn settings_of(settings: &WebhookSettings, organization: &str) -> (bool, usize) {
        let hosts = settings.allowed_hosts(organization).await.unwrap().len();
        let secret = settings.stored_secret(organization).await.unwrap().is_some();
        (secret, hosts)
    }

    #[tokio::test]
    async fn a_published_organization_deletion_removes_its_webhook_settings_and_paused_record() {
        let db = db().await;
        let store = JobStore::new(db.clone(), Arc::new(JobsConfig::default())).unwrap();
        let settings = WebhookSettings::new(db, Arc::new(Organizations(true))).unwrap();
        let hosts = [HostPattern::parse("hooks.example.com").unwrap()];
        for organization in ["org-a", "org-b"] {
            settings.signing_secret(organization).await.unwrap();
            settings.set_allowed_hosts(organization, &hosts).await.unwrap();
        }
        let (job, _) = store
            .enqueue(&NewJob::new("core.noop", Some("org-a"), json!({})))
            .await
            .unwrap();
        let access = AccessChanges::new();
        follow(&access, store.clone(), settings.clone(), Arc::new(Organizations(true)));

        access.publish(AccessChange::OrganizationStatus {
            organization: "org-a".into(),
            status: OrgStatus::Suspended,
            members: vec!["a@example.com".into()],
        });
        access.publish(AccessChange::OrganizationDeleted {
            organization: "org-a".into(),
        });
        let mut removed = false;
        for _ in 0..100 {
            if settings_of(&settings, "org-a").await == (false, 0) {
                removed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(removed, "the deleted organization's webhook settings are still stored");
        assert_eq!(settings_of(&settings, "org-b").await, (true, 1));
        // Its jobs stay as they were, and are no longer paused.
        let claimed = store.claim(Queue::Default, "worker-1", 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, job.job_id);
    }

    #[tokio::test]
    async fn no_signing_secret_is_generated_for_an_organization_that_does_not_exist() {
        let settings = WebhookSettings::new(db().await, Arc::new(Organizations(false))).unwrap();
        let error = settings.signing_secret("org-gone").await.unwrap_err();
        assert_eq!(error.kind(), dartwing_core::ErrorKind::NotFound);
        assert_eq!(settings_of(&settings, "org-gone").await, (false, 0));
    }
}
