//! Observability base (SPEC §9): Prometheus exposition, route-template labels, trace ids,
//! health with per-check detail, and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_e2e::{TestDatabase, TestServer, redis_url};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::time::Duration;

/// `# TYPE` declarations of an exposition text: family name → type.
fn declared_types(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// Validates the exposition text with `promtool check metrics` (required in CI, where `.ci/run`
/// installs it; skipped with a note elsewhere when promtool is absent).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(_) if !dartwing_e2e::services_required() => {
            eprintln!("skipped: promtool not installed, exposition format checked by the TYPE parser only");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let problems = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    // promtool exits 1 for lint findings (e.g. naming advice) as well as for parse errors; parse
    // errors never come with a "metric name" finding, so tell them apart by the message.
    assert!(
        !problems.contains("error while linting") && !problems.contains("text format parsing error"),
        "{problems}"
    );
}

/// Whether a sample line of `family` carries every `label="value"` pair.
fn has_sample(text: &str, family: &str, labels: &[(&str, &str)]) -> bool {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .any(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_route_templates_as_endpoints() {
    for db in TestDatabase::all().await {
        // Every query counts as slow, so the slow-query family has samples too.
        let server = TestServer::start_with(&db, |c| {
            c.database.slow_query_ms = 0;
            c.jobs.poll_interval_ms = 20;
            c.jobs.queues.default.retry_delays_secs = vec![0];
        })
        .await;
        let org = server.create_org("ann@example.com", "Acme").await;
        // A job that fails once and then succeeds exercises every job family.
        let job = dartwing_jobs::model::NewJob::new("core.fail", Some(&org), serde_json::json!({"fail_attempts": 1}));
        let job_id = server
            .app
            .jobs
            .enqueue(&dartwing_core::Principal::system("test"), job)
            .await
            .unwrap()
            .job_id;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !server.app.jobs.store().info(&job_id).await.unwrap().status.is_final() {
            assert!(std::time::Instant::now() < deadline, "job did not finish");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // …and a job scheduled for later is counted per organization.
        let mut later = dartwing_jobs::model::NewJob::new("core.noop", Some(&org), serde_json::json!({}));
        later.run_at = Some(dartwing_core::Timestamp::from_micros(
            dartwing_core::Timestamp::now().as_micros() + 3_600_000_000,
        ));
        server
            .app
            .jobs
            .enqueue(&dartwing_core::Principal::system("test"), later)
            .await
            .unwrap();
        server.app.jobs.sample_metrics().await;
        let text = server.send(Method::GET, "/metrics", None, None).await.text;
        assert!(has_sample(
            &text,
            "org_job_count",
            &[("org", &org), ("queue", "default")]
        ));
        assert!(has_sample(
            &text,
            "jobs_retried_total",
            &[("queue", "default"), ("method", "core.fail")]
        ));
        assert!(has_sample(
            &text,
            "jobs_completed_total",
            &[("method", "core.fail"), ("status", "Completed")]
        ));
        let token = server.token("ann@example.com");
        server.get(&format!("/api/resource/Organization/{org}"), &token).await;
        server.get("/api/resource/Organization/ORG-NOPE", &token).await;
        server.send(Method::GET, "/no/such/path", None, None).await;
        // Realtime: a connected socket receives one published event.
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        agent.connect("ann", &server.base, &token).await.unwrap();
        let published = server
            .post(
                "/api/method/dartwing_core.realtime.publish",
                &server.admin_token("root@example.com"),
                &serde_json::json!({"event": "ping_test", "message": 1, "user": "ann@example.com"}),
            )
            .await;
        assert_eq!(published.status, StatusCode::OK, "{}", published.text);
        assert_eq!(
            agent
                .wait_for("ann", "ping_test", 1, Duration::from_secs(10))
                .await
                .len(),
            1
        );

        let reply = server.send(Method::GET, "/metrics", None, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        promtool_accepts(&reply.text);
        let types = declared_types(&reply.text);
        for spec in dartwing_observe::catalog::ALL {
            let declared = types.get(spec.name).map(String::as_str);
            assert_eq!(
                declared,
                Some(spec.kind.as_str()),
                "family {} missing or mistyped",
                spec.name
            );
        }
        let text = &reply.text;
        assert!(has_sample(
            text,
            "http_requests_total",
            &[
                ("endpoint", "/api/resource/{doctype}/{name}"),
                ("org", &org),
                ("status", "200")
            ]
        ));
        assert!(has_sample(
            text,
            "http_requests_total",
            &[("endpoint", "unmatched"), ("status", "404")]
        ));
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("http_") && l.contains("endpoint=\"/api/resource/Organization")),
            "raw paths never become labels"
        );
        assert!(has_sample(
            text,
            "db_queries_total",
            &[("doctype", "Organization"), ("operation", "select")]
        ));
        assert!(has_sample(
            text,
            "db_slow_queries_total",
            &[("doctype", "Organization")]
        ));
        assert!(
            text.lines().any(|l| l == "db_connections_pool_size 5"),
            "pool size gauge"
        );

        let alias = server
            .send(
                Method::GET,
                "/api/method/dartwing_core.observability.api.metrics",
                None,
                None,
            )
            .await;
        assert_eq!(alias.status, StatusCode::OK);
        assert!(declared_types(&alias.text).contains_key("http_requests_total"));
        server.stop().await;
    }
}

#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_with(&db, |c| c.observability.metrics_token = Some("scrape-secret".into())).await;
    let anonymous = server.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(!anonymous.text.contains("scrape-secret"));
    let wrong = server.send(Method::GET, "/metrics", Some("Bearer nope"), None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = server
        .send(Method::GET, "/metrics", Some("Bearer scrape-secret"), None)
        .await;
    assert_eq!(right.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_trace_id_from_the_request_or_a_new_one() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let send = |headers: Vec<(&'static str, &'static str)>, path: &'static str| {
        let mut request = server.client.get(server.url(path));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };
    let given = send(vec![("x-trace-id", "req-42_abc")], "/health").await.unwrap();
    assert_eq!(given.headers()["x-trace-id"], "req-42_abc");

    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let w3c = send(vec![("traceparent", parent)], "/api/resource/Organization")
        .await
        .unwrap();
    assert_eq!(w3c.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w3c.headers()["x-trace-id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let emitted = w3c.headers()["traceparent"].to_str().unwrap();
    assert!(emitted.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && emitted.ends_with("-01"));

    let hostile = send(vec![("x-trace-id", "bad value with spaces")], "/nowhere")
        .await
        .unwrap();
    assert_eq!(hostile.status(), StatusCode::NOT_FOUND);
    let generated = hostile.headers()["x-trace-id"].to_str().unwrap();
    assert_eq!(generated.len(), 32);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    server.stop().await;
}

#[tokio::test]
async fn health_reports_each_check_and_answers_503_when_one_fails() {
    for db in TestDatabase::all().await {
        let server = TestServer::start(&db).await;
        for path in ["/health", "/api/method/dartwing_core.observability.health.health"] {
            let reply = server.send(Method::GET, path, None, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let body = reply.json();
            let report = if path == "/health" {
                body
            } else {
                body["message"].clone()
            };
            assert_eq!(report["status"], "ok");
            assert_eq!(report["checks"]["database"]["status"], "ok");
            assert_eq!(report["checks"]["workers"]["status"], "ok");
        }
        // A worker of this node that stopped beating makes the node unhealthy.
        sqlx::query("INSERT INTO worker_heartbeat (worker_id, node_id, queue, started_at, last_beat_us) VALUES ('w1', $1, 'default', 'x', 0)")
            .bind(&server.app.node_id)
            .execute(server.app.db.pool())
            .await
            .unwrap();
        let reply = server.send(Method::GET, "/health", None, None).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        let report = reply.json();
        assert_eq!(report["checks"]["workers"]["status"], "unhealthy");
        assert!(report["checks"]["workers"]["detail"].as_str().unwrap().contains("w1"));
        assert_eq!(report["checks"]["database"]["status"], "ok");
        server.stop().await;
    }
}

#[tokio::test]
async fn health_checks_redis_when_configured() {
    let db = TestDatabase::sqlite();
    let unreachable = TestServer::start_with(&db, |c| c.redis_url = Some("redis://127.0.0.1:1/".into())).await;
    let reply = unreachable.send(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["checks"]["redis"]["status"], "unhealthy");
    unreachable.stop().await;

    let Some(url) = redis_url() else { return };
    let db = TestDatabase::sqlite();
    let server = TestServer::start_with(&db, |c| c.redis_url = Some(url)).await;
    let reply = server.send(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["checks"]["redis"]["status"], "ok");
    server.stop().await;
}

#[tokio::test]
async fn openapi_document_describes_the_resource_routes() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let reply = server.send(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, methods) in [
        ("/api/resource/{doctype}", &["get", "post"][..]),
        ("/api/resource/{doctype}/{name}", &["get", "put", "delete"][..]),
    ] {
        for method in methods {
            assert!(doc["paths"][path][method].is_object(), "{method} {path} documented");
        }
    }
    server.stop().await;
}
