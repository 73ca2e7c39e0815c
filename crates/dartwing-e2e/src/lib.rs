//! Test harness for end-to-end suites: a fresh database per test (a temporary SQLite file, or a
//! fresh PostgreSQL schema when `DARTWING_TEST_DATABASE_URL` is set), a real server on an
//! ephemeral port, and a real HTTP client.
//!
//! Outside CI, suites skip PostgreSQL/Redis with a printed reason when their URLs are unset.
//! With `CI=true` a missing or unreachable service fails the test instead.
//!
//! The toolkit, one place for each need:
//! - [`backend_tests!`]: one test per backend, `<name>::sqlite` and `<name>::postgres`;
//! - [`scenario`]: a [`scenario::Scene`] of two organizations, refusal assertions, database snapshots;
//! - [`process`]: child processes killed however a test ends, free ports, health waits;
//! - [`tokens`]: JWTs over any claims, signed with the test secret or another;
//! - [`sockets`] and [`smtp`]: real Socket.IO clients and an SMTP sink.
//!
//! Whatever a test holds is released when it panics too: a [`TestDatabase`] drops its PostgreSQL
//! schema (ending the connections left on it), a [`process::ChildGuard`] kills its process.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod process;
pub mod scenario;
pub mod smtp;
pub mod sockets;
pub mod tokens;

use dartwing::node::Node;
use dartwing::server::{self, RunningServer};
use dartwing_core::config::Config;
use dartwing_core::publish::{Publisher, Target};
use dartwing_db::Backend;
use dartwing_jobs::HandlerRegistry;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// HS256 secret every test server uses.
pub const TEST_JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// Whether this run must have PostgreSQL and Redis (CI).
pub fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if services_required() => {
            panic!("{var} must be set when CI=true: PostgreSQL and Redis tests may not be skipped")
        }
        _ => {
            eprintln!("skipped: {var} is not set, so this test runs without that service");
            None
        }
    }
}

/// The Redis URL for tests, if configured.
pub fn redis_url() -> Option<String> {
    service_url("DARTWING_TEST_REDIS_URL")
}

/// A random lowercase suffix for names that must not collide between parallel tests.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    format!("{prefix}{}", hex::encode(bytes))
}

/// A cluster channel (access changes, job wake-ups: `purpose`) private to the test whose
/// database lives in `dir`, so that nodes of concurrent tests sharing the PostgreSQL database or
/// Redis never take each other for peers.
pub fn test_channel(dir: &Path, purpose: &str) -> String {
    let tag: String = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("dw_{tag}_{purpose}")
}

/// A database private to one test. A storage scenario runs on each backend as a test of its own
/// through [`backend_tests!`].
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    pub dir: TempDir,
    pg_cleanup: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("dartwing.db").display());
        Self {
            backend: Backend::Sqlite,
            url,
            dir,
            pg_cleanup: None,
        }
    }

    /// A fresh schema in the test PostgreSQL, or `None` (with a printed reason) outside CI when unset.
    pub async fn postgres() -> Option<Self> {
        let admin_url = service_url("DARTWING_TEST_DATABASE_URL")?;
        let schema = unique("dw_test_");
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("DARTWING_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create schema");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        // The schema's name doubles as the connections' application name, so that dropping the
        // database can end whatever connections a failed test left open.
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}&application_name={schema}");
        Some(Self {
            backend: Backend::Postgres,
            url,
            dir: tempfile::tempdir().expect("temp dir"),
            pg_cleanup: Some((admin_url, schema)),
        })
    }
}

impl Drop for TestDatabase {
    /// Drops the PostgreSQL schema, also when the test panicked: the connections the test's
    /// servers still hold (a server that was never stopped, a transaction left open) are ended
    /// first, so the drop never waits on their locks.
    fn drop(&mut self) {
        if let Some((admin_url, schema)) = self.pg_cleanup.take() {
            // Drop runs outside any runtime guarantee: clean up on a thread of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
                        .await
                        .ok()?;
                    for statement in [
                        "SET lock_timeout = '10s'".to_string(),
                        format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
                        ),
                        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                    ] {
                        if let Err(e) = sqlx::query(&statement).execute(&mut admin).await {
                            eprintln!("cleanup of the test schema {schema}: {e}");
                            return None;
                        }
                    }
                    Some(())
                })
            })
            .join();
        }
    }
}

