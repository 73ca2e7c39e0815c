//! The `dartwing` binary as an operator uses it: `serve` on a fresh directory, `token issue`,
//! administrative commands, configuration errors, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::TestDatabase;
use dartwing_e2e::process::{ChildGuard, free_listen_address, serve};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_dartwing");

/// A command in `dir` with no `DARTWING_*` variables inherited from the environment.
fn dartwing(dir: &Path) -> Command {
    dartwing_e2e::isolated_command(BINARY, dir)
}

fn run(dir: &Path, args: &[&str]) -> Output {
    dartwing(dir).args(args).output().expect("dartwing runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A `dartwing serve` process, killed if the test fails before terminating it.
struct Served {
    child: ChildGuard,
    base: String,
}

impl Served {
    async fn start(dir: &Path, extra: &[&str]) -> Self {
        let listen = free_listen_address();
        let (child, base) = serve(
            dartwing(dir)
                .args(["serve", "--listen", &listen])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            &listen,
            Duration::from_secs(30),
            "the server",
        )
        .await;
        Self { child, base }
    }

    /// Sends SIGTERM and returns the exit status and stdout.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        self.child.signal("TERM");
        let output = self.child.wait_with_output();
        (output.status, String::from_utf8_lossy(&output.stdout).to_string())
    }
}

#[tokio::test]
async fn serve_on_a_fresh_directory_creates_the_database_and_answers_health_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &[]).await;
    assert!(dir.path().join("dartwing-data/dartwing.db").exists());
    let secret_file = dir.path().join("dartwing-data/jwt-secret");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "generated secret is owner-only");

    let token = stdout(&run(dir.path(), &["token", "issue", "--email", "ann@example.com"]))
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/api/resource/Organization", served.base))
        .bearer_auth(&token)
        .json(&json!({"org_name": "Acme", "org_type": "Family"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = created["data"]["name"].as_str().expect("created").to_string();
    let read = client
        .get(format!("{}/api/resource/Organization/{name}", served.base))
        .bearer_auth(&token)
        .header("x-trace-id", "walkthrough-1")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    let (status, logs) = served.terminate();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(
        !logs.contains(secret.trim()) && !logs.contains(&token),
        "no secret in logs"
    );
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "message", "node_id"] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }
    let listening = lines
        .iter()
        .find(|l| l["message"].as_str().unwrap().contains("listening"))
        .expect("startup line");
    assert!(listening["message"].as_str().unwrap().contains("dartwing token issue"));
    let request = lines
        .iter()
        .find(|l| l["trace_id"] == "walkthrough-1")
        .expect("request line with the trace id");
    assert_eq!(request["user"], "ann@example.com");
    assert_eq!(request["organization"], name.as_str());
    assert_eq!(request["endpoint"], "/api/resource/{doctype}/{name}");
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
}

#[tokio::test]
async fn database_url_alone_switches_to_postgresql() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &["--database-url", &db.url]).await;
    let health: Value = reqwest::get(format!("{}/health", served.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["checks"]["database"]["detail"], "postgres reachable");
    assert!(!dir.path().join("dartwing-data/dartwing.db").exists());
    let (status, _) = served.terminate();
    assert!(status.success());
}

