//! The cluster carrier of access changes: what a node publishes on its [`AccessChanges`] hub
//! reaches every other node of the cluster, where the hub's cluster-wide listeners hear it as if it
//! had been published there. The broker is Redis pub/sub when `redis_url` is set, else PostgreSQL
//! `NOTIFY` on a dedicated listening connection; a node on SQLite without Redis is alone and has
//! none.
//!
//! Each message names its origin node, which does not apply its own messages twice but waits for
//! them to come back: a publisher that announces a change hears that it was handed to every node
//! once the broker delivered it to the origin too. When the link
//! to the broker breaks, messages may be lost: after reconnecting, the node drops everything it
//! derived from earlier access decisions ([`AccessChange::Everything`]). Changes published while
//! the link is down wait (bounded) and leave once it is back.

use dartwing_core::access::{AccessChange, AccessChanges, AccessRelay, Relayed};
use dartwing_core::config::Config;
use dartwing_db::notify::{MAX_PAYLOAD_BYTES, Notifications};
use dartwing_db::{Backend, Db};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a publisher waits for its change to come back from the broker before answering anyway.
const SEND_WAIT: Duration = Duration::from_secs(2);
/// First wait before reconnecting to the broker; doubled up to [`MAX_RECONNECT_DELAY`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// Changes kept while the broker is unreachable; older ones are dropped beyond (the other nodes
/// drop their caches when they notice the gap, and the time to live bounds the rest).
const MAX_WAITING: usize = 10_000;

/// A change on the wire, with the node that published it and its number there.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    sequence: u64,
    change: AccessChange,
}

/// A change waiting to leave, and who waits for it to come back from the broker.
struct Outgoing {
    sequence: u64,
    payload: String,
    delivered: oneshot::Sender<()>,
}

/// Where changes go and come from.
enum Broker {
    Redis(redis::Client),
    Postgres(Db),
}

/// An open link to the broker: a subscription and a way to publish.
enum Link {
    Redis {
        messages: redis::aio::PubSubStream,
        publisher: redis::aio::MultiplexedConnection,
    },
    Postgres {
        notifications: Notifications,
        db: Db,
    },
}

/// The carrier of one node.
pub(crate) struct Carrier {
    broker: Broker,
    channel: String,
    node_id: String,
    access: AccessChanges,
}

/// Sends each change published on the node to the carrier's task.
struct Relay {
    origin: String,
    sequence: AtomicU64,
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl AccessRelay for Relay {
    fn relay(&self, change: &AccessChange) -> Relayed {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope {
            origin: self.origin.clone(),
            sequence,
            change: change.clone(),
        };
        let (delivered, confirmed) = oneshot::channel();
        match serde_json::to_string(&envelope) {
            Ok(payload) => {
                let _ = self.outgoing.send(Outgoing {
                    sequence,
                    payload,
                    delivered,
                });
            }
            Err(error) => tracing::error!(error = %error, "access change not serializable; not sent to the cluster"),
        }
        Box::pin(async move {
            if tokio::time::timeout(SEND_WAIT, confirmed).await.is_err() {
                tracing::warn!(
                    "an access change did not reach the cluster broker in time; it leaves when the broker is back"
                );
            }
        })
    }
}

impl Carrier {
    /// The carrier of `access`'s changes for a node of this configuration; `None` for a node on
    /// SQLite without Redis.
    pub(crate) fn install(
        config: &Config,
        node_id: &str,
        db: &Db,
        access: &AccessChanges,
    ) -> anyhow::Result<Option<Self>> {
        let broker = match (&config.redis_url, db.backend()) {
            (Some(url), _) => Broker::Redis(redis::Client::open(url.expose())?),
            (None, Backend::Postgres) => Broker::Postgres(db.clone()),
            (None, Backend::Sqlite) => return Ok(None),
        };
        Ok(Some(Self {
            broker,
            channel: config.tenancy.access_channel.clone(),
            node_id: node_id.to_string(),
            access: access.clone(),
        }))
    }

    /// Runs the carrier until `shutdown`: from now on the hub's changes go to the other nodes, the
    /// link is kept up, and the other nodes' changes are applied here.
    pub(crate) fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        let (sender, outgoing) = mpsc::unbounded_channel();
        self.access.relay_through(std::sync::Arc::new(Relay {
            origin: self.node_id.clone(),
            sequence: AtomicU64::new(0),
            outgoing: sender,
        }));
        tokio::spawn(self.run(outgoing, shutdown))
    }

    async fn run(self, mut outgoing: mpsc::UnboundedReceiver<Outgoing>, shutdown: CancellationToken) {
        let mut waiting: VecDeque<Outgoing> = VecDeque::new();
        let mut delay = MIN_RECONNECT_DELAY;
        let mut linked_before = false;
        let mut reported_down = false;
        loop {
            let link = tokio::select! {
                _ = shutdown.cancelled() => return,
                link = self.open() => link,
            };
            let mut link = match link {
                Ok(link) => link,
                Err(error) => {
                    if !reported_down {
                        tracing::error!(error = %error, "cannot reach the cluster broker for access changes; retrying");
                        reported_down = true;
                    }
                    Self::wait_offline(&mut outgoing, &mut waiting, delay, &shutdown).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                    continue;
                }
            };
            delay = MIN_RECONNECT_DELAY;
            reported_down = false;
            // Whatever was cached before the link was up may have missed changes.
            self.access.receive(&AccessChange::Everything);
            if linked_before {
                tracing::warn!("reconnected to the cluster broker; cached access decisions dropped");
            } else {
                tracing::info!(broker = link.name(), "access changes carried across the cluster");
            }
            linked_before = true;
            if !self.pump(&mut link, &mut outgoing, &mut waiting, &shutdown).await {
                return;
            }
            tracing::error!("lost the cluster broker for access changes; reconnecting");
        }
    }

