//! Webhook delivery that no tenant can aim at the internal network or forge for another tenant,
//! on SQLite and PostgreSQL, against real HTTP receivers on this machine that count what reaches
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::config::Config;
use dartwing_e2e::scenario::{ALICE, BOB, DbSnapshot, Scene, assert_private, assert_refused};
use dartwing_e2e::{Reply, TestDatabase, TestServer};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MALLORY: &str = "mallory@example.com";
const ENQUEUE: &str = "/api/method/dartwing_core.jobs.enqueue";
const SECRET: &str = "/api/method/dartwing_core.jobs.webhook_secret";
const ROTATE: &str = "/api/method/dartwing_core.jobs.rotate_webhook_secret";
const HOSTS: &str = "/api/method/dartwing_core.jobs.webhook_hosts";

// ---------------------------------------------------------------- receivers

/// How a receiver answers.
#[derive(Clone)]
enum Answer {
    Status(u16),
    Redirect(String),
    /// Reads the request, then closes the connection without answering.
    Close,
}

/// One request as a receiver got it.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// A real HTTP receiver on a local port that counts every connection made to it.
struct Receiver {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(bind: &str, answer: Answer) -> Self {
        let listener = TcpListener::bind(bind).await.expect("receiver binds");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let connections = connections.clone();
            let received = received.clone();
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(socket, answer.clone(), received.clone()));
                }
            }
        });
        Self {
            addr,
            connections,
            received,
            task,
        }
    }

    async fn answering(answer: Answer) -> Self {
        Self::start("127.0.0.1:0", answer).await
    }

    /// `http://<addr><path>`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Connections made to this receiver so far.
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, answer: Answer, received: Arc<Mutex<Vec<Received>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buffer.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buffer[head_end..].to_vec();
    received.lock().unwrap().push(Received { headers, body });
    let reply = match answer {
        Answer::Status(code) => format!("HTTP/1.1 {code} Answer\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
        Answer::Redirect(location) => {
            format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        }
        Answer::Close => return,
    };
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}

// ---------------------------------------------------------------- scene

/// Fast polling and immediate retries, so scenarios finish quickly.
fn quick(config: &mut Config) {
    config.jobs.poll_interval_ms = 20;
    config.jobs.completion_flush_ms = 2;
    config.jobs.queues.default.retry_delays_secs = vec![0];
}

/// A scene whose operator allowlists `networks` (none: public addresses only), with Mallory a
/// Member of Alpha.
async fn scene(db: &TestDatabase, networks: &[&str]) -> Scene {
    scene_with(db, networks, |_| {}).await
}

async fn scene_with(db: &TestDatabase, networks: &[&str], adjust: impl FnOnce(&mut Config)) -> Scene {
    let networks: Vec<String> = networks.iter().map(|n| n.to_string()).collect();
    let server = TestServer::start_with(db, |c| {
        quick(c);
        c.jobs.webhook.allow_private = networks;
        adjust(c);
    })
    .await;
    let scene = Scene::on(server).await;
    scene.server.add_member(&scene.alpha, MALLORY, "Member").await;
    scene
}

fn webhook(org: Option<&str>, url: &str) -> Value {
    json!({
        "method": "webhook.dispatch",
        "organization": org,
        "args": { "url": url, "event": "order.paid", "payload": { "order": 42, "total": "9.99" } },
    })
}

async fn enqueue(scene: &Scene, email: &str, org: &str, url: &str) -> Reply {
    scene
        .server
        .post(ENQUEUE, &scene.token(email), &webhook(Some(org), url))
        .await
}

/// Enqueues as `email` and returns the job id (the enqueue must succeed).
async fn enqueued(scene: &Scene, email: &str, org: &str, url: &str) -> String {
    let reply = enqueue(scene, email, org, url).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["message"]["job_id"].as_str().unwrap().to_string()
}

