//! Following the node's access changes: deleting what the vault keeps for an organization once it
//! is deleted (the vault holds no foreign key into tenancy's tables), dropping cached tokens as
//! they change anywhere in the cluster, and telling the other nodes when this one changes tokens.

use super::TokenVault;
use dartwing_core::access::{AccessChange, AccessChanges};

impl TokenVault {
    /// Follows `access`: deletes the integrations and pending connect flows of every organization
    /// deleted on this node from now on, in the order the deletions are published; drops cached
    /// tokens on every change that concerns them, wherever in the cluster it happened; and
    /// announces this vault's own token changes there.
    pub fn follow_access_changes(&self, access: &AccessChanges) {
        self.inner.tokens.follow(access);
        if self.inner.access.set(access.clone()).is_err() {
            tracing::warn!("the vault already follows an access-change hub");
        }
        let (deleted, mut receive) = tokio::sync::mpsc::unbounded_channel::<String>();
        access.subscribe_here(move |change| {
            if let AccessChange::OrganizationDeleted { organization } = change {
                let _ = deleted.send(organization.clone());
            }
        });
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            while let Some(organization) = receive.recv().await {
                match store.delete_organization(&organization).await {
                    Ok(removed) => {
                        tracing::info!(organization, removed, "integrations of a deleted organization removed")
                    }
                    Err(e) => {
                        tracing::error!(organization, error = %e, "cannot remove the integrations of a deleted organization")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keyring::{KeyRing, generate_key};
    use crate::store::{ConnectState, SealedTokens, VaultStore};
    use crate::vault::VaultDeps;
    use dartwing_core::access::{OrganizationDirectory, OrganizationSummary};
    use dartwing_core::config::{Config, DatabaseConfig};
    use dartwing_core::jobs::{Enqueued, Enqueuer, NewJob};
    use dartwing_core::tenancy::OrgStatus;
    use dartwing_core::{Principal, Timestamp};
    use dartwing_db::Db;
    use std::sync::Arc;
    use std::time::Duration;

    /// Every organization exists and is Active.
    struct EveryOrganization;

    #[async_trait::async_trait]
    impl OrganizationDirectory for EveryOrganization {
        async fn organization(&self, organization: &str) -> dartwing_core::Result<Option<OrganizationSummary>> {
            Ok(Some(OrganizationSummary {
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

    /// Enqueues nothing (the test starts no job).
    struct NoJobs;

    #[async_trait::async_trait]
    impl Enqueuer for NoJobs {
        async fn enqueue(&self, _actor: &Principal, _job: NewJob) -> dartwing_core::Result<Enqueued> {
            Err(dartwing_core::Error::internal())
        }
    }

    async fn vault() -> TokenVault {
        let config = DatabaseConfig {
            max_connections: 1,
            ..DatabaseConfig::default()
        };
        let db = Db::connect("sqlite::memory:", &config, None).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        let deps = VaultDeps {
            db,
            publisher: Arc::new(dartwing_core::publish::NoopPublisher),
            directory: Arc::new(EveryOrganization),
            enqueuer: Arc::new(NoJobs),
            metrics: Arc::new(dartwing_observe::Metrics::new(false, 10).unwrap()),
        };
        TokenVault::with_keys(
            &Config::default(),
            "node-1",
            deps,
            KeyRing::new(&[generate_key()]).unwrap(),
        )
        .unwrap()
    }

    async fn connect(store: &VaultStore, organization: &str) {
        let tokens = SealedTokens {
            access_token: "v1:k:access".into(),
            refresh_token: None,
            key_id: "k".into(),
            expires_at_us: Timestamp::now().as_micros() + 3_600_000_000,
        };
        store
            .save_connected(organization, "google", &tokens, None, "admin@example.com")
            .await
            .unwrap();
        let state = ConnectState {
            organization: organization.into(),
            integration: "google".into(),
            requested_by: "admin@example.com".into(),
            pkce_verifier: "v1:k:verifier".into(),
        };
        let expires = Timestamp::now().as_micros() + 600_000_000;
        store
            .save_state(&format!("state-of-{organization}"), &state, expires)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_published_organization_deletion_removes_its_integrations_and_connect_flows() {
        let vault = vault().await;
        let store = vault.store().clone();
        connect(&store, "org-a").await;
        connect(&store, "org-b").await;
        let access = AccessChanges::new();
        vault.follow_access_changes(&access);

        access.publish(AccessChange::OrganizationDeleted {
            organization: "org-a".into(),
        });
        let mut removed = false;
        for _ in 0..100 {
            if store.list("org-a").await.unwrap().is_empty() {
                removed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(removed, "the deleted organization's integration is still stored");
        assert!(store.take_state("state-of-org-a").await.unwrap().is_none());
        assert_eq!(store.list("org-b").await.unwrap().len(), 1);
        assert!(store.take_state("state-of-org-b").await.unwrap().is_some());
    }
}