    /// Moves messages both ways until the link breaks (`true`) or the node stops (`false`).
    async fn pump(
        &self,
        link: &mut Link,
        outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
        waiting: &mut VecDeque<Outgoing>,
        shutdown: &CancellationToken,
    ) -> bool {
        // Sent changes whose publishers wait for them to come back (dropped with the link: their
        // publishers stop waiting).
        let mut echoes: HashMap<u64, oneshot::Sender<()>> = HashMap::new();
        loop {
            if let Some(next) = waiting.pop_front() {
                match link.send(&self.channel, &next.payload).await {
                    Ok(()) => {
                        if echoes.len() >= MAX_WAITING {
                            echoes.retain(|_, publisher| !publisher.is_closed());
                        }
                        echoes.insert(next.sequence, next.delivered);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot send an access change to the cluster broker");
                        waiting.push_front(next);
                        return true;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                message = link.next() => match message {
                    Some(payload) => self.apply(&payload, &mut echoes),
                    None => return true,
                },
                next = outgoing.recv() => match next {
                    Some(next) => Self::keep(waiting, next),
                    None => return false,
                },
            }
        }
    }

    /// Keeps the node's changes while no link is up, for `delay`.
    async fn wait_offline(
        outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
        waiting: &mut VecDeque<Outgoing>,
        delay: Duration,
        shutdown: &CancellationToken,
    ) {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(until) => return,
                next = outgoing.recv() => match next {
                    Some(next) => Self::keep(waiting, next),
                    None => return,
                },
            }
        }
    }

    fn keep(waiting: &mut VecDeque<Outgoing>, outgoing: Outgoing) {
        if waiting.len() >= MAX_WAITING {
            waiting.pop_front();
            tracing::warn!("too many access changes wait for the cluster broker; the oldest was dropped");
        }
        waiting.push_back(outgoing);
    }

    /// Applies a message of another node; this node's own come back too, and tell their
    /// publishers that the broker delivered them.
    fn apply(&self, payload: &str, echoes: &mut HashMap<u64, oneshot::Sender<()>>) {
        match serde_json::from_str::<Envelope>(payload) {
            Ok(envelope) if envelope.origin == self.node_id => {
                if let Some(delivered) = echoes.remove(&envelope.sequence) {
                    let _ = delivered.send(());
                }
            }
            Ok(envelope) => self.access.receive(&envelope.change),
            Err(error) => {
                // A message this node cannot read may have been a change: forget what it may concern.
                tracing::warn!(error = %error, "unreadable access change from the cluster; cached access decisions dropped");
                self.access.receive(&AccessChange::Everything);
            }
        }
    }

    async fn open(&self) -> anyhow::Result<Link> {
        match &self.broker {
            Broker::Redis(client) => {
                let mut subscriber = client.get_async_pubsub().await?;
                subscriber.subscribe(&self.channel).await?;
                let publisher = client.get_multiplexed_async_connection().await?;
                Ok(Link::Redis {
                    messages: subscriber.into_on_message(),
                    publisher,
                })
            }
            Broker::Postgres(db) => Ok(Link::Postgres {
                notifications: db.listen(&self.channel).await?,
                db: db.clone(),
            }),
        }
    }
}

impl Link {
    fn name(&self) -> &'static str {
        match self {
            Link::Redis { .. } => "redis",
            Link::Postgres { .. } => "postgres",
        }
    }

    /// The next message's payload; `None` once the link is broken.
    async fn next(&mut self) -> Option<String> {
        match self {
            Link::Redis { messages, .. } => loop {
                let message = messages.next().await?;
                if let Ok(payload) = message.get_payload::<String>() {
                    return Some(payload);
                }
            },
            Link::Postgres { notifications, .. } => notifications.next().await,
        }
    }

    async fn send(&mut self, channel: &str, payload: &str) -> anyhow::Result<()> {
        match self {
            Link::Redis { publisher, .. } => {
                redis::AsyncCommands::publish::<_, _, redis::Value>(publisher, channel, payload).await?;
            }
            Link::Postgres { db, .. } => {
                if payload.len() > MAX_PAYLOAD_BYTES {
                    // Too long for NOTIFY (a large organization's member list): the other nodes
                    // drop everything instead.
                    let mut envelope: Envelope = serde_json::from_str(payload)?;
                    envelope.change = AccessChange::Everything;
                    let everything = serde_json::to_string(&envelope)?;
                    db.notify(channel, &everything).await?;
                } else {
                    db.notify(channel, payload).await?;
                }
            }
        }
        Ok(())
    }
}