#[tokio::test]
async fn administrative_commands_manage_organizations_members_and_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let org: Value = serde_json::from_str(&stdout(&run(
        dir.path(),
        &[
            "org",
            "create",
            "--org-name",
            "Acme",
            "--org-type",
            "Company",
            "--owner",
            "Ann@Example.com",
        ],
    )))
    .unwrap();
    let org_name = org["name"].as_str().unwrap();
    let member: Value = serde_json::from_str(&stdout(&run(
        dir.path(),
        &[
            "member",
            "add",
            "--org",
            org_name,
            "--email",
            "bob@example.com",
            "--role",
            "Guest",
        ],
    )))
    .unwrap();
    assert_eq!(member["role"], "Guest");
    let duplicate = run(
        dir.path(),
        &[
            "member",
            "add",
            "--org",
            org_name,
            "--email",
            "bob@example.com",
            "--role",
            "Guest",
        ],
    );
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already a member"));
    let members: Value = serde_json::from_str(&stdout(&run(dir.path(), &["member", "list"]))).unwrap();
    assert_eq!(members.as_array().unwrap().len(), 2);
    let key: Value = serde_json::from_str(&stdout(&run(dir.path(), &["apikey", "create", "--org", org_name]))).unwrap();
    let authorization = format!(
        "token {}:{}",
        key["api_key"].as_str().unwrap(),
        key["api_secret"].as_str().unwrap()
    );
    let listed = stdout(&run(dir.path(), &["apikey", "list"]));
    assert!(
        !listed.contains(key["api_secret"].as_str().unwrap()),
        "secrets are never listed"
    );

    let served = Served::start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let read = client
        .get(format!("{}/api/resource/Organization/{org_name}", served.base))
        .header("authorization", &authorization)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let revoke = run(dir.path(), &["apikey", "revoke", key["api_key"].as_str().unwrap()]);
    assert!(revoke.status.success());
    let after = client
        .get(format!("{}/api/resource/Organization/{org_name}", served.base))
        .header("authorization", &authorization)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    served.terminate();
}

fn fails_naming(output: Output, key: &str) {
    assert_eq!(output.status.code(), Some(2), "configuration errors exit with 2");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(key), "error should name `{key}`: {stderr}");
}

