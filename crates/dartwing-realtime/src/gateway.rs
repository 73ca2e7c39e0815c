//! The Socket.IO gateway of one node: handshake authentication, subscriptions, delivery to local
//! sockets, the publish queue, the Redis event channel and access re-checks.

use crate::event::{ChannelEvent, Destination};
use crate::policy::{self, Refusal};
use crate::redis_bus::RedisBus;
use crate::room::Room;
use dartwing_core::access::{AccessChange, AccessChanges, DocumentDirectory, ReaderView};
use dartwing_core::config::RealtimeConfig;
use dartwing_core::identity::{IdentityStore, VerifiedUser};
use dartwing_core::publish::{Publisher, Target};
use dartwing_core::{Error, Principal};
use dartwing_http::Authenticator;
use dartwing_observe::Metrics;
use dartwing_observe::catalog;
use dartwing_observe::metrics::BoundedLabel;
use prometheus::{Histogram, IntCounterVec, IntGaugeVec};
use serde_json::{Value, json};
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type ClusterAdapter = CustomRedisAdapter<socketioxide::adapter::Emitter, RedisBus>;

/// Most distinct event names tracked as metric label values.
const MAX_EVENT_LABELS: usize = 200;

/// The Socket.IO server of either mode.
#[derive(Clone)]
enum Io {
    /// Embedded: one process, in-process delivery.
    Local(SocketIo<LocalAdapter>),
    /// Cluster: the Socket.IO Redis adapter carries room operations across nodes.
    Cluster(SocketIo<ClusterAdapter>),
}

#[derive(Clone)]
enum IoLayer {
    Local(SocketIoLayer<LocalAdapter>),
    Cluster(SocketIoLayer<ClusterAdapter>),
}

/// Runs `$body` with `$io` bound to the concrete `SocketIo` of either mode.
macro_rules! with_io {
    ($io:expr, $name:ident => $body:expr) => {
        match $io {
            Io::Local($name) => $body,
            Io::Cluster($name) => $body,
        }
    };
}

/// Who a socket belongs to, stored on the socket at the handshake.
#[derive(Debug, Clone)]
struct SocketUser {
    email: String,
    system_admin: bool,
}

/// What socket handlers share.
#[derive(Clone)]
struct Shared {
    identities: Arc<dyn IdentityStore>,
    authenticator: Arc<Authenticator>,
    documents: Arc<dyn DocumentDirectory>,
    config: Arc<RealtimeConfig>,
}

impl Shared {
    /// The document directory as `principal` sees it: a `doc:` room whose name several
    /// organizations use is judged on the copy `principal` may read, and on none (an unknown
    /// document) when it may read none of them.
    fn documents_for(&self, principal: &Principal) -> ReaderView {
        ReaderView::new(self.documents.clone(), principal.clone())
    }

    /// The user's principal with current memberships (a subscription is judged on fresh data).
    async fn principal(&self, user: &SocketUser) -> Result<Principal, Error> {
        self.identities
            .user_principal(&VerifiedUser {
                email: user.email.clone(),
                full_name: None,
                system_admin: user.system_admin,
            })
            .await
    }
}

#[derive(Clone)]
struct RealtimeMetrics {
    connections: IntGaugeVec,
    rooms: IntGaugeVec,
    redis_connected: IntGaugeVec,
    published: IntCounterVec,
    delivered: IntCounterVec,
    dropped: IntCounterVec,
    latency: Histogram,
    events: Arc<BoundedLabel>,
}

impl RealtimeMetrics {
    fn new(metrics: &Metrics) -> Result<Self, RealtimeError> {
        let dropped = metrics.counter(&catalog::SOCKETIO_MESSAGES_DROPPED)?;
        for reason in ["queue_full", "redis_unavailable", "invalid"] {
            dropped.with_label_values(&[reason]);
        }
        Ok(Self {
            connections: metrics.gauge(&catalog::SOCKETIO_CONNECTIONS_TOTAL)?,
            rooms: metrics.gauge(&catalog::SOCKETIO_ROOMS_TOTAL)?,
            redis_connected: metrics.gauge(&catalog::REALTIME_REDIS_CONNECTED)?,
            published: metrics.counter(&catalog::SOCKETIO_MESSAGES_PUBLISHED)?,
            delivered: metrics.counter(&catalog::SOCKETIO_MESSAGES_DELIVERED)?,
            dropped,
            latency: metrics
                .histogram(&catalog::SOCKETIO_REDIS_LATENCY_MS)?
                .with_label_values(&[] as &[&str]),
            events: Arc::new(BoundedLabel::new(MAX_EVENT_LABELS)),
        })
    }
}