/// A configuration for a test node on `db`, listening on an ephemeral port, quiet.
pub fn test_config(db: &TestDatabase) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: Some(dartwing_core::config::Secret::url(db.url.clone())),
        data_dir: db.dir.path().to_path_buf(),
        jwt_secret: Some(TEST_JWT_SECRET.into()),
        node_id: Some(unique("node-")),
        ..Default::default()
    };
    config.database.max_connections = 5;
    config.observability.access_log = false;
    config.tenancy.access_channel = test_channel(db.dir.path(), "access");
    config.jobs.wake_channel = test_channel(db.dir.path(), "jobs");
    config
}

/// The handles of a node that tests reach into (its stores and engines), taken from the
/// [`Node`] once it is built.
pub struct NodeHandles {
    pub config: Arc<Config>,
    pub node_id: String,
    pub db: dartwing_db::Db,
    pub metrics: Arc<dartwing_observe::Metrics>,
    pub jwt: Arc<dartwing_http::JwtVerifier>,
    pub tenancy: dartwing_tenancy::TenancyStore,
    pub jobs: dartwing_jobs::Jobs,
    pub realtime: dartwing_realtime::Realtime,
    /// The realtime gateway as the in-process publisher other capabilities use.
    pub publisher: dartwing_core::publish::SharedPublisher,
    pub sync: dartwing_sync::OfflineSync,
    pub integrations: dartwing_integrations::TokenVault,
}

impl NodeHandles {
    fn of(node: &Node) -> Self {
        Self {
            config: Arc::new(node.config().clone()),
            node_id: node.node_id().to_string(),
            db: node.db().clone(),
            metrics: node.metrics().clone(),
            jwt: node.jwt_handle(),
            tenancy: node.tenancy().clone(),
            jobs: node.jobs().clone(),
            realtime: node.realtime().clone(),
            publisher: Arc::new(node.realtime().clone()),
            sync: node.sync().clone(),
            integrations: node.vault().clone(),
        }
    }
}

/// A running node and an HTTP client for it.
pub struct TestServer {
    pub app: NodeHandles,
    /// The node itself (its route list, health).
    pub node: Node,
    pub base: String,
    pub client: reqwest::Client,
    /// Every realtime event the node published.
    pub publisher: Arc<RecordingPublisher>,
    running: Option<RunningServer>,
}

/// A publisher that records events, for assertions.
#[derive(Default)]
pub struct RecordingPublisher {
    events: Mutex<Vec<(String, Value, Target)>>,
}

impl RecordingPublisher {
    /// Events published so far: (event, message, target).
    pub fn events(&self) -> Vec<(String, Value, Target)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Publisher for RecordingPublisher {
    fn publish(&self, event: &str, message: Value, target: Target, _trace_id: Option<&str>) {
        if let Ok(mut events) = self.events.lock() {
            events.push((event.to_string(), message, target));
        }
    }
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text))
    }
}

impl TestServer {
    /// A node on `db` with the default test configuration.
    pub async fn start(db: &TestDatabase) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// A node on `db` with the test configuration changed by `adjust`.
    pub async fn start_with(db: &TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(
            db,
            adjust,
            HandlerRegistry::new(),
            Arc::new(RecordingPublisher::default()),
        )
        .await
    }

