//! Child processes of a test (`dartwing serve` nodes, agents): a guard that kills and reaps the
//! process however the test ends, signals, and waiting for a node's health endpoint.

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when the guard is dropped, so a test that fails
/// (panics) before stopping it leaves nothing running.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Spawns `command` under a guard.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{:?} does not start: {e}", command.get_program()));
        Self(Some(child))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child().id()
    }

    fn child(&self) -> &Child {
        self.0.as_ref().expect("the guard still holds its child")
    }

    /// Sends `signal` (`"TERM"`, `"KILL"`, `"STOP"`, …) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.id(), signal);
    }

    /// Waits for the process to exit on its own (after a signal, say).
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.0.take().expect("the guard still holds its child");
        child.wait().expect("wait for the child")
    }

    /// Waits for the process to exit and collects its piped output.
    pub fn wait_with_output(mut self) -> Output {
        let child = self.0.take().expect("the guard still holds its child");
        child.wait_with_output().expect("wait for the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (`"TERM"`, `"KILL"`, …) to process `pid`, asserting that `kill` succeeded.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released), for a child process
/// to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port()
}

/// `127.0.0.1:<a free port>`, for `--listen`.
pub fn free_listen_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Waits until `GET <base>/health` answers 200, failing the test after `within` with the last
/// answer and `what` (the node's name).
pub async fn wait_healthy(base: &str, within: Duration, what: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let last = match client.get(format!("{base}/health")).send().await {
            Ok(reply) if reply.status() == reqwest::StatusCode::OK => return,
            Ok(reply) => format!("{} {}", reply.status(), reply.text().await.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{what} did not become healthy at {base}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `command` (a `dartwing` command with its environment set) as `serve` on a free port
/// with `--node-id node_id --roles roles`, output discarded, without waiting for it. Returns the
/// guard and the node's base URL.
pub fn spawn_node(command: &mut Command, node_id: &str, roles: &str) -> (ChildGuard, String) {
    let listen = free_listen_address();
    command
        .args(["serve", "--listen", &listen, "--node-id", node_id, "--roles", roles])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (ChildGuard::spawn(command), format!("http://{listen}"))
}

/// [`spawn_node`], then waits (up to 30 s) until the node is healthy.
pub async fn serve_node(command: &mut Command, node_id: &str, roles: &str) -> (ChildGuard, String) {
    let (child, base) = spawn_node(command, node_id, roles);
    wait_healthy(&base, Duration::from_secs(30), node_id).await;
    (child, base)
}

/// Spawns `command`, a `dartwing serve` listening on `listen`, under a guard, and waits (up to
/// `within`) until it is healthy. Returns the guard and `http://<listen>`.
pub async fn serve(command: &mut Command, listen: &str, within: Duration, what: &str) -> (ChildGuard, String) {
    let child = ChildGuard::spawn(command);
    let base = format!("http://{listen}");
    wait_healthy(&base, within, what).await;
    (child, base)
}

/// Nodes of the `dartwing` binary, each a process of its own, sharing whatever their commands
/// share (database, Redis, channels), with the JWT secret the tests sign their tokens with.
pub struct NodeCluster {
    nodes: Vec<(ChildGuard, String)>,
    jwt: dartwing_http::JwtVerifier,
    http: reqwest::Client,
}

impl NodeCluster {
    /// Starts one node per prepared command (binary, environment, `--config`, …) as `serve`
    /// with `roles`, node ids `node-1`, `node-2`, …, and the JWT `secret`; waits (up to 60 s
    /// each) until every node is healthy.
    pub async fn start(commands: Vec<Command>, roles: &str, secret: &str) -> Self {
        let mut nodes = Vec::new();
        for (index, mut command) in commands.into_iter().enumerate() {
            command.env("DARTWING_JWT_SECRET", secret);
            nodes.push(spawn_node(&mut command, &format!("node-{}", index + 1), roles));
        }
        for (_, base) in &nodes {
            wait_healthy(base, Duration::from_secs(60), "a cluster node").await;
        }
        Self {
            nodes,
            jwt: dartwing_http::JwtVerifier::new(Some(secret), &dartwing_core::config::AuthConfig::default()),
            http: reqwest::Client::new(),
        }
    }

    /// The HTTP client of the cluster's requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// How many nodes there are.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// `http://host:port` of node `node` (0-based).
    pub fn base(&self, node: usize) -> &str {
        &self.nodes[node].1
    }

    /// A user token for `email`.
    pub fn token(&self, email: &str) -> String {
        self.jwt
            .issue_dev_token(email, false, Duration::from_secs(600))
            .expect("token")
    }

    /// A platform administrator's token.
    pub fn admin(&self) -> String {
        self.jwt
            .issue_dev_token("root@example.com", true, Duration::from_secs(600))
            .expect("token")
    }

    /// A request to `node` with an `Authorization` header value and an optional JSON body; its
    /// status and JSON body (`null` when it has none).
    pub async fn request(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        authorization: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base(node)))
            .header("authorization", authorization);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.expect("request sent");
        let status = reply.status();
        (status, reply.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A request with a bearer token that must succeed; its body.
    pub async fn call(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, body) = self.request(node, method, path, &format!("Bearer {token}"), body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// The Person name of `email` (provisioned by this first request of theirs).
    pub async fn person_of(&self, email: &str) -> String {
        let people = self
            .call(
                0,
                reqwest::Method::GET,
                "/api/resource/Person?fields=[\"name\",\"primary_email\"]",
                &self.token(email),
                None,
            )
            .await;
        people["data"]
            .as_array()
            .and_then(|people| people.iter().find(|p| p["primary_email"] == email))
            .and_then(|person| person["name"].as_str())
            .unwrap_or_else(|| panic!("no Person for {email}: {people}"))
            .to_string()
    }
}