/// Why the gateway could not be built.
#[derive(Debug)]
pub struct RealtimeError(String);

impl fmt::Display for RealtimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RealtimeError {}

impl From<dartwing_observe::metrics::RegistrationError> for RealtimeError {
    fn from(error: dartwing_observe::metrics::RegistrationError) -> Self {
        Self(format!("realtime metrics: {error}"))
    }
}

/// What the gateway needs from the rest of the node.
pub struct GatewayDeps {
    /// This node's id (origin of the events it publishes, `server_id` label).
    pub node_id: String,
    /// `realtime` configuration section.
    pub config: RealtimeConfig,
    /// `redis_url`: cluster mode when set.
    pub redis_url: Option<String>,
    /// Verifies handshake tokens.
    pub authenticator: Arc<Authenticator>,
    /// Loads principals with current memberships.
    pub identities: Arc<dyn IdentityStore>,
    /// Finds document owners for `doc:` rooms.
    pub documents: Arc<dyn DocumentDirectory>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The node's access-change hub: users whose access shrank leave the rooms they may no
    /// longer be in, on every node.
    pub access: AccessChanges,
}

struct Inner {
    io: Io,
    layer: IoLayer,
    node_id: String,
    channel: String,
    bus: Option<RedisBus>,
    queue: mpsc::Sender<ChannelEvent>,
    pending: std::sync::Mutex<Option<mpsc::Receiver<ChannelEvent>>>,
    /// Access changes waiting for the re-check task (taken by [`Realtime::spawn`]).
    access_changes: std::sync::Mutex<Option<mpsc::UnboundedReceiver<AccessChange>>>,
    shared: Shared,
    metrics: RealtimeMetrics,
}

/// The realtime gateway of a node; also the node's [`Publisher`].
#[derive(Clone)]
pub struct Realtime {
    inner: Arc<Inner>,
}

/// Initial size of each WebSocket connection's read buffer. Clients send small events
/// (`subscribe`, acks, pongs) that fit in it; a larger message grows the buffer to its own size
/// (within `realtime.max_payload_bytes`). The buffer is zero-filled when allocated, so every byte
/// of it is resident for as long as the connection is open: engine.io's default (4 KiB) is an
/// eighth of an idle connection's memory.
const WS_READ_BUFFER_BYTES: usize = 1024;

/// The Socket.IO server settings. `realtime.max_payload_bytes` bounds what a client may send on
/// either transport: an HTTP long-polling request body (`max_payload`), and a WebSocket message
/// and each of its frames. A WebSocket message beyond it is never parsed: the connection closes
/// (the socket disconnects with a transport error) and no event of it is handled.
fn builder(config: &RealtimeConfig) -> SocketIoBuilder {
    let ws_limit = usize::try_from(config.max_payload_bytes).unwrap_or(usize::MAX);
    SocketIo::builder()
        .ping_interval(Duration::from_secs(config.ping_interval_secs))
        .ping_timeout(Duration::from_secs(config.ping_timeout_secs))
        .max_payload(config.max_payload_bytes)
        .ws_max_message_size(ws_limit)
        .ws_max_frame_size(ws_limit)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .ack_timeout(Duration::from_secs(10))
}

