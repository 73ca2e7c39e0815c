//! Official Socket.IO clients driven from tests: the JS `socket.io-client` (Node.js) and
//! `python-socketio`, each run as an agent process that takes one JSON command per line.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Which official client an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// npm `socket.io-client` 4.x on Node.js.
    Js,
    /// PyPI `python-socketio` (asyncio client).
    Python,
}

impl ClientKind {
    /// Both clients.
    pub const ALL: [ClientKind; 2] = [ClientKind::Js, ClientKind::Python];
}

fn agents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agents")
}

/// Runs `install` once across concurrent test processes (a directory as the lock), unless
/// `done` says it already ran.
fn install_once(dir: &Path, done: impl Fn() -> bool, install: impl FnOnce()) {
    let lock = dir.join(".install-lock");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if done() {
            return;
        }
        if std::fs::create_dir(&lock).is_ok() {
            if !done() {
                install();
            }
            let _ = std::fs::remove_dir(&lock);
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {}", lock.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(command: &mut std::process::Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Installs the agents' dependencies (`npm ci`, a virtualenv with `pip install`) when missing.
pub fn ensure_installed(kind: ClientKind) {
    match kind {
        ClientKind::Js => {
            let dir = agents_dir().join("js");
            let done = dir.join("node_modules/socket.io-client/package.json");
            install_once(
                &dir,
                || done.exists(),
                || {
                    run(
                        std::process::Command::new("npm")
                            .args(["ci", "--no-audit", "--no-fund"])
                            .current_dir(&dir),
                        "npm ci (socket.io-client)",
                    );
                },
            );
        }
        ClientKind::Python => {
            let dir = agents_dir().join("python");
            // The marker holds the requirements it installed: a changed list installs again.
            let marker = dir.join(".venv/installed");
            let requirements = dir.join("requirements.txt");
            let done = || std::fs::read(&marker).ok() == std::fs::read(&requirements).ok();
            install_once(&dir, done, || {
                run(
                    std::process::Command::new("python3")
                        .args(["-m", "venv", ".venv"])
                        .current_dir(&dir),
                    "python3 -m venv",
                );
                run(
                    std::process::Command::new(dir.join(".venv/bin/pip"))
                        .args(["install", "-q", "-r", "requirements.txt"])
                        .current_dir(&dir),
                    "pip install (python-socketio, requests)",
                );
                std::fs::copy(&requirements, &marker).expect("install marker");
            });
        }
    }
}

/// The Python interpreter of the agents' virtualenv (has `python-socketio` and `redis`).
pub fn python() -> PathBuf {
    ensure_installed(ClientKind::Python);
    agents_dir().join("python/.venv/bin/python")
}

/// A Python program of the agents' directory, to run with [`python`].
pub fn python_program(file: &str) -> PathBuf {
    agents_dir().join("python").join(file)
}

/// An agent process holding any number of named client connections.
pub struct SocketAgent {
    kind: ClientKind,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl SocketAgent {
    /// Starts an agent of `kind`, installing its client library first if needed.
    pub async fn start(kind: ClientKind) -> Self {
        tokio::task::spawn_blocking(move || ensure_installed(kind))
            .await
            .expect("install");
        let mut command = match kind {
            ClientKind::Js => {
                let mut c = Command::new("node");
                c.arg(agents_dir().join("js/agent.mjs"));
                c
            }
            ClientKind::Python => {
                let mut c = Command::new(agents_dir().join("python/.venv/bin/python"));
                c.arg(agents_dir().join("python/agent.py"));
                c
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("agent starts");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            kind,
            child,
            stdin,
            lines,
            next_id: 1,
        }
    }

    /// Which client this agent runs.
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    /// Sends one command and returns the agent's reply.
    pub async fn call(&mut self, mut command: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        command["id"] = json!(id);
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("agent stdin");
        self.stdin.flush().await.expect("agent stdin");
        let reply = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{:?} agent did not answer {command}", self.kind))
            .expect("agent stdout")
            .unwrap_or_else(|| panic!("{:?} agent exited", self.kind));
        let reply: Value = serde_json::from_str(&reply).expect("agent reply is JSON");
        assert_eq!(reply["id"], json!(id), "agent answered out of order");
        reply
    }

    /// Connects client `name` to `base` (`http://host:port`) with `token` in the handshake `auth`.
    /// `Err` carries the `connect_error` message.
    pub async fn connect(&mut self, name: &str, base: &str, token: &str) -> Result<String, String> {
        self.connect_with(name, json!({"url": base, "token": token})).await
    }

    /// Connects with extra options: `transport` (`websocket`|`polling`), `query_token`, `reconnection`;
    /// omit `token` for an anonymous attempt.
    pub async fn connect_with(&mut self, name: &str, mut options: Value) -> Result<String, String> {
        options["cmd"] = json!("connect");
        options["client"] = json!(name);
        let reply = self.call(options).await;
        if reply["ok"] == json!(true) {
            Ok(reply["sid"].as_str().unwrap_or_default().to_string())
        } else {
            Err(reply["error"].as_str().unwrap_or_default().to_string())
        }
    }

    /// Emits `event` with `data` (none when `None`) and returns the acknowledgement.
    pub async fn emit(&mut self, name: &str, event: &str, data: Option<Value>) -> Value {
        let mut command = json!({"cmd": "emit", "client": name, "event": event});
        if let Some(data) = data {
            command["data"] = data;
        }
        let reply = self.call(command).await;
        assert_eq!(reply["ok"], json!(true), "{:?} emit {event}: {reply}", self.kind);
        reply["ack"].clone()
    }

    /// Emits `event` with `data` without asking for an acknowledgement (as
    /// `socket.emit('join_room', room)` in the Dart client).
    pub async fn send(&mut self, name: &str, event: &str, data: Value) {
        let reply = self
            .call(json!({"cmd": "emit", "client": name, "event": event, "data": data, "no_ack": true}))
            .await;
        assert_eq!(reply["ok"], json!(true), "{:?} send {event}: {reply}", self.kind);
    }

    /// `subscribe` to `room`; returns the ack (`{"ok": true}` or `{"ok": false, "error"}`).
    pub async fn subscribe(&mut self, name: &str, room: &str) -> Value {
        self.emit(name, "subscribe", Some(json!({"room": room}))).await
    }

    /// `unsubscribe` from `room`; returns the ack.
    pub async fn unsubscribe(&mut self, name: &str, room: &str) -> Value {
        self.emit(name, "unsubscribe", Some(json!({"room": room}))).await
    }

    /// Every event client `name` received so far, as `(event, payload)`, and whether it is connected.
    pub async fn events(&mut self, name: &str) -> (Vec<(String, Value)>, bool) {
        let reply = self.call(json!({"cmd": "events", "client": name})).await;
        let events = reply["events"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| (e["event"].as_str().unwrap_or_default().to_string(), e["data"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        (events, reply["connected"] == json!(true))
    }

    /// Payloads of `event` received by `name`, waiting up to `within` until there are `count`.
    pub async fn wait_for(&mut self, name: &str, event: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let (events, _) = self.events(name).await;
            let matching: Vec<Value> = events.into_iter().filter(|(e, _)| e == event).map(|(_, d)| d).collect();
            if matching.len() >= count || Instant::now() >= deadline {
                return matching;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forgets what `name` received so far.
    pub async fn clear(&mut self, name: &str) {
        self.call(json!({"cmd": "clear", "client": name})).await;
    }

    /// Disconnects client `name`.
    pub async fn disconnect(&mut self, name: &str) {
        self.call(json!({"cmd": "disconnect", "client": name})).await;
    }

    /// Ends the agent (its connections close).
    pub async fn stop(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
