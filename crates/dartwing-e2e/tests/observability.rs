//! Observability base (SPEC §9): Prometheus exposition, route-template labels, trace ids,
//! health with per-check detail, and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../dartwing-observe/tests/support/deploy_files.rs"]
#[allow(dead_code)]
mod deploy_files;

use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_e2e::{TestDatabase, TestServer, redis_url};
use futures::StreamExt;
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

dartwing_e2e::backend_tests! {
    async fn metrics_parse_as_prometheus_text_with_route_templates_as_endpoints(db) {
        // Every query counts as slow, so the slow-query family has samples too.
        let server = TestServer::start_with(db, |c| {
            c.database.slow_query_ms = 0;
            c.jobs.poll_interval_ms = 20;
            c.jobs.queues.default.retry_delays_secs = vec![0];
            c.integrations.providers.insert(
                "Google".into(),
                dartwing_core::config::ProviderConfig {
                    client_id: "client".into(),
                    ..Default::default()
                },
            );
        })
        .await;
        let org = server.create_org("ann@example.com", "Acme").await;
        // A connected integration gives the per-organization expiry gauge a sample.
        let grant = dartwing_integrations::TokenGrant {
            access_token: "access".into(),
            refresh_token: Some("refresh".into()),
            expires_in: Some(std::time::Duration::from_secs(1800)),
            scopes: None,
        };
        server
            .app
            .integrations
            .store_tokens(&org, "Google", &grant, "ann@example.com")
            .await
            .unwrap();
        server.app.integrations.sample_metrics().await;
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
        // Every series the alert rules and Grafana dashboards query is in this live scrape.
        let root = deploy_files::workspace_root();
        for (source, query) in deploy_files::deploy_queries(&root) {
            for name in deploy_files::metric_names(&query) {
                if deploy_files::SCRAPE_SERIES.contains(&name.as_str()) {
                    continue;
                }
                assert!(
                    reply
                        .text
                        .lines()
                        .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
                    "{source} queries `{name}`, which the server does not export"
                );
            }
        }
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
            "integration_token_expiry_seconds",
            &[("integration", "Google"), ("org", &org)]
        ));
        assert!(has_sample(
            text,
            "integration_tokens_total",
            &[("integration", "Google"), ("status", "Connected")]
        ));
        assert!(
            text.lines().any(|l| l == "integration_expiring_soon{integration=\"Google\"} 1"),
            "one token expires within the hour"
        );
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