impl Realtime {
    /// Builds the gateway: in-process when `redis_url` is unset, else on the Socket.IO Redis
    /// adapter plus the event channel. A Redis that is down at start is waited for in the
    /// background; local delivery works meanwhile.
    pub async fn build(deps: GatewayDeps) -> Result<Self, RealtimeError> {
        let metrics = RealtimeMetrics::new(&deps.metrics)?;
        let shared = Shared {
            identities: deps.identities,
            authenticator: deps.authenticator,
            documents: deps.documents,
            config: Arc::new(deps.config.clone()),
        };
        let (io, layer, bus) = match &deps.redis_url {
            None => {
                let (layer, io) = builder(&deps.config).with_state(shared.clone()).build_layer();
                io.ns("/", on_connect::<LocalAdapter>.with(authenticate::<LocalAdapter>));
                (Io::Local(io), IoLayer::Local(layer), None)
            }
            Some(url) => {
                let bus = RedisBus::connect(url)
                    .await
                    .map_err(|e| RealtimeError(format!("invalid configuration key `redis_url`: {e}")))?;
                let adapter = RedisAdapterCtr::new_with_driver(
                    bus.clone(),
                    RedisAdapterConfig::new()
                        .with_prefix(deps.config.adapter_prefix.clone())
                        .with_request_timeout(Duration::from_millis(deps.config.cluster_request_timeout_ms)),
                );
                let (layer, io) = builder(&deps.config)
                    .with_state(shared.clone())
                    .with_adapter::<ClusterAdapter>(adapter)
                    .build_layer();
                io.ns("/", on_connect::<ClusterAdapter>.with(authenticate::<ClusterAdapter>))
                    .await
                    .map_err(|e| RealtimeError(format!("Socket.IO Redis adapter: {e}")))?;
                (Io::Cluster(io), IoLayer::Cluster(layer), Some(bus))
            }
        };
        let (queue, pending) = mpsc::channel(deps.config.publish_queue);
        let (access_changes, access_pending) = mpsc::unbounded_channel();
        let forward = move |change: &AccessChange| {
            let _ = access_changes.send(change.clone());
        };
        // With the Redis adapter a re-check reaches the sockets of every node, so the node where
        // the change happened does it once; without it each node re-checks its own sockets.
        if bus.is_some() {
            deps.access.subscribe_here(forward);
        } else {
            deps.access.subscribe(forward);
        }
        let gateway = Self {
            inner: Arc::new(Inner {
                io,
                layer,
                node_id: deps.node_id.clone(),
                channel: deps.config.channel.clone(),
                bus,
                queue,
                pending: std::sync::Mutex::new(Some(pending)),
                access_changes: std::sync::Mutex::new(Some(access_pending)),
                shared,
                metrics,
            }),
        };
        // The registry outlives nothing it samples: the hook holds the gateway weakly (the gateway
        // reaches the registry through the database handle).
        let sampler = Arc::downgrade(&gateway.inner);
        let node_id = deps.node_id;
        deps.metrics.on_scrape(Box::new(move || {
            if let Some(inner) = sampler.upgrade() {
                Realtime { inner }.sample(&node_id);
            }
        }));
        Ok(gateway)
    }

    /// Puts the Socket.IO endpoint (`/socket.io/`) in front of `router`.
    pub fn mount(&self, router: axum::Router) -> axum::Router {
        match &self.inner.layer {
            IoLayer::Local(layer) => router.layer(layer.clone()),
            IoLayer::Cluster(layer) => router.layer(layer.clone()),
        }
    }

    /// Whether cross-node delivery is up (always true in embedded mode).
    pub fn cluster_connected(&self) -> bool {
        self.inner.bus.as_ref().is_none_or(RedisBus::is_up)
    }

    /// Starts the publish loop and, in cluster mode, the Redis channel listener and the
    /// connection watchdog. They stop with `shutdown`.
    pub fn spawn(&self, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let pending = self.inner.pending.lock().ok().and_then(|mut slot| slot.take());
        if let Some(pending) = pending {
            tasks.push(tokio::spawn(self.clone().publish_loop(pending, shutdown.clone())));
        }
        let access_changes = self.inner.access_changes.lock().ok().and_then(|mut slot| slot.take());
        if let Some(changes) = access_changes {
            tasks.push(tokio::spawn(self.clone().access_loop(changes, shutdown.clone())));
        }
        if let Some(bus) = &self.inner.bus {
            tasks.push(bus.spawn_watchdog(Duration::from_millis(500), shutdown.clone()));
            tasks.push(tokio::spawn(self.clone().channel_loop(bus.clone(), shutdown)));
        }
        tasks
    }

    /// Disconnects every socket of this node (graceful shutdown).
    pub async fn close(&self) {
        with_io!(&self.inner.io, io => io.close().await);
    }

    /// Validates `event` and queues it for delivery (HTTP publish path).
    pub fn submit(&self, mut event: ChannelEvent) -> Result<Destination, Error> {
        let destination = event.destination()?;
        event.origin = Some(self.inner.node_id.clone());
        event.sent_at_ms = Some(now_ms());
        self.enqueue(event);
        Ok(destination)
    }

