//! Access changes across three real `dartwing` processes on one PostgreSQL database, carried by
//! Redis pub/sub or, without Redis, by PostgreSQL `NOTIFY`: every node caches principals and
//! integration tokens, and a change made through one node is in force on the very next request
//! on every other node — a removed member is refused, a new member admitted, a suspended
//! organization's writes refused, a refreshed or disconnected integration token never served stale.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::routing::post;
mod support;

use dartwing_e2e::process::NodeCluster;
use dartwing_e2e::{TestDatabase, redis_url, unique};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_dartwing");
const SECRET: &str = "access-cluster-secret-0123456789abcdef0123";
const OWNER: &str = "owner@example.com";
const MEMBER: &str = "member@example.com";

/// Nodes sharing one database (and Redis when given) and an access channel of their own.
struct Cluster(NodeCluster);

impl std::ops::Deref for Cluster {
    type Target = NodeCluster;

    fn deref(&self) -> &NodeCluster {
        &self.0
    }
}

impl Cluster {
    /// One node per entry of `configs`, each with that configuration file (if any) and `env`.
    async fn start(
        dir: &Path,
        database_url: &str,
        redis: Option<&str>,
        configs: &[Option<&Path>],
        env: &[(&str, &str)],
    ) -> Self {
        let channel = unique("dw_access_test_");
        let commands = configs
            .iter()
            .map(|config| {
                let mut command = dartwing_e2e::isolated_command(BINARY, dir);
                if let Some(config) = config {
                    command.arg("--config").arg(config);
                }
                command
                    .env("DARTWING_DATABASE_URL", database_url)
                    .env("DARTWING_TENANCY__ACCESS_CHANNEL", &channel);
                if let Some(redis) = redis {
                    command.env("DARTWING_REDIS_URL", redis);
                }
                for (key, value) in env {
                    command.env(key, value);
                }
                command
            })
            .collect();
        Self(NodeCluster::start(commands, "api", SECRET).await)
    }

    /// The status of `email` reading organization `org` through `node`.
    async fn read_status(&self, node: usize, email: &str, org: &str) -> StatusCode {
        let path = format!("/api/resource/Organization/{org}");
        let auth = format!("Bearer {}", self.token(email));
        self.request(node, Method::GET, &path, &auth, None).await.0
    }

    /// The status of `email` renaming organization `org` through `node`.
    async fn rename_status(&self, node: usize, email: &str, org: &str, name: &str) -> StatusCode {
        let path = format!("/api/resource/Organization/{org}");
        let auth = format!("Bearer {}", self.token(email));
        self.request(node, Method::PUT, &path, &auth, Some(json!({"org_name": name})))
            .await
            .0
    }
}

/// Membership added, removed, organization suspended: each in force on the next request of
/// every node, whose caches were warm.
async fn membership_changes_apply_on_the_next_request_everywhere(database_url: &str, dir: &Path, redis: Option<&str>) {
    let cluster = Cluster::start(dir, database_url, redis, &[None, None, None], &[]).await;
    let body = cluster
        .call(
            0,
            Method::POST,
            "/api/resource/Organization",
            &cluster.token(OWNER),
            Some(json!({"org_name": "Acme", "org_type": "Company"})),
        )
        .await;
    let org = body["data"]["name"].as_str().unwrap().to_string();
    let person = cluster.person_of(MEMBER).await;

    // Every node has the member's principal cached without the membership.
    for node in 0..3 {
        let status = cluster.read_status(node, MEMBER, &org).await;
        assert!(status.is_client_error(), "node {node} before the membership: {status}");
        assert!(cluster.read_status(node, MEMBER, &org).await.is_client_error());
    }
    let member = cluster
        .call(
            0,
            Method::POST,
            "/api/resource/Org%20Member",
            &cluster.admin(),
            Some(json!({"person": person, "organization": org, "role": "Admin"})),
        )
        .await["data"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    for node in [1, 2, 0] {
        assert_eq!(
            cluster.read_status(node, MEMBER, &org).await,
            StatusCode::OK,
            "node {node}: the new membership is usable on the next request"
        );
    }

    // Warm again (the member is cached with the membership), then remove it through node 0.
    for node in 0..3 {
        assert_eq!(cluster.read_status(node, MEMBER, &org).await, StatusCode::OK);
    }
    cluster
        .call(
            0,
            Method::DELETE,
            &format!("/api/resource/Org%20Member/{member}"),
            &cluster.token(OWNER),
            None,
        )
        .await;
    for node in [1, 2, 0] {
        let status = cluster.read_status(node, MEMBER, &org).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "node {node}: the removed member is refused on the next request, got {status}"
        );
    }

    // The owner writes through every node; once the organization is suspended through node 0
    // the next write is refused everywhere (reading stays).
    for node in 0..3 {
        assert_eq!(
            cluster.rename_status(node, OWNER, &org, &format!("Acme {node}")).await,
            StatusCode::OK
        );
    }
    cluster
        .call(
            0,
            Method::PUT,
            &format!("/api/resource/Organization/{org}"),
            &cluster.admin(),
            Some(json!({"status": "Suspended"})),
        )
        .await;
    for node in [1, 2, 0] {
        assert_eq!(
            cluster
                .rename_status(node, OWNER, &org, "Renamed while suspended")
                .await,
            StatusCode::FORBIDDEN,
            "node {node}: the suspension is in force on the next request"
        );
        assert_eq!(cluster.read_status(node, OWNER, &org).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn membership_changes_apply_on_the_next_request_of_every_node_through_redis() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let Some(redis) = redis_url() else { return };
    membership_changes_apply_on_the_next_request_everywhere(&db.url, db.dir.path(), Some(&redis)).await;
}

#[tokio::test]
async fn membership_changes_apply_on_the_next_request_of_every_node_through_postgres_notify() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    membership_changes_apply_on_the_next_request_everywhere(&db.url, db.dir.path(), None).await;
}

/// A provider whose token endpoint answers `fresh-<n>` to the n-th refresh.
/// An organization deleted through one node is unknown on the next request of every node, whose
/// caches of organization statuses were warm: a job for it is refused everywhere.
async fn organization_deletion_applies_on_the_next_request_everywhere(
    database_url: &str,
    dir: &Path,
    redis: Option<&str>,
) {
    let cluster = Cluster::start(dir, database_url, redis, &[None, None, None], &[]).await;
    let admin = cluster.admin();
    let org = cluster
        .call(
            0,
            Method::POST,
            "/api/resource/Organization",
            &admin,
            Some(json!({"org_name": "Doomed", "org_type": "Company"})),
        )
        .await["data"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let enqueue = |node: usize| {
        let (cluster, admin, org) = (&cluster, admin.clone(), org.clone());
        async move {
            cluster
                .request(
                    node,
                    Method::POST,
                    "/api/method/dartwing_core.jobs.enqueue",
                    &format!("Bearer {admin}"),
                    Some(json!({"method": "core.noop", "organization": org, "args": {}})),
                )
                .await
        }
    };
    for node in 0..3 {
        let (status, body) = enqueue(node).await;
        assert_eq!(status, StatusCode::OK, "node {node} before the deletion: {body}");
    }
    // The creator's membership links to the organization (and, as its last Owner, stays through
    // the API): remove it in the database, then the organization through node 0.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    sqlx::query("DELETE FROM org_member WHERE organization = $1")
        .bind(&org)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    cluster
        .call(
            0,
            Method::DELETE,
            &format!("/api/resource/Organization/{org}"),
            &admin,
            None,
        )
        .await;
    for node in [1, 2, 0] {
        let (status, body) = enqueue(node).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "node {node}: a job for the deleted organization is refused on the next request: {body}"
        );
    }
}

#[tokio::test]
async fn organization_deletion_applies_on_the_next_request_of_every_node_through_redis() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let Some(redis) = redis_url() else { return };
    organization_deletion_applies_on_the_next_request_everywhere(&db.url, db.dir.path(), Some(&redis)).await;
}