    /// A node with extra job handlers and the given publisher.
    pub async fn start_full(
        db: &TestDatabase,
        adjust: impl FnOnce(&mut Config),
        handlers: HandlerRegistry,
        publisher: Arc<RecordingPublisher>,
    ) -> Self {
        let mut config = test_config(db);
        adjust(&mut config);
        let node = Node::build_with(config, handlers, publisher.clone())
            .await
            .expect("node builds");
        let running = server::start(&node).await.expect("server starts");
        let app = NodeHandles::of(&node);
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            app,
            node,
            base,
            client,
            publisher,
            running: Some(running),
        }
    }

    /// `http://host:port` of the metrics listener (`observability.metrics_listen`), if any.
    pub fn metrics_base(&self) -> Option<String> {
        self.running
            .as_ref()
            .and_then(|running| running.metrics_addr)
            .map(|addr| format!("http://{addr}"))
    }

    /// Full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A valid user token for `email`.
    pub fn token(&self, email: &str) -> String {
        self.app
            .jwt
            .issue_dev_token(email, false, Duration::from_secs(600))
            .expect("token")
    }

    /// A valid platform-administrator token.
    pub fn admin_token(&self, email: &str) -> String {
        self.app
            .jwt
            .issue_dev_token(email, true, Duration::from_secs(600))
            .expect("token")
    }

    /// Sends a request with an optional `Authorization` header value and JSON body.
    pub async fn send(&self, method: Method, path: &str, authorization: Option<&str>, body: Option<&Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Reply { status, headers, text }
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(&format!("Bearer {token}")), None)
            .await
    }

    /// POST JSON with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(&format!("Bearer {token}")), Some(body))
            .await
    }

    /// PUT JSON with a bearer token.
    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, Some(&format!("Bearer {token}")), Some(body))
            .await
    }

    /// DELETE with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.send(Method::DELETE, path, Some(&format!("Bearer {token}")), None)
            .await
    }

    /// The `/metrics` text of this node.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics scraped")
            .text()
            .await
            .expect("metrics body")
    }

    /// Creates an organization as `owner_email` (who becomes its Owner) and returns its name.
    pub async fn create_org(&self, owner_email: &str, org_name: &str) -> String {
        let reply = self
            .post(
                "/api/resource/Organization",
                &self.token(owner_email),
                &serde_json::json!({ "org_name": org_name, "org_type": "Company" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["data"]["name"].as_str().expect("name").to_string()
    }

    /// Adds `email` (provisioning the Person through a first request) to `org` with `role`,
    /// acting as a platform administrator. Returns the Org Member name.
    pub async fn add_member(&self, org: &str, email: &str, role: &str) -> String {
        let me = self
            .get("/api/resource/Person?fields=[\"name\"]", &self.token(email))
            .await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
        let person = self
            .app
            .tenancy
            .person_by_email(email)
            .await
            .expect("lookup")
            .expect("provisioned")
            .name;
        let reply = self
            .post(
                "/api/resource/Org%20Member",
                &self.admin_token("root@example.com"),
                &serde_json::json!({ "person": person, "organization": org, "role": role }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["data"]["name"].as_str().expect("name").to_string()
    }

    /// Stops the node gracefully.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
        // Give the database connections back now: parallel suites share one PostgreSQL.
        self.app.db.pool().close().await;
    }
}

impl Drop for TestServer {
    /// A server that was not stopped (its test panicked) stops handing out database connections
    /// at once; its tasks end with the test's runtime, and its PostgreSQL connections are ended
    /// when the test's [`TestDatabase`] is dropped.
    fn drop(&mut self) {
        if self.running.is_some() {
            // Closing marks the pool closed at once; the returned future only waits for the
            // connections to go, which the runtime of a failed test no longer drives.
            drop(self.app.db.pool().close());
        }
    }
}

/// A command running `program` in `dir` that inherits no `DARTWING_*` variable from the test's
/// environment (so only what the test sets configures the process), on cluster channels of the
/// test's own ([`test_channel`] of `dir`).
pub fn isolated_command(program: &str, dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("DARTWING_") {
            command.env_remove(key);
        }
    }
    command
        .env("DARTWING_TENANCY__ACCESS_CHANNEL", test_channel(dir, "access"))
        .env("DARTWING_JOBS__WAKE_CHANNEL", test_channel(dir, "jobs"));
    command
}

/// The root of the workspace (the directory of the top-level `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/dartwing-e2e sits two levels below the workspace root")
}