    fn enqueue(&self, event: ChannelEvent) {
        let label = self.inner.metrics.events.value(&event.event).into_owned();
        match self.inner.queue.try_send(event) {
            Ok(()) => self.inner.metrics.published.with_label_values(&[label.as_str()]).inc(),
            Err(_) => {
                self.inner.metrics.dropped.with_label_values(&["queue_full"]).inc();
                tracing::warn!(event = %label, "realtime publish queue full; event dropped");
            }
        }
    }

    async fn publish_loop(self, mut pending: mpsc::Receiver<ChannelEvent>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(256);
        let mut redis_failures: u64 = 0;
        loop {
            batch.clear();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = pending.recv_many(&mut batch, 256) => if received == 0 { return },
            }
            let mut outgoing = Vec::with_capacity(batch.len());
            for event in batch.drain(..) {
                match event.destination() {
                    Ok(destination) => self.deliver_local(&destination, &event).await,
                    Err(error) => {
                        tracing::warn!(event = %event.event, error = %error, "realtime event dropped");
                        continue;
                    }
                }
                if self.inner.bus.is_some() {
                    match serde_json::to_vec(&event) {
                        Ok(payload) => outgoing.push(payload),
                        Err(error) => tracing::error!(error = %error, "realtime event not serializable"),
                    }
                }
            }
            if let Some(bus) = &self.inner.bus {
                let sends = outgoing
                    .into_iter()
                    .map(|payload| bus.publish_bytes(&self.inner.channel, payload));
                for result in futures::future::join_all(sends).await {
                    if let Err(error) = result {
                        self.inner
                            .metrics
                            .dropped
                            .with_label_values(&["redis_unavailable"])
                            .inc();
                        redis_failures += 1;
                        if redis_failures.is_power_of_two() {
                            tracing::warn!(error = %error, failures = redis_failures, "realtime event not sent to other nodes");
                        }
                    }
                }
            }
        }
    }

    async fn channel_loop(self, bus: RedisBus, shutdown: CancellationToken) {
        use socketioxide_redis::drivers::Driver;
        let mut stream = match bus.subscribe(self.inner.channel.clone(), 16_384).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(error = %error, "cannot listen on the realtime channel");
                return;
            }
        };
        use futures::StreamExt;
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return,
                item = stream.next() => item,
            };
            let Some((_, payload)) = item else { return };
            let event: ChannelEvent = match serde_json::from_slice(&payload) {
                Ok(event) => event,
                Err(error) => {
                    self.inner.metrics.dropped.with_label_values(&["invalid"]).inc();
                    tracing::warn!(error = %error, "realtime channel message is not a valid event payload");
                    continue;
                }
            };
            if let Some(sent) = event.sent_at_ms {
                self.inner.metrics.latency.observe((now_ms() - sent).max(0.0));
            }
            if event.origin.as_deref() == Some(self.inner.node_id.as_str()) {
                continue;
            }
            match event.destination() {
                Ok(destination) => self.deliver_local(&destination, &event).await,
                Err(error) => {
                    self.inner.metrics.dropped.with_label_values(&["invalid"]).inc();
                    tracing::warn!(event = %event.event, error = %error, "realtime channel message dropped");
                }
            }
        }
    }

    /// Emits `event` to this node's sockets in `destination`.
    async fn deliver_local(&self, destination: &Destination, event: &ChannelEvent) {
        let delivered = with_io!(&self.inner.io, io => {
            let operators = match destination {
                Destination::Room(room) => io.local().to(room.to_string()),
                Destination::Broadcast => io.local(),
            };
            let receivers = match destination {
                Destination::Room(room) => io.local().to(room.to_string()).sockets().len(),
                Destination::Broadcast => io.sockets().len(),
            };
            if receivers > 0
                && let Err(error) = operators.emit(&event.event, &event.message).await
            {
                tracing::warn!(event = %event.event, error = %error, "realtime delivery failed");
            }
            receivers
        });
        tracing::debug!(
            event = %event.event,
            room = destination.room_name().as_deref().unwrap_or("*"),
            delivered,
            origin = event.origin.as_deref().unwrap_or(""),
            trace_id = event.trace_id.as_deref().unwrap_or(""),
            "realtime event delivered to local sockets"
        );
        if delivered > 0 {
            let label = self.inner.metrics.events.value(&event.event);
            self.inner
                .metrics
                .delivered
                .with_label_values(&[label.as_ref()])
                .inc_by(delivered as u64);
        }
    }

    fn sample(&self, node_id: &str) {
        let (connections, rooms) = with_io!(&self.inner.io, io => {
            let sockets = io.sockets();
            let mut rooms = HashSet::new();
            for socket in &sockets {
                rooms.extend(socket.rooms());
            }
            (sockets.len(), rooms.len())
        });
        let metrics = &self.inner.metrics;
        metrics
            .connections
            .with_label_values(&[node_id])
            .set(connections as i64);
        metrics.rooms.with_label_values(&[node_id]).set(rooms as i64);
        metrics
            .redis_connected
            .with_label_values(&[node_id])
            .set(i64::from(self.cluster_connected()));
    }

    /// Removes `email`'s sockets, on every node, from the rooms the user may no longer join;
    /// disconnects them when the user may no longer sign in at all.
    pub async fn recheck_user(&self, email: &str) {
        let user = SocketUser {
            email: email.to_string(),
            system_admin: false,
        };
        let user_room = format!("user:{email}");
        let principal = self.inner.shared.principal(&user).await;
        let result = with_io!(&self.inner.io, io => {
            match &principal {
                Err(error) if error.kind() == dartwing_core::ErrorKind::PermissionDenied => {
                    io.to(user_room.clone()).disconnect().await.map(|_| 0).map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
                Ok(principal) => match io.to(user_room.clone()).rooms().await {
                    Err(error) => Err(error.to_string()),
                    Ok(rooms) => {
                        let documents = self.inner.shared.documents_for(principal);
                        let mut refused = Vec::new();
                        for name in rooms {
                            if name == user_room.as_str() {
                                continue;
                            }
                            let Ok(room) = Room::parse(&name) else { continue };
                            if policy::may_join(principal, &room, &documents, self.inner.shared.config.custom_rooms)
                                .await
                                .is_err()
                            {
                                refused.push(name.to_string());
                            }
                        }
                        let count = refused.len();
                        if refused.is_empty() {
                            Ok(0)
                        } else {
                            io.to(user_room.clone()).leave(refused).await.map(|_| count).map_err(|e| e.to_string())
                        }
                    }
                },
            }
        });
        match result {
            Ok(0) => {}
            Ok(left) => {
                tracing::info!(user = %email, rooms = left, "access changed; sockets left rooms no longer permitted")
            }
            Err(error) => tracing::warn!(user = %email, error = %error, "re-checking a user's rooms failed"),
        }
    }
}