#[tokio::test]
async fn organization_deletion_applies_on_the_next_request_of_every_node_through_postgres_notify() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    organization_deletion_applies_on_the_next_request_everywhere(&db.url, db.dir.path(), None).await;
}

async fn provider() -> (String, Arc<AtomicU32>) {
    let refreshes = Arc::new(AtomicU32::new(0));
    let counter = refreshes.clone();
    let app = axum::Router::new().route(
        "/token",
        post(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                axum::Json(json!({"access_token": format!("fresh-{n}"), "token_type": "Bearer", "expires_in": 3600}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, refreshes)
}

/// Node 0 refreshes (its refresh buffer is longer than the token's life) and later disconnects;
/// nodes 1 and 2, which cached the old token, answer the new one — then none — on their next call.
async fn token_changes_apply_on_the_next_call_everywhere(database_url: &str, dir: &Path, redis: Option<&str>) {
    let (provider, refreshes) = provider().await;
    let key = dartwing_integrations::keyring::generate_key();
    let support::vault::Seeded { org, service } = support::vault::seed(
        dir,
        database_url,
        SECRET,
        &key,
        &provider,
        "first",
        Duration::from_secs(3600),
    )
    .await;

    let providers = format!(
        "[integrations.providers.Acme]\nclient_id = \"c\"\nclient_secret = \"s\"\n\
         auth_url = \"{provider}/authorize\"\ntoken_url = \"{provider}/token\"\n"
    );
    let common = dir.join("common.toml");
    std::fs::write(&common, &providers).unwrap();
    // Node 0 refreshes any token living less than two hours: the others' stays fresh.
    let refreshing = dir.join("refreshing.toml");
    std::fs::write(
        &refreshing,
        format!("[integrations]\nrefresh_buffer_secs = 7200\n\n{providers}"),
    )
    .unwrap();
    let cluster = Cluster::start(
        dir,
        database_url,
        redis,
        &[Some(&refreshing), Some(&common), Some(&common)],
        &[("DARTWING_INTEGRATION_KEY", &key)],
    )
    .await;
    let read = async |node: usize| {
        cluster
            .request(
                node,
                Method::POST,
                "/api/method/dartwing_core.integrations.get_access_token",
                &service,
                Some(json!({"integration": "Acme", "organization": org})),
            )
            .await
    };
    for node in [1, 2, 1, 2] {
        let (status, body) = read(node).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["message"]["access_token"], "first");
    }
    let (status, body) = read(0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["access_token"], "fresh-1", "node 0 refreshes");
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    for node in [1, 2] {
        let (status, body) = read(node).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["message"]["access_token"], "fresh-1",
            "node {node} answers the refreshed token on its next call"
        );
    }

    let (status, body) = cluster
        .request(
            0,
            Method::POST,
            "/api/method/dartwing_core.integrations.disconnect",
            &format!("Bearer {}", cluster.admin()),
            Some(json!({"integration": "Acme", "organization": org})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for node in [1, 2] {
        let (status, body) = read(node).await;
        assert!(
            status.is_client_error(),
            "node {node} answers no token after the disconnect: {status} {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_changes_apply_on_the_next_call_of_every_node_through_redis() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let Some(redis) = redis_url() else { return };
    token_changes_apply_on_the_next_call_everywhere(&db.url, db.dir.path(), Some(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_changes_apply_on_the_next_call_of_every_node_through_postgres_notify() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    token_changes_apply_on_the_next_call_everywhere(&db.url, db.dir.path(), None).await;
}
