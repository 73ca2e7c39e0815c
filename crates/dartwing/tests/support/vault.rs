//! Seeding a database for tests of the vault across processes: an organization with stored
//! tokens of a provider `Acme`, and a service API key that reads them.

use dartwing_core::config::{Config, ProviderConfig};
use std::path::Path;
use std::time::Duration;

/// What [`seed`] made.
pub struct Seeded {
    /// The organization.
    pub org: String,
    /// `Authorization` header value of a service API key.
    pub service: String,
}

/// Seeds the database at `database_url`: an organization whose `Acme` integration (provider at
/// `provider`) holds `access_token`, valid for `expires_in`, under `key`.
pub async fn seed(
    dir: &Path,
    database_url: &str,
    jwt_secret: &str,
    key: &str,
    provider: &str,
    access_token: &str,
    expires_in: Duration,
) -> Seeded {
    let mut config = Config {
        database_url: Some(dartwing_core::config::Secret::url(database_url.to_string())),
        data_dir: dir.to_path_buf(),
        jwt_secret: Some(jwt_secret.into()),
        ..Default::default()
    };
    config.integrations.key = Some(key.to_string().into());
    config.integrations.providers.insert(
        "Acme".into(),
        ProviderConfig {
            client_id: "c".into(),
            auth_url: Some(format!("{provider}/authorize")),
            token_url: Some(format!("{provider}/token")),
            ..Default::default()
        },
    );
    let seed = dartwing::node::Node::build(config).await.unwrap();
    let operator = dartwing_core::Principal::system("test");
    let org = organization(&seed, "Acme").await;
    let grant = dartwing_integrations::TokenGrant {
        access_token: access_token.into(),
        refresh_token: Some("refresh-1".into()),
        expires_in: Some(expires_in),
        scopes: None,
    };
    seed.vault().store_tokens(&org, "Acme", &grant, "test").await.unwrap();
    let issued = seed.tenancy().create_api_key(&operator, None, "vault").await.unwrap();
    Seeded {
        org,
        service: format!("token {}:{}", issued.api_key, issued.api_secret),
    }
}

/// Creates a Company named `org_name` through `node`; its name.
pub async fn organization(node: &dartwing::node::Node, org_name: &str) -> String {
    node.tenancy()
        .create_organization(
            &dartwing_core::Principal::system("test"),
            dartwing_tenancy::NewOrganization {
                org_name: org_name.into(),
                org_type: dartwing_core::tenancy::OrgType::Company,
                name: None,
                status: None,
            },
        )
        .await
        .unwrap()
        .name
}