impl Realtime {
    /// Re-checks the rooms of every user an access change concerns, until shutdown.
    async fn access_loop(self, mut changes: mpsc::UnboundedReceiver<AccessChange>, shutdown: CancellationToken) {
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => break,
                change = changes.recv() => match change {
                    Some(change) => change,
                    None => break,
                },
            };
            for email in change.users() {
                self.recheck_user(email).await;
            }
        }
    }

    /// The gateway as a capability of the node: its publish route and its delivery tasks (the
    /// publish queue, the Redis channel and its watchdog in cluster mode, access re-checks).
    pub fn capability(&self) -> dartwing_http::Capability {
        let gateway = self.clone();
        dartwing_http::Capability::new("realtime")
            .routes(crate::routes::routes(self.clone()))
            .task(dartwing_http::BackgroundTask::new(
                "realtime delivery",
                move |shutdown| {
                    let tasks = gateway.spawn(shutdown);
                    tokio::spawn(async move {
                        for task in tasks {
                            let _ = task.await;
                        }
                    })
                },
            ))
    }
}

impl Publisher for Realtime {
    fn publish(&self, event: &str, message: Value, target: Target, trace_id: Option<&str>) {
        let room = match target {
            Target::User(email) => Some(format!("user:{}", email.to_ascii_lowercase())),
            Target::Room(room) => Some(room),
            Target::Broadcast => None,
        };
        self.enqueue(ChannelEvent {
            event: event.to_string(),
            message,
            room,
            user: None,
            doctype: None,
            docname: None,
            origin: Some(self.inner.node_id.clone()),
            sent_at_ms: Some(now_ms()),
            trace_id: trace_id.map(str::to_string),
        });
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// Why a handshake is refused; the text reaches the client as the `connect_error` message.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn handshake_token<A: Adapter>(socket: &SocketRef<A>, auth: &Option<Value>) -> Option<String> {
    if let Some(token) = auth.as_ref().and_then(|a| a.get("token")).and_then(Value::as_str) {
        return Some(token.to_string());
    }
    let query = socket.req_parts().uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token").then(|| value.to_string())
    })
}

