//! A trace id follows the work (SPEC §9): an HTTP request carrying a W3C `traceparent` enqueues a
//! job; the job runs on a worker and publishes a realtime event that a real Socket.IO client
//! receives. Every log line of that flow — request, job, realtime delivery — carries the same trace
//! id, every line is one JSON object with the SPEC fields, and no secret appears anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::config::AuthConfig;
use dartwing_e2e::TestDatabase;
use dartwing_e2e::process::{free_listen_address, serve};
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_http::JwtVerifier;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_dartwing");
const SECRET: &str = "trace-test-secret-0123456789abcdef0123456789";

#[tokio::test]
async fn one_trace_id_follows_a_request_into_its_job_and_realtime_event() {
    let db = TestDatabase::sqlite();
    let listen = free_listen_address();
    let log_path = db.dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (child, base) = serve(
        dartwing_e2e::isolated_command(BINARY, db.dir.path())
            .env("DARTWING_DATABASE_URL", &db.url)
            .env("DARTWING_JWT_SECRET", SECRET)
            .env(
                "DARTWING_OBSERVABILITY__LOG_LEVEL",
                "info,dartwing_jobs=debug,dartwing_realtime=debug",
            )
            .env("DARTWING_JOBS__POLL_INTERVAL_MS", "50")
            .args(["serve", "--listen", &listen, "--node-id", "trace-node"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log)),
        &listen,
        Duration::from_secs(30),
        "the node",
    )
    .await;
    let http = reqwest::Client::new();
    let jwt = JwtVerifier::new(Some(SECRET), &AuthConfig::default());
    let token = jwt
        .issue_dev_token("ann@example.com", false, Duration::from_secs(600))
        .unwrap();
    let created: Value = http
        .post(format!("{base}/api/resource/Organization"))
        .bearer_auth(&token)
        .json(&json!({"org_name": "Traced", "org_type": "Company"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = created["data"]["name"].as_str().unwrap().to_string();

    let mut agent = SocketAgent::start(ClientKind::Js).await;
    agent.connect("ann", &base, &token).await.unwrap();
    assert_eq!(agent.subscribe("ann", &format!("org:{org}")).await, json!({"ok": true}));

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let reply = http
        .post(format!("{base}/api/method/dartwing_core.jobs.enqueue"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"method": "core.sleep", "organization": org, "args": {"ms": 300, "progress": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-trace-id"], trace);
    let traceparent = reply.headers()["traceparent"].to_str().unwrap().to_string();
    assert!(traceparent.starts_with(&format!("00-{trace}-")), "{traceparent}");
    let body: Value = reply.json().await.unwrap();
    let job_id = body["message"]["job_id"].as_str().unwrap().to_string();

    let progress = agent.wait_for("ann", "job_progress", 1, Duration::from_secs(20)).await;
    assert_eq!(progress.len(), 1, "the job's realtime event reached the client");
    assert_eq!(progress[0]["job_id"], json!(job_id));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: Value = http
            .get(format!("{base}/api/method/dartwing_core.jobs.status?job_id={job_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["message"]["status"] == "Completed" {
            break;
        }
        assert!(Instant::now() < deadline, "job did not complete: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.stop().await;
    child.signal("TERM");
    assert!(child.wait().success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains(SECRET), "the JWT secret leaked into the logs");
    assert!(!text.contains(&token), "a token leaked into the logs");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "message", "node_id"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        assert_eq!(line["node_id"], "trace-node");
    }
    let traced: Vec<&Value> = lines.iter().filter(|l| l["trace_id"] == trace).collect();
    let has = |what: &str, check: &dyn Fn(&Value) -> bool| {
        assert!(
            traced.iter().any(|l| check(l)),
            "no {what} line with the trace id; traced lines: {traced:#?}"
        );
    };
    has("access log", &|l| {
        l["endpoint"] == "/api/method/dartwing_core.jobs.enqueue"
    });
    has("job", &|l| {
        l["job_id"] == json!(job_id) && l["message"] == "job completed"
    });
    has("realtime delivery", &|l| {
        l["event"] == "job_progress"
            && l["message"] == "realtime event delivered to local sockets"
            && l["delivered"] == 1
    });
    assert!(
        traced
            .iter()
            .filter(|l| l["job_id"] == json!(job_id))
            .all(|l| l["organization"] == json!(org))
    );
}