/// The job's status as `email` reads it through the API, once it is final.
async fn final_status(scene: &Scene, email: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = scene
            .server
            .get(
                &format!("/api/method/dartwing_core.jobs.status?job_id={job_id}"),
                &scene.token(email),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let job = reply.json()["message"].clone();
        if ["Completed", "Failed", "Canceled", "Timed Out"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {job_id} stuck: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts that the job failed for good with exactly `error`, and that neither the job nor its
/// dead letter says anything of `private` (hosts, addresses, ports).
async fn assert_failed_with(scene: &Scene, job_id: &str, error: &str, private: &[&str]) {
    let job = final_status(scene, MALLORY, job_id).await;
    assert_eq!(job["status"], "Failed", "{job}");
    assert_eq!(job["error"], error, "{job}");
    assert_private(job["error"].as_str().unwrap(), private);
    let letters = scene
        .server
        .get(
            &format!(
                "/api/method/dartwing_core.jobs.dead_letters?organization={}",
                scene.alpha
            ),
            &scene.token(ALICE),
        )
        .await;
    let letters = letters.json()["message"].clone();
    let letter = letters
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["job_id"] == job_id)
        .expect("dead letter");
    assert_eq!(letter["failure_reason"], error);
}

async fn set_hosts(scene: &Scene, email: &str, hosts: Value) -> Reply {
    let body = json!({"organization": scene.alpha, "hosts": hosts});
    scene.server.post(HOSTS, &scene.token(email), &body).await
}

/// Lets a worker run anything that was wrongly enqueued before "nothing was sent" is asserted.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Mallory (a Member of Alpha) enqueues a webhook to `url`: refused with 422 at enqueue, no row
/// anywhere, and `receiver` never contacted.
async fn assert_refused_at_enqueue(scene: &Scene, receiver: &Receiver, url: &str) {
    let before = scene.snapshot().await;
    let reply = enqueue(scene, MALLORY, &scene.alpha, url).await;
    assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
    settle().await;
    before.assert_unchanged(&scene.server, url).await;
    assert_eq!(receiver.connections(), 0, "{url} reached the receiver");
}

async fn read_secret(scene: &Scene, email: &str, org: &str) -> Reply {
    scene
        .server
        .get(&format!("{SECRET}?organization={org}"), &scene.token(email))
        .await
}

async fn secret_of(scene: &Scene, email: &str, org: &str) -> String {
    let reply = read_secret(scene, email, org).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let message = reply.json()["message"].clone();
    assert_eq!(message["organization"], org);
    message["secret"].as_str().unwrap().to_string()
}

/// Verifies a delivery as a receiver would, independently of the server's code: HMAC-SHA256
/// under `secret` of `v1:{timestamp}:{organization}:{delivery}:{body}`.
fn verifies(secret: &str, request: &Received) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(
        format!(
            "v1:{}:{}:{}:",
            request.header("x-dartwing-timestamp"),
            request.header("x-dartwing-organization"),
            request.header("x-dartwing-delivery")
        )
        .as_bytes(),
    );
    mac.update(&request.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    request.header("x-dartwing-signature") == expected
}

/// Delivers one webhook of Alpha (enqueued by Mallory) to `receiver` and returns what it got.
async fn deliver_one(scene: &Scene, receiver: &Receiver) -> (String, Received) {
    let before = receiver.requests().len();
    let job_id = enqueued(scene, MALLORY, &scene.alpha, &receiver.url("/hooks/orders")).await;
    let job = final_status(scene, MALLORY, &job_id).await;
    assert_eq!(job["status"], "Completed", "{job}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), before + 1, "exactly one delivery");
    (job_id, requests[before].clone())
}

// ---------------------------------------------------------------- destinations

dartwing_e2e::backend_tests! {
    /// `http://127.0.0.1:<port>/`: 422 at enqueue; the loopback receiver gets nothing.
    async fn member_cannot_enqueue_webhook_to_loopback(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        assert_refused_at_enqueue(&scene, &receiver, &receiver.url("/")).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://127.0.0.2:{}/", receiver.port())).await;
        scene.stop().await;
    }

    /// `http://[::1]:<port>/`: 422 at enqueue; a receiver on the IPv6 loopback gets nothing.
    async fn member_cannot_enqueue_webhook_to_ipv6_loopback(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::start("[::1]:0", Answer::Status(200)).await;
        assert_refused_at_enqueue(&scene, &receiver, &receiver.url("/")).await;
        scene.stop().await;
    }

    /// `http://2130706433:<port>/` (127.0.0.1 as one decimal number): 422 at enqueue.
    async fn member_cannot_enqueue_webhook_to_decimal_loopback(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://2130706433:{}/", receiver.port())).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://0x7f000001:{}/", receiver.port())).await;
        scene.stop().await;
    }

    /// `http://0177.0.0.1:<port>/` (octal): 422 at enqueue.
    async fn member_cannot_enqueue_webhook_to_octal_loopback(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://0177.0.0.1:{}/", receiver.port())).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://127.1:{}/", receiver.port())).await;
        scene.stop().await;
    }

    /// `http://[::ffff:127.0.0.1]:<port>/` (IPv4-mapped IPv6) is judged as 127.0.0.1: 422.
    async fn member_cannot_enqueue_webhook_to_ipv4_mapped_loopback(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://[::ffff:127.0.0.1]:{}/", receiver.port())).await;
        assert_refused_at_enqueue(&scene, &receiver, &format!("http://[::ffff:7f00:1]:{}/", receiver.port())).await;
        scene.stop().await;
    }

    /// Private networks 10/8, 172.16/12, 192.168/16 and carrier-grade NAT: 422 at enqueue.
    async fn member_cannot_enqueue_webhook_to_private_networks(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        for url in [
            "http://10.0.0.1/hook",
            "http://10.255.1.2:8080/hook",
            "http://172.16.5.4/hook",
            "http://192.168.1.1/hook",
            "https://192.168.0.10/admin",
            "http://100.64.0.1/hook",
        ] {
            assert_refused_at_enqueue(&scene, &receiver, url).await;
        }
        scene.stop().await;
    }

    /// The cloud metadata address 169.254.169.254 (and link-local fe80::): 422 at enqueue.
    async fn member_cannot_enqueue_webhook_to_cloud_metadata(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        for url in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
        ] {
            assert_refused_at_enqueue(&scene, &receiver, url).await;
        }
        scene.stop().await;
    }

    /// `http://localhost:<port>/`: a name is judged when it is resolved, at the connection; the
    /// job fails for good with `delivery failed: refused destination` and the loopback receiver
    /// gets nothing.
    async fn webhook_to_localhost_is_refused_at_the_connection(db) {
        let scene = scene(db, &[]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        let job_id = enqueued(&scene, MALLORY, &scene.alpha, &format!("http://localhost:{}/", receiver.port())).await;
        assert_failed_with(
            &scene,
            &job_id,
            "delivery failed: refused destination",
            &["localhost", "127.0.0.1", &receiver.port()],
        )
        .await;
        assert_eq!(receiver.connections(), 0);
        scene.stop().await;
    }

    /// A job enqueued while the operator allowed 127.0.0.1 runs after the allowlist was removed:
    /// the address is checked again before the connection, so the receiver gets nothing.
    async fn webhook_to_an_address_no_longer_allowed_is_refused_at_the_connection(db) {
        let receiver = Receiver::answering(Answer::Status(200)).await;
        let allowed = scene(db, &["127.0.0.1/32"]).await;
        let mut job = webhook(Some(&allowed.alpha), &receiver.url("/"));
        job["run_at"] = json!(dartwing_core::Timestamp::from_micros(
            dartwing_core::Timestamp::now().as_micros() + 5_000_000
        ));
        let reply = allowed.server.post(ENQUEUE, &allowed.token(MALLORY), &job).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let job_id = reply.json()["message"]["job_id"].as_str().unwrap().to_string();
        let (alpha, beta, admin) = (allowed.alpha.clone(), allowed.beta.clone(), allowed.admin.clone());
        allowed.stop().await;

        let server = TestServer::start_with(db, quick).await;
        let scene = Scene { server, admin, alpha, beta };
        assert_failed_with(
            &scene,
            &job_id,
            "delivery failed: refused destination",
            &["127.0.0.1", &receiver.port()],
        )
        .await;
        assert_eq!(receiver.connections(), 0);
        scene.stop().await;
    }

    /// An allowed receiver answers 302 to another local receiver: the redirect is not followed;
    /// the job fails with `delivery failed: redirect` and the second receiver gets nothing.
    async fn webhook_redirect_to_loopback_is_not_followed(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let target = Receiver::answering(Answer::Status(200)).await;
        let redirecting = Receiver::answering(Answer::Redirect(target.url("/internal"))).await;
        let job_id = enqueued(&scene, MALLORY, &scene.alpha, &redirecting.url("/")).await;
        assert_failed_with(
            &scene,
            &job_id,
            "delivery failed: redirect",
            &["127.0.0.1", &redirecting.port(), &target.port(), "/internal"],
        )
        .await;
        assert_eq!(redirecting.requests().len(), 1, "one attempt: a redirect is not retried");
        assert_eq!(target.connections(), 0, "the redirect was followed");
        scene.stop().await;
    }

    /// In production mode an `http://` URL is refused at enqueue (422), even to an allowlisted
    /// receiver, and the receiver gets nothing.
    async fn http_webhook_is_refused_in_production(db) {
        let scene = scene_with(db, &["127.0.0.1/32"], |c| {
            c.production = true;
            c.integrations.key = Some(
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]).into(),
            );
        })
        .await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        assert_refused_at_enqueue(&scene, &receiver, &receiver.url("/")).await;
        scene.stop().await;
    }

    /// A system job (no organization) has no secret to sign with: 422, nothing stored.
    async fn system_job_cannot_dispatch_webhooks(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        let before = DbSnapshot::take(&scene.server).await;
        let reply = scene.server.post(ENQUEUE, &scene.admin, &webhook(None, &receiver.url("/"))).await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        settle().await;
        before.assert_unchanged(&scene.server, "system webhook").await;
        let system_jobs = scene.server.app.jobs.store().list(Some(&[String::new()]), None, 500).await.unwrap();
        assert!(system_jobs.iter().all(|j| j.method != "webhook.dispatch"), "{system_jobs:?}");
        assert_eq!(receiver.connections(), 0);
        scene.stop().await;
    }

    /// Malformed webhook arguments are refused at enqueue: credentials in the URL, other schemes,
    /// no host, overlong URLs, header-breaking event names, unknown fields.
    async fn malformed_webhook_arguments_are_refused_at_enqueue(db) {
        let scene = scene(db, &[]).await;
        let before = scene.snapshot().await;
        let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
        for args in [
            json!({"url": "https://user:pass@hooks.example.com/", "payload": {}}),
            json!({"url": "ftp://hooks.example.com/", "payload": {}}),
            json!({"url": "file:///etc/passwd", "payload": {}}),
            json!({"url": "hooks.example.com/in", "payload": {}}),
            json!({"url": long, "payload": {}}),
            json!({"url": "https://hooks.example.com/", "payload": {}, "event": "x\r\nX-Evil: 1"}),
            json!({"url": "https://hooks.example.com/", "payload": {}, "secret": "mine"}),
            json!({"url": "https://hooks.example.com/"}),
        ] {
            let body = json!({"method": "webhook.dispatch", "organization": scene.alpha, "args": args});
            let reply = scene.server.post(ENQUEUE, &scene.token(MALLORY), &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &["user:pass"]);
        }
        before.assert_unchanged(&scene.server, "malformed webhooks").await;
        scene.stop().await;
    }
}

// ---------------------------------------------------------------- signatures and secrets

dartwing_e2e::backend_tests! {
    /// With 127.0.0.1 allowlisted by the operator, a delivery reaches the receiver, which
    /// verifies its signature with the secret the Owner read through the API.
    async fn allowlisted_delivery_verifies_with_the_secret_the_owner_reads(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Status(204)).await;
        let secret = secret_of(&scene, ALICE, &scene.alpha).await;
        assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 64, "{secret}");
        assert_eq!(secret_of(&scene, ALICE, &scene.alpha).await, secret, "stable until rotated");

        let (job_id, request) = deliver_one(&scene, &receiver).await;
        assert!(verifies(&secret, &request), "{request:?}");
        assert_eq!(request.header("x-dartwing-organization"), scene.alpha);
        assert_eq!(request.header("x-dartwing-delivery"), job_id);
        assert_eq!(request.header("x-dartwing-event"), "order.paid");
        assert_eq!(request.header("content-type"), "application/json");
        let timestamp: i64 = request.header("x-dartwing-timestamp").parse().unwrap();
        let now = dartwing_core::Timestamp::now().as_micros() / 1_000_000;
        assert!((now - timestamp).abs() < 60, "timestamp {timestamp} vs {now}");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, json!({"order": 42, "total": "9.99"}));
        let mut tampered = request.clone();
        tampered.body = br#"{"order":42,"total":"0.01"}"#.to_vec();
        assert!(!verifies(&secret, &tampered));
        scene.stop().await;
    }

    /// A Member cannot read the secret (403); another organization's Owner gets the same answer
    /// as for an organization that does not exist; nothing is generated for them.
    async fn member_and_other_owner_cannot_read_the_webhook_secret(db) {
        let scene = scene(db, &[]).await;
        let before = scene.snapshot().await;
        let member = read_secret(&scene, MALLORY, &scene.alpha).await;
        assert_refused(&member, StatusCode::FORBIDDEN, "PermissionError", &["whsec_"]);
        let other = read_secret(&scene, BOB, &scene.alpha).await;
        assert_refused(&other, StatusCode::FORBIDDEN, "PermissionError", &["whsec_"]);
        let missing = read_secret(&scene, BOB, "ORG-2099-99999").await;
        assert_refused(&missing, StatusCode::FORBIDDEN, "PermissionError", &["whsec_"]);
        assert_eq!(
            other.json()["message"].as_str().unwrap().replace(&scene.alpha, "ORG"),
            missing.json()["message"].as_str().unwrap().replace("ORG-2099-99999", "ORG"),
        );
        for email in [MALLORY, BOB] {
            let rotate = scene
                .server
                .post(ROTATE, &scene.token(email), &json!({"organization": scene.alpha}))
                .await;
            assert_refused(&rotate, StatusCode::FORBIDDEN, "PermissionError", &["whsec_"]);
        }
        before.assert_unchanged(&scene.server, "refused secret reads").await;
        let admin_missing = scene
            .server
            .get(&format!("{SECRET}?organization=ORG-2099-99999"), &scene.admin)
            .await;
        assert_refused(&admin_missing, StatusCode::NOT_FOUND, "DoesNotExistError", &["whsec_"]);
        before.assert_unchanged(&scene.server, "secret of a missing organization").await;
        scene.stop().await;
    }

    /// After rotation the new secret is answered once per call and signs every later delivery;
    /// the old one no longer verifies.
    async fn rotated_webhook_secret_replaces_the_old_one_at_once(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        let old = secret_of(&scene, ALICE, &scene.alpha).await;
        let (_, first) = deliver_one(&scene, &receiver).await;
        assert!(verifies(&old, &first));

        let reply = scene
            .server
            .post(ROTATE, &scene.token(ALICE), &json!({"organization": scene.alpha}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let rotated = reply.json()["message"]["secret"].as_str().unwrap().to_string();
        assert_ne!(rotated, old);
        assert_eq!(secret_of(&scene, ALICE, &scene.alpha).await, rotated);

        let (_, second) = deliver_one(&scene, &receiver).await;
        assert!(verifies(&rotated, &second), "the new secret signs");
        assert!(!verifies(&old, &second), "the old secret no longer verifies");
        scene.stop().await;
    }

    /// Alpha's delivery does not verify under Beta's secret, so Alpha cannot obtain signatures
    /// that Beta's receiver would accept.
    async fn delivery_of_one_organization_does_not_verify_under_another_organizations_secret(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        let alpha_secret = secret_of(&scene, ALICE, &scene.alpha).await;
        let beta_secret = secret_of(&scene, BOB, &scene.beta).await;
        assert_ne!(alpha_secret, beta_secret);
        let (_, request) = deliver_one(&scene, &receiver).await;
        assert!(verifies(&alpha_secret, &request));
        assert!(!verifies(&beta_secret, &request), "Alpha's delivery verifies under Beta's secret");
        let mut relabelled = request.clone();
        relabelled.headers.insert("x-dartwing-organization".into(), scene.beta.clone());
        assert!(!verifies(&beta_secret, &relabelled) && !verifies(&alpha_secret, &relabelled));
        scene.stop().await;
    }
}

// ---------------------------------------------------------------- failures

dartwing_e2e::backend_tests! {
    /// A receiver answering 405 leaves `delivery failed: 4xx` (permanent: one attempt), nothing
    /// about the receiver.
    async fn receiver_answering_405_leaves_only_the_failure_class(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Status(405)).await;
        let job_id = enqueued(&scene, MALLORY, &scene.alpha, &receiver.url("/admin")).await;
        assert_failed_with(
            &scene,
            &job_id,
            "delivery failed: 4xx",
            &["127.0.0.1", &receiver.port(), "405", "/admin"],
        )
        .await;
        let job = final_status(&scene, MALLORY, &job_id).await;
        assert_eq!(job["attempts"], 1, "a 405 is not retried");
        assert_eq!(receiver.requests().len(), 1);
        scene.stop().await;
    }

    /// A receiver closing the connection leaves `delivery failed: connection` (transient:
    /// retried until the attempts run out).
    async fn receiver_closing_the_connection_leaves_only_the_failure_class(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Close).await;
        let job_id = enqueued(&scene, MALLORY, &scene.alpha, &receiver.url("/")).await;
        assert_failed_with(
            &scene,
            &job_id,
            "delivery failed: connection",
            &["127.0.0.1", &receiver.port(), "closed", "reset"],
        )
        .await;
        let job = final_status(&scene, MALLORY, &job_id).await;
        assert_eq!(job["attempts"], 4, "a connection failure is retried");
        assert_eq!(receiver.requests().len(), 4);
        scene.stop().await;
    }
}