#[test]
fn invalid_configuration_fails_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    fails_naming(
        dartwing(dir.path())
            .env("DARTWING_DATABASE__MAX_CONNECTIONS", "many")
            .args(["config", "check"])
            .output()
            .unwrap(),
        "database.max_connections",
    );
    fails_naming(
        dartwing(dir.path())
            .env("DARTWING_DATABASE__MAX_CONNECTIONS", "0")
            .args(["serve"])
            .output()
            .unwrap(),
        "database.max_connections",
    );
    fails_naming(run(dir.path(), &["--roles", "api,web", "serve"]), "roles");
    fails_naming(run(dir.path(), &["--listen", "not-an-address", "serve"]), "listen");
    fails_naming(
        run(dir.path(), &["--database-url", "mysql://x", "serve"]),
        "database_url",
    );
    std::fs::write(dir.path().join("dartwing.toml"), "[http]\nbody_limit_bytes = \"big\"\n").unwrap();
    fails_naming(run(dir.path(), &["config", "check"]), "http.body_limit_bytes");
    std::fs::write(
        dir.path().join("dartwing.toml"),
        "[observability]\nlog_levl = \"info\"\n",
    )
    .unwrap();
    fails_naming(run(dir.path(), &["config", "check"]), "log_levl");
    std::fs::write(
        dir.path().join("dartwing.toml"),
        "listen = \"127.0.0.1:9999\"\n[database]\nmax_connections = 3\n",
    )
    .unwrap();
    let shown: Value = serde_json::from_str(&stdout(
        &dartwing(dir.path())
            .env("DARTWING_JWT_SECRET", "s".repeat(40))
            .args(["config", "check"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(shown["listen"], "127.0.0.1:9999");
    assert_eq!(shown["database"]["max_connections"], 3);
    assert_eq!(shown["jwt_secret"], "<set>", "secrets are not printed");
}

/// Asserts a configuration failure (exit code 2) whose message names each of `keys` on a line
/// of its own.
fn fails_naming_each(output: Output, keys: &[&str]) {
    assert_eq!(output.status.code(), Some(2), "configuration errors exit with 2");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let mut lines_naming: Vec<usize> = keys
        .iter()
        .map(|key| {
            let named: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(&format!("`{key}`")))
                .collect();
            assert_eq!(named.len(), 1, "one line should name `{key}`: {stderr}");
            named[0]
        })
        .collect();
    lines_naming.sort_unstable();
    lines_naming.dedup();
    assert_eq!(lines_naming.len(), keys.len(), "each key on its own line: {stderr}");
}

#[test]
fn every_invalid_key_is_reported_at_once_each_on_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    // Unusable values in two sections.
    fails_naming_each(
        dartwing(dir.path())
            .env("DARTWING_DATABASE__MAX_CONNECTIONS", "0")
            .env("DARTWING_HTTP__MAX_CONNECTIONS", "0")
            .args(["config", "check"])
            .output()
            .unwrap(),
        &["database.max_connections", "http.max_connections"],
    );
    std::fs::write(
        dir.path().join("dartwing.toml"),
        "[jobs.queues.bulk]\nworkers = 0\n[sync]\nmerge_hook_url = \"hooks.example.com\"\n",
    )
    .unwrap();
    let refused = dartwing(dir.path())
        .env("DARTWING_REALTIME__PUBLISH_QUEUE", "0")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    fails_naming_each(
        refused,
        &[
            "jobs.queues.bulk.workers",
            "sync.merge_hook_url",
            "realtime.publish_queue",
        ],
    );
    assert!(
        !dir.path().join("dartwing-data").exists(),
        "a refused start creates nothing"
    );
    // Values of the wrong type, from the file and the environment, are all named too.
    std::fs::write(
        dir.path().join("dartwing.toml"),
        "[http]\nbody_limit_bytes = \"big\"\n[database]\nmax_connections = \"many\"\n",
    )
    .unwrap();
    fails_naming_each(
        dartwing(dir.path())
            .env("DARTWING_JOBS__LEASE_SECS", "soon")
            .args(["config", "check"])
            .output()
            .unwrap(),
        &["http.body_limit_bytes", "database.max_connections", "jobs.lease_secs"],
    );
}

#[test]
fn contract_environment_variables_configure_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let output = dartwing(dir.path())
        .env("DARTWING_LISTEN", "127.0.0.1:8123")
        .env("DARTWING_DATABASE_URL", "postgres://db.example/dartwing")
        .env("DARTWING_REDIS_URL", "redis://127.0.0.1:6379/")
        .env("DARTWING_DATA_DIR", "/var/lib/dartwing")
        .env("DARTWING_NODE_ID", "7")
        .env("DARTWING_ROLES", "api,worker")
        .env("DARTWING_JWT_SECRET", "x".repeat(40))
        .env("DARTWING_OBSERVABILITY__LOG_FORMAT", "text")
        .env("DARTWING_INTEGRATION_KEY", "belongs-to-the-token-vault")
        .args(["config", "check"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(shown["listen"], "127.0.0.1:8123");
    // Connection URLs without a password show in full; passwords never (see below).
    assert_eq!(shown["database_url"], "postgres://db.example/dartwing");
    assert_eq!(shown["redis_url"], "redis://127.0.0.1:6379/");
    assert_eq!(shown["data_dir"], "/var/lib/dartwing");
    assert_eq!(shown["node_id"], "7", "numeric-looking text stays text");
    assert_eq!(shown["roles"], "api,worker");
    assert_eq!(shown["jwt_secret"], "<set>");
    assert_eq!(shown["observability"]["log_format"], "text");
    let flagged = dartwing(dir.path())
        .env("DARTWING_NODE_ID", "from-env")
        .args(["--node-id", "from-flag", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&flagged)).unwrap()["node_id"],
        "from-flag",
        "flags win over the environment"
    );
}

#[test]
fn config_check_with_every_secret_set_prints_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dartwing.toml"),
        r#"
[observability]
metrics_token = "metrics-token-value-4"

[integrations]
previous_keys = ["previous-key-value-6"]

[integrations.smtp]
host = "smtp.example.com"
username = "mailer"
password = "smtp-password-value-7"

[integrations.providers.Google]
client_id = "client-id-shown"
client_secret = "client-secret-value-8"
"#,
    )
    .unwrap();
    let output = dartwing(dir.path())
        .env(
            "DARTWING_DATABASE_URL",
            "postgres://app:db-password-value-1@db.internal:5432/dartwing",
        )
        .env("DARTWING_REDIS_URL", "redis://:redis-password-value-2@cache:6379/0")
        .env("DARTWING_JWT_SECRET", "jwt-secret-value-3-0123456789abcdef0123")
        .env("DARTWING_INTEGRATION_KEY", "integration-key-value-5")
        .args(["config", "check"])
        .output()
        .unwrap();
    let printed = stdout(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for value in [
        "db-password-value-1",
        "redis-password-value-2",
        "jwt-secret-value-3",
        "metrics-token-value-4",
        "integration-key-value-5",
        "previous-key-value-6",
        "smtp-password-value-7",
        "client-secret-value-8",
    ] {
        assert!(!printed.contains(value), "{value} printed: {printed}");
        assert!(!stderr.contains(value), "{value} on stderr: {stderr}");
    }
    let shown: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(shown["database_url"], "postgres://app:<set>@db.internal:5432/dartwing");
    assert_eq!(shown["redis_url"], "redis://:<set>@cache:6379/0");
    assert_eq!(shown["jwt_secret"], "<set>");
    assert_eq!(shown["observability"]["metrics_token"], "<set>");
    assert_eq!(shown["integrations"]["key"], "<set>");
    assert_eq!(shown["integrations"]["previous_keys"], json!(["<set>"]));
    assert_eq!(shown["integrations"]["smtp"]["password"], "<set>");
    assert_eq!(shown["integrations"]["providers"]["Google"]["client_secret"], "<set>");
    assert_eq!(
        shown["integrations"]["providers"]["Google"]["client_id"], "client-id-shown",
        "settings that are not secret still show"
    );
}