dartwing_e2e::backend_tests! {
    async fn health_reports_each_check_and_answers_503_when_one_fails(db) {
        let server = TestServer::start(db).await;
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
        // The node clears its previous run's heartbeats when its workers start: wait until they
        // beat, so that the row below is not cleared with them.
        let mut beating = false;
        for _ in 0..100 {
            let report = server.send(Method::GET, "/health", None, None).await.json();
            if report["checks"]["workers"]["detail"].as_str().is_some_and(|d| d.contains("on this node beating")) {
                beating = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(beating, "the node's workers never beat");
        // A worker of this node that stopped beating makes the node unhealthy.
        sqlx::query("INSERT INTO job_worker_heartbeat (worker_id, node_id, queue, started_at_us, last_beat_us) VALUES ('w1', $1, 'default', 0, 0)")
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
        let ready = server.send(Method::GET, "/health/ready", None, None).await;
        assert_eq!(ready.status, StatusCode::OK, "a stale worker degrades readiness only");
        assert_eq!(ready.json()["status"], "degraded");
        server.stop().await;
    }
}

#[tokio::test]
async fn health_checks_redis_when_configured() {
    let db = TestDatabase::sqlite();
    let unreachable = TestServer::start_with(&db, |c| {
        c.redis_url = Some(dartwing_core::config::Secret::url("redis://127.0.0.1:1/"))
    })
    .await;
    let reply = unreachable.send(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["checks"]["redis"]["status"], "unhealthy");
    // Redis is optional for readiness: the node still serves (local realtime delivery only).
    let ready = unreachable.send(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.json()["status"], "degraded");
    assert_eq!(ready.json()["checks"]["redis"]["status"], "unhealthy");
    assert!(ready.json()["checks"]["database"]["latency_ms"].as_f64().is_some());
    let live = unreachable.send(Method::GET, "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.json()["status"], "ok");
    unreachable.stop().await;

    let Some(url) = redis_url() else { return };
    let db = TestDatabase::sqlite();
    let server = TestServer::start_with(&db, |c| c.redis_url = Some(dartwing_core::config::Secret::url(url))).await;
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

#[tokio::test]
async fn readiness_fails_without_the_database_while_liveness_holds() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let ready = server.send(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.json()["status"], "ok");
    server.app.db.pool().close().await;
    let ready = server.send(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.text);
    assert_eq!(ready.json()["status"], "unhealthy");
    assert_eq!(ready.json()["checks"]["database"]["status"], "unhealthy");
    let live = server.send(Method::GET, "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
}

/// Distinct values of `label` among the samples of `family` in an exposition.
fn label_values(text: &str, family: &str, label: &str) -> std::collections::HashSet<String> {
    let needle = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family}_bucket{{")))
        .filter_map(|l| {
            let start = l.find(&needle)? + needle.len();
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

#[tokio::test]
async fn ten_thousand_organizations_stay_within_the_label_cap() {
    const ORGS: usize = 10_000;
    const CAP: usize = 100;
    let db = TestDatabase::sqlite();
    let server = TestServer::start_with(&db, |c| {
        c.observability.max_org_label_values = CAP;
        c.roles = dartwing_core::config::Roles::parse("api").unwrap();
    })
    .await;
    let names: Vec<String> = (0..ORGS).map(|i| format!("ORG-LOAD-{i:05}")).collect();
    let mut tx = server.app.db.pool().begin().await.unwrap();
    for chunk in names.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|n| format!("('{n}', 'Load', 'Company', 'Active', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'load', 'load')"))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO organization (name, org_name, org_type, status, creation, modified, owner, modified_by) VALUES {}",
            values.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // Every organization enqueues a job (jobs_enqueued_total, org_job_count carry `org`)…
    let jobs = names
        .iter()
        .map(|n| dartwing_jobs::model::NewJob::new("core.noop", Some(n), serde_json::json!({})))
        .collect();
    server
        .app
        .jobs
        .enqueue_many(&dartwing_core::Principal::system("load"), jobs)
        .await
        .unwrap();
    server.app.jobs.sample_metrics().await;
    // …and 1,000 of them are read over HTTP (http_requests_total carries `org`).
    let admin = server.admin_token("root@example.com");
    let reads = names.iter().take(1_000).map(|n| {
        let path = format!("/api/resource/Organization/{n}");
        let (server, admin) = (&server, &admin);
        async move { server.get(&path, admin).await.status }
    });
    let statuses: Vec<StatusCode> = futures::stream::iter(reads).buffer_unordered(16).collect().await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));

    let started = std::time::Instant::now();
    let reply = server.send(Method::GET, "/metrics", None, None).await;
    let scrape = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    for family in ["jobs_enqueued_total", "org_job_count", "http_requests_total"] {
        let orgs = label_values(&reply.text, family, "org");
        assert!(orgs.len() > CAP / 2, "{family} has org series: {}", orgs.len());
        assert!(
            orgs.len() <= CAP + 1,
            "{family}: {} org values for a cap of {CAP}",
            orgs.len()
        );
        assert!(orgs.contains("other"), "{family} folds the rest into `other`");
    }
    let series = reply.text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 5_000, "{series} series for {ORGS} organizations");
    eprintln!("scrape of {series} series ({ORGS} organizations, cap {CAP}) took {scrape:?}");
    server.stop().await;
}
