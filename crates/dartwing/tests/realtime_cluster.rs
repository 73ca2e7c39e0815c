//! The realtime gateway across three real `dartwing` processes on PostgreSQL and Redis (SPEC §5):
//! every publish path reaches each subscribed socket exactly once whatever node it is on,
//! membership changes on one node take effect on all, a Redis outage is survived without
//! restarting, and the Python publisher in `contrib/frappe` reaches the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::process::{ChildGuard, NodeCluster, free_port, wait_healthy};
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_e2e::{TestDatabase, redis_url, unique};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_dartwing");
const SECRET: &str = "cluster-test-secret-0123456789abcdef012345";
const PUBLISH: &str = "/api/method/dartwing_core.realtime.publish";
const SETTLE: Duration = Duration::from_millis(700);

/// Nodes sharing one database, one Redis, and a channel/prefix of their own (tests run in parallel).
struct Cluster {
    nodes: NodeCluster,
    channel: String,
    redis: String,
}

impl std::ops::Deref for Cluster {
    type Target = NodeCluster;

    fn deref(&self) -> &NodeCluster {
        &self.nodes
    }
}

impl Cluster {
    async fn start(dir: &Path, database_url: &str, redis: &str, count: usize, extra_env: &[(&str, &str)]) -> Self {
        let channel = unique("dartwing:test:");
        let prefix = unique("dw-sio-");
        let commands = (0..count)
            .map(|_| {
                let mut command = dartwing_e2e::isolated_command(BINARY, dir);
                command
                    .env("DARTWING_DATABASE_URL", database_url)
                    .env("DARTWING_REDIS_URL", redis)
                    .env("DARTWING_REALTIME__CHANNEL", &channel)
                    .env("DARTWING_REALTIME__ADAPTER_PREFIX", &prefix);
                for (key, value) in extra_env {
                    command.env(key, value);
                }
                command
            })
            .collect();
        Self {
            nodes: NodeCluster::start(commands, "api,realtime", SECRET).await,
            channel,
            redis: redis.to_string(),
        }
    }