async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    State(shared): State<Shared>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let token = handshake_token(&socket, &auth.ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Refused("authentication required: pass auth {\"token\": \"<JWT>\"} or ?token=<JWT>".into()))?;
    let principal = shared
        .authenticator
        .authenticate_bearer(&token)
        .await
        .map_err(|e| Refused(format!("authentication failed: {}", e.message())))?;
    let Some(email) = principal.email() else {
        return Err(Refused("authentication failed: sockets need a user token".into()));
    };
    socket.extensions.insert(SocketUser {
        email: email.to_string(),
        system_admin: principal.system_admin,
    });
    // Everything a client may rely on right after `connect` is set up here, before the server
    // answers the handshake: the connect handler runs only after the answer, so an event sent at
    // once could otherwise arrive before its handler exists.
    socket.join(format!("user:{email}"));
    socket.on("subscribe", on_subscribe::<A>);
    socket.on("unsubscribe", on_unsubscribe::<A>);
    // The names the Dartwing Flutter clients and Frappe's socket.io use for the same requests.
    socket.on("join_room", on_subscribe::<A>);
    socket.on("leave_room", on_unsubscribe::<A>);
    Ok(())
}

/// The handshake middleware has set the socket up; nothing is left for the connect handler.
async fn on_connect<A: Adapter>(_socket: SocketRef<A>) {}

/// The room a request names: `{"room": "<room>"}` or the room itself as a string.
fn requested_room(data: Result<Value, impl fmt::Display>) -> Result<Room, Refusal> {
    let data = data.ok();
    let room = match &data {
        Some(Value::String(room)) => Some(room.as_str()),
        Some(value) => value.get("room").and_then(Value::as_str),
        None => None,
    }
    .ok_or_else(|| Refusal("expected {\"room\": \"<room>\"} or \"<room>\"".into()))?;
    Room::parse(room).map_err(|e| Refusal(e.0))
}

fn answer(result: Result<(), Refusal>) -> Value {
    match result {
        Ok(()) => json!({"ok": true}),
        Err(Refusal(error)) => json!({"ok": false, "error": error}),
    }
}

async fn on_subscribe<A: Adapter>(
    socket: SocketRef<A>,
    State(shared): State<Shared>,
    ack: AckSender<A>,
    TryData(data): TryData<Value>,
) {
    let result = subscribe(&socket, &shared, data).await;
    let _ = ack.send(&answer(result));
}

async fn subscribe<A: Adapter>(
    socket: &SocketRef<A>,
    shared: &Shared,
    data: Result<Value, impl fmt::Display>,
) -> Result<(), Refusal> {
    let room = requested_room(data)?;
    let user = socket
        .extensions
        .get::<SocketUser>()
        .ok_or_else(|| Refusal("not authenticated".into()))?;
    let name = room.to_string();
    let joined = socket.rooms();
    if joined.iter().any(|r| *r == name) {
        return Ok(());
    }
    if joined.len() > shared.config.max_rooms_per_socket {
        return Err(Refusal(format!(
            "at most {} rooms per connection",
            shared.config.max_rooms_per_socket
        )));
    }
    let principal = shared
        .principal(&user)
        .await
        .map_err(|e| Refusal(e.message().to_string()))?;
    let documents = shared.documents_for(&principal);
    policy::may_join(&principal, &room, &documents, shared.config.custom_rooms).await?;
    socket.join(name);
    Ok(())
}

async fn on_unsubscribe<A: Adapter>(socket: SocketRef<A>, ack: AckSender<A>, TryData(data): TryData<Value>) {
    let result = requested_room(data).map(|room| socket.leave(room.to_string()));
    let _ = ack.send(&answer(result));
}