// ---------------------------------------------------------------- organization host allowlist

dartwing_e2e::backend_tests! {
    /// Owners list their organization's webhook hosts; Members and other organizations' Owners
    /// cannot change them; while the list is set, other hosts are refused at enqueue (422, no
    /// job), and listed ones are delivered.
    async fn organization_webhook_hosts_refuse_other_hosts_at_enqueue(db) {
        let scene = scene(db, &["127.0.0.1/32"]).await;
        let receiver = Receiver::answering(Answer::Status(200)).await;
        let before = scene.snapshot().await;
        assert_refused(&set_hosts(&scene, MALLORY, json!(["127.0.0.1"])).await, StatusCode::FORBIDDEN, "PermissionError", &[]);
        assert_refused(&set_hosts(&scene, BOB, json!(["127.0.0.1"])).await, StatusCode::FORBIDDEN, "PermissionError", &[]);
        for bad in [json!(["https://hooks.example.com"]), json!(["*.com"]), json!(["ok.example.com", "a b"])] {
            assert_refused(&set_hosts(&scene, ALICE, bad).await, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        before.assert_unchanged(&scene.server, "refused host lists").await;

        let reply = set_hosts(&scene, ALICE, json!(["Hooks.Example.com", "127.0.0.1", "*.partner.example"])).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let listed = json!(["*.partner.example", "127.0.0.1", "hooks.example.com"]);
        assert_eq!(reply.json()["message"]["hosts"], listed);
        let read = scene
            .server
            .get(&format!("{HOSTS}?organization={}", scene.alpha), &scene.token(MALLORY))
            .await;
        assert_eq!(read.json()["message"]["hosts"], listed, "{}", read.text);

        let before = scene.snapshot().await;
        for url in ["https://other.example.org/hook", "https://partner.example/hook", "https://evil.hooks.example.com/"] {
            let reply = enqueue(&scene, MALLORY, &scene.alpha, url).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        before.assert_unchanged(&scene.server, "webhooks to unlisted hosts").await;

        let (_, request) = deliver_one(&scene, &receiver).await;
        assert_eq!(request.header("x-dartwing-organization"), scene.alpha);
        // Beta's job is due in an hour: accepted at enqueue, never sent during the test.
        let mut later = webhook(Some(&scene.beta), "https://other.example.org/hook");
        later["run_at"] = json!(dartwing_core::Timestamp::from_micros(
            dartwing_core::Timestamp::now().as_micros() + 3_600_000_000
        ));
        let beta = scene.server.post(ENQUEUE, &scene.token(BOB), &later).await;
        assert_eq!(beta.status, StatusCode::OK, "Alpha's list does not bind Beta: {}", beta.text);
        scene.stop().await;
    }
}

#[tokio::test]
async fn invalid_private_allowlist_stops_startup_naming_the_key() {
    let db = TestDatabase::sqlite();
    let mut config = dartwing_e2e::test_config(&db);
    config.jobs.webhook.allow_private = vec!["127.0.0.1".into()];
    let errors = config.validate().expect_err("refused");
    assert_eq!(errors.keys(), ["jobs.webhook.allow_private"]);
    let error = dartwing::node::Node::build(config).await.err().expect("refused");
    assert!(error.to_string().contains("jobs.webhook.allow_private"), "{error}");
}

#[tokio::test]
async fn openapi_document_lists_the_webhook_routes() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db).await;
    let reply = server.send(reqwest::Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    for (path, method) in [
        (SECRET, "get"),
        (ROTATE, "post"),
        (HOSTS, "get"),
        (HOSTS, "post"),
        (ENQUEUE, "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} documented");
    }
    server.stop().await;
}
