//! Platform limits: metrics that tenants cannot write into, bounded WebSocket messages, HTTP
//! connections that cannot be held open or multiplied without limit, and sync document names
//! private to each organization. Each scenario is named after the attack it refuses, runs on
//! SQLite and PostgreSQL, and checks that the refusal changed nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::TestServer;
use dartwing_e2e::scenario::{ALICE, BOB, DbSnapshot, Scene, assert_refused};
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FEED: &str = "/api/method/dartwing_core.sync.feed";
const UPSERT: &str = "/api/method/dartwing_core.sync.upsert_batch";
const ENQUEUE: &str = "/api/method/dartwing_core.jobs.enqueue";
const PUBLISH: &str = "/api/method/dartwing_core.realtime.publish";

// ------------------------------------------------------------------------------------ metrics

async fn scrape(server: &TestServer) -> String {
    let reply = server.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.text
}

/// The values of the `org` label in the samples of `family`.
fn org_values(text: &str, family: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .filter_map(|line| line.split("org=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// Requests naming `org` on every route that takes an organization from the caller.
fn naming(org: &str) -> Vec<(Method, String, Option<Value>)> {
    let query = urlencoding::encode(org);
    vec![
        (Method::GET, format!("{FEED}?org={query}"), None),
        (Method::POST, UPSERT.to_string(), Some(json!({"org": org, "items": []}))),
        (
            Method::GET,
            format!("/api/method/dartwing_core.sync.conflicts?org={query}"),
            None,
        ),
        (
            Method::POST,
            ENQUEUE.to_string(),
            Some(json!({"method": "core.noop", "organization": org, "args": {}})),
        ),
        (
            Method::GET,
            format!("/api/method/dartwing_core.integrations.status?organization={query}"),
            None,
        ),
        (Method::GET, format!("/api/resource/Organization/{query}"), None),
    ]
}

dartwing_e2e::backend_tests! {
    /// A tenant sends organization values it has no access to — 20 rounds of 20 KB each over every
    /// route that takes one. All are refused, none becomes a label, the scrape does not grow, and
    /// an authorized request for an existing organization is still counted under its name.
    async fn refused_requests_with_a_20kb_org_cannot_write_into_metrics(db) {
        let scene = Scene::new(db).await;
        let server = &scene.server;
        let alice = format!("Bearer {}", scene.token(ALICE));
        let huge = format!("huge-org-{}", "h".repeat(20 * 1024));
        // Warm-up with a short made-up name, so every route's refusal series exists already.
        for (method, path, body) in naming("made-up-org") {
            let reply = server.send(method, &path, Some(&alice), body.as_ref()).await;
            assert!(reply.status.is_client_error(), "{path}: {}", reply.text);
        }
        let _ = scrape(server).await;
        let snapshot = scene.snapshot().await;
        let before = scrape(server).await;
        for _ in 0..20 {
            for (method, path, body) in naming(&huge) {
                let reply = server.send(method, &path, Some(&alice), body.as_ref()).await;
                assert!(
                    matches!(reply.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                    "{path}: {} {}",
                    reply.status,
                    reply.text.chars().take(200).collect::<String>()
                );
            }
        }
        let after = scrape(server).await;
        snapshot.assert_unchanged(server, "refused requests with a 20 KB org").await;
        for text in [&before, &after] {
            assert!(!text.contains("huge-org-") && !text.contains("hhhhhhhh"), "a refused value became a label");
            assert!(!text.contains("made-up-org"), "a refused value became a label");
        }
        // Only the request families can carry a tenant's value; background samplers may add their
        // own series in the meantime.
        let request_lines = |text: &str| -> String {
            text.lines()
                .filter(|line| line.starts_with("http_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (before_http, after_http) = (request_lines(&before), request_lines(&after));
        let new_series: Vec<&str> = after_http
            .lines()
            .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series))
            .filter(|series| !before_http.contains(series))
            .collect();
        assert!(
            after_http.len() < before_http.len() + 8 * 1024,
            "request series grew from {} to {} bytes after 120 refused requests; new series: {new_series:?}",
            before_http.len(),
            after_http.len()
        );
        // Authorized work on an existing organization keeps its label.
        let reply = server
            .send(Method::GET, &format!("{FEED}?org={}", scene.alpha), Some(&alice), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let text = scrape(server).await;
        assert!(
            org_values(&text, "http_requests_total").contains(&scene.alpha),
            "authorized request not counted under {}",
            scene.alpha
        );
        scene.stop().await;
    }

    /// A platform administrator's request naming an organization that does not exist is served
    /// (or answered 404) without the made-up name becoming a label; existing organizations an
    /// administrator works on are labelled.
    async fn administrator_request_naming_a_missing_org_leaves_no_label(db) {
        let scene = Scene::new(db).await;
        let server = &scene.server;
        let snapshot = scene.snapshot().await;
        let ghost = "ghost-org-that-does-not-exist";
        let reply = server.get(&format!("{FEED}?org={ghost}"), &scene.admin).await;
        assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[]);
        let reply = server
            .get(&format!("/api/method/dartwing_core.jobs.list?organization={ghost}"), &scene.admin)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let reply = server.get(&format!("{FEED}?org={}", scene.beta), &scene.admin).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        snapshot.assert_unchanged(server, "administrator reads").await;
        let text = scrape(server).await;
        assert!(!text.contains(ghost), "a missing organization became a label");
        assert!(org_values(&text, "http_requests_total").contains(&scene.beta));
        scene.stop().await;
    }

    /// With metrics on a private listener (`observability.metrics_listen`), the public listener
    /// no longer serves them to anyone; the private one does, behind the token when one is set.
    async fn public_listener_does_not_serve_metrics_moved_to_a_private_listener(db) {
        let server = TestServer::start_with(db, |c| {
            c.observability.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
            c.observability.metrics_token = Some("scrape-token-1".into());
        })
        .await;
        let snapshot = DbSnapshot::take(&server).await;
        for path in ["/metrics", "/api/method/dartwing_core.observability.api.metrics"] {
            let reply = server
                .send(Method::GET, path, Some("Bearer scrape-token-1"), None)
                .await;
            assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &["scrape-token-1"]);
        }
        let private = server.metrics_base().expect("metrics listener");
        let client = reqwest::Client::new();
        let anonymous = client.get(format!("{private}/metrics")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let scraped = client
            .get(format!("{private}/metrics"))
            .bearer_auth("scrape-token-1")
            .send()
            .await
            .unwrap();
        assert_eq!(scraped.status(), StatusCode::OK);
        assert!(scraped.text().await.unwrap().contains("# TYPE http_requests_total counter"));
        let other = client.get(format!("{private}/health")).send().await.unwrap();
        assert_eq!(other.status(), StatusCode::NOT_FOUND, "the private listener serves metrics only");
        let health = server.send(Method::GET, "/health", None, None).await;
        assert_eq!(health.status, StatusCode::OK);
        snapshot.assert_unchanged(&server, "metrics listeners").await;
        server.stop().await;
    }
}

// ----------------------------------------------------------------------------------- WebSocket

dartwing_e2e::backend_tests! {
    /// A member sends a `subscribe` far beyond `realtime.max_payload_bytes` over WebSocket: the
    /// message is not processed (no ack, no room joined) and the connection is closed; a
    /// normal-size subscription on a new connection still works.
    async fn oversized_websocket_subscribe_is_not_processed(db) {
        let scene = Scene::on(TestServer::start_with(db, |c| c.realtime.max_payload_bytes = 64 * 1024).await).await;
        let server = &scene.server;
        let room = format!("org:{}", scene.alpha);
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        agent
            .connect_with("big", json!({"url": server.base, "token": scene.token(ALICE), "transport": "websocket"}))
            .await
            .unwrap();
        let snapshot = scene.snapshot().await;
        let reply = agent
            .call(json!({
                "cmd": "emit", "client": "big", "event": "subscribe", "timeout_ms": 5000,
                "data": {"room": room, "pad": "x".repeat(256 * 1024)},
            }))
            .await;
        assert!(
            reply["ok"] != json!(true) || reply["ack"]["ok"] != json!(true),
            "the oversized subscribe was processed: {reply}"
        );
        let (_, connected) = agent.events("big").await;
        assert!(!connected, "the connection stays open after an oversized message");
        // Nothing published to the room reaches the client that tried to join it.
        agent
            .connect_with("normal", json!({"url": server.base, "token": scene.token(ALICE), "transport": "websocket"}))
            .await
            .unwrap();
        assert_eq!(agent.subscribe("normal", &room).await, json!({"ok": true}));
        let published = server
            .post(PUBLISH, &scene.admin, &json!({"event": "probe", "message": {"n": 1}, "room": room}))
            .await;
        assert_eq!(published.status, StatusCode::OK, "{}", published.text);
        let received = agent.wait_for("normal", "probe", 1, Duration::from_secs(5)).await;
        assert_eq!(received, [json!({"n": 1})]);
        let (events, _) = agent.events("big").await;
        assert!(events.iter().all(|(event, _)| event != "probe"), "{events:?}");
        snapshot.assert_unchanged(server, "an oversized WebSocket message").await;
        agent.stop().await;
        scene.stop().await;
    }
}

// ------------------------------------------------------------------------- HTTP connections

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// What the peer sends within `within` (stopping early once `enough` holds for it), and whether
/// it closed the connection by then.
async fn read_until(stream: &mut TcpStream, within: Duration, enough: impl Fn(&str) -> bool) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).to_string();
        if enough(&text) {
            return (text, false);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (text, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (text, true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// What the peer sends within `within`, and whether it closed the connection in that time.
async fn read_for(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    read_until(stream, within, |_| false).await
}

/// One `GET /health` on a new connection; the status line, or `None` when the node did not answer.
async fn health_on_new_connection(server: &TestServer) -> Option<String> {
    let mut stream = TcpStream::connect(address(server)).await.ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: dartwing\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let (text, _) = read_until(&mut stream, Duration::from_secs(3), |text| text.contains("\r\n")).await;
    text.lines().next().map(str::to_string).filter(|line| !line.is_empty())
}

dartwing_e2e::backend_tests! {
    /// Slowloris: a client sends half a request line and stalls (another sends nothing at all).
    /// Both connections are closed within the header-read timeout (1 s here), unanswered.
    async fn slowloris_half_request_line_is_disconnected_within_the_header_timeout(db) {
        let server = TestServer::start_with(db, |c| c.http.header_read_timeout_secs = 1).await;
        let snapshot = DbSnapshot::take(&server).await;
        let mut half = TcpStream::connect(address(&server)).await.unwrap();
        let mut silent = TcpStream::connect(address(&server)).await.unwrap();
        half.write_all(b"GET /health HT").await.unwrap();
        let started = Instant::now();
        let (text, closed) = read_for(&mut half, Duration::from_secs(6)).await;
        let elapsed = started.elapsed();
        assert!(closed, "a half-sent request line kept its connection for 6 s");
        assert!(
            elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(4),
            "closed after {elapsed:?}"
        );
        assert!(!text.contains("200 OK"), "{text}");
        let (_, closed) = read_for(&mut silent, Duration::from_secs(3)).await;
        assert!(closed, "a silent connection was kept open");
        assert_eq!(
            health_on_new_connection(&server).await.as_deref(),
            Some("HTTP/1.1 200 OK"),
            "well-behaved clients are still served"
        );
        snapshot.assert_unchanged(&server, "slow clients").await;
        server.stop().await;
    }

    /// A member starts creating an organization and stops sending the body halfway: the request
    /// fails with 408 `RequestTimeoutError` once the body timeout (1 s here) passes, and nothing
    /// is created.
    async fn stalled_request_body_gets_408_and_creates_nothing(db) {
        let scene = Scene::on(TestServer::start_with(db, |c| c.http.body_timeout_secs = 1).await).await;
        let server = &scene.server;
        let snapshot = scene.snapshot().await;
        let body = r#"{"org_name": "Stalled Inc", "org_type": "Company"}"#;
        let head = format!(
            "POST /api/resource/Organization HTTP/1.1\r\nHost: dartwing\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            scene.token(ALICE),
            body.len()
        );
        let mut stream = TcpStream::connect(address(server)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..12]).await.unwrap();
        let started = Instant::now();
        let (text, _) = read_until(&mut stream, Duration::from_secs(6), |text| text.ends_with('}')).await;
        assert!(text.starts_with("HTTP/1.1 408"), "after {:?}: {text:?}", started.elapsed());
        assert!(text.contains("\"exc_type\":\"RequestTimeoutError\""), "{text}");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        drop(stream);
        snapshot.assert_unchanged(server, "a stalled request body").await;
        scene.stop().await;
    }

    /// A client opens connections up to the node's cap (`http.max_connections`, 2 here) and holds
    /// them: further connections are not served (503 or closed) until one of them is released.
    async fn connections_beyond_the_cap_are_not_served(db) {
        let server = TestServer::start_with(db, |c| {
            c.http.max_connections = 2;
            c.http.header_read_timeout_secs = 30;
        })
        .await;
        let snapshot = DbSnapshot::take(&server).await;
        let first = TcpStream::connect(address(&server)).await.unwrap();
        let _second = TcpStream::connect(address(&server)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..3 {
            let status = health_on_new_connection(&server).await;
            assert!(
                status.as_deref().is_none_or(|line| line.starts_with("HTTP/1.1 503")),
                "a connection beyond the cap was served: {status:?}"
            );
        }
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = health_on_new_connection(&server).await;
            if status.as_deref() == Some("HTTP/1.1 200 OK") {
                break;
            }
            assert!(Instant::now() < deadline, "a released slot was not reused: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        snapshot.assert_unchanged(&server, "connections beyond the cap").await;
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------- sync

fn item(op_id: &str, op: &str, name: &str, data: Value) -> Value {
    json!({"op_id": op_id, "op": op, "doctype": "Task", "name": name, "data": data,
           "client_ts": "2026-11-25T10:00:00.000000Z"})
}

async fn upsert(server: &TestServer, token: &str, org: &str, items: Vec<Value>) -> Vec<Value> {
    let reply = server.post(UPSERT, token, &json!({"org": org, "items": items})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["message"].as_array().unwrap().clone()
}

async fn feed(server: &TestServer, token: &str, org: &str) -> Vec<Value> {
    let reply = server.get(&format!("{FEED}?org={org}&limit=500"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["message"]["rows"].as_array().unwrap().clone()
}

/// An answer with what legitimately differs between two items (ids, times, the name) removed.
fn shape(answer: &Value, name: &str) -> Value {
    let mut answer = answer.clone();
    for field in ["op_id", "server_ts"] {
        answer.as_object_mut().unwrap().remove(field);
    }
    if let Some(doc) = answer["resolved_doc"].as_object_mut() {
        doc.remove("modified");
        doc.remove("name");
    }
    if let Some(message) = answer["message"].as_str() {
        answer["message"] = json!(message.replace(name, "<name>"));
    }
    answer
}

/// Every stored row of `org`'s sync documents, versions and changes.
async fn org_rows(server: &TestServer, org: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, columns) in [
        ("sync_document", "doctype, name, data, version, deleted, modified"),
        ("sync_version", "doctype, name, version, data, modified"),
        ("sync_change", "seq, doctype, name, data, modified"),
    ] {
        let sql = format!("SELECT {columns} FROM {table} WHERE organization = $1 ORDER BY 1, 2, 3");
        for row in sqlx::query(&sql)
            .bind(org)
            .fetch_all(server.app.db.pool())
            .await
            .unwrap()
        {
            use sqlx::Row;
            let values: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<String, _>(i)
                        .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap()
                })
                .collect();
            rows.push(format!("{table}: {}", values.join(" | ")));
        }
    }
    rows
}

dartwing_e2e::backend_tests! {
    /// Beta inserts a document name Alpha already uses (name squatting, existence probing): the
    /// insert is Beta's own document, answered exactly as for an unused name; updating a name only
    /// Alpha has answers as for a name nobody has; Alpha's documents, history and feed are
    /// untouched; and a `doc:` room tells an outsider no more than for an unused name.
    async fn insert_with_another_orgs_document_name_neither_reveals_nor_touches_it(db) {
        let scene = Scene::new(db).await;
        let server = &scene.server;
        let (alice, bob) = (scene.token(ALICE), scene.token(BOB));
        let answers = upsert(
            server,
            &alice,
            &scene.alpha,
            vec![
                item("a-1", "insert", "SHARED-NAME", json!({"secret": "alpha-only"})),
                item("a-2", "insert", "ONLY-IN-ALPHA", json!({"secret": "alpha-only"})),
            ],
        )
        .await;
        assert!(answers.iter().all(|a| a["status"] == "applied"), "{answers:?}");
        let alpha_rows = org_rows(server, &scene.alpha).await;
        let alpha_feed = feed(server, &alice, &scene.alpha).await;
        assert_eq!(alpha_feed.len(), 2);

        let answers = upsert(
            server,
            &bob,
            &scene.beta,
            vec![
                item("b-1", "insert", "SHARED-NAME", json!({"title": "beta's own"})),
                item("b-2", "insert", "UNUSED-NAME", json!({"title": "beta's own"})),
                item("b-3", "update", "ONLY-IN-ALPHA", json!({"secret": "overwritten"})),
                item("b-4", "update", "NOBODY-HAS-THIS", json!({"secret": "overwritten"})),
                item("b-5", "delete", "ONLY-IN-ALPHA", json!({})),
                item("b-6", "delete", "NOBODY-HAS-THIS", json!({})),
            ],
        )
        .await;
        assert_eq!(answers[0]["status"], "applied", "{}", answers[0]);
        assert_eq!(shape(&answers[0], "SHARED-NAME"), shape(&answers[1], "UNUSED-NAME"));
        assert_eq!(answers[0]["resolved_doc"]["data"], json!({"title": "beta's own"}));
        for (probe, unused) in [(2, 3), (4, 5)] {
            assert_eq!(answers[probe]["exc_type"], "DoesNotExistError", "{}", answers[probe]);
            assert_eq!(
                shape(&answers[probe], "ONLY-IN-ALPHA"),
                shape(&answers[unused], "NOBODY-HAS-THIS"),
                "a name only another organization has answers like a name nobody has"
            );
        }
        let all: String = answers.iter().map(Value::to_string).collect();
        assert!(!all.contains("alpha-only") && !all.contains(&scene.alpha), "{all}");

        // Alpha's documents, history and feed are untouched; Beta sees only its own.
        assert_eq!(org_rows(server, &scene.alpha).await, alpha_rows);
        assert_eq!(feed(server, &alice, &scene.alpha).await, alpha_feed);
        let beta_feed = feed(server, &bob, &scene.beta).await;
        let names: Vec<&str> = beta_feed.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["SHARED-NAME", "UNUSED-NAME"]);
        assert!(beta_feed.iter().all(|r| r["data"] == json!({"title": "beta's own"})));

        // Each organization follows its own copy; an outsider learns nothing about Alpha's names.
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        for (client, email) in [("bob", BOB), ("carol", "carol@example.com")] {
            agent.connect(client, &server.base, &scene.token(email)).await.unwrap();
        }
        assert_eq!(agent.subscribe("bob", "doc:Task:SHARED-NAME").await, json!({"ok": true}));
        let probe = agent.subscribe("carol", "doc:Task:ONLY-IN-ALPHA").await;
        let unused = agent.subscribe("carol", "doc:Task:NOBODY-HAS-THIS").await;
        assert_eq!(probe["ok"], json!(false), "{probe}");
        assert_eq!(
            probe["error"].as_str().unwrap().replace("ONLY-IN-ALPHA", "<name>"),
            unused["error"].as_str().unwrap().replace("NOBODY-HAS-THIS", "<name>"),
        );
        let probe = agent.subscribe("bob", "doc:Task:ONLY-IN-ALPHA").await;
        assert_eq!(
            probe["error"].as_str().unwrap().replace("ONLY-IN-ALPHA", "<name>"),
            unused["error"].as_str().unwrap().replace("NOBODY-HAS-THIS", "<name>"),
        );
        agent.stop().await;
        scene.stop().await;
    }
}
