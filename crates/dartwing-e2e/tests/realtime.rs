//! Realtime gateway on one node (SPEC §5) with the official clients — JS `socket.io-client` and
//! `python-socketio` — against a real server: handshake, rooms and who may join them, targeting,
//! the HTTP publish path, access changes, and room cleanup.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::publish::Target;
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_e2e::tokens::{hs256, hs256_signed_with};
use dartwing_e2e::{TestDatabase, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const PUBLISH: &str = "/api/method/dartwing_core.realtime.publish";
const SETTLE: Duration = Duration::from_millis(400);

fn ok() -> Value {
    json!({"ok": true})
}

fn refused(ack: &Value) -> String {
    assert_eq!(ack["ok"], json!(false), "expected a refusal, got {ack}");
    ack["error"].as_str().expect("error text").to_string()
}

async fn publish(server: &TestServer, body: Value) {
    let reply = server
        .post(PUBLISH, &server.admin_token("root@example.com"), &body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .find(|l| {
            l.starts_with(&format!("{name}{labels}")) || (labels.is_empty() && l.starts_with(&format!("{name} ")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn forged_token(email: &str) -> String {
    let claims = json!({"email": email, "exp": 4_102_444_800u64});
    hs256_signed_with(&claims, "another-secret-0123456789abcdef0123456789")
}

fn expired_token(email: &str) -> String {
    let claims = json!({"email": email, "exp": 1_600_000_000u64});
    hs256(&claims)
}

#[tokio::test]
async fn handshake_requires_a_valid_token() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    for kind in ClientKind::ALL {
        let mut agent = SocketAgent::start(kind).await;
        let missing = agent.connect_with("anon", json!({"url": server.base})).await;
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("authentication required")),
            "{kind:?}: {missing:?}"
        );
        let forged = agent
            .connect("forged", &server.base, &forged_token("ann@example.com"))
            .await;
        assert!(
            forged.as_ref().is_err_and(|e| e.contains("authentication failed")),
            "{kind:?}: {forged:?}"
        );
        let expired = agent
            .connect("expired", &server.base, &expired_token("ann@example.com"))
            .await;
        assert!(
            expired.as_ref().is_err_and(|e| e.contains("authentication failed")),
            "{kind:?}: {expired:?}"
        );
        let garbage = agent.connect("garbage", &server.base, "not-a-jwt").await;
        assert!(garbage.is_err(), "{kind:?}");

        let token = server.token("ann@example.com");
        agent
            .connect("ws", &server.base, &token)
            .await
            .expect("websocket with auth token");
        agent
            .connect_with(
                "polling",
                json!({"url": server.base, "token": token, "transport": "polling"}),
            )
            .await
            .expect("long-polling");
        agent
            .connect_with(
                "query",
                json!({"url": server.base, "token": token, "query_token": true}),
            )
            .await
            .expect("?token= query");
        // Each connected socket is in its user room.
        publish(
            &server,
            json!({"event": "hello", "message": {"n": 1}, "user": "ann@example.com"}),
        )
        .await;
        for client in ["ws", "polling", "query"] {
            let got = agent.wait_for(client, "hello", 1, Duration::from_secs(5)).await;
            assert_eq!(got, vec![json!({"n": 1})], "{kind:?} {client}");
        }
        agent.stop().await;
    }
    server.stop().await;
}

/// The Flutter quickstart's calls: `socket.emit('join_room', 'org:<name>')` (a plain string, no
/// acknowledgement), then events of the organization's room; `leave_room` stops them; a room the
/// user may not join stays closed.
#[tokio::test]
async fn join_room_and_leave_room_take_a_plain_room_string() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let org = server.create_org("owner@example.com", "Acme").await;
    let other = server.create_org("stranger@example.com", "Other").await;
    for kind in ClientKind::ALL {
        let mut agent = SocketAgent::start(kind).await;
        agent
            .connect("owner", &server.base, &server.token("owner@example.com"))
            .await
            .unwrap();
        agent.send("owner", "join_room", json!(format!("org:{org}"))).await;
        agent.send("owner", "join_room", json!(format!("org:{other}"))).await;
        // With an acknowledgement, join_room answers as subscribe does.
        let refusal = refused(
            &agent
                .emit("owner", "join_room", Some(json!(format!("org:{other}"))))
                .await,
        );
        assert!(refusal.contains("Not permitted"), "{kind:?}: {refusal}");
        assert_eq!(
            agent
                .emit("owner", "join_room", Some(json!({"room": format!("org:{org}")})))
                .await,
            ok()
        );
        for room in [&org, &other] {
            publish(
                &server,
                json!({"event": "job_progress", "message": {"room": room}, "room": format!("org:{room}")}),
            )
            .await;
        }
        let got = agent
            .wait_for("owner", "job_progress", 1, Duration::from_secs(10))
            .await;
        assert_eq!(got, [json!({"room": org})], "{kind:?}");
        tokio::time::sleep(SETTLE).await;
        let (events, _) = agent.events("owner").await;
        assert_eq!(
            events.iter().filter(|(e, _)| e == "job_progress").count(),
            1,
            "{kind:?}: nothing from the other organization's room: {events:?}"
        );

        agent.send("owner", "leave_room", json!(format!("org:{org}"))).await;
        tokio::time::sleep(SETTLE).await;
        agent.clear("owner").await;
        publish(
            &server,
            json!({"event": "job_progress", "message": {"room": org}, "room": format!("org:{org}")}),
        )
        .await;
        tokio::time::sleep(SETTLE).await;
        assert!(
            agent
                .wait_for("owner", "job_progress", 1, Duration::ZERO)
                .await
                .is_empty(),
            "{kind:?}: left the room"
        );
        agent.stop().await;
    }
    server.stop().await;
}

/// The Flutter quickstart's job listener, with the official JS client making the Dart client's
/// calls: `join_room` with `org:<organization>`, then `job_progress` and `job_status_changed` of
/// a job submitted over HTTP.
#[tokio::test]
async fn the_quickstart_listener_sees_a_jobs_progress_and_status_changes() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_with(&db, |c| c.jobs.poll_interval_ms = 20).await;
    let org = server.create_org("owner@example.com", "Acme").await;
    let token = server.token("owner@example.com");
    let mut agent = SocketAgent::start(ClientKind::Js).await;
    agent.connect("flutter", &server.base, &token).await.unwrap();
    agent.send("flutter", "join_room", json!(format!("org:{org}"))).await;
    tokio::time::sleep(SETTLE).await;
    let reply = server
        .post(
            "/api/method/dartwing_core.jobs.enqueue",
            &token,
            &json!({"method": "core.sleep", "organization": org, "args": {"ms": 200, "progress": true}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let job_id = reply.json()["message"]["job_id"].clone();
    let changes = agent
        .wait_for("flutter", "job_status_changed", 3, Duration::from_secs(20))
        .await;
    let steps: Vec<(Value, Value)> = changes
        .iter()
        .map(|c| {
            assert_eq!(c["job_id"], job_id, "{c}");
            (c["from_status"].clone(), c["to_status"].clone())
        })
        .collect();
    assert_eq!(
        steps,
        [
            (Value::Null, json!("Queued")),
            (json!("Queued"), json!("Running")),
            (json!("Running"), json!("Completed")),
        ]
    );
    assert!(
        changes
            .iter()
            .all(|c| c.get("output_reference").is_some() && c["updated_at"].is_string())
    );
    let progress = agent.wait_for("flutter", "job_progress", 1, Duration::ZERO).await;
    assert_eq!(progress.len(), 1, "{progress:?}");
    assert_eq!(
        (
            &progress[0]["job_id"],
            progress[0]["progress"].as_f64(),
            &progress[0]["status"]
        ),
        (&job_id, Some(50.0), &json!("Running"))
    );
    assert!(progress[0]["progress_message"].is_string(), "{}", progress[0]);
    agent.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn user_targeting_reaches_only_that_user() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    for kind in ClientKind::ALL {
        let mut agent = SocketAgent::start(kind).await;
        agent
            .connect("ann", &server.base, &server.token("ann@example.com"))
            .await
            .unwrap();
        agent
            .connect("ann2", &server.base, &server.token("Ann@Example.com"))
            .await
            .unwrap();
        agent
            .connect("bob", &server.base, &server.token("bob@example.com"))
            .await
            .unwrap();
        // HTTP path.
        publish(
            &server,
            json!({"event": "note", "message": "http", "user": "ann@example.com"}),
        )
        .await;
        // In-process path, as other capabilities use it.
        server.app.publisher.publish(
            "note",
            json!("in-process"),
            Target::User("ann@example.com".into()),
            None,
        );
        for client in ["ann", "ann2"] {
            let got = agent.wait_for(client, "note", 2, Duration::from_secs(5)).await;
            assert_eq!(got, vec![json!("http"), json!("in-process")], "{kind:?} {client}");
        }
        tokio::time::sleep(SETTLE).await;
        assert!(
            agent.wait_for("bob", "note", 1, Duration::ZERO).await.is_empty(),
            "{kind:?}"
        );
        agent.stop().await;
    }
    server.stop().await;
}

dartwing_e2e::backend_tests! {
    async fn rooms_are_joined_as_the_permission_module_decides(db) {
        let server = TestServer::start(db).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let other = server.create_org("stranger@example.com", "Other").await;
        let member = server.add_member(&org, "member@example.com", "Member").await;
        server.add_member(&org, "guest@example.com", "Guest").await;
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        agent
            .connect("member", &server.base, &server.token("member@example.com"))
            .await
            .unwrap();
        agent
            .connect("guest", &server.base, &server.token("guest@example.com"))
            .await
            .unwrap();
        agent
            .connect("outsider", &server.base, &server.token("outsider@example.com"))
            .await
            .unwrap();
        agent
            .connect("admin", &server.base, &server.admin_token("root@example.com"))
            .await
            .unwrap();

        for room in [
            format!("org:{org}"),
            format!("sync:Task:{org}"),
            format!("doc:Organization:{org}"),
            format!("doc:Org Member:{member}"),
            "room:lobby".to_string(),
        ] {
            assert_eq!(agent.subscribe("member", &room).await, ok(), "member joins {room}");
            assert_eq!(agent.subscribe("guest", &room).await, ok(), "guest joins {room}");
        }
        for room in [
            format!("org:{org}"),
            format!("sync:Task:{org}"),
            format!("doc:Organization:{org}"),
        ] {
            let error = refused(&agent.subscribe("outsider", &room).await);
            assert!(error.contains("Not permitted"), "{room}: {error}");
        }
        assert!(refused(&agent.subscribe("member", &format!("org:{other}")).await).contains("Not permitted"));
        assert!(refused(&agent.subscribe("member", "doc:Organization:ORG-1999-99999").await).contains("not found"));
        assert!(refused(&agent.subscribe("member", "user:guest@example.com").await).contains("only by that user"));
        assert_eq!(agent.subscribe("member", "user:member@example.com").await, ok());
        assert_eq!(
            agent.subscribe("admin", &format!("org:{other}")).await,
            ok(),
            "system admin"
        );

        // Bad payloads and names: an error ack, and the connection stays usable.
        for data in [
            json!("org:x"),
            json!(42),
            json!({}),
            json!({"room": 7}),
            json!(null),
            json!({"room": ""}),
        ] {
            let ack = agent.emit("member", "subscribe", Some(data.clone())).await;
            assert!(!refused(&ack).is_empty(), "{data}");
        }
        let ack = agent.emit("member", "subscribe", None).await;
        assert!(refused(&ack).contains("room"));
        for room in ["lobby", "chat:general", "org:", "doc:Task", "sync:Task"] {
            assert!(!refused(&agent.subscribe("member", room).await).is_empty(), "{room}");
        }
        assert!(refused(&agent.subscribe("member", "chat:general").await).contains("unknown room prefix"));
        let (_, connected) = agent.events("member").await;
        assert!(connected);

        // Only joined rooms receive; unsubscribe stops delivery.
        publish(
            &server,
            json!({"event": "org_event", "message": 1, "room": format!("org:{org}")}),
        )
        .await;
        assert_eq!(
            agent
                .wait_for("member", "org_event", 1, Duration::from_secs(5))
                .await
                .len(),
            1
        );
        assert_eq!(
            agent
                .wait_for("guest", "org_event", 1, Duration::from_secs(5))
                .await
                .len(),
            1
        );
        assert_eq!(agent.unsubscribe("member", &format!("org:{org}")).await, ok());
        publish(
            &server,
            json!({"event": "org_event", "message": 2, "room": format!("org:{org}")}),
        )
        .await;
        assert_eq!(
            agent
                .wait_for("guest", "org_event", 2, Duration::from_secs(5))
                .await
                .len(),
            2
        );
        assert_eq!(agent.wait_for("member", "org_event", 1, Duration::ZERO).await.len(), 1);
        assert!(
            agent
                .wait_for("outsider", "org_event", 1, Duration::ZERO)
                .await
                .is_empty()
        );
        agent.stop().await;
        server.stop().await;
    }
}

#[tokio::test]
async fn documents_and_broadcasts_reach_their_audience() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let org = server.create_org("owner@example.com", "Acme").await;
    let mut agent = SocketAgent::start(ClientKind::Python).await;
    agent
        .connect("owner", &server.base, &server.token("owner@example.com"))
        .await
        .unwrap();
    agent
        .connect("other", &server.base, &server.token("other@example.com"))
        .await
        .unwrap();
    assert_eq!(agent.subscribe("owner", &format!("doc:Organization:{org}")).await, ok());
    // doctype + docname routing (SPEC §5) goes to the document room.
    publish(
        &server,
        json!({"event": "doc_update", "message": {"v": 2}, "doctype": "Organization", "docname": org}),
    )
    .await;
    assert_eq!(
        agent.wait_for("owner", "doc_update", 1, Duration::from_secs(5)).await,
        vec![json!({"v": 2})]
    );
    // No target: every socket.
    publish(&server, json!({"event": "announcement", "message": "all"})).await;
    for client in ["owner", "other"] {
        assert_eq!(
            agent
                .wait_for(client, "announcement", 1, Duration::from_secs(5))
                .await
                .len(),
            1
        );
    }
    tokio::time::sleep(SETTLE).await;
    assert!(
        agent
            .wait_for("other", "doc_update", 1, Duration::ZERO)
            .await
            .is_empty()
    );
    agent.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn http_publish_is_for_services_and_platform_administrators() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let org = server.create_org("owner@example.com", "Acme").await;
    let other = server.create_org("owner@example.com", "Other").await;
    let user = server
        .post(
            PUBLISH,
            &server.token("owner@example.com"),
            &json!({"event": "e", "room": format!("org:{org}")}),
        )
        .await;
    assert_eq!(user.status, StatusCode::FORBIDDEN, "{}", user.text);
    let issued = server
        .app
        .tenancy
        .create_api_key(&dartwing_core::Principal::system("test"), Some(&org), "frappe")
        .await
        .unwrap();
    let key = format!("token {}:{}", issued.api_key, issued.api_secret);
    let own = server
        .send(
            reqwest::Method::POST,
            PUBLISH,
            Some(&key),
            Some(&json!({"event": "e", "room": format!("org:{org}")})),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let foreign = server
        .send(
            reqwest::Method::POST,
            PUBLISH,
            Some(&key),
            Some(&json!({"event": "e", "room": format!("org:{other}")})),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.text);
    let admin = server.admin_token("root@example.com");
    for (body, status, exc_type) in [
        (
            json!({"event": "connect", "room": format!("org:{org}")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationError",
        ),
        (
            json!({"event": "e", "room": "lobby"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationError",
        ),
        (
            json!({"event": "", "room": format!("org:{org}")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationError",
        ),
        (
            json!({"event": "e", "rooom": "org:x"}),
            StatusCode::BAD_REQUEST,
            "BadRequestError",
        ),
        (json!({"message": 1}), StatusCode::BAD_REQUEST, "BadRequestError"),
        (json!({"event": 5}), StatusCode::BAD_REQUEST, "BadRequestError"),
    ] {
        let reply = server.post(PUBLISH, &admin, &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert_eq!(reply.json()["exc_type"], exc_type, "{body}");
    }
    let ok = server
        .post(
            PUBLISH,
            &admin,
            &json!({"event": "e", "message": {"a": 1}, "room": format!("org:{org}")}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json()["message"]["room"], json!(format!("org:{org}")));
    let text = server.metrics().await;
    assert!(
        metric(&text, "socketio_messages_published", "{event_type=\"e\"}") >= 1.0,
        "{text}"
    );
    server.stop().await;
}

dartwing_e2e::backend_tests! {
    async fn access_changes_remove_sockets_from_the_organization_rooms(db) {
        let server = TestServer::start(db).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let member = server.add_member(&org, "member@example.com", "Member").await;
        server.add_member(&org, "second@example.com", "Member").await;
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        for (client, email) in [("member", "member@example.com"), ("second", "second@example.com")] {
            agent.connect(client, &server.base, &server.token(email)).await.unwrap();
            for room in [
                format!("org:{org}"),
                format!("sync:Task:{org}"),
                format!("doc:Organization:{org}"),
                "room:lobby".into(),
            ] {
                assert_eq!(agent.subscribe(client, &room).await, ok(), "{client} {room}");
            }
        }
        // Removing the membership takes the user's sockets out of the organization's rooms at once.
        let removed = server
            .delete(
                &format!("/api/resource/Org%20Member/{member}"),
                &server.token("owner@example.com"),
            )
            .await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        tokio::time::sleep(Duration::from_secs(1)).await;
        for room in [
            format!("org:{org}"),
            format!("sync:Task:{org}"),
            "room:lobby".to_string(),
        ] {
            publish(&server, json!({"event": "after", "message": room, "room": room})).await;
        }
        publish(
            &server,
            json!({"event": "after", "message": "doc", "doctype": "Organization", "docname": org}),
        )
        .await;
        let second = agent.wait_for("second", "after", 4, Duration::from_secs(5)).await;
        assert_eq!(second.len(), 4);
        tokio::time::sleep(SETTLE).await;
        let member_got = agent.wait_for("member", "after", 1, Duration::ZERO).await;
        assert_eq!(member_got, vec![json!("room:lobby")], "only the custom room stays");
        assert!(refused(&agent.subscribe("member", &format!("org:{org}")).await).contains("Not permitted"));

        // Suspending the organization does the same for every member.
        let suspended = server
            .put(
                &format!("/api/resource/Organization/{org}"),
                &server.admin_token("root@example.com"),
                &json!({"status": "Suspended"}),
            )
            .await;
        assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.text);
        tokio::time::sleep(Duration::from_secs(1)).await;
        agent.clear("second").await;
        publish(
            &server,
            json!({"event": "after_suspend", "message": 1, "room": format!("org:{org}")}),
        )
        .await;
        tokio::time::sleep(SETTLE).await;
        assert!(
            agent
                .wait_for("second", "after_suspend", 1, Duration::ZERO)
                .await
                .is_empty()
        );
        agent.stop().await;
        server.stop().await;
    }
}

#[tokio::test]
async fn disconnect_leaves_no_orphan_rooms() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let org = server.create_org("owner@example.com", "Acme").await;
    let node = server.app.node_id.clone();
    let labels = format!("{{server_id=\"{node}\"}}");
    let before = server.metrics().await;
    assert_eq!(metric(&before, "socketio_connections_total", &labels), 0.0, "{before}");
    assert_eq!(metric(&before, "socketio_rooms_total", &labels), 0.0);
    let mut agent = SocketAgent::start(ClientKind::Js).await;
    for i in 0..5 {
        let client = format!("c{i}");
        agent
            .connect(&client, &server.base, &server.token("owner@example.com"))
            .await
            .unwrap();
        assert_eq!(agent.subscribe(&client, &format!("org:{org}")).await, ok());
        assert_eq!(agent.subscribe(&client, &format!("room:r{i}")).await, ok());
    }
    let during = server.metrics().await;
    assert_eq!(metric(&during, "socketio_connections_total", &labels), 5.0, "{during}");
    // user:owner, org:…, room:r0..r4
    assert_eq!(metric(&during, "socketio_rooms_total", &labels), 7.0, "{during}");
    for i in 0..5 {
        agent.disconnect(&format!("c{i}")).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let after = server.metrics().await;
        let (connections, rooms) = (
            metric(&after, "socketio_connections_total", &labels),
            metric(&after, "socketio_rooms_total", &labels),
        );
        if connections == 0.0 && rooms == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections {connections}, rooms {rooms} after disconnect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.stop().await;
    server.stop().await;
}

dartwing_e2e::backend_tests! {
    async fn sync_deltas_reach_subscribed_sockets_and_sync_documents_have_rooms(db) {
        let server = TestServer::start(db).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        server.add_member(&org, "member@example.com", "Member").await;
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        agent
            .connect("member", &server.base, &server.token("member@example.com"))
            .await
            .unwrap();
        agent
            .connect("outsider", &server.base, &server.token("outsider@example.com"))
            .await
            .unwrap();
        assert_eq!(agent.subscribe("member", &format!("sync:Task:{org}")).await, ok());
        let item = json!({"op_id": "op-1", "op": "insert", "doctype": "Task", "name": "TASK-RT-1",
                          "data": {"title": "Write tests"}, "client_ts": "2026-11-28T10:00:00.000000Z"});
        let reply = server
            .post(
                "/api/method/dartwing_core.sync.upsert_batch",
                &server.token("owner@example.com"),
                &json!({"org": org, "items": [item]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["message"][0]["status"], "applied", "{}", reply.text);
        let deltas = agent.wait_for("member", "sync_delta", 1, Duration::from_secs(5)).await;
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0]["name"], "TASK-RT-1");
        assert_eq!(deltas[0]["doctype"], "Task");
        assert_eq!(deltas[0]["data"]["title"], "Write tests");
        // The sync document now has a room its organization's members may follow, nobody else.
        assert_eq!(agent.subscribe("member", "doc:Task:TASK-RT-1").await, ok());
        // An outsider is refused exactly as for a document nobody has (names are per organization).
        assert_eq!(
            refused(&agent.subscribe("outsider", "doc:Task:TASK-RT-1").await),
            "Task TASK-RT-1 not found"
        );
        assert!(refused(&agent.subscribe("outsider", &format!("sync:Task:{org}")).await).contains("Not permitted"));
        tokio::time::sleep(SETTLE).await;
        assert!(
            agent
                .wait_for("outsider", "sync_delta", 1, Duration::ZERO)
                .await
                .is_empty()
        );
        agent.stop().await;
        server.stop().await;
    }
}