/// Modes of the data directory and every file in it, by name.
fn modes(data_dir: &Path) -> (u32, Vec<(String, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let mut files: Vec<(String, u32)> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().to_string(), mode(&entry.path()))
        })
        .collect();
    files.sort();
    (mode(data_dir), files)
}

#[tokio::test]
async fn other_local_users_cannot_read_the_data_directory_or_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("dartwing-data");
    stdout(&run(dir.path(), &["migrate"]));
    let (dir_mode, files) = modes(&data_dir);
    assert_eq!(dir_mode, 0o700, "data directory after migrate");
    assert!(files.iter().any(|(name, _)| name == "dartwing.db"), "{files:?}");
    assert!(files.iter().all(|(_, mode)| *mode == 0o600), "after migrate: {files:?}");

    // A serving node writes through the WAL: the -wal and -shm files SQLite creates are private too.
    let served = Served::start(dir.path(), &[]).await;
    let token = stdout(&run(dir.path(), &["token", "issue", "--email", "ann@example.com"]))
        .trim()
        .to_string();
    let created = reqwest::Client::new()
        .post(format!("{}/api/resource/Organization", served.base))
        .bearer_auth(&token)
        .json(&json!({"org_name": "Acme", "org_type": "Family"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let (dir_mode, files) = modes(&data_dir);
    assert_eq!(dir_mode, 0o700);
    for expected in [
        "dartwing.db",
        "dartwing.db-wal",
        "dartwing.db-shm",
        "jwt-secret",
        "integration-key",
    ] {
        assert!(
            files.iter().any(|(name, _)| name == expected),
            "no {expected}: {files:?}"
        );
    }
    assert!(files.iter().all(|(_, mode)| *mode == 0o600), "while serving: {files:?}");
    served.terminate();
}

#[test]
fn production_mode_without_a_metrics_token_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let production = || {
        let mut command = dartwing(dir.path());
        command
            .env("DARTWING_PRODUCTION", "true")
            .env("DARTWING_JWT_SECRET", "p".repeat(40));
        command
    };
    fails_naming(
        production().args(["config", "check"]).output().unwrap(),
        "observability.metrics_token",
    );
    // A token, or a listener of their own for metrics, satisfies production mode.
    let with_token = production()
        .env("DARTWING_OBSERVABILITY__METRICS_TOKEN", "scrape-token-value-9")
        .args(["config", "check"])
        .output()
        .unwrap();
    let printed = stdout(&with_token);
    assert!(!printed.contains("scrape-token-value-9"), "{printed}");
    let with_listener = production()
        .env("DARTWING_OBSERVABILITY__METRICS_LISTEN", "127.0.0.1:9100")
        .args(["config", "check"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_str(&stdout(&with_listener)).unwrap();
    assert_eq!(shown["observability"]["metrics_listen"], "127.0.0.1:9100");
}