    async fn health(&self, base: &str) -> (u16, Value) {
        match self.http().get(format!("{base}/health")).send().await {
            Ok(reply) => (reply.status().as_u16(), reply.json().await.unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    async fn publish(&self, node: usize, body: Value) {
        self.call(node, reqwest::Method::POST, PUBLISH, &self.admin(), Some(body))
            .await;
    }

    /// Publishes SPEC §5's payload on the Redis channel, as Frappe does.
    async fn publish_on_channel(&self, payload: Value) {
        let client = redis::Client::open(self.redis.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload.to_string())
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(receivers as usize, self.size(), "every node listens on the channel");
    }

    async fn create_org(&self, owner: &str) -> String {
        let body = self
            .call(
                0,
                reqwest::Method::POST,
                "/api/resource/Organization",
                &self.token(owner),
                Some(json!({"org_name": "Acme", "org_type": "Company"})),
            )
            .await;
        body["data"]["name"].as_str().unwrap().to_string()
    }

    /// Adds `email` to `org` (provisioning the person through a first request); returns the Org Member name.
    async fn add_member(&self, org: &str, email: &str, role: &str) -> String {
        let person = self.person_of(email).await;
        let body = self
            .call(
                0,
                reqwest::Method::POST,
                "/api/resource/Org%20Member",
                &self.admin(),
                Some(json!({"person": person, "organization": org, "role": role})),
            )
            .await;
        body["data"]["name"].as_str().unwrap().to_string()
    }
}

/// How many times each client received `event`, after the settle time.
async fn counts(agent: &mut SocketAgent, clients: &[String], event: &str) -> HashMap<String, usize> {
    tokio::time::sleep(SETTLE).await;
    let mut counts = HashMap::new();
    for client in clients {
        let got = agent.wait_for(client, event, usize::MAX, Duration::ZERO).await;
        counts.insert(client.clone(), got.len());
    }
    counts
}

async fn wait_count(agent: &mut SocketAgent, client: &str, event: &str, count: usize) {
    let got = agent.wait_for(client, event, count, Duration::from_secs(10)).await;
    assert!(got.len() >= count, "{client} got {} of {count} `{event}`", got.len());
}

#[tokio::test]
async fn three_nodes_deliver_every_publish_path_exactly_once_per_socket() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(
        db.dir.path(),
        &db.url,
        &redis,
        3,
        &[
            ("DARTWING_JOBS__LIMIT_MODE", "warn"),
            ("DARTWING_JOBS__QUEUES__DEFAULT__MAX_PENDING_PER_ORG", "1"),
        ],
    )
    .await;
    let org = cluster.create_org("owner@example.com").await;
    for email in ["m1@example.com", "m2@example.com", "m3@example.com"] {
        cluster.add_member(&org, email, "Member").await;
    }
    let mut js = SocketAgent::start(ClientKind::Js).await;
    let mut py = SocketAgent::start(ClientKind::Python).await;
    // Two JS members on each node, a Python member on node 3, the owner on nodes 1 and 3.
    let mut js_clients = Vec::new();
    for node in 0..3 {
        for (slot, email) in [(0, "m1@example.com"), (1, "m2@example.com")] {
            let name = format!("n{node}-{slot}");
            js.connect(&name, cluster.base(node), &cluster.token(email))
                .await
                .unwrap();
            assert_eq!(js.subscribe(&name, &format!("org:{org}")).await, json!({"ok": true}));
            js_clients.push(name);
        }
    }
    py.connect("py", cluster.base(2), &cluster.token("m3@example.com"))
        .await
        .unwrap();
    assert_eq!(py.subscribe("py", &format!("org:{org}")).await, json!({"ok": true}));
    js.connect("owner-1", cluster.base(0), &cluster.token("owner@example.com"))
        .await
        .unwrap();
    js.connect("owner-3", cluster.base(2), &cluster.token("owner@example.com"))
        .await
        .unwrap();
    let py_clients = vec!["py".to_string()];

    // HTTP on node 2 → the org room everywhere, once.
    cluster
        .publish(
            1,
            json!({"event": "via_http", "message": {"n": 1}, "room": format!("org:{org}")}),
        )
        .await;
    // The Redis channel, as Frappe publishes → once, although every node receives the message.
    cluster
        .publish_on_channel(json!({"event": "via_channel", "message": {"n": 2}, "room": format!("org:{org}")}))
        .await;
    for client in &js_clients {
        wait_count(&mut js, client, "via_channel", 1).await;
    }
    let http = counts(&mut js, &js_clients, "via_http").await;
    let channel = counts(&mut js, &js_clients, "via_channel").await;
    for client in &js_clients {
        assert_eq!(http[client], 1, "{client} via HTTP: {http:?}");
        assert_eq!(channel[client], 1, "{client} via channel: {channel:?}");
    }
    assert_eq!(counts(&mut py, &py_clients, "via_http").await["py"], 1);
    assert_eq!(counts(&mut py, &py_clients, "via_channel").await["py"], 1);

    // In-process: a capability of node 2 (jobs) warns the organization's admins.
    for _ in 0..2 {
        cluster
            .call(
                1,
                reqwest::Method::POST,
                "/api/method/dartwing_core.jobs.enqueue",
                &cluster.token("owner@example.com"),
                Some(json!({"method": "core.noop", "organization": org, "args": {}})),
            )
            .await;
    }
    wait_count(&mut js, "owner-1", "job_limit_warning", 1).await;
    let owners = vec!["owner-1".to_string(), "owner-3".to_string()];
    let warnings = counts(&mut js, &owners, "job_limit_warning").await;
    assert_eq!(warnings, HashMap::from([("owner-1".into(), 1), ("owner-3".into(), 1)]));
    assert_eq!(
        counts(&mut js, &js_clients, "job_limit_warning")
            .await
            .values()
            .sum::<usize>(),
        0
    );

    // User targeting from node 3 reaches that user's sockets on other nodes only.
    cluster
        .publish(2, json!({"event": "for_m1", "message": 1, "user": "m1@example.com"}))
        .await;
    let for_m1 = counts(&mut js, &js_clients, "for_m1").await;
    for client in &js_clients {
        let expected = usize::from(client.ends_with("-0"));
        assert_eq!(for_m1[client], expected, "{client}: {for_m1:?}");
    }
    // Broadcast on the channel: every socket, once.
    cluster
        .publish_on_channel(json!({"event": "everyone", "message": 1}))
        .await;
    let everyone = counts(&mut js, &js_clients, "everyone").await;
    assert!(everyone.values().all(|n| *n == 1), "{everyone:?}");

    // The Python publisher of contrib/frappe, through the same channel, imported under the path
    // the socket.io scaling spec names and finding Redis as a Frappe bench sets it.
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/frappe");
    let output = std::process::Command::new(dartwing_e2e::sockets::python())
        .current_dir(&contrib)
        .env_remove("DARTWING_REDIS_URL")
        .env("REDIS_SOCKETIO_URL", &redis)
        .env("DARTWING_REALTIME_CHANNEL", &cluster.channel)
        .args([
            "-c",
            &format!(
                "from dartwing_core.realtime import redis_adapter as d; \
                 n = d.publish('from_python', {{'ok': 1}}, room='org:{org}'); assert n == 3, n"
            ),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let from_python = counts(&mut js, &js_clients, "from_python").await;
    assert!(from_python.values().all(|n| *n == 1), "{from_python:?}");
    let unit = std::process::Command::new(dartwing_e2e::sockets::python())
        .current_dir(&contrib)
        .args(["-m", "unittest", "test_dartwing_realtime"])
        .output()
        .unwrap();
    assert!(unit.status.success(), "{}", String::from_utf8_lossy(&unit.stderr));

    js.stop().await;
    py.stop().await;
}

#[tokio::test]
async fn a_membership_removed_on_one_node_takes_the_sockets_out_of_rooms_on_every_node() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(db.dir.path(), &db.url, &redis, 3, &[]).await;
    let org = cluster.create_org("owner@example.com").await;
    let leaving = cluster.add_member(&org, "leaving@example.com", "Member").await;
    cluster.add_member(&org, "staying@example.com", "Member").await;
    let mut js = SocketAgent::start(ClientKind::Js).await;
    let mut clients = Vec::new();
    for node in 0..3 {
        for email in ["leaving@example.com", "staying@example.com"] {
            let name = format!("{email}@{node}");
            js.connect(&name, cluster.base(node), &cluster.token(email))
                .await
                .unwrap();
            for room in [format!("org:{org}"), format!("sync:Task:{org}")] {
                assert_eq!(js.subscribe(&name, &room).await, json!({"ok": true}));
            }
            clients.push(name);
        }
    }
    cluster
        .call(
            0,
            reqwest::Method::DELETE,
            &format!("/api/resource/Org%20Member/{leaving}"),
            &cluster.token("owner@example.com"),
            None,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster
        .publish(1, json!({"event": "after", "message": 1, "room": format!("org:{org}")}))
        .await;
    cluster
        .publish_on_channel(json!({"event": "after", "message": 2, "room": format!("sync:Task:{org}")}))
        .await;
    let after = counts(&mut js, &clients, "after").await;
    for client in &clients {
        let expected = if client.starts_with("staying") { 2 } else { 0 };
        assert_eq!(after[client], expected, "{client}: {after:?}");
    }
    js.stop().await;
}

/// A Redis server of the test's own, so it can be killed without disturbing other tests.
fn redis_server(port: u16) -> ChildGuard {
    let child = ChildGuard::spawn(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test]
async fn nodes_survive_a_redis_outage_and_recover_without_restart() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let port = free_port();
    let mut redis = redis_server(port);
    let url = format!("redis://127.0.0.1:{port}");
    let cluster = Cluster::start(db.dir.path(), &db.url, &url, 2, &[]).await;
    let mut js = SocketAgent::start(ClientKind::Js).await;
    for node in 0..2 {
        let name = format!("n{node}");
        js.connect(&name, cluster.base(node), &cluster.token("ann@example.com"))
            .await
            .unwrap();
        assert_eq!(js.subscribe(&name, "room:stream").await, json!({"ok": true}));
    }
    let clients = vec!["n0".to_string(), "n1".to_string()];
    cluster
        .publish(0, json!({"event": "before", "message": 1, "room": "room:stream"}))
        .await;
    let before = counts(&mut js, &clients, "before").await;
    assert!(before.values().all(|n| *n == 1), "{before:?}");

    // Redis dies mid-stream: nodes report it, keep serving their own sockets.
    drop(std::mem::replace(
        &mut redis,
        ChildGuard::spawn(&mut std::process::Command::new("true")),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = cluster.health(cluster.base(0)).await;
        if status == 503 {
            assert_eq!(body["checks"]["redis"]["status"], "unhealthy", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "health stayed {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster
        .publish(0, json!({"event": "during", "message": 1, "room": "room:stream"}))
        .await;
    let during = counts(&mut js, &clients, "during").await;
    assert_eq!(during["n0"], 1, "local delivery continues: {during:?}");
    assert_eq!(during["n1"], 0, "the other node cannot be reached: {during:?}");

    // Redis returns on the same address: the nodes reconnect by themselves.
    let _redis = redis_server(port);
    for node in 0..2 {
        wait_healthy(cluster.base(node), Duration::from_secs(20), "a cluster node").await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    loop {
        round += 1;
        let event = format!("after-{round}");
        cluster
            .publish(0, json!({"event": event, "message": 1, "room": "room:stream"}))
            .await;
        let after = counts(&mut js, &clients, &event).await;
        if after["n1"] == 1 {
            assert_eq!(after["n0"], 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cross-node delivery did not resume: {after:?}"
        );
    }
    // Both directions work again.
    cluster
        .publish(1, json!({"event": "reverse", "message": 1, "room": "room:stream"}))
        .await;
    let reverse = counts(&mut js, &clients, "reverse").await;
    assert!(reverse.values().all(|n| *n == 1), "{reverse:?}");
    js.stop().await;
}
