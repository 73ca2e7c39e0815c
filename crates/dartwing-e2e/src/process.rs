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
