//! Migrations keep the rows they find: a database migrated to version 10, holding a webhook
//! secret, allowed hosts, an integration and a pending connect flow, migrates to the end (jobs'
//! migration 11 and the vault's 13 rebuild or alter those tables) and still answers them, on
//! SQLite and, when available, PostgreSQL. Afterwards no foreign key ties them to the organization.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing::node::MIGRATIONS;
use dartwing_core::Principal;
use dartwing_core::config::DatabaseConfig;
use dartwing_core::tenancy::OrgType;
use dartwing_db::{Backend, Db};
use dartwing_integrations::store::{ConnectState, SealedTokens, VaultStore};
use dartwing_jobs::webhook::{HostPattern, WebhookSettings};
use dartwing_tenancy::{NewOrganization, TenancyStore};
use std::borrow::Cow;
use std::sync::Arc;

/// Runs every capability's migrations up to `version` only.
async fn migrate_to(db: &Db, version: i64) {
    let mut migrations: Vec<sqlx::migrate::Migration> = MIGRATIONS
        .iter()
        .flat_map(|set| {
            let own = match db.backend() {
                Backend::Sqlite => set.sqlite,
                Backend::Postgres => set.postgres,
            };
            set.portable.iter().chain(own.iter()).cloned()
        })
        .filter(|m| m.version <= version)
        .collect();
    migrations.sort_by_key(|m| m.version);
    let migrator = sqlx::migrate::Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    migrator.run(db.pool()).await.expect("migrates to the version");
}

dartwing_e2e::backend_tests! {
    async fn webhook_settings_and_integrations_survive_the_migrations_that_drop_their_organization_key(test_db) {
        let db = Db::connect(&test_db.url, &DatabaseConfig::default(), None)
            .await
            .unwrap();
        migrate_to(&db, 10).await;
        let tenancy = TenancyStore::new(db.clone());
        let organization = tenancy
            .create_organization(
                &Principal::system("upgrade-test"),
                NewOrganization {
                    name: None,
                    org_name: "Upgrade".into(),
                    org_type: OrgType::Company,
                    status: None,
                },
            )
            .await
            .unwrap()
            .name;
        let settings = WebhookSettings::new(db.clone(), Arc::new(tenancy.clone())).unwrap();
        let secret = settings.signing_secret(&organization).await.unwrap();
        let hosts = vec![HostPattern::parse("hooks.example.com").unwrap()];
        settings.set_allowed_hosts(&organization, &hosts).await.unwrap();
        let vault = VaultStore::new(db.clone()).unwrap();
        let tokens = SealedTokens {
            access_token: "v1:k:access".into(),
            refresh_token: Some("v1:k:refresh".into()),
            key_id: "k".into(),
            expires_at_us: 1_900_000_000_000_000,
        };
        vault
            .save_connected(&organization, "google", &tokens, Some("mail"), "admin@example.com")
            .await
            .unwrap();
        let state = ConnectState {
            organization: organization.clone(),
            integration: "google".into(),
            requested_by: "admin@example.com".into(),
            pkce_verifier: "v1:k:verifier".into(),
        };
        vault.save_state("upgrade-state", &state, i64::MAX / 2).await.unwrap();

        db.migrate(&MIGRATIONS).await.expect("migrates to the end");

        assert_eq!(settings.signing_secret(&organization).await.unwrap(), secret);
        assert_eq!(settings.allowed_hosts(&organization).await.unwrap(), hosts);
        let row = vault
            .get(&organization, "google")
            .await
            .unwrap()
            .expect("integration kept");
        assert_eq!(row.access_token.as_deref(), Some("v1:k:access"));
        assert_eq!(row.refresh_token.as_deref(), Some("v1:k:refresh"));
        assert_eq!(row.status.as_str(), "Connected");
        let taken = vault
            .take_state("upgrade-state")
            .await
            .unwrap()
            .expect("connect flow kept");
        assert_eq!(taken.pkce_verifier, "v1:k:verifier");

        // No foreign key is left: deleting the organization (nobody follows its deletion here)
        // no longer cascades into the jobs' and the vault's tables.
        tenancy
            .delete_organization(&Principal::system("upgrade-test"), &organization)
            .await
            .unwrap();
        assert_eq!(settings.allowed_hosts(&organization).await.unwrap(), hosts);
        assert!(vault.get(&organization, "google").await.unwrap().is_some());
    }
}
