//! Single-flight token refresh across real `dartwing` processes (SPEC §6): 100 concurrent
//! `get_access_token` calls spread over 3 server processes sharing one database cause exactly one
//! call to the provider's token endpoint, and every caller gets the fresh token.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use axum::extract::{Form, State};
use axum::routing::post;
use dartwing_core::config::Config;
use dartwing_e2e::process::{ChildGuard, serve_node};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_dartwing");
const SECRET: &str = "vault-process-secret-0123456789abcdef012345";

fn command(dir: &Path, database_url: &str, key: &str, config: &Path, args: &[&str]) -> std::process::Command {
    let mut command = dartwing_e2e::isolated_command(BINARY, dir);
    command
        .env("DARTWING_DATABASE_URL", database_url)
        .env("DARTWING_JWT_SECRET", SECRET)
        .env("DARTWING_INTEGRATION_KEY", key)
        .arg("--config")
        .arg(config)
        .args(args);
    command
}

/// An API process (killed when the test ends, however it ends) and its base URL.
async fn serve(dir: &Path, database_url: &str, key: &str, config: &Path, node_id: &str) -> (ChildGuard, String) {
    serve_node(&mut command(dir, database_url, key, config, &[]), node_id, "api").await
}

dartwing_e2e::backend_tests! {
    async fn hundred_callers_over_three_processes_cause_one_refresh(db) runtime(flavor = "multi_thread", worker_threads = 4) {
        // The provider's token endpoint, slow enough that every caller arrives during the refresh.
        let refreshes = Arc::new(AtomicU32::new(0));
        let app = axum::Router::new()
            .route(
                "/token",
                post(
                    async |State(count): State<Arc<AtomicU32>>, Form(form): Form<HashMap<String, String>>| {
                        assert_eq!(form.get("grant_type").map(String::as_str), Some("refresh_token"));
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        axum::Json(
                            json!({"access_token": format!("fresh-{n}"), "token_type": "Bearer", "expires_in": 3600}),
                        )
                    },
                ),
            )
            .with_state(refreshes.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let dir = db.dir.path();
        let key = dartwing_integrations::keyring::generate_key();
        let config_path = dir.join("dartwing.toml");
        std::fs::write(
            &config_path,
            format!(
                "[integrations.providers.Acme]\nclient_id = \"c\"\nclient_secret = \"s\"\n\
                 auth_url = \"{provider}/authorize\"\ntoken_url = \"{provider}/token\"\n"
            ),
        )
        .unwrap();

        // Seed an organization and a token that expires within the refresh buffer.
        let support::vault::Seeded { org, service: auth } =
            support::vault::seed(dir, &db.url, SECRET, &key, &provider, "stale", Duration::from_secs(60)).await;

        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(serve(dir, &db.url, &key, &config_path, &format!("vault-{i}")).await);
        }
        let client = reqwest::Client::new();
        let calls = (0..100).map(|i| {
            let url = format!(
                "{}/api/method/dartwing_core.integrations.get_access_token",
                nodes[i % 3].1
            );
            let (client, auth, org) = (client.clone(), auth.clone(), org.clone());
            async move {
                let reply = client
                    .post(url)
                    .header("authorization", auth)
                    .json(&json!({"integration": "Acme", "organization": org}))
                    .send()
                    .await
                    .unwrap();
                let status = reply.status();
                let body: Value = reply.json().await.unwrap();
                assert_eq!(status, 200, "{body}");
                body["message"]["access_token"].as_str().unwrap().to_string()
            }
        });
        let tokens = futures::future::join_all(calls).await;
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "exactly one provider call");
        assert!(tokens.iter().all(|t| t == "fresh-1"), "{tokens:?}");
        drop(nodes);
    }

    async fn keys_generate_and_rotate_through_the_cli(db) {
        let dir = db.dir.path();
        let generate = || {
            let out = dartwing_e2e::isolated_command(BINARY, dir)
                .args(["keys", "generate"])
                .env("DARTWING_DATABASE_URL", &db.url)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let (old, new) = (generate(), generate());
        assert_ne!(old, new);
        assert!(dartwing_integrations::KeyRing::new(&[old.clone(), new.clone()]).is_ok());

        // Rows written under the old key.
        let mut config = Config {
            database_url: Some(dartwing_core::config::Secret::url(db.url.clone())),
            data_dir: dir.to_path_buf(),
            jwt_secret: Some(SECRET.into()),
            ..Default::default()
        };
        config.integrations.key = Some(old.clone().into());
        let app = dartwing::node::Node::build(config.clone()).await.unwrap();
        let operator = dartwing_core::Principal::system("test");
        for name in ["One", "Two", "Three"] {
            let org = support::vault::organization(&app, name).await;
            let grant = dartwing_integrations::TokenGrant {
                access_token: format!("access-{name}"),
                refresh_token: Some(format!("refresh-{name}")),
                expires_in: Some(Duration::from_secs(3600)),
                scopes: None,
            };
            app.vault().store_tokens(&org, "Google", &grant, "test").await.unwrap();
        }

        let rotate = |key: &str, previous: &str| {
            dartwing_e2e::isolated_command(BINARY, dir)
                .args(["keys", "rotate"])
                .env("DARTWING_DATABASE_URL", &db.url)
                .env("DARTWING_JWT_SECRET", SECRET)
                .env("DARTWING_INTEGRATION_KEY", key)
                .env("DARTWING_INTEGRATIONS__PREVIOUS_KEYS", previous)
                .output()
                .unwrap()
        };
        // Without the old key in the ring: a clear error, nothing changed.
        let refused = rotate(&new, "[]");
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("previous_keys"), "{stderr}");
        // With it: every row re-encrypted, with a report.
        let done = rotate(&new, &format!("[\"{old}\"]"));
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        let report: Value = serde_json::from_slice(&done.stdout).unwrap();
        assert_eq!(report["rotated"], 3, "{report}");
        assert_eq!(report["remaining"], 0);
        // The old key is no longer needed.
        config.integrations.key = Some(new.clone().into());
        let only_new = dartwing::node::Node::build(config).await.unwrap();
        let orgs = only_new
            .tenancy()
            .list_organizations(
                &operator,
                &dartwing_tenancy::list::ListParams {
                    fields: Some(r#"["*"]"#.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(orgs.len(), 3);
        for org in orgs {
            let name = org["name"].as_str().unwrap();
            let token = only_new.vault().access_token("Google", name).await.unwrap();
            assert_eq!(
                token.access_token,
                format!("access-{}", org["org_name"].as_str().unwrap())
            );
        }
    }
}
