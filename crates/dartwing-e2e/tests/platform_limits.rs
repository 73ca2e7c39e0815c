//! Platform limits: bounded WebSocket messages, and HTTP connections that cannot be held open or
//! multiplied without limit. Each scenario is named after the attack it refuses, runs on SQLite
//! and PostgreSQL, and checks that the refusal changed nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::TestServer;
use dartwing_e2e::scenario::{ALICE, DbSnapshot, Scene};
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PUBLISH: &str = "/api/method/dartwing_core.realtime.publish";

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
